"""The etcd client's errors and argument checks (all under ``replikit.Error``)."""

from __future__ import annotations

import math
from typing import Any, Optional

from .. import _core


class EtcdError(_core.Error):
    """etcd answered with an error that is not about reachability (bad request, permission
    denied, wrong credentials, ...). ``code`` is the gRPC status code etcd reported (0 when
    the answer could not be read)."""

    def __init__(self, message: str, *, code: int = 0):
        super().__init__(message)
        self.code = code


class CoordinationUnavailable(_core.ConnectionError):
    """No endpoint answered within the timeout, or the one that answered has no quorum.
    For a write, its outcome is unknown (it may still be applied)."""


MAX_TIMEOUT_MS = 600_000.0
MAX_TTL_S = 9_000_000_000  # etcd's own limit on a lease TTL is far above any sane value


def invalid_argument(argument: str, message: str) -> Exception:
    error = _core.InvalidArgument(f"{argument}: {message}")
    error.argument = argument
    return error


def argument_type_error(argument: str, expected: str, value: object) -> Exception:
    error = _core.ArgumentTypeError(f"{argument}: expected {expected}, got {type(value).__name__}")
    setattr(error, "argument", argument)
    return error


def check_key(argument: str, key: Any, *, allow_empty: bool = False) -> bytes:
    """A key as bytes: a non-empty str (UTF-8)."""
    if not isinstance(key, str):
        raise argument_type_error(argument, "a str", key)
    if not key and not allow_empty:
        raise invalid_argument(argument, "must not be empty")
    if "\x00" in key:
        raise invalid_argument(argument, "must not contain NUL characters")
    return key.encode("utf-8")


def check_value(value: Any) -> bytes:
    """A value as bytes: bytes or str (UTF-8)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise argument_type_error("value", "bytes or str", value)


def check_int(argument: str, value: Any, *, low: int, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise argument_type_error(argument, "an int", value)
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise invalid_argument(argument, f"expected an int {bound}, got {value}")
    return value


def check_timeout_ms(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise argument_type_error("timeout_ms", "a number of milliseconds", value)
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_MS):
        raise invalid_argument("timeout_ms", f"expected a finite number of milliseconds in "
                               f"(0, {MAX_TIMEOUT_MS:g}], got {value!r}")
    return float(value)
