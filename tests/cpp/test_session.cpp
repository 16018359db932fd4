// Sessions and their tokens: record_write / observe / merge, encoding, signing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "replikit/errors.hpp"
#include "replikit/random.hpp"
#include "replikit/session.hpp"

#include "testing.hpp"

#ifdef REPLIKIT_HAVE_OPENSSL
#include "hmac_signer.hpp"
#endif

using namespace replikit;
using replikit::testing::seed_from_env;
using replikit::testing::token_ms_ceil;

namespace {

constexpr std::int64_t kMs = 1000000;

Session make(std::uint64_t write, std::uint64_t read, std::int64_t untracked = kNever) {
  Session s;
  s.write_lsn = Lsn(write);
  s.read_lsn = Lsn(read);
  s.untracked_write_ns = untracked;
  return s;
}

// A deterministic stand-in signer (not cryptographic) so signing logic is tested even
// without OpenSSL: 16 bytes from FNV-1a over the key and payload.
class FakeSigner final : public TokenSigner {
 public:
  explicit FakeSigner(std::string key, std::size_t length = 16) : key_(std::move(key)), length_(length) {}
  std::string mac(std::string_view payload) const override {
    std::string out;
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < length_; ++i) {
      for (char c : key_) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      for (char c : payload) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      h = (h ^ i) * 1099511628211ull;
      out.push_back(static_cast<char>(h >> 56));
    }
    return out;
  }

 private:
  std::string key_;
  std::size_t length_;
};

void expect_token_error(std::string_view token, const TokenSigner* signer, const std::string& why) {
  try {
    decode_token(token, signer, "cookie");
    ADD_FAILURE() << "accepted '" << std::string(token) << "' (" << why << ")";
  } catch (const TokenError& e) {
    EXPECT_EQ(e.argument(), "cookie") << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type for '" << std::string(token) << "': " << e.what();
  }
}

}  // namespace

TEST(Session, RecordWriteKeepsTheHighestLsn) {
  Session s;
  EXPECT_EQ(s, make(0, 0));
  s.record_write(Lsn(0x2000), 5);
  EXPECT_EQ(s.write_lsn, Lsn(0x2000));
  s.record_write(Lsn(0x1000), 6);  // an older commit (another connection) does not go back
  EXPECT_EQ(s.write_lsn, Lsn(0x2000));
  EXPECT_EQ(s.untracked_write_ns, kNever);
  EXPECT_EQ(s.read_lsn, Lsn());
}

TEST(Session, UnknownCommitLsnStartsTheTimeWindow) {
  Session s;
  s.record_write(Lsn(), 100 * kMs);
  EXPECT_EQ(s.untracked_write_ns, 100 * kMs);
  EXPECT_EQ(s.write_lsn, Lsn());
  s.record_write(Lsn(), 50 * kMs);  // an earlier time does not shorten the window
  EXPECT_EQ(s.untracked_write_ns, 100 * kMs);
  s.record_write(Lsn(), 0);
  EXPECT_EQ(s.untracked_write_ns, 100 * kMs);
  s.record_write(Lsn(), 200 * kMs);
  EXPECT_EQ(s.untracked_write_ns, 200 * kMs);
  s.record_write(Lsn(7), 300 * kMs);  // a known LSN does not touch the window
  EXPECT_EQ(s.untracked_write_ns, 200 * kMs);
  try {
    s.record_write(Lsn(1), -1);
    ADD_FAILURE() << "negative now_ns accepted";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.argument(), "now_ns");
  }
  EXPECT_EQ(s, make(7, 0, 200 * kMs));
}

TEST(Session, ObserveAndCausalLsn) {
  Session s;
  s.observe(Lsn(0x300));
  s.observe(Lsn(0x100));
  EXPECT_EQ(s.read_lsn, Lsn(0x300));
  EXPECT_EQ(s.causal_lsn(), Lsn(0x300));
  s.record_write(Lsn(0x500), 0);
  EXPECT_EQ(s.causal_lsn(), Lsn(0x500));
  s.observe(Lsn(0x900));
  EXPECT_EQ(s.causal_lsn(), Lsn(0x900));
}

