"""Validation helpers shared by every layer (a leaf module: it imports no other part of hoi_fast).

Every check raises :class:`ConfigError` (a ``ValueError``) whose one-line
message names the argument in backticks and says what to do; the command
lines turn it into exit status 2.  Experiments validate their configuration
dataclasses with these helpers in ``__post_init__``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

SCHEDULES = ("constant", "linear", "geometric")

#: Largest count accepted anywhere (a seed count, a sample size, ...): int64 arithmetic
#: on products of counts stays exact below it, and nothing this large fits in memory.
MAX_COUNT = 2**40

#: Largest magnitude accepted for a real-valued parameter that scales data
#: (means, variances, temperatures): squares and products of a few of them stay
#: finite in float64.
MAX_SCALE = 1e100


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it and the fix."""


def require(condition, message):
    """Raise :class:`ConfigError` with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)


def is_int(value):
    """True for Python and NumPy integers, False for bools and everything else."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    """True for int/float (NumPy too), False for bools, strings and containers."""
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(name, value, maximum=MAX_COUNT):
    """``value`` as an int in ``[1, maximum]``."""
    require(is_int(value) and 1 <= value <= maximum,
            f"`{name}` must be a positive integer (at most {maximum:,}), got {value!r}")
    return int(value)


def non_negative_int(name, value, maximum=MAX_COUNT):
    """``value`` as an int in ``[0, maximum]``."""
    require(is_int(value) and 0 <= value <= maximum,
            f"`{name}` must be an integer >= 0 (at most {maximum:,}), got {value!r}")
    return int(value)


def positive_float(name, value, maximum=MAX_SCALE):
    """``value`` as a finite float in ``(0, maximum]``."""
    require(is_real(value) and math.isfinite(value) and 0 < value <= maximum,
            f"`{name}` must be a positive finite number (at most {maximum:g}), got {value!r}")
    return float(value)


def non_negative_float(name, value, maximum=MAX_SCALE):
    """``value`` as a finite float in ``[0, maximum]``."""
    require(is_real(value) and math.isfinite(value) and 0 <= value <= maximum,
            f"`{name}` must be a finite number >= 0 (at most {maximum:g}), got {value!r}")
    return float(value)


def fraction(name, value):
    """``value`` as a float in ``[0, 1)``."""
    require(is_real(value) and 0 <= value < 1, f"`{name}` must be in [0, 1), got {value!r}")
    return float(value)


def one_of(name, value, choices):
    """``value`` if it is one of ``choices``."""
    require(isinstance(value, str) and value in choices,
            f"`{name}` must be one of {', '.join(choices)}; got {value!r}")
    return value


def finite_array(name, value, shape=None, maximum=MAX_SCALE):
    """``value`` as a float64 array of finite numbers of magnitude <= ``maximum``.

    ``shape`` (optional) is the required shape; ``None`` entries match any length.
    """
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"`{name}` must be numbers (a list, or a list of lists), got {value!r:.60}") from None
    if shape is not None:
        ok = a.ndim == len(shape) and all(s is None or s == n for s, n in zip(shape, a.shape))
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        require(ok, f"`{name}` must have shape {want}, got {a.shape}")
    require(np.all(np.isfinite(a)), f"`{name}` must be finite numbers")
    require(np.all(np.abs(a) <= maximum), f"`{name}` must be numbers of magnitude at most {maximum:g}")
    return a


def check_schedule(section, schedule, growth):
    """Validate a sample-size schedule (``constant``, ``linear``, ``geometric``) and its growth."""
    one_of(f"{section}.schedule", schedule, SCHEDULES)
    require(
        is_real(growth) and math.isfinite(growth) and 0 <= growth <= 1e6
        and (growth > 0 or schedule != "geometric"),
        f"`{section}.growth` must be a finite number in [0, 1e6] (> 0 for a geometric schedule), got {growth!r}",
    )


def scheduled_size(n, schedule, growth, generation):
    """Training-set size of ``generation`` under a sample-size schedule.

    ``constant``: n; ``linear``: round(n (1 + growth g)); ``geometric``:
    round(n growth^g).  Sizes beyond :data:`MAX_COUNT` raise :class:`ConfigError`.
    """
    if schedule == "constant":
        return int(n)
    if schedule == "linear":
        size = n * (1.0 + growth * generation)
    elif schedule == "geometric":
        try:
            size = n * growth ** generation
        except OverflowError:
            size = math.inf
    else:
        raise ConfigError(f"`schedule` must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    require(size <= MAX_COUNT, f"the `{schedule}` schedule with growth {growth} asks for {size:.3g} items at "
            f"generation {generation}, more than {MAX_COUNT:,}; lower the growth or run fewer generations")
    return int(round(size))


def check_keys(table, known, where):
    """Refuse keys of the settings table ``table`` outside ``known``, naming the key and the known ones."""
    for key in table:
        require(key in known, f"`{where}{key}` is not a known setting; known: {', '.join(sorted(known))}")


def as_tuple(value):
    """Lists (also nested) as tuples, so configurations read from TOML stay hashable."""
    if isinstance(value, list):
        return tuple(as_tuple(v) for v in value)
    return value
