"""What a process runs on: the process runner, health server, logging, adapter wiring."""
