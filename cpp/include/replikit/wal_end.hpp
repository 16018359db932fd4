#pragma once
/// \file wal_end.hpp
/// The end of the WAL written so far, from PostgreSQL's insert position.

#include <cstdint>

#include "replikit/lsn.hpp"

namespace replikit {

/// `pg_current_wal_insert_lsn()` as the end of the last WAL record: the form replay, flush and
/// receive LSNs take.
///
/// PostgreSQL reports the insert position as where the next record would start: when that is
/// exactly at a WAL page boundary, after the next page's header (boundary + 24 bytes; at a
/// segment's start + 40). A record that ends there, and so a replica that replayed it, reports
/// the boundary itself. This maps the first form to the second, so that a token or a position
/// read from the insert LSN is one a caught-up replica reaches. No record ends at those offsets
/// (inside a page header), so every other value comes back unchanged.
/// `wal_block_bytes` and `wal_segment_bytes` are the server's `wal_block_size` and
/// `wal_segment_size` in bytes (powers of two, 1 KiB-64 KiB and 1 MiB-1 GiB); otherwise
/// throws InvalidArgument naming the argument.
Lsn end_lsn_of_insert(Lsn insert_lsn, std::uint64_t wal_block_bytes, std::uint64_t wal_segment_bytes);

}  // namespace replikit
