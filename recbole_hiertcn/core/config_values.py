"""Typed reads of model config keys; a bad value is a ValueError naming the model and the key."""

import numbers


def config_error(model, key, message):
    return ValueError(f"{model}: config key `{key}` {message}")


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _read(model, config, key, accepted, wanted, convert):
    """``convert(config[key])`` if ``accepted`` holds for it, else the error "must be
    <wanted>"."""
    value = config[key]
    if not accepted(value):
        raise config_error(model, key, f"must be {wanted}, got {value!r}")
    return convert(value)


def _optional(convert):
    return lambda value: None if value is None else convert(value)


def positive_int(model, config, key):
    return _read(model, config, key, lambda v: _is_integer(v) and v >= 1,
                 "a positive integer", int)


def non_negative_int(model, config, key):
    return _read(model, config, key, lambda v: _is_integer(v) and v >= 0, "an integer >= 0", int)


def positive_int_list(model, config, key):
    value = config[key]
    if _is_integer(value):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value \
            or not all(_is_integer(v) and v >= 1 for v in value):
        raise config_error(model, key,
                           f"must be a non-empty list of positive integers, got {value!r}")
    return [int(v) for v in value]


def choice(model, config, key, choices):
    return _read(model, config, key, lambda v: v in choices, f"one of {', '.join(choices)}",
                 lambda v: v)


def probability(model, config, key):
    """A dropout-style rate in [0, 1)."""
    return _read(model, config, key, lambda v: _is_real(v) and 0.0 <= v < 1.0, "in [0, 1)",
                 float)


def seconds(model, config, key):
    """A non-negative number of seconds."""
    return _read(model, config, key, lambda v: _is_real(v) and v >= 0,
                 "a number of seconds >= 0", float)


def non_negative_number(model, config, key):
    return _read(model, config, key, lambda v: _is_real(v) and v >= 0, "a number >= 0", float)


def flag(model, config, key):
    """A yes/no setting: True or False (a missing key is refused, not guessed)."""
    return _read(model, config, key, lambda v: isinstance(v, bool), "True or False",
                 lambda v: v)


def number(model, config, key):
    """Any real number."""
    return _read(model, config, key, _is_real, "a number", float)


def optional_positive_seconds(model, config, key):
    """A positive number of seconds, or ~ (None)."""
    return _read(model, config, key, lambda v: v is None or (_is_real(v) and v > 0),
                 "a positive number of seconds or ~", _optional(float))


def optional_scale(model, config, key):
    """A positive decay scale, or ~ (None: the decay is off)."""
    return _read(model, config, key, lambda v: v is None or (_is_real(v) and v > 0),
                 "a positive number or ~ (off)", _optional(float))


def optional_name(model, config, key):
    """A field name, or ~ (None)."""
    return _read(model, config, key, lambda v: v is None or (isinstance(v, str) and v),
                 "a field name or ~", lambda v: v)
