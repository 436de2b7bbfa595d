"""Typed reads of model config keys; a bad value is a ValueError naming the model and the key."""

import numbers


def config_error(model, key, message):
    return ValueError(f"{model}: config key `{key}` {message}")


def positive_int(model, config, key):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise config_error(model, key, f"must be a positive integer, got {value!r}")
    return int(value)


def positive_int_list(model, config, key):
    value = config[key]
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in value)
    ):
        raise config_error(model, key,
                           f"must be a non-empty list of positive integers, got {value!r}")
    return [int(v) for v in value]


def choice(model, config, key, choices):
    value = config[key]
    if value not in choices:
        raise config_error(model, key, f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def probability(model, config, key):
    """A dropout-style rate in [0, 1)."""
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise config_error(model, key, f"must be in [0, 1), got {value!r}")
    return float(value)


def seconds(model, config, key):
    """A non-negative number of seconds."""
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise config_error(model, key, f"must be a number of seconds >= 0, got {value!r}")
    return float(value)


def flag(model, config, key):
    """A yes/no setting: True or False (a missing key is refused, not guessed)."""
    value = config[key]
    if not isinstance(value, bool):
        raise config_error(model, key, f"must be True or False, got {value!r}")
    return value


def number(model, config, key):
    """Any real number."""
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise config_error(model, key, f"must be a number, got {value!r}")
    return float(value)


def optional_positive_seconds(model, config, key):
    """A positive number of seconds, or ~ (None)."""
    value = config[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)
                              or value <= 0):
        raise config_error(model, key, f"must be a positive number of seconds or ~, got "
                           f"{value!r}")
    return None if value is None else float(value)


def optional_name(model, config, key):
    """A field name, or ~ (None)."""
    value = config[key]
    if value is not None and (not isinstance(value, str) or not value):
        raise config_error(model, key, f"must be a field name or ~, got {value!r}")
    return value
