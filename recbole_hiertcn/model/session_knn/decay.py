"""Weights that decay with a distance, shared by the session-kNN models.

Distances are counted in steps: ``x = 1`` is the most recent item of a session (or, for the
sequential rules, the item right after the antecedent), ``x = 2`` the one before it, and so on.

Position weightings (Ludewig & Jannach 2018; V-SKNN and SR use them):

* ``same``: ``w(x) = 1``
* ``div``: ``w(x) = 1 / x``
* ``linear``: ``w(x) = max(0, 1 - 0.1 (x - 1))`` (0 from 11 steps back on)
* ``quadratic``: ``w(x) = 1 / x^2``
* ``log``: ``w(x) = 1 / log2(x + 1)``

Exponential decays (STAN, VSTAN): ``exp(-d / lambda)`` with ``lambda = None`` meaning no decay
(weight 1).
"""

import numpy as np

WEIGHTINGS = ("same", "div", "linear", "quadratic", "log")


def position_weight(name, steps):
    """``w(x)`` of :data:`WEIGHTINGS` for integer steps ``x >= 1`` (any array shape)."""
    x = np.asarray(steps, dtype=np.float64)
    if name == "same":
        return np.ones_like(x)
    if name == "div":
        return 1.0 / x
    if name == "linear":
        return np.maximum(0.0, 1.0 - 0.1 * (x - 1.0))
    if name == "quadratic":
        return 1.0 / (x * x)
    if name == "log":
        return 1.0 / np.log2(x + 1.0)
    raise ValueError(f"unknown weighting {name!r}; use one of {', '.join(WEIGHTINGS)}")


def exp_decay(distance, scale):
    """``exp(-distance / scale)``; ``scale=None`` switches the decay off (all ones)."""
    d = np.asarray(distance, dtype=np.float64)
    if scale is None:
        return np.ones_like(d)
    return np.exp(-d / float(scale))
