"""The one error the converters report: exit status 2 and ``error: <message>``, no traceback."""


class ConversionError(Exception):
    """Bad input or settings; the message names the file, line and column where it applies."""
