"""An example lrbench plugin."""
