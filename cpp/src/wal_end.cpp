#include "replikit/wal_end.hpp"

#include <string>

#include "replikit/errors.hpp"

namespace replikit {

Lsn end_lsn_of_insert(Lsn insert_lsn, std::uint64_t wal_block_bytes, std::uint64_t wal_segment_bytes) {
  // The header sizes are MAXALIGN'ed structs: 24 and 40 bytes on every 64-bit server.
  constexpr std::uint64_t kShortHeader = 24;  // SizeOfXLogShortPHD, every other page
  constexpr std::uint64_t kLongHeader = 40;   // SizeOfXLogLongPHD, a segment's first page
  auto power_of_two = [](std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; };
  if (!power_of_two(wal_block_bytes) || wal_block_bytes < 1024 || wal_block_bytes > 65536) {
    throw InvalidArgument("wal_block_bytes", "must be a power of two from 1024 to 65536 (SHOW wal_block_size), got " +
                                                 std::to_string(wal_block_bytes));
  }
  if (!power_of_two(wal_segment_bytes) || wal_segment_bytes < (1u << 20) || wal_segment_bytes > (1u << 30)) {
    throw InvalidArgument("wal_segment_bytes",
                          "must be a power of two from 1 MiB to 1 GiB (SHOW wal_segment_size, in bytes), got " +
                              std::to_string(wal_segment_bytes));
  }
  // XLogBytePosToRecPtr puts a position at a segment's start at +40 and one at any other
  // page's start at +24; XLogBytePosToEndRecPtr puts both at the boundary. Record ends are
  // otherwise the same in both forms and lie past the header (a page's first usable byte
  // at +24 or +40 is a start, never an end), so only these two offsets change.
  // (Segment 0 holds no WAL: 0/28 is left alone rather than made 0/0, "none known".)
  const std::uint64_t v = insert_lsn.value;
  if (v % wal_segment_bytes == kLongHeader && v > wal_segment_bytes) return Lsn(v - kLongHeader);
  if (v % wal_block_bytes == kShortHeader && v % wal_segment_bytes >= wal_block_bytes) return Lsn(v - kShortHeader);
  return insert_lsn;
}

}  // namespace replikit
