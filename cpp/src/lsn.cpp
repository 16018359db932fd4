#include "replikit/lsn.hpp"

#include <limits>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// One half of the text form: 1 to 8 hex digits.
std::uint32_t parse_half(std::string_view part, std::string_view whole, const char* argument) {
  if (part.empty() || part.size() > 8) {
    throw InvalidArgument(argument, "malformed LSN '" + std::string(whole) +
                                        "': expected 1 to 8 hex digits on each side of '/'");
  }
  std::uint32_t v = 0;
  for (char c : part) {
    int d = hex_digit(c);
    if (d < 0) {
      throw InvalidArgument(argument, "malformed LSN '" + std::string(whole) +
                                          "': '" + std::string(1, c) + "' is not a hex digit");
    }
    v = (v << 4) | static_cast<std::uint32_t>(d);
  }
  return v;
}

}  // namespace

Lsn Lsn::parse(std::string_view text, const char* argument) {
  if (text.size() > 17) {
    throw InvalidArgument(argument, "malformed LSN: longer than 17 characters");
  }
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    throw InvalidArgument(argument, "malformed LSN '" + std::string(text) +
                                        "': expected the form XXXXXXXX/XXXXXXXX");
  }
  std::uint64_t hi = parse_half(text.substr(0, slash), text, argument);
  std::uint64_t lo = parse_half(text.substr(slash + 1), text, argument);
  return Lsn((hi << 32) | lo);
}

std::string Lsn::to_string() const {
  static const char digits[] = "0123456789ABCDEF";
  char buf[18];
  int n = 0;
  auto put = [&](std::uint32_t half) {
    bool started = false;
    for (int shift = 28; shift >= 0; shift -= 4) {
      auto d = (half >> shift) & 0xF;
      if (d != 0 || started || shift == 0) {
        buf[n++] = digits[d];
        started = true;
      }
    }
  };
  put(static_cast<std::uint32_t>(value >> 32));
  buf[n++] = '/';
  put(static_cast<std::uint32_t>(value & 0xFFFFFFFFu));
  return std::string(buf, static_cast<std::size_t>(n));
}

std::int64_t lsn_diff_bytes(Lsn a, Lsn b) noexcept {
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (a.value >= b.value) {
    std::uint64_t d = a.value - b.value;
    return d > max ? std::numeric_limits<std::int64_t>::max() : static_cast<std::int64_t>(d);
  }
  std::uint64_t d = b.value - a.value;
  return d > max ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(d);
}

}  // namespace replikit
