#pragma once
// Client-side deadlines of user queries. A query arms an entry (a duplicate of its
// connection's socket and a deadline); the prober thread calls fire_expired() every few
// milliseconds and shuts down the socket of a query past its deadline, so the blocked libpq
// call returns with a broken connection instead of hanging on a server that stopped answering.
//
// The entry owns a dup() of the socket, taken at arm() and closed at disarm(): libpq may close
// its own descriptor while the call is still inside libpq (pqDropConnection after an error),
// and that number may then be reused by an unrelated file; the duplicate keeps the socket
// itself open, so shutdown() always reaches the query's socket and nothing else. When dup()
// fails (the process is out of descriptors) arm() throws ConnectionError before anything is
// sent: an unwatched call could hang, and every call must stay bounded.
//
// close() refuses new entries (arm() throws ConnectionError) while the entries already armed
// keep their deadlines; drained() tells the prober thread when the last one was disarmed, so
// it keeps firing deadlines until then and no call in flight is left unwatched.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <unordered_map>

#include "replikit/errors.hpp"

namespace replikit::pg::detail {

class Watchdog {
 public:
  Watchdog() = default;
  ~Watchdog() {
    for (auto& [id, e] : entries_) ::close(e.fd);
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  /// Watches socket `fd` (through a duplicate) until disarm(); returns the entry's id.
  /// Throws ConnectionError after close() or when the socket cannot be duplicated.
  std::uint64_t arm(int fd, std::int64_t deadline_ns) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) throw ConnectionError("the database was closed");
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) {
      throw ConnectionError(std::string("cannot watch the query's socket (dup: ") + std::strerror(errno) +
                            "); nothing was sent");
    }
    std::uint64_t id = next_id_++;
    entries_[id] = Entry{copy, deadline_ns, false};
    return id;
  }
  /// Stops watching entry `id` and closes its duplicate; true when its deadline fired.
  bool disarm(std::uint64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return false;
    bool fired = it->second.fired;
    ::close(it->second.fd);
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
  /// Refuses new entries from now on; the armed ones keep their deadlines. Idempotent.
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  /// True after close() once every entry was disarmed: no call is left to watch.
  bool drained() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_ && entries_.empty();
  }
  /// Entries armed now.
  std::size_t armed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    int fd;  // our duplicate of the query's socket
    std::int64_t deadline_ns;
    bool fired;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, Entry> entries_;
  std::uint64_t next_id_ = 1;
  bool closed_ = false;
};

}  // namespace replikit::pg::detail
