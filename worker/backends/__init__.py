"""Model backends: one small interface, one module per runtime."""
