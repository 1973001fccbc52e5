"""A local emulator of the Fluent Commerce API (auth, GraphQL, Batch, Event, faults)."""
