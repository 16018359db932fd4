#pragma once
/// \file acked_writes.hpp
/// The writes a session had acknowledged, by transaction id, so that after a failover the new
/// primary's commit log can say exactly which of them were lost.
///
/// Why the transaction id and not the commit LSN: a client never learns its commit's own LSN
/// (the insert LSN read after COMMIT is only an upper bound, and concurrent commits push it past
/// a failover's switch point), but `pg_current_xact_id()` inside the transaction is exact, and
/// a 64-bit xid8 (epoch and xid) never wraps around.
///
/// The rule (checked against PostgreSQL 15 on a local cluster: async replica, walreceiver
/// stopped, acknowledged writes on the primary, the primary instance killed, the replica
/// promoted): let `next_xid` be the promoted node's next transaction id at promotion (its
/// snapshot's xmax read on it after its last replay and before promotion, which is at most
/// that). A write with xid X survived exactly when X < next_xid and the new primary's
/// `pg_xact_status(X)` is 'committed'. Writes whose records reached the replica without their
/// commit record show 'in progress' on the standby and 'aborted' once it is promoted; writes
/// it never saw are at or beyond next_xid ("transaction ID is in the future" until the new
/// primary hands those numbers out again, to transactions of its own). So xids at or beyond
/// next_xid must never be looked up: they are lost without asking.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>
#include <vector>

#include "replikit/lsn.hpp"

namespace replikit {

/// Acknowledged writes a Session keeps by default (the oldest are dropped first).
inline constexpr std::size_t kDefaultMaxAckedWrites = 1024;
/// The most a Session may be asked to keep.
inline constexpr std::size_t kMaxAckedWrites = 1u << 20;

/// One write the primary acknowledged (its COMMIT returned).
struct AckedWrite {
  std::uint64_t xid = 0;      ///< pg_current_xact_id() of its transaction (0: unknown)
  Lsn lsn;                    ///< insert LSN read after the commit (an upper bound; 0/0: unknown)
  std::int64_t at_ns = 0;     ///< wall-clock time of the acknowledgement
  std::uint64_t epoch = 0;    ///< topology epoch it was written in
  std::uint32_t timeline = 0; ///< timeline of the primary that acknowledged it (0: unknown)
};

/// A bounded list of acknowledged writes, oldest first. Not synchronised (one per Session).
class AckedWrites {
 public:
  /// Keeps at most kDefaultMaxAckedWrites writes.
  AckedWrites() : AckedWrites(kDefaultMaxAckedWrites) {}
  /// Keeps at most `capacity` writes (1..kMaxAckedWrites; InvalidArgument "capacity").
  explicit AckedWrites(std::size_t capacity);
  /// Appends `write`, dropping the oldest when full (counted in dropped()).
  void add(const AckedWrite& write);
  /// Forgets the writes with an xid in `xids` (after they were checked and reported).
  void forget(const std::vector<std::uint64_t>& xids);
  /// Forgets every write.
  void clear() noexcept { writes_.clear(); }
  /// The writes kept, oldest first.
  const std::deque<AckedWrite>& writes() const noexcept { return writes_; }
  /// Writes dropped because the list was full: their fate cannot be reported.
  std::uint64_t dropped() const noexcept { return dropped_; }
  /// The capacity.
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  std::size_t capacity_;
  std::deque<AckedWrite> writes_;
  std::uint64_t dropped_ = 0;
};

/// What the new primary says about one acknowledged write.
enum class WriteFate : std::uint8_t {
  Survived = 0,  ///< committed on the new timeline
  Lost = 1,      ///< not there: never replicated, or replicated without its commit record
  Unknown = 2,   ///< the xid is unknown, or too old for the commit log (pg_xact_status NULL)
};

/// The fate of a write with xid `xid`, given the new primary's next xid at promotion and its
/// `pg_xact_status(xid)` text (nullopt: NULL, or not asked because xid >= next_xid).
WriteFate write_fate(std::uint64_t xid, std::uint64_t next_xid, std::optional<std::string_view> status) noexcept;

}  // namespace replikit
