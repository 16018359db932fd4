#include "pool.hpp"

#include <chrono>
#include <optional>

#include "clock.hpp"
#include "conninfo.hpp"
#include "replikit/errors.hpp"

namespace replikit::pg::detail {

Lease::~Lease() {
  if (pool_ != nullptr && conn_ != nullptr) pool_->give_back(std::move(conn_), healthy_);
}

Pool::Pool(std::string node, std::string conninfo, int size, Watchdog* watchdog)
    : node_(std::move(node)),
      conninfo_(std::move(conninfo)),
      connect_timeout_ns_(connect_timeout_ns(conninfo_, kDefaultConnectTimeoutNs)),
      size_(size),
      watchdog_(watchdog) {
  idle_.reserve(static_cast<std::size_t>(size_));  // give_back never allocates
}

Pool::~Pool() { close(); }

Lease Pool::acquire(std::int64_t deadline_ns, double acquire_timeout_ms, std::int64_t check_idle_ns) {
  std::int64_t now = 0;  // read once, only when a connection's idle time matters
  // The server refused a new connection as full (53300): wait for one of ours to come back
  // instead of connecting again; the refusal, if none does.
  std::optional<ServerFull> full;
  std::unique_lock<std::mutex> lock(mutex_);
  // Bounded: each pass returns, throws, discards one idle connection (at most size_ of
  // them), or waits no later than the deadline, after which it returns or throws.
  while (true) {
    if (closed_) throw ConnectionError("node '" + node_ + "': the database was closed");
    if (!idle_.empty()) {
      if (std::optional<Lease> lease = take_idle(lock, check_idle_ns, &now)) return std::move(*lease);
      continue;
    }
    if (open_ < size_ && !full) {
      if (std::optional<Lease> lease = connect(lock, &full)) return std::move(*lease);
      continue;
    }
    if (full && open_ == 0) throw ServerFull(*full);  // the ones waited for closed meanwhile
    auto remaining = deadline_ns - steady_now_ns();
    if (remaining <= 0 ||
        freed_.wait_for(lock, std::chrono::nanoseconds(remaining)) == std::cv_status::timeout) {
      if (!idle_.empty() || (open_ < size_ && !full)) continue;
      exhausted(full, acquire_timeout_ms);
    }
  }
}

void Pool::exhausted(const std::optional<ServerFull>& full, double acquire_timeout_ms) const {
  const std::string within = std::to_string(static_cast<long long>(acquire_timeout_ms)) + " ms";
  if (full) {
    throw ServerFull(std::string(full->what()) + "; none of the " + std::to_string(open_) +
                     " open connection(s) became free within acquire_timeout_ms (" + within + ")");
  }
  throw TimeoutError("acquire_timeout_ms: no connection to node '" + node_ + "' became free within " + within +
                     " (pool_size " + std::to_string(size_) + ")");
}

std::optional<Lease> Pool::take_idle(std::unique_lock<std::mutex>& lock, std::int64_t check_idle_ns,
                                     std::int64_t* now) {
  std::unique_ptr<PooledConnection> conn = std::move(idle_.back());
  idle_.pop_back();
  bool check = check_idle_ns <= 0 || !conn->conn->ok();
  if (!check) {
    if (*now == 0) *now = steady_now_ns();
    check = *now - conn->idle_since_ns >= check_idle_ns;
  }
  if (!check || !conn->conn->looks_dead()) return Lease(this, std::move(conn));
  --open_;
  lock.unlock();
  conn.reset();  // close outside the lock
  lock.lock();
  return std::nullopt;
}

std::optional<Lease> Pool::connect(std::unique_lock<std::mutex>& lock, std::optional<ServerFull>* full) {
  ++open_;
  lock.unlock();
  try {
    auto conn = std::make_unique<Connection>(node_, conninfo_, connect_timeout_ns_);
    return Lease(this, std::make_unique<PooledConnection>(std::move(conn), watchdog_));
  } catch (const ServerFull& e) {
    lock.lock();
    --open_;
    freed_.notify_one();
    if (open_ == 0) throw;  // none of ours to wait for
    full->emplace(e);
    return std::nullopt;
  } catch (...) {
    lock.lock();
    --open_;
    freed_.notify_one();
    throw;
  }
}

void Pool::give_back(std::unique_ptr<PooledConnection> conn, bool healthy) {
  // The last line of defence against a connection left inside a transaction block: pooled,
  // it would hand the next user an open transaction whose writes vanish at disconnect.
  // PQtransactionStatus is a local call (no round trip).
  const bool reusable = healthy && conn->conn->ok() && conn->conn->transaction_status() == PQTRANS_IDLE;
  if (reusable) conn->idle_since_ns = steady_now_ns();
  std::unique_lock<std::mutex> lock(mutex_);
  if (reusable && !closed_) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
    lock.unlock();
    conn.reset();
    lock.lock();
  }
  freed_.notify_one();
}

void Pool::drop_idle() {
  std::vector<std::unique_ptr<PooledConnection>> doomed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    doomed.reserve(idle_.size());
    for (auto& c : idle_) doomed.push_back(std::move(c));
    idle_.clear();  // keeps its capacity: give_back never allocates
    open_ -= static_cast<int>(doomed.size());
  }
  freed_.notify_all();
}

void Pool::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  drop_idle();
}

int Pool::open_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return open_;
}

int Pool::idle_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(idle_.size());
}

}  // namespace replikit::pg::detail
