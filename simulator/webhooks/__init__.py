"""The webhook side of the simulator: .NET-style JSON, the config registry and delivery log, the sender."""
