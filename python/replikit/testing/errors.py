"""Errors of the local cluster harness: all under ``replikit.Error``."""

from __future__ import annotations

import math
from typing import Type

from .. import _core


class ClusterError(_core.Error, RuntimeError):
    """The local cluster could not do what was asked (start, stop, wait, ...).

    Also a RuntimeError, which is what it was before it joined ``replikit.Error``.
    """


class ClusterTimeoutError(ClusterError, _core.TimeoutError):
    """A bounded wait of the local cluster harness ran out of time (a TimeoutError)."""


class ClusterSQLError(ClusterError):
    """psql reported an error for a query (the server's message is in ``stderr``)."""

    def __init__(self, message: str, *, node: str, query: str, stderr: str,
                 returncode: int):
        super().__init__(message)
        self.node = node
        self.query = query
        self.stderr = stderr
        self.returncode = returncode


# replikit.ArgumentTypeError (a TypeError) is built by the compiled module; the stubs may not
# list it yet, so it is looked up rather than named.
_ArgumentTypeError: Type[Exception] = getattr(_core, "ArgumentTypeError", TypeError)


def invalid_argument(argument: str, message: str,
                     cls: "type[_core.InvalidArgument]" = _core.InvalidArgument) -> Exception:
    """replikit.InvalidArgument (a ValueError) for ``argument``, message ``argument: message``;
    ``cls`` may be a subclass (replikit.NotFound for an unknown name)."""
    error = cls(f"{argument}: {message}")
    error.argument = argument
    return error


def argument_type_error(argument: str, expected: str, value: object) -> Exception:
    """replikit.ArgumentTypeError (a TypeError) for ``argument``."""
    error = _ArgumentTypeError(f"{argument}: expected {expected}, got {type(value).__name__}")
    setattr(error, "argument", argument)
    return error


def timeout_seconds(argument: str, timeout_ms: float) -> float:
    """A ``*_ms`` duration of the public API as seconds; it must be a finite number > 0."""
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)):
        raise argument_type_error(argument, "a number of milliseconds", timeout_ms)
    if not (math.isfinite(timeout_ms) and timeout_ms > 0):
        raise invalid_argument(argument, f"must be a finite number of milliseconds > 0, "
                                         f"got {timeout_ms!r}")
    return float(timeout_ms) / 1000.0
