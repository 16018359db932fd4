"""Values through ReplicatedDatabase against a real cluster: every listed PostgreSQL type comes
back as the Python value psycopg's loaders make (and goes in through psycopg's dumpers), a
Hypothesis property test for the scalar types, row factories, and bad parameters.

Replaying a Hypothesis failure: the test is derandomized (the same examples on every run) and
prints the failing example; paste it as `@example(...)` above `@given`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import replikit

pytestmark = pytest.mark.pg

if not getattr(replikit._core, "HAVE_PG", False):  # pragma: no cover - depends on the build
    pytest.skip("replikit was built without the PostgreSQL backend", allow_module_level=True)

from replikit.pg import (class_row, database_for_cluster, dict_row, namedtuple_row,  # noqa: E402
                         tuple_row)

UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def db(pg_cluster):
    pg_cluster.sql("primary", "DROP TABLE IF EXISTS rk_values")
    pg_cluster.sql("primary", "CREATE TABLE rk_values (id serial PRIMARY KEY, b bool, i2 int2, i4 int4, "
                              "i8 int8, f4 float4, f8 float8, n numeric, t text, by bytea, d date, tm time, "
                              "tz timetz, ts timestamp, tstz timestamptz, iv interval, u uuid, j json, "
                              "jb jsonb, ia int[], ta text[], m int[][], ja jsonb[])")
    pg_cluster.wait_caught_up(timeout_ms=10_000)
    database = database_for_cluster(pg_cluster)
    assert database.wait_probes(2, 5000)
    yield database
    database.close()


# (SQL type, a Python value, the PostgreSQL literal of the same value): each value goes in as
# a parameter, and the literal comes back from the server, both equal to the value.
CASES = [
    ("bool", True, "true"),
    ("int2", -32768, "-32768"),
    ("int4", 2**31 - 1, "2147483647"),
    ("int8", -(2**63), "-9223372036854775808"),
    ("float4", 1.5, "1.5"),
    ("float8", 0.1, "0.1"),
    ("float8", math.inf, "'Infinity'"),
    ("numeric", Decimal("12345678901234567890.000000001"), "12345678901234567890.000000001"),
    ("numeric", Decimal("NaN"), "'NaN'"),
    ("text", "héllo ☃ 'quoted' \\ backslash", "E'héllo ☃ ''quoted'' \\\\ backslash'"),
    ("varchar(10)", "short", "'short'"),
    ("bytea", bytes(range(256)), "decode('" + bytes(range(256)).hex() + "', 'hex')"),
    ("date", dt.date(2024, 2, 29), "'2024-02-29'"),
    ("time", dt.time(23, 59, 59, 999999), "'23:59:59.999999'"),
    ("timetz", dt.time(12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), "'12:00:00+02'"),
    ("timestamp", dt.datetime(1999, 12, 31, 23, 59, 58, 5), "'1999-12-31 23:59:58.000005'"),
    ("timestamptz", dt.datetime(2024, 1, 1, 10, 0, tzinfo=UTC), "'2024-01-01 12:00:00+02'"),
    ("interval", dt.timedelta(days=-3, seconds=7, microseconds=1), "'-3 days 00:00:07.000001'"),
    ("uuid", uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"),
    ("jsonb", {"a": [1, 2, {"b": None}], "c": "d"}, "'{\"a\": [1, 2, {\"b\": null}], \"c\": \"d\"}'"),
    ("json", {"a": [1, "two", True, None]}, "'{\"a\": [1, \"two\", true, null]}'"),
    ("int4[]", [1, None, 3], "ARRAY[1, NULL, 3]"),
    ("text[]", ["a", "b c", "", None, "{}"], "ARRAY['a', 'b c', '', NULL, '{}']"),
    ("int4[]", [[1, 2], [3, 4]], "ARRAY[[1, 2], [3, 4]]"),
    ("bytea[]", [b"\x00", b"\xff\x01"], "ARRAY['\\x00'::bytea, '\\xff01'::bytea]"),
    ("date[]", [dt.date(2000, 1, 1)], "ARRAY['2000-01-01'::date]"),
    ("uuid[]", [uuid.UUID(int=5)], "ARRAY['00000000-0000-0000-0000-000000000005'::uuid]"),
]


def same(a: Any, b: Any) -> bool:
    """Equal, NaN included, and of the same type (True is not 1, Decimal is not float)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, Decimal) and a.is_nan():
        return b.is_nan()
    if isinstance(a, dt.datetime) and a.tzinfo is not None:
        return a == b and b.utcoffset() == dt.timedelta(0)  # timestamptz comes back in UTC
    return bool(a == b)


