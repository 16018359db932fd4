#pragma once
// A bounded pool of libpq connections to one node (internal: includes libpq).

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "connection.hpp"
#include "watchdog.hpp"

namespace replikit::pg::detail {

class Pool;

/// Connections idle in a replica's pool for less than this are handed to reads without
/// checking their socket (a poll() per call); calls on the primary always check (see
/// ReplicatedDatabase::Impl::acquire).
inline constexpr std::int64_t kReadIdleCheckNs = 1'000'000'000;

/// A connect's bound per address when the conninfo sets no connect_timeout.
inline constexpr std::int64_t kDefaultConnectTimeoutNs = 10'000'000'000;

/// One open connection of a pool with its watchdog entry, which holds a duplicate of the
/// socket for the connection's life: the destructor detaches it (disarming it and closing the
/// duplicate under the watchdog's mutex) before libpq closes the connection.
struct PooledConnection {
  PooledConnection(std::unique_ptr<Connection> c, Watchdog* w) : conn(std::move(c)), watchdog(w) {}
  ~PooledConnection() {
    if (watchdog != nullptr) watchdog->detach(watch);
  }
  PooledConnection(const PooledConnection&) = delete;
  PooledConnection& operator=(const PooledConnection&) = delete;

  std::unique_ptr<Connection> conn;
  Watchdog::Entry watch;
  Watchdog* watchdog;
  std::int64_t idle_since_ns = 0;  // steady clock, when it went back to the pool
};

/// A connection on loan; goes back to its pool when destroyed unless it was marked broken
/// (or was never marked healthy: an exception that escaped leaves it broken), or libpq says it
/// is not idle (inside a transaction block, or worse): such a connection is closed, which
/// rolls back on the server, and never reaches another user.
class Lease {
 public:
  Lease(Pool* pool, std::unique_ptr<PooledConnection> conn) : pool_(pool), conn_(std::move(conn)) {}
  Lease(Lease&& other) noexcept = default;
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  ~Lease();
  Connection& operator*() const { return *conn_->conn; }
  Connection* operator->() const { return conn_->conn.get(); }
  /// The connection's watchdog entry (see Watchdog::arm).
  Watchdog::Entry& watch() const { return conn_->watch; }
  /// The connection is fine and may be reused (give_back still pools it only when libpq
  /// reports it idle: no transaction block open).
  void healthy() noexcept { healthy_ = true; }

 private:
  Pool* pool_;
  std::unique_ptr<PooledConnection> conn_;
  bool healthy_ = false;
};

class Pool {
 public:
  /// `watchdog` must outlive the pool (each connection detaches its entry when closed).
  Pool(std::string node, std::string conninfo, int size, Watchdog* watchdog);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// A connection: an idle one or a new one while fewer than `size` are open; else waits until
  /// `deadline_ns` (steady clock). An idle connection idle for at least `check_idle_ns` whose
  /// socket shows the server closed it (readable) is discarded and the next one tried; 0 checks
  /// every idle connection (one poll() each). A new connection is bounded by the conninfo's
  /// connect_timeout (ReplicatedDatabase always sets a positive one), except for host-name
  /// resolution, which libpq does synchronously. A connect the server refuses as full (53300)
  /// drops nothing: the call waits until the deadline for one of the pool's open connections
  /// instead, and throws ServerFull when none comes back (at once when none is open).
  /// Throws TimeoutError when none frees up in time, ConnectionError when connecting fails.
  Lease acquire(std::int64_t deadline_ns, double acquire_timeout_ms, std::int64_t check_idle_ns = 0);
  /// Closes every idle connection (after the node was seen down).
  void drop_idle();
  /// Closes idle connections and refuses new acquires.
  void close();
  int open_count() const;
  int idle_count() const;

 private:
  friend class Lease;
  /// Throws after the deadline passed with no connection: the refusal as full when there was
  /// one (ServerFull), else TimeoutError. Called with the lock held.
  [[noreturn]] void exhausted(const std::optional<ServerFull>& full, double acquire_timeout_ms) const;
  /// The last idle connection, unless the check of `check_idle_ns` (see acquire) finds it dead:
  /// then it is closed (`lock` released meanwhile) and nothing is returned. `now` caches the clock.
  std::optional<Lease> take_idle(std::unique_lock<std::mutex>& lock, std::int64_t check_idle_ns, std::int64_t* now);
  /// Opens one more connection (`lock` held on entry and on a return without a lease). A
  /// refusal as full (53300) sets `full` and returns nothing while others of ours are open.
  std::optional<Lease> connect(std::unique_lock<std::mutex>& lock, std::optional<ServerFull>* full);
  /// Pools `conn` when `healthy`, the pool is open and libpq reports it idle; closes it otherwise.
  void give_back(std::unique_ptr<PooledConnection> conn, bool healthy);

  std::string node_;
  std::string conninfo_;
  std::int64_t connect_timeout_ns_;  // per address, from the conninfo's connect_timeout
  int size_;
  Watchdog* watchdog_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<PooledConnection>> idle_;
  int open_ = 0;  // idle + on loan + being opened
  bool closed_ = false;
};

}  // namespace replikit::pg::detail
