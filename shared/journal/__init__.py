"""The decision journal: one record per decision about a file, published without waiting, stored by one writer."""