@pytest.mark.parametrize("sql_type,value,literal", CASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_each_type_goes_in_and_comes_back_as_its_python_value(db, sql_type, value, literal):
    r = db.query(f"SELECT $1::{sql_type} AS sent, ({literal})::{sql_type} AS literal, NULL::{sql_type} AS nothing",
                 [value], consistency="strong")
    sent, from_literal, nothing = r.rows[0]
    assert same(value, sent), (sql_type, value, sent, r.raw_rows)
    assert same(value, from_literal), (sql_type, value, from_literal, r.raw_rows)
    assert nothing is None


def test_values_stored_in_a_table_come_back_from_a_replica(db):
    session = replikit.Session()
    row = [True, 7, 70000, 2**40, 2.5, -0.25, Decimal("1.10"), "t", b"\x00b", dt.date(2020, 1, 1),
           dt.time(1, 2, 3), dt.time(4, 5, tzinfo=UTC), dt.datetime(2020, 1, 1, 1, 1),
           dt.datetime(2020, 1, 1, 1, 1, tzinfo=UTC), dt.timedelta(hours=25), uuid.uuid4(), {"k": "v"},
           {"k": [1]}, [1, 2], ["x"], [[1], [2]], [{"a": 1}, {"b": 2}]]
    w = db.execute("INSERT INTO rk_values (b, i2, i4, i8, f4, f8, n, t, by, d, tm, tz, ts, tstz, iv, u, j, jb, "
                   "ia, ta, m, ja) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
                   "$16, $17, $18, $19, $20, $21, $22) RETURNING id", row, session=session)
    (row_id,) = w.rows[0]
    assert isinstance(row_id, int)
    r = db.query("SELECT b, i2, i4, i8, f4, f8, n, t, by, d, tm, tz, ts, tstz, iv, u, j, jb, ia, ta, m, ja "
                 "FROM rk_values WHERE id = $1", [row_id], session=session, consistency="read_your_writes",
                 wait_for_replica_ms=2000)
    assert r.node != "primary" or r.reason is not None
    got = r.rows[0]
    for k, (want, have) in enumerate(zip(row, got)):
        assert same(want, have), (r.columns[k], want, have)


def test_timestamptz_comes_back_in_utc_whatever_the_server_time_zone(db):
    r = db.query("SELECT '2024-06-01 12:00:00+05:30'::timestamptz, current_setting('TimeZone')",
                 consistency="strong")
    value, zone = r.rows[0]
    assert value == dt.datetime(2024, 6, 1, 6, 30, tzinfo=UTC) and value.tzinfo is UTC, (value, zone)
    # A transaction's SET LOCAL changes the text the server sends, not the instant.
    (_, sel) = db.transaction(["SET LOCAL TimeZone = 'America/New_York'",
                               "SELECT '2024-06-01 12:00:00+05:30'::timestamptz"])
    assert sel.raw_rows[0][0].endswith(b"-04") and sel.scalar() == value


def test_unknown_types_come_back_as_text_and_raw_rows_keep_the_bytes(db):
    r = db.query("SELECT '(1,2)'::point, '{1,2,3}'::line, $1 AS untyped", ["x"], consistency="strong")
    assert r.rows[0] == ("(1,2)", "{1,2,3}", "x")
    assert r.raw_rows == [(b"(1,2)", b"{1,2,3}", b"x")]
    assert r.type_oids[0] == 600


# ------------------------------------------------------------------ property test
_texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
_json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _texts,
                            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=4),
                            max_leaves=12)
