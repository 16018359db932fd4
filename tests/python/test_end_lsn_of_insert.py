"""replikit.end_lsn_of_insert from Python: the binding's values agree with the pure-Python
reference of xlog.c's conversions in wal_boundary.py, and bad input names the argument."""

from __future__ import annotations

import random

import pytest

from wal_boundary import Layout

import replikit

SEED = 1130


@pytest.mark.parametrize("block,segment", [(8192, 1 << 24), (1024, 1 << 20), (65536, 1 << 30)])
def test_agrees_with_the_reference(block, segment):
    layout = Layout(block, segment)
    rng = random.Random(SEED)
    print(f"\n[end_lsn_of_insert] seed {SEED}")
    boundaries = 0
    for k in range(2000):
        bytepos = layout.usable_segment + rng.randrange(1 << 36) // 8 * 8
        if k % 2 == 0:  # the first usable byte of the page holding it: a boundary
            bytepos = layout.bytepos(layout.end_form(bytepos) // block * block)
        insert, end = layout.insert_form(bytepos), layout.end_form(bytepos)
        boundaries += insert != end
        assert replikit.end_lsn_of_insert(insert, block, segment) == replikit.Lsn(end), (k, insert)
        assert replikit.end_lsn_of_insert(replikit.Lsn(end), block, segment).value == end  # a real end stays
    assert boundaries >= 900


def test_bad_input_names_the_argument():
    for args, argument, exc in [
        (("0/1", 1000, 1 << 24), "wal_block_bytes", replikit.InvalidArgument),
        (("0/1", 8192, 3 << 20), "wal_segment_bytes", replikit.InvalidArgument),
        (("0/1", -1, 1 << 24), "wal_block_bytes", replikit.InvalidArgument),
        (("0/1", "8192", 1 << 24), "wal_block_bytes", replikit.ArgumentTypeError),
        (("0/1", 8192, None), "wal_segment_bytes", replikit.ArgumentTypeError),
        (("nope", 8192, 1 << 24), "insert_lsn", replikit.InvalidArgument),
        ((1.5, 8192, 1 << 24), "insert_lsn", replikit.ArgumentTypeError),
    ]:
        with pytest.raises(exc) as e:
            replikit.end_lsn_of_insert(*args)
        assert e.value.argument == argument, (args, e.value)
