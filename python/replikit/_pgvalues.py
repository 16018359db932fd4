"""Values between Python and PostgreSQL for ``ReplicatedDatabase``: psycopg's own dumpers and
loaders, used without a connection, and the row factories.

The C++ backend sends parameters and receives results in PostgreSQL's text format (bytes in
binary format); this module turns Python values into those (``dump_params``) and result
columns back into Python values by type OID (``load_rows``), both through
``psycopg.adapt.Transformer`` over ``adapters``, a copy of psycopg's global adapters map with
dict dumped as jsonb. Register your own loaders and dumpers on ``replikit.pg.adapters`` as on
a psycopg connection's ``adapters``, before the first statement (each thread keeps the
loaders and dumpers it has looked up, as a psycopg cursor does).

timestamptz: psycopg converts it to the session's TimeZone; with no psycopg connection there
is none, so values come back as aware datetimes in UTC (the same instant the server sent:
PostgreSQL's text carries the offset). Dates and intervals are read in PostgreSQL's default
styles (DateStyle ISO, IntervalStyle postgres); a server configured otherwise needs them in
the DSN (``options='-c DateStyle=ISO'``).

The C++ bindings import this module on the first statement that has parameters or returns
rows, so ``import replikit`` does not import psycopg.
"""

from __future__ import annotations

import collections
import functools
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Sequence, Tuple, Type, TypeVar

from . import _core

try:
    import psycopg
    from psycopg.adapt import AdaptersMap, PyFormat, Transformer
    from psycopg.pq import Format
    from psycopg.types.json import JsonbDumper
except ImportError as exc:  # pragma: no cover - psycopg is a dependency of the package
    raise ImportError(
        f"replikit.pg converts parameters and results with psycopg 3, which is missing or broken "
        f"({exc}): pip install 'psycopg[binary]>=3.1'") from exc

if TYPE_CHECKING:  # psycopg.adapt.Transformer is its C or Python class, chosen at import
    from psycopg.abc import Transformer as TransformerProtocol

__all__ = ["RowFactory", "RowMaker", "adapters", "class_row", "dict_row", "namedtuple_row", "tuple_row"]

T = TypeVar("T")

#: Makes one row from a tuple of converted values.
RowMaker = Callable[[Tuple[Any, ...]], T]
#: Given the column names of a result, returns the RowMaker for its rows.
RowFactory = Callable[[Sequence[str]], Callable[[Tuple[Any, ...]], T]]

adapters = AdaptersMap(psycopg.adapters)
adapters.register_dumper(dict, JsonbDumper)  # psycopg needs Jsonb(d); here a dict is jsonb

# One Transformer per thread, reused: it keeps the loader of each type OID and the dumper of
# each Python type it met (a fresh one per call looks every one up again: about twice the cost
# of a point select's conversions). Bounded: dead threads' entries go when there are too many.
_TRANSFORMERS: Dict[int, TransformerProtocol] = {}
_MAX_TRANSFORMERS = 1024


def _transformer() -> TransformerProtocol:
    key = threading.get_ident()
    tx = _TRANSFORMERS.get(key)
    if tx is None:
        if len(_TRANSFORMERS) >= _MAX_TRANSFORMERS:
            alive = {t.ident for t in threading.enumerate()}
            for ident in [k for k in _TRANSFORMERS if k not in alive]:
                del _TRANSFORMERS[ident]
        tx = _TRANSFORMERS[key] = Transformer(adapters)
    return tx


_TEXT = PyFormat.TEXT
_BINARY = PyFormat.BINARY
_BUFFERS = (bytes, bytearray, memoryview)


# ------------------------------------------------------------------ rows
def _names(columns: Any) -> List[str]:
    """The column names as a list; ArgumentTypeError unless a list or tuple of str."""
    if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
        raise _error(_core.ArgumentTypeError, "columns",
                     f"expected a list of column names (str), got {type(columns).__name__}")
    return list(columns)


def tuple_row(columns: Sequence[str]) -> Callable[[Tuple[Any, ...]], Tuple[Any, ...]]:
    """Rows as tuples (the default)."""
    _names(columns)
    return _identity


def _identity(values: Tuple[Any, ...]) -> Tuple[Any, ...]:
    return values


def dict_row(columns: Sequence[str]) -> Callable[[Tuple[Any, ...]], Dict[str, Any]]:
    """Rows as dicts keyed by column name (a later column wins a duplicated name)."""
    names = _names(columns)

    def make(values: Tuple[Any, ...]) -> Dict[str, Any]:
        return dict(zip(names, values))

    return make


@functools.lru_cache(maxsize=256)
def _namedtuple_class(columns: Tuple[str, ...]) -> Type[Any]:
    # rename: a column name that is not a field name (?column?, a duplicate, a keyword, a
    # leading underscore) becomes _<index>.
    return collections.namedtuple("Row", columns, rename=True)


def namedtuple_row(columns: Sequence[str]) -> Callable[[Tuple[Any, ...]], NamedTuple]:
    """Rows as named tuples (fields named after the columns; a name that is not a Python
    identifier becomes ``_<index>``)."""
    cls = _namedtuple_class(tuple(_names(columns)))
    return cls._make  # type: ignore[no-any-return]


def class_row(cls: Type[T]) -> Callable[[Sequence[str]], Callable[[Tuple[Any, ...]], T]]:
    """Rows as instances of ``cls``, built with the columns as keyword arguments
    (a dataclass, a NamedTuple class, a pydantic model...)."""
    if not isinstance(cls, type):
        raise _error(_core.ArgumentTypeError, "cls", f"expected a class, got {type(cls).__name__}")

    def factory(columns: Sequence[str]) -> Callable[[Tuple[Any, ...]], T]:
        names = _names(columns)

        def make(values: Tuple[Any, ...]) -> T:
            return cls(**dict(zip(names, values)))

        return make

    return factory


