#pragma once
// Client-side deadlines of user queries. A query arms an entry (its connection's socket and a
// deadline); the prober thread calls fire_expired() every few milliseconds and shuts down the
// socket of a query past its deadline, so the blocked libpq call returns with a broken
// connection instead of hanging on a server that stopped answering. An entry is disarmed
// before its connection is released or closed, and shutdown() runs under the same mutex, so
// a socket number is never shut down after it was closed and reused.
#include <sys/socket.h>

#include <cstdint>
#include <limits>
#include <mutex>
#include <unordered_map>

namespace replikit::pg::detail {

class Watchdog {
 public:
  /// Watches socket `fd` until disarm(); returns the entry's id.
  std::uint64_t arm(int fd, std::int64_t deadline_ns) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::uint64_t id = next_id_++;
    entries_[id] = Entry{fd, deadline_ns, false};
    return id;
  }
  /// Stops watching entry `id`; true when its deadline fired.
  bool disarm(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    bool fired = it->second.fired;
    entries_.erase(it);
    return fired;
  }
  /// Shuts down the socket of every entry past its deadline; returns how many fired now.
  int fire_expired(std::int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mutex_);
    int fired = 0;
    for (auto& [id, e] : entries_) {
      if (!e.fired && now_ns >= e.deadline_ns) {
        ::shutdown(e.fd, SHUT_RDWR);
        e.fired = true;
        ++fired;
      }
    }
    return fired;
  }
  /// The earliest unfired deadline (INT64_MAX when none).
  std::int64_t next_deadline_ns() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::int64_t best = std::numeric_limits<std::int64_t>::max();
    for (const auto& [id, e] : entries_) {
      if (!e.fired && e.deadline_ns < best) best = e.deadline_ns;
    }
    return best;
  }

 private:
  struct Entry {
    int fd;
    std::int64_t deadline_ns;
    bool fired;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::uint64_t next_id_ = 1;
};

}  // namespace replikit::pg::detail
