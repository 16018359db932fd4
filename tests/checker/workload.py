"""The register workload: sessions (threads) writing increasing values to their own keys and
reading everyone's keys at every consistency level, through ReplicatedDatabase or, for some
sessions, PsycopgRouter; every operation recorded in a History."""

from __future__ import annotations

import collections
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import replikit

from .history import History, HistoryFull, Op

SCHEMA = ("CREATE TABLE IF NOT EXISTS reg (k text PRIMARY KEY, v bigint NOT NULL);"
          "CREATE TABLE IF NOT EXISTS ops (round int NOT NULL, session text NOT NULL, "
          "k text NOT NULL, v bigint NOT NULL);"
          "CREATE INDEX IF NOT EXISTS ops_round ON ops (round)")
WRITE_SQL = ("WITH logged AS (INSERT INTO ops (round, session, k, v) VALUES ($1, $2, $3, $4)) "
             "UPDATE reg SET v = $4 WHERE k = $3 RETURNING inet_server_port()")
WRITE_SQL_PSYCOPG = ("WITH logged AS (INSERT INTO ops (round, session, k, v) "
                     "VALUES (%s, %s, %s, %s)) UPDATE reg SET v = %s WHERE k = %s "
                     "RETURNING inet_server_port()")
# The server's replay (replica) or insert (primary) LSN, read with the value: for diagnosis.
# (pg_last_wal_replay_lsn() is not NULL on a primary that ran crash recovery: it stays at the
# last record replayed then, so it is asked only in recovery.)
READ_SQL = ("SELECT v, inet_server_port(), (CASE WHEN pg_is_in_recovery() THEN "
            "pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text "
            "FROM reg WHERE k = $1")
READ_SQL_PSYCOPG = READ_SQL.replace("$1", "%s")
LEVELS = (("read_your_writes", 25), ("monotonic", 25), ("causal", 25),
          ("bounded_staleness", 15), ("eventual", 5), ("strong", 5))
STALENESS_MS = (100.0, 300.0, 1000.0)
KEYS_PER_SESSION = 3
TOKEN_QUEUE = 64


def keys_of(round_no: int, session: str) -> List[str]:
    return [f"{session}k{j}" for j in range(KEYS_PER_SESSION)]


def session_names(round_no: int, sessions: int) -> List[str]:
    return [f"r{round_no}s{i}" for i in range(sessions)]


class Workload:
    """``sessions`` threads for one round; ``psycopg_every``-th sessions use PsycopgRouter."""

    def __init__(self, db: Any, cluster: Any, history: History, round_no: int, sessions: int,
                 seed: int, psycopg_every: int = 4):
        self.db = db
        self.history = history
        self.round_no = round_no
        self.names = session_names(round_no, sessions)
        self.keys = [k for s in self.names for k in keys_of(round_no, s)]
        self.port_to_node = {node.port: name for name, node in cluster.nodes.items()}
        self.seed = seed
        self.psycopg_every = psycopg_every
        self.tokens: "collections.deque[tuple]" = collections.deque(maxlen=TOKEN_QUEUE)
        self.tokens_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads: List[threading.Thread] = []
        self.errors: List[str] = []

    def start(self) -> None:
        for i, name in enumerate(self.names):
            use_psycopg = self.psycopg_every > 0 and i % self.psycopg_every == self.psycopg_every - 1
            thread = threading.Thread(target=self._guard, args=(i, name, use_psycopg),
                                      name=name, daemon=True)
            self.threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join()

    def _guard(self, index: int, name: str, use_psycopg: bool) -> None:
        try:
            SessionClient(self, index, name, use_psycopg).run()
        except HistoryFull:
            self.stop_event.set()
        except Exception as exc:  # a bug of the harness itself: reported, never hidden
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")


