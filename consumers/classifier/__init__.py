"""The classifier: decides whether a DocSpace delivery is an invoice in a watched client room."""
