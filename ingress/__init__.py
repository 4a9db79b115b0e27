"""The ingress: verifies DocSpace webhook deliveries and hands them, byte for byte, to the broker."""