TEST(Session, MergeIsFieldWiseMax) {
  Session a = make(0x500, 0x100, kNever);
  Session b = make(0x200, 0x900, 7 * kMs);
  Session ab = a;
  ab.merge(b);
  EXPECT_EQ(ab, make(0x500, 0x900, 7 * kMs));
  Session ba = b;
  ba.merge(a);
  EXPECT_EQ(ab, ba);
  Session aa = a;
  aa.merge(a);
  EXPECT_EQ(aa, a);
  Session empty;
  empty.merge(Session{});
  EXPECT_EQ(empty, Session{});
}

TEST(Session, RandomMergeIsACommutativeAssociativeIdempotentMax) {
  const std::uint64_t seed = seed_from_env(0x5E55);
  Xoshiro256 rng(seed);
  auto random_session = [&] {
    return make(rng.below(4) ? rng.next() >> rng.below(64) : 0, rng.below(4) ? rng.next() >> rng.below(64) : 0,
                rng.below(3) ? kNever : static_cast<std::int64_t>(rng.next() >> 1));
  };
  for (int k = 0; k < 2000; ++k) {
    SCOPED_TRACE("seed=" + std::to_string(seed) + " k=" + std::to_string(k));
    Session a = random_session(), b = random_session(), c = random_session();
    Session ab = a, ba = b, ab_c = a, bc = b, a_bc = a;
    ab.merge(b);
    ba.merge(a);
    EXPECT_EQ(ab, ba);
    ab_c.merge(b);
    ab_c.merge(c);
    bc.merge(c);
    a_bc.merge(bc);
    EXPECT_EQ(ab_c, a_bc);
    // Reference: the obvious field-wise maximum.
    EXPECT_EQ(ab.write_lsn.value, std::max(a.write_lsn.value, b.write_lsn.value));
    EXPECT_EQ(ab.read_lsn.value, std::max(a.read_lsn.value, b.read_lsn.value));
    EXPECT_EQ(ab.untracked_write_ns, std::max(a.untracked_write_ns, b.untracked_write_ns));
    Session aa = a;
    aa.merge(a);
    EXPECT_EQ(aa, a);
  }
}

TEST(Token, KnownEncoding) {
  EXPECT_EQ(encode_token(Session{}), "1.0.0.x");
  Session s = make(0x16B374D848ull, 0x16B3700000ull, 0x18c2e4f1a20ll * kMs);
  EXPECT_EQ(encode_token(s), "1.16b374d848.16b3700000.18c2e4f1a20");
  EXPECT_EQ(decode_token("1.16b374d848.16b3700000.18c2e4f1a20"), s);
  EXPECT_EQ(decode_token("1.0.0.x"), Session{});
  EXPECT_EQ(decode_token("1.ffffffffffffffff.0.0"), make(~0ull, 0, 0));
}

TEST(Token, RoundTripsAndMergeCommutesWithEncoding) {
  const std::uint64_t seed = seed_from_env(0x70C);
  Xoshiro256 rng(seed);
  for (int k = 0; k < 3000; ++k) {
    SCOPED_TRACE("seed=" + std::to_string(seed) + " k=" + std::to_string(k));
    // Whole milliseconds: the token's time resolution.
    Session a = make(rng.next() >> rng.below(64), rng.next() >> rng.below(64),
                     rng.below(2) ? kNever : static_cast<std::int64_t>(rng.next() >> 24) * kMs);
    Session b = make(rng.next() >> rng.below(64), rng.next() >> rng.below(64),
                     rng.below(2) ? kNever : static_cast<std::int64_t>(rng.next() >> 24) * kMs);
    std::string ta = encode_token(a);
    EXPECT_LE(ta.size(), kMaxTokenLength);
    EXPECT_EQ(decode_token(ta), a) << ta;
    Session merged = decode_token(ta);
    merged.merge(decode_token(encode_token(b)));
    Session direct = a;
    direct.merge(b);
    EXPECT_EQ(merged, direct);
    for (char c : ta) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '.') << ta;
  }
}

TEST(Token, WriteTimeTravelsInWholeMilliseconds) {
  // The token keeps whole milliseconds, rounded up (clamped to the decodable range): a carried
  // time window may end up to 1 ms later than the original session's, never earlier.
  for (std::int64_t ns : std::vector<std::int64_t>{0, 1, 999999, kMs, kMs + 1, 123456789012345,
                                                   std::numeric_limits<std::int64_t>::max() - 5,
                                                   std::numeric_limits<std::int64_t>::max()}) {
    SCOPED_TRACE(ns);
    Session s = make(1, 2, ns);
    Session back = decode_token(encode_token(s));
    EXPECT_EQ(back.untracked_write_ns, token_ms_ceil(ns));
    EXPECT_EQ(back.write_lsn, s.write_lsn);
    EXPECT_EQ(back.read_lsn, s.read_lsn);
  }
}

