#pragma once
/// \file signer.hpp
/// The interface through which the core signs session tokens. The core has no cryptography
/// of its own: an implementation (HMAC-SHA256 from OpenSSL in cpp/crypto, or the
/// application's own) is passed in.

#include <string>
#include <string_view>

namespace replikit {

/// Computes a message authentication code over a token's payload.
class TokenSigner {
 public:
  virtual ~TokenSigner() = default;
  /// The MAC of `payload` as raw bytes (at least 16 bytes; longer MACs are truncated to 16).
  virtual std::string mac(std::string_view payload) const = 0;
};

}  // namespace replikit
