"""Adapter-specific settings (``--adapter-opt KEY=VALUE``): parsing with one-line errors.

Every adapter declares the keys it understands with a short description of the values;
anything else is refused with one line listing the known keys, so a typo never turns
into a silently ignored option.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from wattbench.core.errors import ConfigError


def check_keys(adapter: str, extra: Mapping[str, str], known: Mapping[str, str]) -> None:
    """ConfigError naming the unknown keys and listing ``known`` (``key: values``)."""
    unknown = sorted(set(extra) - set(known))
    if not unknown:
        return
    listing = "; ".join(f"{k} ({v})" for k, v in known.items()) if known else "none"
    raise ConfigError(
        f"unknown --adapter-opt {', '.join(unknown)} for {adapter} (known: {listing})"
    )


def choice(adapter: str, key: str, value: str, allowed: Sequence[str]) -> str:
    """``value`` matched case-insensitively against ``allowed``; the allowed spelling back."""
    for a in allowed:
        if value.lower() == a.lower():
            return a
    raise ConfigError(
        f"--adapter-opt {key}={value!r} is not valid for {adapter}: use one of {', '.join(allowed)}"
    )


def positive_int(adapter: str, key: str, value: str) -> int:
    """``value`` as an integer ≥ 1."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(
            f"--adapter-opt {key}={value!r} is not valid for {adapter}: use an integer >= 1"
        )
    return n


def boolean(adapter: str, key: str, value: str) -> bool:
    """on/off, true/false, 1/0, yes/no."""
    v = value.lower()
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise ConfigError(f"--adapter-opt {key}={value!r} is not valid for {adapter}: use on or off")
