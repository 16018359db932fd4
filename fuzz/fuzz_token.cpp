// libFuzzer target for decode_token / encode_token, unsigned and HMAC-SHA256 signed.
// Properties:
// - decode_token raises TokenError (naming the argument) and nothing else;
// - an accepted token re-encodes to exactly the same text (one spelling per session), and
//   the session survives encode -> decode;
// - a signed token is refused without the key and an unsigned one with it;
// - a validly signed token (built from fuzz bytes) with any one byte changed is refused.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "hmac_signer.hpp"
#include "replikit/errors.hpp"
#include "replikit/session.hpp"

namespace {

using replikit::Session;

const replikit::HmacSha256Signer& signer() {
  static const replikit::HmacSha256Signer s("fuzz-key-0123456789abcdef");
  return s;
}

// Decodes `token`; on success checks the canonical re-encoding. Returns whether it was accepted.
bool decode_checked(std::string_view token, const replikit::TokenSigner* key, Session& out) {
  try {
    out = replikit::decode_token(token, key, "fuzz_token");
  } catch (const replikit::TokenError& e) {
    FUZZ_CHECK(e.argument() == "fuzz_token");
    return false;
  }
  FUZZ_CHECK(token.size() <= replikit::kMaxTokenLength);
  FUZZ_CHECK(replikit::encode_token(out, key) == token);
  FUZZ_CHECK(out.untracked_write_ns == replikit::kNever ||
             (out.untracked_write_ns >= 0 && out.untracked_write_ns % 1000000 == 0));
  return true;
}

// A session from the first 24 bytes (time in whole ms, as tokens carry it, or kNever).
Session session_from(const std::uint8_t* data) {
  std::uint64_t w, r, t;
  std::memcpy(&w, data, 8);
  std::memcpy(&r, data + 8, 8);
  std::memcpy(&t, data + 16, 8);
  Session s;
  s.write_lsn = replikit::Lsn(w);
  s.read_lsn = replikit::Lsn(r);
  const std::uint64_t max_ms = static_cast<std::uint64_t>(INT64_MAX / 1000000);
  s.untracked_write_ns = (t & 1) ? replikit::kNever : static_cast<std::int64_t>((t >> 1) % (max_ms + 1)) * 1000000;
  return s;
}

void check_tampering(const std::uint8_t* data, std::size_t size) {
  const Session s = session_from(data);
  const std::string good = replikit::encode_token(s, &signer());
  Session back;
  FUZZ_CHECK(decode_checked(good, &signer(), back));
  FUZZ_CHECK(back == s);
  FUZZ_CHECK(!decode_checked(good, nullptr, back));  // signed, but no key
  if (size < 27) return;
  std::string bad = good;
  const std::size_t pos = (static_cast<std::size_t>(data[24]) << 8 | data[25]) % bad.size();
  const char replacement = static_cast<char>(data[26]);
  if (bad[pos] == replacement) return;
  bad[pos] = replacement;
  FUZZ_CHECK(!decode_checked(bad, &signer(), back));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  Session plain, keyed;
  const bool plain_ok = decode_checked(token, nullptr, plain);
  const bool keyed_ok = decode_checked(token, &signer(), keyed);
  FUZZ_CHECK(!(plain_ok && keyed_ok));  // a token is either signed or not
  if (plain_ok) {
    // Unsigned and accepted: signing it yields a token the key accepts, for the same session.
    Session again;
    FUZZ_CHECK(decode_checked(replikit::encode_token(plain, &signer()), &signer(), again));
    FUZZ_CHECK(again == plain);
  }
  if (size >= 24) check_tampering(data, size);
  return 0;
}