class SessionClient:
    """One session's loop: write / read / hand out a token / merge a token."""

    def __init__(self, work: Workload, index: int, name: str, use_psycopg: bool):
        self.work = work
        self.name = name
        self.client = "psycopg" if use_psycopg else "db"
        self.rng = random.Random(work.seed * 1_000_003 + work.round_no * 1009 + index)
        self.session = replikit.Session()
        self.own = keys_of(work.round_no, name)
        self.next_value = 1
        self.router = None
        if use_psycopg:
            from replikit.pg import PsycopgRouter
            self.router = PsycopgRouter(work.db, pool_size=2)
        self.levels = [level for level, _ in LEVELS]
        self.weights = [weight for _, weight in LEVELS]

    def run(self) -> None:
        try:
            while not self.work.stop_event.is_set():
                roll = self.rng.random()
                if roll < 0.35:
                    self.write()
                elif roll < 0.92:
                    self.read()
                elif roll < 0.96:
                    self.token_out()
                else:
                    self.token_in()
        finally:
            if self.router is not None:
                self.router.close()

    # ---------------------------------------------------------------- recording
    def _invoke(self, **fields: Any) -> Op:
        return self.work.history.add(Op(session=self.name, client=self.client,
                                        t0=time.monotonic_ns(), **fields))

    def _complete(self, op: Op, outcome: str, error: Optional[BaseException] = None) -> None:
        op.t1 = time.monotonic_ns()
        op.type = outcome
        topology = self.work.db.topology
        op.epoch, op.primary = topology.epoch, topology.primary_name
        if error is not None:
            op.error = f"{type(error).__name__}: {str(error)[:160]}"

    def _served(self, port: Any) -> Optional[str]:
        return self.work.port_to_node.get(int(port)) if port is not None else None

    # ---------------------------------------------------------------- operations
    def write(self) -> None:
        key = self.rng.choice(self.own)
        value = self.next_value
        self.next_value += 1
        op = self._invoke(f="write", key=key, value=value)
        try:
            if self.router is None:
                result = self.work.db.execute(
                    WRITE_SQL, [self.work.round_no, self.name, key, value], self.session)
                op.node, op.lsn = result.node, None if result.lsn is None else str(result.lsn)
                port = result.rows[0][0] if result.rows else None
            else:
                op.node = self.work.db.topology.primary_name
                untracked = self.session.untracked_write_ns
                with self.router.write(self.session) as conn:
                    row = conn.execute(WRITE_SQL_PSYCOPG, (self.work.round_no, self.name, key,
                                                           value, value, key)).fetchone()
                port = row[0] if row else None
                # A new untracked-write time: the commit LSN was not known (rule 3 applies).
                known = self.session.untracked_write_ns == untracked
                op.lsn = str(self.session.write_lsn) if known else None
        except (replikit.CommitUnknown, replikit.TimeoutError) as exc:
            self._complete(op, "unknown", exc)
        except (replikit.ConnectionError, replikit.QueryError) as exc:
            # Refused before anything was sent, or rejected by the server: nothing committed.
            self._complete(op, "fail", exc)
        except Exception as exc:  # psycopg errors, anything else: the outcome is unknown
            self._complete(op, "unknown", exc)
        else:
            op.served = self._served(port)
            self._complete(op, "ok")

    def read(self) -> None:
        key = (self.rng.choice(self.own) if self.rng.random() < 0.5
               else self.rng.choice(self.work.keys))
        level = self.rng.choices(self.levels, self.weights)[0]
        staleness = self.rng.choice(STALENESS_MS) if level == "bounded_staleness" else None
        op = self._invoke(f="read", key=key, consistency=level, max_staleness_ms=staleness)
        try:
            if self.router is None:
                result = self.work.db.query(READ_SQL, [key], self.session, consistency=level,
                                            max_staleness_ms=staleness)
                op.node, op.reason = result.node, str(result.reason).rsplit(".", 1)[-1].lower()
                row = result.rows[0] if result.rows else None
            else:
                with self.router.read(self.session, consistency=level,
                                      max_staleness_ms=staleness) as conn:
                    row = conn.execute(READ_SQL_PSYCOPG, (key,)).fetchone()
                route = self.router.last_route
                op.node = route.node
                op.reason = str(route.reason).rsplit(".", 1)[-1].lower()
        except Exception as exc:  # a read that failed changed nothing
            self._complete(op, "fail", exc)
            return
        if row is not None:
            op.value, op.served, op.lsn = int(row[0]), self._served(row[1]), row[2]
        op.read_lsn = str(self.session.read_lsn)  # the session's observed LSN after the read
        self._complete(op, "ok")

    def token_out(self) -> None:
        op = self._invoke(f="token_out")
        token = self.session.token()
        op.token = f"{self.name}#{op.id}"
        with self.work.tokens_lock:
            self.work.tokens.append((op.token, token, self.name))
        self._complete(op, "ok")

    def token_in(self) -> None:
        with self.work.tokens_lock:
            offers = [t for t in self.work.tokens if t[2] != self.name]
            if not offers:
                return
            token_id, token, _ = self.rng.choice(offers)
        op = self._invoke(f="token_in", token=token_id)
        self.session.merge(token)
        self._complete(op, "ok")
