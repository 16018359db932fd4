"""Typing that helps with replikit.sqlalchemy: `mypy --strict` on a user's program catches a
misspelled consistency name, a token where a Session is expected (and the reverse), sync engines
given to the async sessionmaker, and a misspelled method of a routed session; a correct program
(sync and async, ORM and Core) passes. Same scheme as test_typing.py: a line that must be
reported ends with `# error: <what mypy says>`; every such line must be reported, no other."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mypy")
pytest.importorskip("sqlalchemy")

WRONG = '''
import replikit
from replikit.sqlalchemy import (AsyncRoutedSession, RoutedEngines, RoutedSession, async_routed_sessionmaker,
                                 routed_sessionmaker)


def main(engines: RoutedEngines, session: replikit.Session) -> None:
    RoutedEngines(("primary", "postgresql+psycopg://db0/app"), consistency="read-your-writes")  # error: "consistency" to "RoutedEngines"
    RoutedSession(engines=engines, consistency="read-your-writes")  # error: "consistency" to "RoutedSession"
    token: str = session.token()
    RoutedSession(engines=engines, replikit_session=token)  # error: "replikit_session" to "RoutedSession"
    RoutedSession(engines=engines, token=session)  # error: "token" to "RoutedSession"
    async_routed_sessionmaker(engines)  # error: Argument 1 to "async_routed_sessionmaker"
    AsyncRoutedSession(engines=engines)  # error: "engines" to "AsyncRoutedSession"
    Session = routed_sessionmaker(engines)
    with Session() as s:
        s.merge_token(3)  # error: Argument 1 to "merge_token"
        s.tokn()  # error: has no attribute "tokn"
        n: int = s.token()  # error: Incompatible types in assignment
'''

RIGHT = '''
from typing import List

import replikit
from sqlalchemy import String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from replikit.sqlalchemy import (AsyncRoutedEngines, RoutedEngines, RoutedSession, async_routed_sessionmaker,
                                 routed_sessionmaker)


class Base(DeclarativeBase):
    pass


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String)


def sync_app(token: str) -> str:
    with RoutedEngines(("primary", "postgresql+psycopg://db0/app"), [("r1", "host=db1 dbname=app")],
                       consistency="read_your_writes", max_lag_ms=500.0, pool_size=5) as engines:
        Session = routed_sessionmaker(engines, expire_on_commit=False)
        with Session(token=token) as session:
            session.add(Comment(text="hi"))
            session.commit()
            texts: List[str] = list(session.scalars(select(Comment.text)).all())
            session.execute(text("SELECT 1").execution_options(replikit_consistency="eventual"))
            rs: replikit.Session = session.replikit_session
            assert rs.write_lsn.valid() and texts
            return session.token()


async def async_app(engines: AsyncRoutedEngines, token: str) -> str:
    Session = async_routed_sessionmaker(engines)
    async with Session(token=token) as session:
        comments = (await session.scalars(select(Comment))).all()
        session.merge_token(token)
        return session.token() + str(len(comments))


def direct(engines: RoutedEngines) -> RoutedSession:
    return RoutedSession(engines=engines, consistency="eventual", replikit_session=replikit.Session())
'''


def expected_errors(source: str) -> dict:
    out = {}
    for number, line in enumerate(source.splitlines(), start=1):
        found = re.search(r"# error: (.+)$", line)
        if found:
            out[number] = found.group(1).strip()
    return out


def test_mypy_strict_on_a_sqlalchemy_program(tmp_path):
    programs = {"wrong_sa.py": textwrap.dedent(WRONG), "right_sa.py": textwrap.dedent(RIGHT)}
    for name, source in programs.items():
        (tmp_path / name).write_text(source)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / ".mypy_cache"),
         "--no-error-summary", "--show-error-codes", *programs],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    reported: dict = {}
    for line in output.splitlines():
        found = re.match(r"^(\w+\.py):(\d+): error: (.*)$", line)
        if found:
            reported.setdefault((found.group(1), int(found.group(2))), []).append(found.group(3))
    assert not [k for k in reported if k[0] == "right_sa.py"], output
    want = expected_errors(programs["wrong_sa.py"])
    assert len(want) == 9
    for number, message in want.items():
        assert any(message in m for m in reported.get(("wrong_sa.py", number), [])), (number, message, output)
    unexpected = sorted(k[1] for k in reported if k[0] == "wrong_sa.py" and k[1] not in want)
    assert not unexpected, (unexpected, output)
    assert proc.returncode == 1, output
