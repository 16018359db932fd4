#pragma once
/// \file hmac_signer.hpp
/// HMAC-SHA256 token signer backed by OpenSSL (libpq already links it).

#include <string>
#include <string_view>

#include "replikit/signer.hpp"

namespace replikit {

/// Signs tokens with HMAC-SHA256 under an application-supplied key.
class HmacSha256Signer final : public TokenSigner {
 public:
  /// `key` must hold at least 16 bytes; throws InvalidArgument("key") otherwise.
  explicit HmacSha256Signer(std::string key);
  std::string mac(std::string_view payload) const override;

 private:
  std::string key_;
};

}  // namespace replikit