TEST(Token, EncodeRejectsANegativeWriteTime) {
  try {
    encode_token(make(1, 1, -5 * kMs));
    ADD_FAILURE() << "encoded a session with a negative write time";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(e.argument(), "session");
  }
}

TEST(Token, MalformedTokensAreRejected) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty"},
      {"1", "one field"},
      {"1.0", "two fields"},
      {"1.0.0", "three fields"},
      {"1.0.0.x.", "empty MAC field"},
      {"1.0.0.x.a.b", "six fields"},
      {"2.0.0.x", "unknown version"},
      {"0.0.0.x", "unknown version 0"},
      {"01.0.0.x", "version with a leading zero"},
      {"v1.0.0.x", "version with a prefix"},
      {".0.0.x", "empty version"},
      {"1..0.x", "empty write LSN"},
      {"1.0..x", "empty read LSN"},
      {"1.0.0.", "empty time"},
      {"1.00.0.x", "leading zero"},
      {"1.0.01.x", "leading zero"},
      {"1.0.0.00", "leading zero in time"},
      {"1.A.0.x", "upper-case hex"},
      {"1.0.0.X", "upper-case x"},
      {"1.g.0.x", "not hex"},
      {"1.-1.0.x", "sign"},
      {"1.+1.0.x", "sign"},
      {"1. 1.0.x", "space"},
      {" 1.0.0.x", "leading space"},
      {"1.0.0.x ", "trailing space"},
      {"1.0.0.x\n", "trailing newline"},
      {"1.10000000000000000.0.x", "17 hex digits"},
      {"1.0.0.ffffffffffff", "time beyond int64 nanoseconds"},
      {"1.0.0.xx", "bad time"},
      {"1/0.0.0.x", "slash"},
      {"1.16/B374D848.0.x", "LSN text form instead of hex"},
      {std::string("1.0.0.x\0", 8), "embedded NUL"},
      {std::string(129, '1'), "too long"},
      {"1.0.0." + std::string(kMaxTokenLength - 6 + 1, 'a'), "too long by one"},
  };
  for (const auto& [token, why] : bad) expect_token_error(token, nullptr, why);
  // The longest acceptable length itself is not refused for its length.
  std::string at_limit = "1.0.0." + std::string(kMaxTokenLength - 6, 'a');
  ASSERT_EQ(at_limit.size(), kMaxTokenLength);
  try {
    decode_token(at_limit);
    ADD_FAILURE();
  } catch (const TokenError& e) {
    EXPECT_EQ(std::string(e.what()).find("longer"), std::string::npos) << e.what();
  }
  // Default argument name.
  try {
    decode_token("junk");
    ADD_FAILURE();
  } catch (const TokenError& e) {
    EXPECT_EQ(e.argument(), "token");
  }
}

TEST(Token, RandomGarbageNeverCrashesAndOnlyTokenErrorEscapes) {
  const std::uint64_t seed = seed_from_env(0x6A2B);
  Xoshiro256 rng(seed);
  const std::string alphabet = "0123456789abcdefxX.-_ /\x01\xff";
  int accepted = 0;
  for (int k = 0; k < 5000; ++k) {
    std::string token;
    if (rng.below(2)) {
      token = encode_token(make(rng.next() >> rng.below(64), rng.next() >> rng.below(64)));
      token[rng.below(static_cast<std::uint32_t>(token.size()))] = alphabet[rng.below(static_cast<std::uint32_t>(alphabet.size()))];
    } else {
      std::size_t n = rng.below(140);
      for (std::size_t i = 0; i < n; ++i) token.push_back(alphabet[rng.below(static_cast<std::uint32_t>(alphabet.size()))]);
    }
    SCOPED_TRACE("seed=" + std::to_string(seed) + " token='" + token + "'");
    try {
      Session s = decode_token(token);
      ++accepted;
      EXPECT_EQ(encode_token(s), token) << "an accepted token has exactly one spelling";
    } catch (const TokenError&) {
    }
  }
  EXPECT_GT(accepted, 0);
}

