#pragma once
// Client-side deadlines of user queries. Every pooled connection owns a Watchdog::Entry; a
// query arms its connection's entry with a deadline, and the prober thread calls
// fire_expired() every few milliseconds and shuts down the socket of a query past its
// deadline, so the blocked libpq call returns with a broken connection instead of hanging on a
// server that stopped answering.
//
// The entry owns a dup() of the connection's socket, taken by its first arm() (at the
// connection's first query) and closed by detach() (when the connection is discarded), so the duplicate
// lives exactly as long as the connection object: libpq may close its own descriptor while a
// call is still inside libpq (pqDropConnection after an error), and that number may then be
// reused by an unrelated file; the duplicate keeps the socket itself open, so shutdown() always
// reaches the query's socket and nothing else. detach() disarms and closes the duplicate under
// the watchdog's mutex, after which fire_expired() can no longer reach it. A connection never
// changes its socket (libpqxx's reactivation is inhibited: a broken connection is discarded),
// so one duplicate serves every query of the connection. When dup() fails (the process is out
// of descriptors) arm() throws ConnectionError before anything is sent: an unwatched call
// could hang, and every call must stay bounded.
//
// Nothing here allocates: an armed entry is linked into an intrusive list (at most one entry
// per open pooled connection, so fire_expired() and next_deadline_ns() are bounded by the
// pools' sizes), and arm()/disarm() take the mutex once each.
//
// An entry armed with the primary it was sent to is also cut when that node is deposed
// (fire_deposed(): the topology names another primary after a failover): a statement in flight
// to a primary that hangs then ends within the prober's poll interval, instead of at its
// deadline. The prober calls fire_deposed() only when the topology's epoch or primary changed,
// and the call that armed it checks the primary once after arming (an atomic load), so that a
// failover between its routing and its arm() is not missed.
//
// close() refuses new arms (arm() throws ConnectionError) while the entries already armed
// keep their deadlines; drained() tells the prober thread when the last one was disarmed, so
// it keeps firing deadlines until then and no call in flight is left unwatched.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>

#include "replikit/errors.hpp"

namespace replikit::pg::detail {

class Watchdog {
 public:
  /// The watch of one connection; owned by it, at a fixed address, and detach()ed before it is
  /// destroyed.
  /// Every field is guarded by the watchdog's mutex.
  class Entry {
   public:
    Entry() = default;
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
   private:
    friend class Watchdog;
    int fd_ = -1;  // our duplicate of the connection's socket, for the connection's life
    std::int64_t deadline_ns_ = 0;
    bool armed_ = false;
    bool fired_ = false;
    bool deposed_ = false;  // fired by fire_deposed()
    int primary_ = -1;      // the primary the statement was sent to (-1: not watched for that)
    Entry* prev_ = nullptr;  // in the armed list
    Entry* next_ = nullptr;
  };

  Watchdog() = default;
  /// Every entry must have been detached (their connections are destroyed first).
  ~Watchdog() { assert(attached_ == 0); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  /// Disarms `entry` and closes its duplicate (the connection is being discarded): under the
  /// mutex, so fire_expired() can no longer shut it down. Idempotent.
  void detach(Entry& entry) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (entry.armed_) unlink(entry);
    if (entry.fd_ >= 0) {
      ::close(entry.fd_);
      entry.fd_ = -1;
      --attached_;
    }
  }
  /// Watches `entry`, the entry of the connection whose socket is `fd`, until disarm(); with
  /// `primary` >= 0 (the node index it was sent to as the primary), also until that node is
  /// deposed (fire_deposed). The first arm() of an entry duplicates `fd` into it (once per
  /// connection). Throws ConnectionError after close() or when the socket cannot be duplicated
  /// (nothing was sent).
  void arm(Entry& entry, int fd, std::int64_t deadline_ns, int primary = -1) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) throw ConnectionError("the database was closed");
    assert(!entry.armed_);
    if (entry.fd_ < 0) {
      const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (copy < 0) {
        throw ConnectionError(std::string("cannot watch the query's socket (dup: ") + std::strerror(errno) +
                              "); nothing was sent");
      }
      entry.fd_ = copy;
      ++attached_;
    }
    entry.deadline_ns_ = deadline_ns;
    entry.fired_ = false;
    entry.deposed_ = false;
    entry.primary_ = primary;
    entry.armed_ = true;
    entry.prev_ = nullptr;
    entry.next_ = head_;
    if (head_ != nullptr) head_->prev_ = &entry;
    head_ = &entry;
    ++armed_;
  }
  /// Stops watching `entry`; true when it was cut since arm() (false when not armed). With
  /// `deposed`, tells whether the cut came from fire_deposed() rather than the deadline.
  bool disarm(Entry& entry, bool* deposed = nullptr) noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!entry.armed_) return false;
    unlink(entry);
    if (deposed != nullptr) *deposed = entry.deposed_;
    return entry.fired_;
  }
  /// Shuts down the socket of every armed entry past its deadline; returns how many fired now.
  int fire_expired(std::int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mutex_);
    int fired = 0;
    for (Entry* e = head_; e != nullptr; e = e->next_) {
      if (!e->fired_ && now_ns >= e->deadline_ns_) {
        ::shutdown(e->fd_, SHUT_RDWR);
        e->fired_ = true;
        ++fired;
      }
    }
    return fired;
  }
  /// Shuts down the socket of every armed entry sent to a primary other than `primary` (that
  /// node was deposed); returns how many fired now.
  int fire_deposed(int primary) {
    std::lock_guard<std::mutex> lock(mutex_);
    int fired = 0;
    for (Entry* e = head_; e != nullptr; e = e->next_) {
      if (!e->fired_ && e->primary_ >= 0 && e->primary_ != primary) {
        ::shutdown(e->fd_, SHUT_RDWR);
        e->fired_ = true;
        e->deposed_ = true;
        ++fired;
      }
    }
    return fired;
  }
  /// The earliest unfired deadline (INT64_MAX when none).
  std::int64_t next_deadline_ns() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::int64_t best = std::numeric_limits<std::int64_t>::max();
    for (const Entry* e = head_; e != nullptr; e = e->next_) {
      if (!e->fired_ && e->deadline_ns_ < best) best = e->deadline_ns_;
    }
    return best;
  }
  /// Refuses new arms from now on; the armed entries keep their deadlines. Idempotent.
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  /// True after close() once every entry was disarmed: no call is left to watch.
  bool drained() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_ && armed_ == 0;
  }
  /// Entries armed now.
  std::size_t armed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return armed_;
  }
  /// Entries holding a duplicate now (open pooled connections that ran a query).
  std::size_t attached() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return attached_;
  }

 private:
  // Caller holds mutex_ and `e` is armed.
  void unlink(Entry& e) noexcept {
    if (e.prev_ != nullptr) e.prev_->next_ = e.next_;
    else head_ = e.next_;
    if (e.next_ != nullptr) e.next_->prev_ = e.prev_;
    e.prev_ = e.next_ = nullptr;
    e.armed_ = false;
    --armed_;
  }

  mutable std::mutex mutex_;
  Entry* head_ = nullptr;  // armed entries
  std::size_t armed_ = 0;
  std::size_t attached_ = 0;
  bool closed_ = false;
};

}  // namespace replikit::pg::detail
