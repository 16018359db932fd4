#pragma once
/// \file events.hpp
/// What happened to the nodes of a ReplicatedDatabase, as values: a node went down or came
/// back, a replica turned LAGGING or recovered, a server's role stopped (or started again)
/// matching the topology, a read was retried on another node, a failover happened. Each is
/// published once per transition, with the node's name and the numbers, before routing shows
/// the change it announces.
///
/// The EventLog is a bounded ring: publish() never waits for a reader (it takes a mutex held
/// only to append, or to copy at most one batch out), so the prober and query threads are
/// never held up by whoever consumes events. When the ring is full the oldest event is
/// overwritten and counted (dropped()); every reader keeps its own position (the sequence
/// number of the last event it saw) and learns from each batch how many events it missed.
/// Any number of readers may follow one log (the Python bindings run one per database, which
/// logs each event and calls the registered callbacks).

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace replikit::pg {

/// What an event says.
enum class EventKind : std::uint8_t {
  NodeDown = 0,      ///< the node became unreachable (a failed probe, or a call lost its connection)
  NodeUp = 1,        ///< a good probe after NodeDown
  Lagging = 2,       ///< a replica's lag crossed max_lag_ms (or max_lag_bytes)
  Recovered = 3,     ///< ... and came back under recover_lag_ms (and recover_lag_bytes)
  RoleMismatch = 4,  ///< the server's role differs from the topology's (a replica not in recovery, a deposed primary, ...)
  RoleRestored = 5,  ///< the server's role matches the topology again
  ReadRetry = 6,     ///< a read lost its connection to the node and is retried elsewhere
  Failover = 7,      ///< a failover or switchover made `node` the primary (this database's manager, prober or coordinator)
};
/// Number of EventKind values.
inline constexpr int kEventKindCount = 8;

/// One event. `sequence` and (when 0) `time_ns` are set by EventLog::publish.
struct Event {
  std::uint64_t sequence = 0;  ///< 1, 2, 3, ... in order of publication
  EventKind kind = EventKind::NodeDown;
  std::string node;            ///< the node's name
  std::int64_t time_ns = 0;    ///< steady-clock nanoseconds (ReplicatedDatabase::now_ns())
  double lag_ms = 0;           ///< Lagging / Recovered: the replica's time lag then
  std::int64_t lag_bytes = 0;  ///< Lagging / Recovered: its byte lag then
  int attempt = 0;             ///< ReadRetry: the attempt about to run (2, 3, ...)
  std::string message;         ///< the error (NodeDown, ReadRetry), or what happened, in words
};

/// A reader's batch: the events after its position, and how many it missed (overwritten
/// before it read them).
struct EventBatch {
  std::vector<Event> events;
  std::uint64_t missed = 0;
  std::uint64_t last_sequence = 0;  ///< the reader's new position (the last event returned, or skipped)
  bool closed = false;              ///< the log was closed and this batch holds everything left
};

/// A bounded, thread-safe ring of events with a sequence number each.
class EventLog {
 public:
  /// Keeps at most `capacity` events (InvalidArgument "event_capacity" unless in [1, 2^20]).
  explicit EventLog(std::size_t capacity = 1024);

  /// Appends `event`, setting its sequence (and its time when 0); overwrites the oldest when
  /// full. Returns the sequence. Never blocks on a reader; allowed after close().
  std::uint64_t publish(Event event);
  /// Events with sequence > `after_sequence`, oldest first, at most `max_events`.
  EventBatch read(std::uint64_t after_sequence, std::size_t max_events = 256) const;
  /// As read(), but waits up to `timeout_ns` for an event after `after_sequence` (returns
  /// at once when the log is closed, or early and possibly empty after wake()).
  EventBatch wait(std::uint64_t after_sequence, std::size_t max_events, std::int64_t timeout_ns) const;
  /// Wakes every wait() now.
  void wake();
  /// Marks the log closed (its database closed: no more events but the ones published) and
  /// wakes every wait().
  void close();
  /// True after close().
  bool closed() const;
  /// The sequence of the last event published (0: none yet).
  std::uint64_t last_sequence() const;
  /// Events overwritten since construction (readers that had not read them missed them).
  std::uint64_t dropped() const;
  /// The most events kept.
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  EventBatch read_locked(std::uint64_t after_sequence, std::size_t max_events) const;

  const std::size_t capacity_;
  mutable std::mutex mutex_;
  mutable std::condition_variable published_;
  std::deque<Event> events_;
  std::uint64_t next_sequence_ = 1;
  std::uint64_t dropped_ = 0;
  std::uint64_t wakes_ = 0;
  bool closed_ = false;
};

/// The lower-case name of `kind` ("node_down", "lagging", ...).
const char* to_string(EventKind kind) noexcept;

}  // namespace replikit::pg