# A dict is sent as jsonb; a list is sent as an array (a JSON array needs psycopg's Jsonb()).
_json = st.dictionaries(_texts, _json_values, max_size=4)
# psycopg's C dumper sends Decimal('-NaN') as '-NaN', which PostgreSQL refuses: left out.
_decimals = st.decimals(allow_nan=True, allow_infinity=True, places=None).filter(
    lambda d: not d.is_snan() and not (d.is_nan() and d.is_signed())
    and (not d.is_finite() or abs(d.adjusted()) < 1000))
_naive = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59))
_scalars = st.tuples(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), _decimals, _texts,
    st.binary(max_size=64), st.dates(), _naive, _naive.map(lambda d: d.replace(tzinfo=UTC)),
    st.timedeltas(min_value=dt.timedelta(days=-10**6), max_value=dt.timedelta(days=10**6)),
    st.uuids(), _json, st.booleans())
_SCALAR_TYPES = ["int8", "float8", "numeric", "text", "bytea", "date", "timestamp", "timestamptz",
                 "interval", "uuid", "jsonb", "bool"]


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(values=_scalars)
def test_scalar_values_round_trip(db, values):
    sql = "SELECT " + ", ".join(f"${k + 1}::{t}" for k, t in enumerate(_SCALAR_TYPES))
    r = db.query(sql, list(values), consistency="strong")
    for sql_type, want, have in zip(_SCALAR_TYPES, values, r.rows[0]):
        if sql_type == "numeric" and isinstance(want, Decimal) and want.is_finite():
            assert have == want and isinstance(have, Decimal), (want, have)  # 1E+2 comes back as 100
        elif sql_type == "jsonb" and isinstance(want, dict):
            assert have == want  # jsonb keeps the last of duplicate keys: a dict has none
        else:
            assert same(want, have), (sql_type, want, have)


# ------------------------------------------------------------------ row factories
@dataclasses.dataclass
class Item:
    id: int
    name: str


class Pair(NamedTuple):
    id: int
    name: str


def test_row_factories_per_call(db):
    sql = "SELECT 1 AS id, 'one' AS name UNION ALL SELECT 2, 'two' ORDER BY 1"
    assert db.query(sql, consistency="strong").rows == [(1, "one"), (2, "two")]
    assert db.query(sql, consistency="strong", row_factory=tuple_row).rows == [(1, "one"), (2, "two")]
    assert db.query(sql, consistency="strong", row_factory=dict_row).rows == [
        {"id": 1, "name": "one"}, {"id": 2, "name": "two"}]
    named = db.query(sql, consistency="strong", row_factory=namedtuple_row).rows
    assert named[1].id == 2 and named[1].name == "two" and named[0] == (1, "one")
    assert db.query(sql, consistency="strong", row_factory=class_row(Item)).rows == [Item(1, "one"), Item(2, "two")]
    assert db.query(sql, consistency="strong", row_factory=class_row(Pair)).rows[0] == Pair(1, "one")
    # A callable of the caller's own: column names in, a row maker out.
    r = db.query(sql, consistency="strong", row_factory=lambda cols: lambda values: "|".join(map(str, values)))
    assert r.rows == ["1|one", "2|two"]
    assert r.tuples() == [(1, "one"), (2, "two")] and r.scalar() == 1 and r.dicts()[0] == {"id": 1, "name": "one"}
    odd = db.query("SELECT 1, 2 AS class, 3 AS x, 4 AS x", consistency="strong", row_factory=namedtuple_row).rows[0]
    assert odd == (1, 2, 3, 4) and odd.x == 3 and odd._0 == 1 and odd._1 == 2
    s = replikit.Session()
    w = db.execute("INSERT INTO rk_values (t) VALUES ($1) RETURNING id, t AS name", ["w"], s, row_factory=class_row(Item))
    assert w.rows[0].name == "w"
    ts = db.transaction([("SELECT $1::int AS id, 'x' AS name", [5])], s, row_factory=dict_row)
    assert ts[0].rows == [{"id": 5, "name": "x"}]


