"""The one decision path: decide (pure), execute, finalize, sweep; shared by operator and plan."""
