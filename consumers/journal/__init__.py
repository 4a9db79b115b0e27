"""The journal writer: stores the decision journal's records in batches, one writer active at a time."""
