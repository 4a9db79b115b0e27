"""The performance benchmark: ``python -m bench`` (``make bench``) measures the product against its baselines."""
