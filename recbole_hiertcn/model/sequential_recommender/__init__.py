"""Sequential recommenders of the plugin (one model per module, named after it)."""
