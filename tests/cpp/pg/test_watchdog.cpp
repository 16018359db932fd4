// Unit tests of the pg layer's internal helpers that need no server: the query watchdog
// (a dup()ed socket per connection, close/drain) and connection-string defaults.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "../../../cpp/pg/conninfo.hpp"
#include "../../../cpp/pg/watchdog.hpp"
#include "replikit/errors.hpp"

namespace {

using replikit::pg::detail::build_conninfo;
using replikit::pg::detail::Watchdog;

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0) << std::strerror(errno); }
  ~SocketPair() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
};

// Reads without blocking: 0 at end of stream, -1 with EAGAIN when nothing is there yet.
ssize_t read_now(int fd, char* buffer, std::size_t size) { return ::recv(fd, buffer, size, MSG_DONTWAIT); }

TEST(PgWatchdog, FiresOnTheQuerysSocketEvenAfterItsNumberWasReused) {
  Watchdog w;
  Watchdog::Entry entry;
  SocketPair query;
  const int number = query.fd[0];
  w.arm(entry, number, /*deadline_ns=*/100);
  // libpq drops its descriptor while the call is still running (pqDropConnection) ...
  ASSERT_EQ(::close(query.fd[0]), 0);
  query.fd[0] = -1;
  // ... and the process reuses the number for something else.
  SocketPair other;
  ASSERT_EQ(other.fd[0], number) << "the lowest free descriptor number is reused";

  EXPECT_EQ(w.next_deadline_ns(), 100);
  EXPECT_EQ(w.fire_expired(/*now_ns=*/99), 0);
  EXPECT_EQ(w.fire_expired(/*now_ns=*/100), 1);
  EXPECT_EQ(w.fire_expired(/*now_ns=*/200), 0);  // fires once

  char buffer[8];
  // The query's socket was shut down: its peer sees the end of the stream.
  EXPECT_EQ(read_now(query.fd[1], buffer, sizeof buffer), 0);
  // The unrelated socket that now has the number is untouched.
  ASSERT_EQ(::send(other.fd[0], "x", 1, MSG_NOSIGNAL), 1) << std::strerror(errno);
  EXPECT_EQ(read_now(other.fd[1], buffer, sizeof buffer), 1);

  EXPECT_TRUE(w.disarm(entry));
  EXPECT_FALSE(w.disarm(entry));
  EXPECT_EQ(w.armed(), 0u);
  w.detach(entry);
  EXPECT_EQ(w.attached(), 0u);
}

TEST(PgWatchdog, ADepositionCutsOnlyTheCallsSentToTheDeposedPrimary) {
  Watchdog w;
  Watchdog::Entry on_old, on_replica, on_new;
  SocketPair old_conn, replica_conn, new_conn;
  const std::int64_t far = std::numeric_limits<std::int64_t>::max() / 2;
  w.arm(on_old, old_conn.fd[0], far, /*primary=*/0);  // a write to primary 0
  w.arm(on_replica, replica_conn.fd[0], far);         // a read on replica 1: not watched for that
  EXPECT_EQ(w.fire_deposed(/*primary=*/0), 0);        // 0 is still the primary: nothing cut
  EXPECT_EQ(w.fire_deposed(/*primary=*/1), 1);        // 1 was promoted: the call on 0 is cut
  EXPECT_EQ(w.fire_deposed(/*primary=*/1), 0);        // once
  w.arm(on_new, new_conn.fd[0], far, /*primary=*/1);  // a write to the new primary
  EXPECT_EQ(w.fire_deposed(/*primary=*/1), 0);
  EXPECT_EQ(w.next_deadline_ns(), far);               // the others keep their deadlines
  EXPECT_EQ(w.fire_expired(far), 2);

  char buffer[8];
  EXPECT_EQ(read_now(old_conn.fd[1], buffer, sizeof buffer), 0);  // shut down: the peer sees the end
  bool deposed = false;
  EXPECT_TRUE(w.disarm(on_old, &deposed));
  EXPECT_TRUE(deposed);
  EXPECT_TRUE(w.disarm(on_replica, &deposed));
  EXPECT_FALSE(deposed);  // cut by its deadline, not by the deposition
  EXPECT_TRUE(w.disarm(on_new, &deposed));
  EXPECT_FALSE(deposed);
  // Re-armed, an entry starts clean.
  w.arm(on_old, old_conn.fd[0], far, /*primary=*/1);
  EXPECT_FALSE(w.disarm(on_old, &deposed));
  EXPECT_FALSE(deposed);
  w.detach(on_old);
  w.detach(on_replica);
  w.detach(on_new);
  EXPECT_EQ(w.attached(), 0u);
}

