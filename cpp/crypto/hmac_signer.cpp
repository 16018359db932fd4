#include "hmac_signer.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "replikit/errors.hpp"

namespace replikit {

HmacSha256Signer::HmacSha256Signer(std::string key) : key_(std::move(key)) {
  require(key_.size() >= 16, "key", "signing key must hold at least 16 bytes");
  require(key_.size() <= 4096, "key", "signing key must hold at most 4096 bytes");
}

std::string HmacSha256Signer::mac(std::string_view payload) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
           reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), out, &len) ==
      nullptr) {
    throw Error("HMAC-SHA256 failed in OpenSSL");
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

}  // namespace replikit
