"""Settings read from the environment, and the policies they apply (plain-text transport, redaction)."""
