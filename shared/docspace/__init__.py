"""The DocSpace adapter, by role: ``transport`` (HTTP, the key, the rate limit, 429s), ``rooms``, ``files``,
``client`` (one process's transport, rooms and files), ``admin`` (webhooks, the delivery log, room listings), and
what needs no HTTP: ``webhooks`` (the trigger table, log and listing rows), ``errors``, ``values``.

Nothing is re-exported here: a stage imports ``values`` and ``errors`` without loading the HTTP client.
"""