namespace {

void check_signed_tokens(const TokenSigner& signer, const TokenSigner& other) {
  Session s = make(0x16B374D848ull, 0x16B3700000ull, 1700000000000ll * kMs);
  std::string token = encode_token(s, &signer);
  std::string unsigned_token = encode_token(s);
  ASSERT_EQ(token.compare(0, unsigned_token.size(), unsigned_token), 0) << token;
  ASSERT_EQ(token[unsigned_token.size()], '.');
  EXPECT_EQ(token.size(), unsigned_token.size() + 1 + 22) << "16-byte MAC in unpadded base64url";
  EXPECT_LE(token.size(), kMaxTokenLength);
  EXPECT_EQ(decode_token(token, &signer), s);
  EXPECT_EQ(encode_token(s, &signer), token) << "deterministic";

  expect_token_error(token, &other, "another key");
  expect_token_error(token, nullptr, "signed token without a signer");
  expect_token_error(unsigned_token, &signer, "unsigned token with a signer");
  expect_token_error(token + "A", &signer, "MAC one character longer");
  expect_token_error(token.substr(0, token.size() - 1), &signer, "MAC one character shorter");
  expect_token_error(unsigned_token + ".", &signer, "empty MAC");
  // Every single-character change anywhere is refused.
  const std::string replacements = "0123456789abcdefABCDEFxyz.-_=+/";
  for (std::size_t i = 0; i < token.size(); ++i) {
    for (char c : replacements) {
      if (c == token[i]) continue;
      std::string tampered = token;
      tampered[i] = c;
      expect_token_error(tampered, &signer, "character " + std::to_string(i) + " changed");
    }
  }
  // A valid MAC moved onto another payload does not verify.
  Session t = s;
  t.write_lsn = Lsn(s.write_lsn.value + 1);
  std::string other_payload = encode_token(t);
  std::string mac = token.substr(unsigned_token.size());
  expect_token_error(other_payload + mac, &signer, "transplanted MAC");
  // Signed tokens still merge after decoding.
  Session u = decode_token(encode_token(make(1, 0x16B3800000ull), &signer), &signer);
  u.merge(decode_token(token, &signer));
  EXPECT_EQ(u, make(0x16B374D848ull, 0x16B3800000ull, s.untracked_write_ns));
}

}  // namespace

TEST(Token, SignedWithATestSigner) {
  FakeSigner a("key-a"), b("key-b");
  check_signed_tokens(a, b);
  // Longer MACs are truncated to 16 bytes; shorter ones are an error of the signer.
  FakeSigner long_mac("key-a", 32);
  std::string t = encode_token(Session{}, &long_mac);
  EXPECT_EQ(t.size(), std::string("1.0.0.x.").size() + 22);
  FakeSigner short_mac("key-a", 15);
  EXPECT_THROW(encode_token(Session{}, &short_mac), Error);
  EXPECT_THROW(decode_token("1.0.0.x.AAAAAAAAAAAAAAAAAAAAAA", &short_mac), Error);
}

#ifdef REPLIKIT_HAVE_OPENSSL
TEST(Token, SignedWithHmacSha256) {
  HmacSha256Signer signer("0123456789abcdef0123456789abcdef");
  HmacSha256Signer other("0123456789abcdef0123456789abcdeF");
  check_signed_tokens(signer, other);
  // Known answers from an independent implementation (Python):
  // base64.urlsafe_b64encode(hmac.new(key, payload, "sha256").digest()[:16]).rstrip(b"=")
  EXPECT_EQ(encode_token(Session{}, &signer), "1.0.0.x.qFXs9AX5D9vL11zlkSVnVQ");
  EXPECT_EQ(encode_token(make(0x16B374D848ull, 0x16B3700000ull, 1700000000000ll * kMs), &signer),
            "1.16b374d848.16b3700000.18bcfe56800.fdAOGWn2ANVEqypE9KaEPg");
  EXPECT_EQ(signer.mac("1.0.0.x").size(), 32u);
}

TEST(Token, HmacKeyBounds) {
  for (std::size_t n : {std::size_t{0}, std::size_t{15}, std::size_t{4097}}) {
    try {
      HmacSha256Signer s(std::string(n, 'k'));
      ADD_FAILURE() << "key of " << n << " bytes accepted";
    } catch (const InvalidArgument& e) {
      EXPECT_EQ(e.argument(), "key");
    }
  }
  EXPECT_NO_THROW(HmacSha256Signer(std::string(16, 'k')));
  EXPECT_NO_THROW(HmacSha256Signer(std::string(4096, 'k')));
}
#endif

