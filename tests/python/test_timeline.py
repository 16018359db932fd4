"""Sessions and tokens across failovers: timelines, lost writes, LostWrites, old tokens."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import replikit as rk

NOW = 1_700_000_000_000_000_000
HISTORY_FILE = "1\t0/3000060\tno recovery target specified\n"


def test_a_session_learns_its_lost_writes_once():
    s = rk.Session()
    s.reconcile(rk.TimelineHistory())
    assert s.timeline == 1
    for lsn in ("0/3000000", "0/3000060", "0/3000100", "0/3000200"):
        s.record_write(lsn, now_ns=NOW)
    history = rk.TimelineHistory.parse(HISTORY_FILE, 2)
    assert history == rk.TimelineHistory(2, [(1, "0/3000060")])
    lost = s.reconcile(history)
    assert [str(w.lsn) for w in lost] == ["0/3000100", "0/3000200"]
    assert repr(lost[0]) == "LostWrite(lsn=Lsn('0/3000100'), timeline=1, switch_lsn=Lsn('0/3000060'))"
    assert s.write_lsn == rk.Lsn("0/3000060") and s.timeline == 2
    with pytest.raises(rk.LostWrites) as info:
        s.check_lost_writes()
    assert isinstance(info.value, rk.Error)
    assert [str(x) for x in info.value.lsns] == ["0/3000100", "0/3000200"]
    assert info.value.timeline == 1 and info.value.switch_lsn == rk.Lsn("0/3000060")
    s.check_lost_writes()  # each loss is raised once
    assert len(s.lost_writes()) == 2


def test_tokens_carry_the_timeline_and_old_tokens_still_parse():
    s = rk.Session()
    s.reconcile(rk.TimelineHistory(3, [(1, 10), (2, 20)]))
    s.record_write("0/30", now_ns=NOW)
    token = s.token()
    assert token.startswith("2.3.")
    assert rk.Session.from_token(token) == s
    assert repr(s) == "Session(write_lsn=Lsn('0/30'), read_lsn=Lsn('0/0'), timeline=3)"
    old = rk.Session.from_token("1.3000100.0.x")
    assert old.timeline == 0
    assert old.lost_writes(rk.TimelineHistory(2, [(1, "0/3000060")])) == []  # unknown: taken as current
    assert old.timeline == 2


def test_a_token_from_a_lost_timeline_names_its_write():
    s = rk.Session()
    s.reconcile(rk.TimelineHistory())
    s.record_write("0/3000100", now_ns=NOW)
    other = rk.Session.from_token(s.token())  # another host: no write log, the highest write only
    lost = other.lost_writes(rk.TimelineHistory(2, [(1, "0/3000060")]))
    assert [str(w.lsn) for w in lost] == ["0/3000100"]
    with pytest.raises(rk.LostWrites):
        other.check_lost_writes()


def test_history_queries():
    h = rk.TimelineHistory(3, [(1, "0/3000060"), (2, "0/5000000")])
    assert h.current == 3 and h.switches == [(1, rk.Lsn("0/3000060")), (2, rk.Lsn("0/5000000"))]
    assert h.end_of(1) == rk.Lsn("0/3000060") and h.end_of(3) is None
    assert h.survives(1, "0/3000060") and not h.survives(1, "0/3000061") and h.survives(3, 2**64 - 1)
    assert repr(rk.TimelineHistory()) == "TimelineHistory(current=1, switches=[])"


@pytest.mark.parametrize("call, exc, argument", [
    (lambda: rk.TimelineHistory(0), rk.InvalidArgument, "current"),
    (lambda: rk.TimelineHistory(2, [(2, 5)]), rk.InvalidArgument, "switches"),
    (lambda: rk.TimelineHistory(3, [(1, 5), (2, 4)]), rk.InvalidArgument, "switches"),
    (lambda: rk.TimelineHistory(2, [1]), rk.ArgumentTypeError, "switches"),
    (lambda: rk.TimelineHistory(2, [(1, "zz")]), rk.InvalidArgument, "switches"),
    (lambda: rk.TimelineHistory("2"), rk.ArgumentTypeError, "current"),
    (lambda: rk.TimelineHistory.parse("1\tnope\n", 2), rk.InvalidArgument, "text"),
    (lambda: rk.TimelineHistory.parse(b"1\t0/1\n", 2), rk.ArgumentTypeError, "text"),
    (lambda: rk.TimelineHistory.parse("x" * (2 << 20), 2), rk.InvalidArgument, "text"),
    (lambda: rk.Session().reconcile("2"), rk.ArgumentTypeError, "history"),
    (lambda: rk.Session().lost_writes(3), rk.ArgumentTypeError, "history"),
    (lambda: rk.Session.from_token("2.0.10.0.x"), rk.TokenError, "token"),
])
def test_bad_input_names_the_argument(call, exc, argument):
    with pytest.raises(exc) as info:
        call()
    assert info.value.argument == argument, str(info.value)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(writes=st.lists(st.integers(1, 10_000), max_size=30), switch=st.integers(0, 10_000),
       via_token=st.booleans())
def test_every_write_above_the_switch_is_lost_and_none_below(writes, switch, via_token):
    s = rk.Session()
    s.reconcile(rk.TimelineHistory())
    for w in writes:
        s.record_write(w, now_ns=NOW)
    if via_token:
        s = rk.Session.from_token(s.token())
    lost = [int(w.lsn) for w in s.reconcile(rk.TimelineHistory(2, [(1, switch)]))]
    assert all(w > switch for w in lost)
    above = sorted({w for w in writes if w > switch})
    if via_token:  # only the highest write travels in a token
        assert lost == above[-1:]
    else:  # the log keeps the latest writes: each lost one among them is named
        assert set(lost) <= set(above) and (not above or max(above) in lost)
        assert set(lost) >= {w for w in writes[-8:] if w > switch}
    assert int(s.write_lsn) <= switch and s.timeline == 2
