"""One module per IAM kind, each an implementation of `kinds.base.Kind`, found by `registry`."""
