"""Renamed keyword arguments that keep working for one release with a DeprecationWarning."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Dict, Tuple, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(**renames: Tuple[str, float]) -> Callable[[F], F]:
    """Decorator: accept ``old=value`` as ``new=value * factor``, warning that ``old`` is deprecated.

    ``@renamed_keywords(timeout_s=("timeout_ms", 1000.0))`` lets callers still pass a timeout
    in seconds under its old name; the function itself only knows ``timeout_ms``.
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, (new, factor) in renames.items():
                if old in kwargs:
                    kwargs[new] = _convert(func, kwargs, old, new, factor)
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _convert(func: Callable[..., Any], kwargs: Dict[str, Any], old: str, new: str,
             factor: float) -> Any:
    value = kwargs.pop(old)
    name = getattr(func, "__name__", "function")
    if name == "__init__":  # name the class being constructed
        name = getattr(func, "__qualname__", name).rsplit(".", 1)[0]
    if new in kwargs:
        raise TypeError(f"{name}() got both {old} (deprecated) and {new}: pass only {new}")
    unit = " (milliseconds)" if new.endswith("_ms") else ""
    warnings.warn(f"{name}(): {old} is deprecated and will be removed in the next release; "
                  f"use {new}{unit}", DeprecationWarning, stacklevel=3)  # the caller of wrapper()
    if factor == 1.0 or value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{old}: expected a number, got {type(value).__name__}")
    return value * factor