TEST(PgWatchdog, TheDuplicateLivesAsLongAsTheConnectionNotJustOneQuery) {
  Watchdog w;
  Watchdog::Entry entry;
  SocketPair query;
  const int number = query.fd[0];
  w.arm(entry, number, 1'000'000'000);
  EXPECT_EQ(w.attached(), 1u);
  EXPECT_FALSE(w.disarm(entry));
  // A second query of the same connection reuses the duplicate: no new descriptor.
  w.arm(entry, number, 2'000'000'000);
  EXPECT_EQ(w.attached(), 1u);
  EXPECT_EQ(w.next_deadline_ns(), 2'000'000'000);
  ASSERT_EQ(::close(query.fd[0]), 0);
  query.fd[0] = -1;
  char buffer[8];
  // The duplicate keeps the socket open while armed: no end of stream yet.
  EXPECT_EQ(read_now(query.fd[1], buffer, sizeof buffer), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_FALSE(w.disarm(entry));
  // ... and after the query, for as long as the connection lives.
  EXPECT_EQ(read_now(query.fd[1], buffer, sizeof buffer), -1);
  EXPECT_EQ(errno, EAGAIN);
  // The connection is discarded: the last descriptor of the socket is closed.
  w.detach(entry);
  EXPECT_EQ(w.attached(), 0u);
  EXPECT_EQ(read_now(query.fd[1], buffer, sizeof buffer), 0);
  w.detach(entry);  // idempotent
  EXPECT_EQ(w.attached(), 0u);
}

TEST(PgWatchdog, DetachDisarmsSoTheDeadlineCanNoLongerFireOnTheDuplicate) {
  Watchdog w;
  Watchdog::Entry entry, other_entry;
  SocketPair query, other;
  w.arm(entry, query.fd[0], 100);
  w.arm(other_entry, other.fd[0], 100);
  EXPECT_EQ(w.armed(), 2u);
  w.detach(entry);  // e.g. the connection is destroyed while its call unwinds
  EXPECT_EQ(w.armed(), 1u);
  EXPECT_EQ(w.attached(), 1u);
  EXPECT_EQ(w.fire_expired(100), 1);  // only the entry still armed
  EXPECT_FALSE(w.disarm(entry));
  char buffer[8];
  ASSERT_EQ(::send(query.fd[0], "x", 1, MSG_NOSIGNAL), 1) << std::strerror(errno);
  EXPECT_EQ(read_now(query.fd[1], buffer, sizeof buffer), 1);  // never shut down
  EXPECT_EQ(read_now(other.fd[1], buffer, sizeof buffer), 0);
  EXPECT_TRUE(w.disarm(other_entry));
  // Re-armed, an entry starts unfired.
  w.arm(other_entry, other.fd[0], 500);
  EXPECT_EQ(w.next_deadline_ns(), 500);
  EXPECT_FALSE(w.disarm(other_entry));
  w.detach(other_entry);
  EXPECT_EQ(w.attached(), 0u);
}

TEST(PgWatchdog, ASocketThatCannotBeDuplicatedIsRefusedNotLeftUnwatched) {
  Watchdog w;
  Watchdog::Entry entry;
  EXPECT_THROW(w.arm(entry, -1, 100), replikit::ConnectionError);
  EXPECT_EQ(w.armed(), 0u);
  EXPECT_EQ(w.attached(), 0u);
  EXPECT_EQ(w.next_deadline_ns(), std::numeric_limits<std::int64_t>::max());
  EXPECT_FALSE(w.disarm(entry));
}

TEST(PgWatchdog, CloseRefusesNewEntriesAndIsDrainedWhenTheLastOneIsDisarmed) {
  Watchdog w;
  Watchdog::Entry entry, late;
  SocketPair query;
  EXPECT_FALSE(w.drained());  // open
  w.arm(entry, query.fd[0], 100);
  w.close();
  w.close();  // idempotent
  EXPECT_THROW(w.arm(late, query.fd[0], 100), replikit::ConnectionError);
  EXPECT_EQ(w.attached(), 1u);  // the refused arm took no duplicate
  EXPECT_FALSE(w.drained());    // one call still in flight, still watched
  EXPECT_EQ(w.fire_expired(100), 1);
  EXPECT_TRUE(w.disarm(entry));
  EXPECT_TRUE(w.drained());
  w.detach(entry);
  w.detach(late);
  EXPECT_EQ(w.attached(), 0u);
}

TEST(PgConninfo, ConnectTimeoutZeroIsReplacedAPositiveOneKept) {
  const std::vector<std::pair<std::string, std::string>> defaults = {{"connect_timeout", "3"}};
  auto build = [&](const std::string& dsn) { return build_conninfo("n", dsn, defaults, "", {"connect_timeout"}); };
  for (const char* dsn : {"host=h connect_timeout=0", "host=h connect_timeout=-5", "host=h connect_timeout=' 0'",
                          "postgresql://h/db?connect_timeout=0", "host=h"}) {
    const std::string out = build(dsn);
    EXPECT_NE(out.find("connect_timeout='3'"), std::string::npos) << dsn << " -> " << out;
    EXPECT_EQ(out.find("connect_timeout='0'"), std::string::npos) << dsn << " -> " << out;
    EXPECT_EQ(out.find("connect_timeout='-5'"), std::string::npos) << dsn << " -> " << out;
  }
  const std::string kept = build("host=h connect_timeout=10");
  EXPECT_NE(kept.find("connect_timeout='10'"), std::string::npos) << kept;
  EXPECT_EQ(kept.find("connect_timeout='3'"), std::string::npos) << kept;
  // Without the keyword in `positive`, the DSN's value stands as before.
  const std::string as_given = build_conninfo("n", "host=h connect_timeout=0", defaults, "");
  EXPECT_NE(as_given.find("connect_timeout='0'"), std::string::npos) << as_given;
}

}  // namespace
