"""Converters from raw interaction logs to RecBole atomic files (``python -m dataset_converters.<name>``)."""
