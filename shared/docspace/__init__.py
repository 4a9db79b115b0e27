"""The DocSpace adapter: ``client`` (the REST client), ``errors`` (its typed failures), ``values`` (what it returns).

Nothing is re-exported here: a stage imports ``values`` and ``errors`` without loading the HTTP client.
"""