// ---- XidFloor: what a primary snapshot must have completed before a fallback read ----

namespace {

// A snapshot over xids [1, 120): xmax and the ascending in-progress xids below it.
struct Snap {
  std::uint64_t xmax = 0;
  std::vector<std::uint64_t> xip;
};

Snap random_snap(SplitMix64& rng, std::size_t max_xip) {
  Snap s;
  s.xmax = 1 + rng.next() % 120;
  for (std::uint64_t x = 1; x < s.xmax && s.xip.size() < max_xip; ++x) {
    if (rng.next() % 4 == 0) s.xip.push_back(x);
  }
  return s;
}

XidFloor floor_of(const Snap& s) {
  XidFloor f;
  f.xmax = s.xmax;
  f.count = static_cast<std::uint8_t>(std::min<std::size_t>(s.xip.size(), kMaxFloorXids));
  std::copy_n(s.xip.begin(), f.count, f.xip.begin());
  return f;
}

bool completed(const XidFloor& f, std::uint64_t x) {
  return x < f.xmax && !std::binary_search(f.xip.begin(), f.xip.begin() + f.count, x);
}

bool completed(const Snap& s, std::uint64_t x) {
  return x < s.xmax && !std::binary_search(s.xip.begin(), s.xip.end(), x);
}

}  // namespace

TEST(XidFloor, CoveredOnlyWhenThePrimaryCompletedEverythingSeen) {
  SplitMix64 rng(seed_from_env(11));
  int covered = 0, refused = 0;
  for (int round = 0; round < 20000; ++round) {
    const XidFloor f = floor_of(random_snap(rng, 40));  // up to 40 in progress: truncation too
    const Snap p = random_snap(rng, 40);
    const bool ok = f.covered_by(p.xmax, p.xip.data(), p.xip.size());
    bool subset = true;
    for (std::uint64_t x = 0; x < 130; ++x) subset = subset && (!completed(f, x) || completed(p, x));
    if (ok) {
      EXPECT_TRUE(subset) << "round " << round;  // sound: never covered while one is missing
      ++covered;
    } else {
      ++refused;
    }
    // Complete for the floor as kept: a primary ahead of it that completed all of it passes.
    if (subset && p.xmax >= f.xmax) {
      EXPECT_TRUE(ok) << "round " << round;
    }
  }
  EXPECT_GT(covered, 100);
  EXPECT_GT(refused, 100);
  EXPECT_TRUE(XidFloor{}.covered_by(0, nullptr, 0));  // no floor: anything covers it
}

TEST(XidFloor, MergeRequiresTheUnion) {
  SplitMix64 rng(seed_from_env(12));
  for (int round = 0; round < 20000; ++round) {
    const Snap a = random_snap(rng, 20), b = random_snap(rng, 20);
    XidFloor m = floor_of(a);
    if (round % 7 == 0) m = XidFloor{};
    const XidFloor before = m;
    m.merge(floor_of(b));
    for (std::uint64_t x = 0; x < 130; ++x) {
      const bool either = completed(before, x) || completed(b, x);
      // Never less than the union; exactly it while nothing was dropped (at most 32 kept).
      if (either) {
        EXPECT_TRUE(completed(m, x)) << "round " << round << " xid " << x;
      }
      if (before.count + b.xip.size() <= kMaxFloorXids) {
        EXPECT_EQ(completed(m, x), either) << "round " << round;
      }
    }
    EXPECT_TRUE(std::is_sorted(m.xip.begin(), m.xip.begin() + m.count));
  }
}

TEST(Session, LastReplicaIsHostLocal) {
  Session s;
  s.observe_replica(Lsn(500), 2, 7);
  EXPECT_EQ(s.read_lsn, Lsn(500));
  EXPECT_EQ(s.last_replica, 2);
  EXPECT_EQ(s.last_replica_epoch, 7u);
  EXPECT_EQ(s.last_replica_lsn, Lsn(500));
  s.xid_floor.xmax = 10;
  const Session back = decode_token(encode_token(s));
  EXPECT_EQ(back, s);  // the token fields
  EXPECT_EQ(back.last_replica, -1);
  EXPECT_EQ(back.xid_floor.xmax, 0u);
  Session other;
  other.observe_replica(Lsn(900), 1, 7);
  s.merge(other);
  EXPECT_EQ(s.read_lsn, Lsn(900));
  EXPECT_EQ(s.last_replica, 2);  // merging keeps this session's own replica
}
