"""The pipeline stages that consume from the broker: classifier, mover, notifier."""
