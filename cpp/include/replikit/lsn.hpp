#pragma once
/// \file lsn.hpp
/// PostgreSQL log sequence numbers: a 64-bit WAL position written as `XXXXXXXX/XXXXXXXX`.

#include <cstdint>
#include <string>
#include <string_view>

namespace replikit {

/// A WAL position. 0/0 is PostgreSQL's InvalidXLogRecPtr and means "none known".
struct Lsn {
  std::uint64_t value = 0;

  constexpr Lsn() = default;
  constexpr explicit Lsn(std::uint64_t v) : value(v) {}

  /// Parses PostgreSQL's text form, e.g. "16/B374D848"; throws InvalidArgument naming `argument`.
  static Lsn parse(std::string_view text, const char* argument = "lsn");
  /// PostgreSQL's text form, upper-case hex, e.g. "16/B374D848".
  std::string to_string() const;
  /// True unless this is 0/0.
  constexpr bool valid() const { return value != 0; }

  friend constexpr bool operator==(Lsn a, Lsn b) { return a.value == b.value; }
  friend constexpr bool operator!=(Lsn a, Lsn b) { return a.value != b.value; }
  friend constexpr bool operator<(Lsn a, Lsn b) { return a.value < b.value; }
  friend constexpr bool operator<=(Lsn a, Lsn b) { return a.value <= b.value; }
  friend constexpr bool operator>(Lsn a, Lsn b) { return a.value > b.value; }
  friend constexpr bool operator>=(Lsn a, Lsn b) { return a.value >= b.value; }
};

/// Bytes from `b` to `a` (a - b), saturating at the int64 range; negative when a < b.
std::int64_t lsn_diff_bytes(Lsn a, Lsn b) noexcept;

/// The larger of two LSNs.
constexpr Lsn lsn_max(Lsn a, Lsn b) { return a < b ? b : a; }

}  // namespace replikit