def test_row_factory_per_database(pg_cluster):
    with database_for_cluster(pg_cluster, row_factory=dict_row) as db:
        assert db.row_factory is dict_row
        assert db.query("SELECT 1 AS a", consistency="strong").rows == [{"a": 1}]
        assert db.query("SELECT 1 AS a", consistency="strong", row_factory=tuple_row).rows == [(1,)]
        db.row_factory = namedtuple_row
        assert db.query("SELECT 1 AS a", consistency="strong").rows[0].a == 1
        db.row_factory = None
        assert db.query("SELECT 1 AS a", consistency="strong").rows == [(1,)]
        assert db.query("SELECT 1 AS a", consistency="strong", dicts=True).rows == [{"a": 1}]


def test_bad_row_factories_are_typed_errors(db, pg_cluster):
    import psycopg.rows

    for bad, hint in [(dict, "class_row(dict)"), (5, "int"), (psycopg.rows.dict_row, "replikit.pg.dict_row")]:
        with pytest.raises(replikit.ArgumentTypeError) as info:
            db.query("SELECT 1", row_factory=bad)
        assert info.value.argument == "row_factory" and hint in str(info.value), info.value
    with pytest.raises(replikit.ArgumentTypeError) as info:
        database_for_cluster(pg_cluster, row_factory="dict")
    assert info.value.argument == "row_factory"
    with pytest.raises(replikit.ArgumentTypeError):
        db.row_factory = Item
    with pytest.raises(replikit.InvalidArgument) as info:
        db.query("SELECT 1", dicts=True, row_factory=namedtuple_row)
    assert info.value.argument == "dicts"


# ------------------------------------------------------------------ bad parameters
def test_a_parameter_psycopg_cannot_send_is_a_type_error_naming_its_index(db):
    s = replikit.Session()
    before = db.stats()["writes"]
    for params, index in [([1, object()], 2), ([{1, 2}], 1), ([None, None, replikit.Session()], 3),
                          ([[1, object()]], 1)]:
        with pytest.raises(replikit.ArgumentTypeError) as info:
            db.execute("SELECT $1", params, s)
        assert info.value.argument == "params", info.value
        assert f"${index} (params[{index - 1}]" in str(info.value), info.value
    with pytest.raises(replikit.ArgumentTypeError) as info:
        db.transaction([("SELECT $1", [object()])], s)
    assert info.value.argument == "statements" and "$1" in str(info.value)
    assert db.stats()["writes"] == before, "a refused call was sent"
    # psycopg's wrappers choose the type: Json for json, Jsonb, and a list of dicts as jsonb[].
    from psycopg.types.json import Json

    assert db.query("SELECT pg_typeof($1)::text, $1", [Json([1])], consistency="strong").rows[0] == ("json", [1])


def test_threads_convert_their_own_values(db):
    """Each thread keeps its own psycopg Transformer: values never cross between threads."""
    import threading

    kinds = [(lambda k: k, "int8"), (lambda k: f"text {k}", "text"), (lambda k: {"k": k}, "jsonb"),
             (lambda k: [k, k + 1], "int8[]"), (lambda k: dt.date(2000, 1, 1) + dt.timedelta(days=k), "date")]
    errors = []

    def work(make, sql_type):
        try:
            for k in range(60):
                value = make(k)
                got = db.query(f"SELECT $1::{sql_type}, $2::text", [value, sql_type], consistency="eventual").rows[0]
                if got != (value, sql_type):
                    errors.append((sql_type, value, got))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=kind) for kind in kinds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
