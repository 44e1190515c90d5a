"""Typed dataclasses from plain dicts: every key and type checked, in one message style.

:func:`build_dataclass` turns a TOML/JSON table into a config dataclass: an unknown key
lists the valid keys and the closest match, a value of the wrong type says what it got and
what the field accepts, and the dataclass's own ``validate()`` checks ranges. The
experiment configs (:mod:`autoencoders.config`) and the model builder
(:func:`autoencoders.models.get`) both use it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal

from .errors import ConfigError


def build_dataclass(cls: type, values: dict[str, Any], section: str) -> Any:
    """Check every key and type of ``values`` against dataclass ``cls`` and build it."""
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table of key = value, got {values!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(_unknown_key_message(
                f"{section}.{key}", [f"{section}.{k}" for k in sorted(fields)]))
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def _coerce(value: Any, typ: Any, key: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if typ is Any:
        return value
    if origin is Literal:
        _check_choice(key, value, list(args))
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}.")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {value!r} ({type(value).__name__}).")
        return [_coerce(v, args[0], key) if args else v for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, got {value!r}.")
        return dict(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}.")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = (" Write it without a decimal point or exponent (e.g. 1000000, not 1e6)."
                    if isinstance(value, float) else "")
            raise ConfigError(
                f"{key} must be an integer, got {value!r} ({type(value).__name__}).{hint}"
            )
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r} ({type(value).__name__}).")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond the float range
            value = math.inf
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value!r}.")
        return value
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r} ({type(value).__name__}).")
        return value
    return value


def _closest(name: str, valid: list[str]) -> str:
    match = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    return f" Did you mean {match[0]!r}?" if match else ""


def _unknown_key_message(key: str, valid: list[str], what: str = "config key") -> str:
    return (f"Unknown {what} {key!r}.{_closest(key, valid)} Valid keys: {', '.join(valid)}.")


def _check_choice(key: str, value: Any, valid: list[Any]) -> None:
    if value not in valid:
        raise ConfigError(
            f"{key} = {value!r} is not a valid choice.{_closest(str(value), valid)} "
            f"Valid choices: {', '.join(map(str, valid))}."
        )