def check_row_factory(row_factory: Any, argument: str = "row_factory") -> Any:
    """``row_factory`` if it is usable (None: the default), else ArgumentTypeError naming it."""
    if row_factory is None:
        return None
    if callable(row_factory) and not isinstance(row_factory, type):
        if getattr(row_factory, "__module__", None) == "psycopg.rows":
            raise _error(_core.ArgumentTypeError, argument,
                         f"{row_factory.__name__} is psycopg's row factory, which reads a psycopg "
                         f"cursor; use replikit.pg.{row_factory.__name__} (same names: tuple_row, "
                         "dict_row, namedtuple_row, class_row(cls))")
        return row_factory
    hint = f" (for rows as {row_factory.__name__} objects pass class_row({row_factory.__name__}))" \
        if isinstance(row_factory, type) else ""
    raise _error(_core.ArgumentTypeError, argument,
                 f"expected a row factory (tuple_row, dict_row, namedtuple_row, class_row(cls) or a "
                 f"callable taking the column names), got {type(row_factory).__name__}{hint}")


def make_rows(row_factory: Any, columns: List[str], tuples: List[Tuple[Any, ...]]) -> List[Any]:
    """The rows built by ``row_factory`` from ``tuples``."""
    make = row_factory(columns)
    return [make(values) for values in tuples]


# ------------------------------------------------------------------ results
def load_rows(type_oids: Sequence[int], columns: Sequence[str],
              raw_rows: List[Tuple[Any, ...]]) -> List[Tuple[Any, ...]]:
    """Rows of text-format cells (bytes, or None for NULL) as tuples of Python values, each
    column converted by psycopg's loader for its type OID (one loader per column; an unknown
    type comes back as str)."""
    tx = _transformer()
    tx.set_loader_types(type_oids, Format.TEXT)
    load = tx.load_sequence
    try:
        return [load(row) for row in raw_rows]
    except psycopg.DataError as exc:
        raise _load_error(type_oids, columns, raw_rows, exc) from exc


def _load_error(type_oids: Sequence[int], columns: Sequence[str], raw_rows: List[Tuple[Any, ...]],
                exc: Exception) -> Exception:
    # Find the cell to name it: psycopg's message says what, not where.
    tx = Transformer(adapters)
    for c, oid in enumerate(type_oids):
        loader = tx.get_loader(oid, Format.TEXT)
        for row in raw_rows:
            if row[c] is None:
                continue
            try:
                loader.load(row[c])
            except psycopg.DataError as cell:
                return psycopg.DataError(f"column {columns[c]!r} (type OID {oid}): cannot convert "
                                         f"{bytes(row[c])[:60]!r}: {cell}")
    return exc  # pragma: no cover - the cell did not fail twice


# ------------------------------------------------------------------ parameters
def _has_buffer(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _BUFFERS):
        return True
    if isinstance(value, list) and value and depth < 8:
        return any(_has_buffer(v, depth + 1) for v in value)
    return False


def dump_params(params: Sequence[Any],
                argument: str = "params") -> Tuple[Sequence[Any], Sequence[int], List[int]]:
    """``params`` as psycopg dumps them: (values: bytes-like or None, type OIDs, formats).
    Text format, except bytes (and lists holding bytes) in binary format, as bytea; a str is
    sent with type OID 0, so the server infers its type from the statement."""
    formats = [_BINARY if _has_buffer(p) else _TEXT for p in params]
    tx = _transformer()
    try:
        values = tx.dump_sequence(params, formats)
    except Exception as exc:  # noqa: BLE001 - find and name the parameter, below
        raise _dump_error(params, formats, exc, argument) from None
    return values, tx.types or (), [int(f) for f in tx.formats or ()]


def _dump_error(params: Sequence[Any], formats: List[PyFormat], first: Exception,
                argument: str) -> Exception:
    tx = Transformer(adapters)
    for k, (value, fmt) in enumerate(zip(params, formats)):
        if value is None:
            continue
        where = f"parameter ${k + 1} (params[{k}], a {type(value).__name__})"
        try:
            tx.get_dumper(value, fmt).dump(value)
        except (psycopg.ProgrammingError, TypeError) as exc:
            return _error(_core.ArgumentTypeError, argument,
                          f"{where}: psycopg cannot send this type ({exc}); pass None, bool, int, "
                          "float, Decimal, str, bytes, date/time/datetime/timedelta, UUID, dict "
                          "(jsonb), a list (array) of those, or a psycopg wrapper such as Json")
        except (ValueError, psycopg.DataError) as exc:
            return _error(_core.InvalidArgument, argument, f"{where}: {_message(exc)}")
    return _error(_core.InvalidArgument, argument, _message(first))  # pragma: no cover


def _message(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, UnicodeError) or "NUL" in text:
        # Keep the message ASCII-safe (a surrogate in it would itself fail to encode).
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    if "NUL" in text or "0x00" in text:
        return (f"holds a NUL character, which PostgreSQL text cannot contain (pass binary data "
                f"as bytes, sent as bytea): {text}")
    return text


def _error(cls: Any, argument: str, message: str) -> Exception:
    err: Exception = cls(f"{argument}: {message}")
    setattr(err, "argument", argument)  # noqa: B010 - what the C++ errors carry
    return err
