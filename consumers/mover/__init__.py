"""The mover: puts each detected invoice into its client's Incoming folder and announces it."""
