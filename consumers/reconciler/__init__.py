"""The reconciler: recovers what DocSpace could not deliver (webhook health, delivery log, room scan)."""
