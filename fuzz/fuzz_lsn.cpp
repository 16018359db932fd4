// libFuzzer target for Lsn::parse and Lsn::to_string.
// Properties: the parser accepts exactly PostgreSQL's grammar (1 to 8 hex digits, '/', 1 to 8 hex
// digits); an accepted text parses to the value a reference computes, and formats to the
// canonical spelling (upper case, no leading zeros) that parses back to the same value; a
// rejected text raises InvalidArgument naming the argument, nothing else; any 64-bit value
// survives to_string -> parse.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "replikit/errors.hpp"
#include "replikit/lsn.hpp"

namespace {

int reference_hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reference grammar: returns false unless `text` is hex{1,8} '/' hex{1,8}.
bool reference_parse(std::string_view text, std::uint64_t& value) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return false;
  std::string_view halves[2] = {text.substr(0, slash), text.substr(slash + 1)};
  value = 0;
  for (auto half : halves) {
    if (half.empty() || half.size() > 8) return false;
    std::uint64_t v = 0;
    for (char c : half) {
      int d = reference_hex(c);
      if (d < 0) return false;
      v = v * 16 + static_cast<std::uint64_t>(d);
    }
    value = (value << 32) | v;
  }
  return true;
}

bool is_canonical(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos || s.find('/', slash + 1) != std::string::npos) return false;
  for (auto half : {s.substr(0, slash), s.substr(slash + 1)}) {
    if (half.empty() || half.size() > 8 || (half.size() > 1 && half[0] == '0')) return false;
    for (char c : half) {
      if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
    }
  }
  return true;
}

void check_value_round_trip(std::uint64_t v) {
  const std::string text = replikit::Lsn(v).to_string();
  FUZZ_CHECK(is_canonical(text));
  FUZZ_CHECK(replikit::Lsn::parse(text).value == v);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::uint64_t expected = 0;
  const bool valid = reference_parse(text, expected);
  try {
    const replikit::Lsn lsn = replikit::Lsn::parse(text, "fuzz_lsn");
    FUZZ_CHECK(valid);
    FUZZ_CHECK(lsn.value == expected);
    const std::string canonical = lsn.to_string();
    FUZZ_CHECK(is_canonical(canonical));
    FUZZ_CHECK(replikit::Lsn::parse(canonical) == lsn);
    FUZZ_CHECK(canonical.size() <= text.size());
  } catch (const replikit::InvalidArgument& e) {
    FUZZ_CHECK(!valid);
    FUZZ_CHECK(e.argument() == "fuzz_lsn");
  }
  if (size >= sizeof(std::uint64_t)) {
    std::uint64_t v = 0;
    std::memcpy(&v, data, sizeof v);
    check_value_round_trip(v);
  }
  return 0;
}
