#pragma once
/// \file session.hpp
/// What one user (or request chain) has written and read, as LSNs, and its portable token.
///
/// A token is a short printable string (safe in a cookie or an HTTP header) such as
/// `1.16B374D848.16B3700000.18c2e4f1a20` with, when a signer is configured, a fifth field
/// holding a 128-bit MAC in base64url. Tokens merge by taking the maximum of each field, so a
/// user who read another user's comment can carry that user's write too (causal reads).

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "replikit/lsn.hpp"
#include "replikit/signer.hpp"

namespace replikit {

/// "No write recorded" for Session::untracked_write_ns.
inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min();

/// Longest token accepted by decode_token.
inline constexpr std::size_t kMaxTokenLength = 128;

/// A session's consistency state. Not synchronised: use one per user request chain.
struct Session {
  Lsn write_lsn;                   ///< highest commit LSN this session wrote (or merged)
  Lsn read_lsn;                    ///< highest LSN this session has read (or merged)
  /// Time of the last write whose commit LSN was unknown (kNever: none); the time-window rule
  /// sends this session's reads to the primary for a while after it.
  std::int64_t untracked_write_ns = kNever;

  /// Records a committed write at `now_ns` (wall-clock ns since the Unix epoch, as tokens carry
  /// it between hosts); `commit_lsn` 0/0 means "unknown" (the time-window rule then applies).
  void record_write(Lsn commit_lsn, std::int64_t now_ns);
  /// Records that a read saw data up to `lsn`.
  void observe(Lsn lsn) noexcept { read_lsn = lsn_max(read_lsn, lsn); }
  /// Takes the maximum of each field of `other` (causal merge).
  void merge(const Session& other) noexcept;
  /// The LSN a causal read must see: max(write_lsn, read_lsn).
  Lsn causal_lsn() const noexcept { return lsn_max(write_lsn, read_lsn); }

  friend bool operator==(const Session& a, const Session& b) noexcept {
    return a.write_lsn == b.write_lsn && a.read_lsn == b.read_lsn && a.untracked_write_ns == b.untracked_write_ns;
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
