#pragma once
/// \file session.hpp
/// What one user (or request chain) has written and read, as LSNs, and its portable token.
///
/// A token is a short printable string (safe in a cookie or an HTTP header) such as
/// `1.16B374D848.16B3700000.18c2e4f1a20` with, when a signer is configured, a fifth field
/// holding a 128-bit MAC in base64url. A session that knows the timeline of its LSNs writes
/// version 2, `2.<timeline>.` followed by the same fields; version 1 tokens (timeline unknown)
/// still decode. Tokens merge by taking the maximum of each field, so a
/// user who read another user's comment can carry that user's write too (causal reads).

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "replikit/acked_writes.hpp"
#include "replikit/lsn.hpp"
#include "replikit/signer.hpp"
#include "replikit/timeline.hpp"

namespace replikit {

/// "No write recorded" for Session::untracked_write_ns.
inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

/// Longest token accepted by decode_token.
inline constexpr std::size_t kMaxTokenLength = 128;

/// Most in-progress transaction ids a Session keeps from a replica's snapshot (XidFloor).
inline constexpr int kMaxFloorXids = 32;

/// The transactions a read on a replica saw as completed, as a PostgreSQL snapshot
/// (`pg_current_snapshot()`: every xid below `xmax` is completed except those listed in
/// `xip`). A primary shows everything such a read showed once its own snapshot has completed
/// all of them (see Session::xid_floor). Keeping fewer in-progress xids than the replica had
/// (at most kMaxFloorXids, the smallest) only asks more of the primary, so it stays sound; with
/// none kept the rule is "the primary's xmin is at least xmax".
struct XidFloor {
  std::uint64_t xmax = 0;  ///< 0: nothing required
  std::uint8_t count = 0;  ///< in-progress xids kept, ascending in xip[0, count)
  std::array<std::uint64_t, kMaxFloorXids> xip{};

  /// True when a snapshot whose xmax is `snap_xmax` and whose in-progress xids are the
  /// ascending `snap_xip[0, n)` has completed every transaction this floor requires.
  bool covered_by(std::uint64_t snap_xmax, const std::uint64_t* snap_xip, std::size_t n) const noexcept;
  /// Requires also what `other` requires (the union of the completed sets).
  void merge(const XidFloor& other) noexcept;
};

/// Write LSNs a Session keeps host-locally: its latest writes, and the latest lost ones.
inline constexpr int kMaxTrackedWrites = 8;

/// A write of a session that a failover lost: committed at `lsn` on `timeline`, above the
/// LSN `switch_lsn` where that timeline ended.
struct LostWrite {
  Lsn lsn;
  std::uint32_t timeline = 0;
  Lsn switch_lsn;
};

/// Host-local, never in a token: the commit LSNs of a session's latest writes on its timeline
/// and the writes failovers lost (the latest kMaxTrackedWrites of each, and counts).
struct WriteLog {
  std::array<Lsn, kMaxTrackedWrites> recent{};  ///< oldest first
  std::uint8_t recent_count = 0;
  std::array<LostWrite, kMaxTrackedWrites> lost{};  ///< oldest first
  std::uint8_t lost_count = 0;
  std::uint32_t lost_total = 0;  ///< lost writes in all (saturating)
  std::uint32_t unreported = 0;  ///< lost since the last Session::check_lost_writes
};

/// A session's consistency state. Not synchronised: use one per user request chain.
struct Session {
  Lsn write_lsn;                   ///< highest commit LSN this session wrote (or merged)
  Lsn read_lsn;                    ///< highest LSN this session has read (or merged)
  /// Time of the last write whose commit LSN was unknown (kNever: none); router rule 3 sends
  /// this session's read-your-writes and causal reads to the primary until
  /// resolve_untracked_write (lag.hpp) turns it into an LSN.
  std::int64_t untracked_write_ns = kNever;

  /// Host-local, never in a token: the time (the clock of record_write) of this session's latest
  /// write, known commit LSN or not (kNever: none); reads with a consistency probability target
  /// (ReadOptions::p_consistent) are judged by the time elapsed since it.
  std::int64_t last_write_ns = kNever;

