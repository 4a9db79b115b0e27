"""The operator console: the pipeline on a few server-rendered pages, its own authenticated process."""
