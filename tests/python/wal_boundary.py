"""Driving a real primary's WAL insert position to exactly a page or segment boundary
(`from wal_boundary import ...`), for the tests of write tokens taken there.

PostgreSQL counts WAL in "usable bytes" (page headers left out) and converts a byte position to
an LSN two ways (xlog.c): XLogBytePosToRecPtr, where the next record would start (after the
next page's header), is what pg_current_wal_insert_lsn() reports; XLogBytePosToEndRecPtr, the
page boundary itself, is what a record that ends there reports (a replica's replay LSN, the
flush LSN). `Layout` does both conversions and their inverse, so a test can compute how many
bytes a transaction must write to end exactly at a boundary, write them, and check it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

SHORT_HEADER = 24  # SizeOfXLogShortPHD (MAXALIGN 8)
LONG_HEADER = 40   # SizeOfXLogLongPHD: the first page of each segment
EMIT_SQL = "SELECT pg_logical_emit_message(true, 'rk', repeat('x', {n}))"  # a message + a commit record
CALIBRATION_PAYLOAD = 1000  # >= 256: the message's data header keeps one size for every payload used
ATTEMPTS = 6  # background WAL (a bgwriter snapshot, a hint-bit page image) can land between steps


@dataclass(frozen=True)
class Layout:
    block: int     # SHOW wal_block_size, bytes
    segment: int   # SHOW wal_segment_size, bytes

    @property
    def usable_page(self) -> int:
        return self.block - SHORT_HEADER

    @property
    def usable_segment(self) -> int:
        return self.segment // self.block * self.usable_page - (LONG_HEADER - SHORT_HEADER)

    def bytepos(self, lsn: int) -> int:
        """The usable-byte position of an LSN in either form (XLogRecPtrToBytePos)."""
        segs, offset = divmod(lsn, self.segment)
        pages, offset = divmod(offset, self.block)
        out = segs * self.usable_segment
        if pages == 0:
            return out + (offset - LONG_HEADER if offset > 0 else 0)
        out += self.block - LONG_HEADER + (pages - 1) * self.usable_page
        return out + (offset - SHORT_HEADER if offset > 0 else 0)

    def insert_form(self, bytepos: int) -> int:
        """XLogBytePosToRecPtr: what pg_current_wal_insert_lsn() reports at `bytepos`."""
        segs, left = divmod(bytepos, self.usable_segment)
        if left < self.block - LONG_HEADER:
            return segs * self.segment + left + LONG_HEADER
        left -= self.block - LONG_HEADER
        pages, left = divmod(left, self.usable_page)
        return segs * self.segment + self.block + pages * self.block + left + SHORT_HEADER

    def end_form(self, bytepos: int) -> int:
        """XLogBytePosToEndRecPtr: what a record ending at `bytepos` reports (a boundary itself)."""
        ptr = self.insert_form(bytepos)
        if ptr % self.segment == LONG_HEADER:
            return ptr - LONG_HEADER
        if ptr % self.block == SHORT_HEADER:
            return ptr - SHORT_HEADER
        return ptr


def layout_of(conn) -> Layout:
    """The layout of the server behind a psycopg connection."""
    row = conn.execute("SELECT current_setting('wal_block_size')::int8, "
                       "pg_size_bytes(current_setting('wal_segment_size'))").fetchone()
    return Layout(int(row[0]), int(row[1]))


def insert_lsn(conn) -> int:
    """pg_current_wal_insert_lsn() as an int (reading it writes no WAL)."""
    return int(conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'").fetchone()[0])


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def drive_to_boundary(conn, layout: Layout, write: Callable[[int], None], *, segment: bool = False,
                      filler: Optional[Callable[[int], None]] = None) -> Tuple[int, int]:
    """Makes `write(n)` (one transaction writing EMIT_SQL's records with payload `n`) end
    exactly at a page boundary (`segment`: at a segment's start, after `filler(n)` writes a
    non-transactional message of payload n to come near it). `conn` (psycopg, autocommit, on
    the primary) reads the insert position. Returns (boundary, raw insert LSN after the write);
    raises AssertionError after ATTEMPTS tries."""
    for _ in range(ATTEMPTS):
        before = layout.bytepos(insert_lsn(conn))
        write(CALIBRATION_PAYLOAD)
        after = layout.bytepos(insert_lsn(conn))
        cost = after - before  # the records of one write of CALIBRATION_PAYLOAD, aligned
        if segment and filler is not None:
            gap = layout.usable_segment - after % layout.usable_segment
            if gap > 4 * layout.block + cost:
                filler(gap - 2 * layout.block - cost)  # its own records' overhead stays < a block
                after = layout.bytepos(insert_lsn(conn))
        if segment:
            target = (after // layout.usable_segment + 1) * layout.usable_segment
        else:
            boundary = -(-layout.end_form(after + cost) // layout.block) * layout.block
            target = layout.bytepos(boundary)
        # Each record is MAXALIGNed and every byte distance here is a multiple of 8, so a payload
        # longer by k bytes makes the write longer by exactly k.
        payload = CALIBRATION_PAYLOAD + (target - after) - cost
        write(payload)
        raw = insert_lsn(conn)
        if layout.bytepos(raw) == target:
            return layout.end_form(target), raw
    raise AssertionError(f"the insert position did not land on a boundary in {ATTEMPTS} attempts")