  /// Host-local, never in a token: the replica that served this session's last read at an
  /// observed LSN (-1, kNoNode: none), the topology epoch of that read and the replay LSN
  /// observed there. That replica has replayed at least last_replica_lsn for as long as the
  /// epoch lasts, so the router may send a read needing no more than that to it even when its
  /// probed replay LSN is older (router rule 5).
  int last_replica = -1;
  std::uint64_t last_replica_epoch = 0;  ///< Topology::epoch() when last_replica served
  Lsn last_replica_lsn;                  ///< the replay LSN observed on last_replica
  /// Host-local, never in a token: what this session's reads on replicas saw as completed
  /// transactions, which a read falling back to the primary must see too (see the README's
  /// consistency section: a primary shows a commit only after an async standby may have).
  XidFloor xid_floor;
  /// Host-local, never in a token: the writes this session had acknowledged, by transaction id
  /// (bounded), so that a failover can report exactly which of them were lost.
  AckedWrites acked_writes;
  /// The timeline of write_lsn and read_lsn (in the token); 0: unknown (a version 1 token, or
  /// never reconciled), taken as the current one.
  std::uint32_t timeline = 0;
  /// Host-local: the latest writes, and those a failover lost (see reconcile).
  WriteLog writes;

  /// Records a committed write at `now_ns` (wall-clock ns since the Unix epoch, as tokens carry
  /// it between hosts); `commit_lsn` 0/0 means "unknown" (router rule 3 then applies).
  void record_write(Lsn commit_lsn, std::int64_t now_ns);
  /// Records that a read saw data up to `lsn`.
  void observe(Lsn lsn) noexcept { read_lsn = lsn_max(read_lsn, lsn); }
  /// Records that a read on replica `node` (a topology index) in topology `epoch` saw data up
  /// to `lsn`, the replica's replay LSN observed after the read, and remembers that replica.
  void observe_replica(Lsn lsn, int node, std::uint64_t epoch) noexcept;
  /// Takes the maximum of each field of `other` (causal merge; a known timeline wins over an
  /// unknown one); the host-local fields stay this session's, except that xid floors merge and
  /// last_write_ns takes the later time.
  void merge(const Session& other) noexcept;
  /// The LSN a causal read must see: max(write_lsn, read_lsn).
  Lsn causal_lsn() const noexcept { return lsn_max(write_lsn, read_lsn); }
  /// Moves this session to `history`'s current timeline (call before using it against a
  /// cluster on that timeline). Its writes on an ancestor timeline at or below that timeline's
  /// end stay valid; those above it were lost: they are returned, kept in lost_writes(), and
  /// the next check_lost_writes() raises LostWrites. The LSNs it requires are capped at the
  /// switch point and its xid floor is dropped (the new primary reuses xids above it), so it
  /// is never pinned to the primary waiting for WAL that no longer exists. Timeline 0 is
  /// taken as the current one; a newer timeline than the history knows is left as it is.
  std::vector<LostWrite> reconcile(const TimelineHistory& history);
  /// The latest writes failovers lost (at most kMaxTrackedWrites, oldest first).
  std::vector<LostWrite> lost_writes() const;
  /// Throws LostWrites naming the writes lost since the last call (call before a read that
  /// requires this session's writes: read-your-writes, causal); each loss is raised once.
  void check_lost_writes();

  /// Compares the fields a token carries (not the host-local ones).
  friend bool operator==(const Session& a, const Session& b) noexcept {
    return a.write_lsn == b.write_lsn && a.read_lsn == b.read_lsn && a.untracked_write_ns == b.untracked_write_ns &&
           a.timeline == b.timeline;
  }
};

/// The token for `session`, signed when `signer` is given.
std::string encode_token(const Session& session, const TokenSigner* signer = nullptr);
/// The session a token carries. With a signer the token must be signed and verify; without
/// one a signed token is refused too (the application forgot its key). Throws TokenError
/// naming `argument` for anything malformed, too long, of an unknown version, or tampered.
Session decode_token(std::string_view token, const TokenSigner* signer = nullptr,
                     const char* argument = "token");

}  // namespace replikit
