#include "replikit/session.hpp"

#include <algorithm>
#include <cstdint>

#include "replikit/errors.hpp"

namespace replikit {

namespace {

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMacBytes = 16;

void append_hex(std::string& out, std::uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  char buf[16];
  int n = 0;
  do {
    buf[n++] = digits[v & 0xF];
    v >>= 4;
  } while (v != 0);
  while (n > 0) out.push_back(buf[--n]);
}

std::string base64url(std::string_view bytes) {
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    auto b = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
             static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kBase64Url[(b >> 18) & 63]);
    out.push_back(kBase64Url[(b >> 12) & 63]);
    out.push_back(kBase64Url[(b >> 6) & 63]);
    out.push_back(kBase64Url[b & 63]);
  }
  std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    unsigned b = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) b |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kBase64Url[(b >> 18) & 63]);
    out.push_back(kBase64Url[(b >> 12) & 63]);
    if (rest == 2) out.push_back(kBase64Url[(b >> 6) & 63]);
  }
  return out;
}

std::string mac_text(const TokenSigner& signer, std::string_view payload) {
  std::string mac = signer.mac(payload);
  if (mac.size() < kMacBytes) throw Error("token signer returned fewer than 16 bytes");
  return base64url(std::string_view(mac).substr(0, kMacBytes));
}

// Lower-case hex, 1 to 16 digits, no leading zeros except "0" itself (one spelling per value,
// so a token cannot be altered without changing the signed text).
std::uint64_t parse_hex_field(std::string_view field, const char* argument, const char* what) {
  if (field.empty() || field.size() > 16 || (field.size() > 1 && field[0] == '0')) {
    throw TokenError(argument, std::string("malformed token: bad ") + what + " field");
  }
  std::uint64_t v = 0;
  for (char c : field) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else throw TokenError(argument, std::string("malformed token: bad ") + what + " field");
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
  return diff == 0;
}

// True when `x` is not completed per a floor of `xmax` and ascending `xip[0, n)` (a floor
// with xmax 0 requires nothing, so every xid counts as not completed).
bool open_in(std::uint64_t x, std::uint64_t xmax, const std::uint64_t* xip, std::size_t n) noexcept {
  return x >= xmax || std::binary_search(xip, xip + n, x);
}

constexpr std::uint32_t kU32Max = std::numeric_limits<std::uint32_t>::max();

// Appends to a bounded array, dropping the oldest entry when it is full.
template <typename T, std::size_t N>
void push_bounded(std::array<T, N>& items, std::uint8_t& count, const T& item) {
  if (count == N) {
    std::move(items.begin() + 1, items.end(), items.begin());
    --count;
  }
  items[count++] = item;
}

void remember_write(WriteLog& log, Lsn lsn) {
  if (log.recent_count > 0 && log.recent[log.recent_count - 1u] == lsn) return;
  push_bounded(log.recent, log.recent_count, lsn);
}

}  // namespace

bool XidFloor::covered_by(std::uint64_t snap_xmax, const std::uint64_t* snap_xip, std::size_t n) const noexcept {
  if (xmax == 0) return true;
  if (snap_xmax < xmax) return false;  // xids in [snap_xmax, xmax) may not have started there
  for (std::size_t k = 0; k < n; ++k) {
    // Still running there, completed here (or dropped from the kept list: asks more, still sound).
    if (!open_in(snap_xip[k], xmax, xip.data(), count)) return false;
  }
  return true;
}

void XidFloor::merge(const XidFloor& other) noexcept {
  if (other.xmax == 0) return;
  if (xmax == 0) {
    *this = other;
    return;
  }
  // An xid stays open only when neither floor has it completed; candidates are the listed ones.
  std::array<std::uint64_t, kMaxFloorXids> out{};
  std::size_t n = 0, a = 0, b = 0;
  while ((a < count || b < other.count) && n < out.size()) {
    const bool take_a = b >= other.count || (a < count && xip[a] <= other.xip[b]);
    const std::uint64_t x = take_a ? xip[a] : other.xip[b];
    if (take_a) ++a;
    if (!take_a || (b < other.count && other.xip[b] == x)) ++b;
    if (open_in(x, xmax, xip.data(), count) && open_in(x, other.xmax, other.xip.data(), other.count)) out[n++] = x;
  }
  xmax = std::max(xmax, other.xmax);
  xip = out;
  count = static_cast<std::uint8_t>(n);
}

void Session::observe_replica(Lsn lsn, int node, std::uint64_t epoch) noexcept {
  observe(lsn);
  last_replica = node;
  last_replica_epoch = epoch;
  last_replica_lsn = lsn;
}

void Session::record_write(Lsn commit_lsn, std::int64_t now_ns) {
  require(now_ns >= 0, "now_ns", "must not be negative");
  if (now_ns > last_write_ns) last_write_ns = now_ns;
  if (commit_lsn.valid()) {
    write_lsn = lsn_max(write_lsn, commit_lsn);
    remember_write(writes, commit_lsn);
  } else if (now_ns > untracked_write_ns) {
    untracked_write_ns = now_ns;
  }
}

void Session::merge(const Session& other) noexcept {
  // LSNs of two timelines are merged as numbers: over-asking (a later LSN than needed) is
  // sound, and reconcile caps what a lost timeline asked for.
  if (timeline == 0 || other.timeline > timeline) timeline = other.timeline;
  write_lsn = lsn_max(write_lsn, other.write_lsn);
  read_lsn = lsn_max(read_lsn, other.read_lsn);
  if (other.untracked_write_ns > untracked_write_ns) untracked_write_ns = other.untracked_write_ns;
  if (other.last_write_ns > last_write_ns) last_write_ns = other.last_write_ns;
  xid_floor.merge(other.xid_floor);
}

std::vector<LostWrite> Session::reconcile(const TimelineHistory& history) {
  std::vector<LostWrite> lost;
  if (timeline == 0) timeline = history.current();
  if (timeline >= history.current()) return lost;
  // Not an ancestor: nothing written on it is known to be in the current timeline.
  const Lsn end = history.end_of(timeline).value_or(Lsn());
  std::uint8_t kept = 0;
  bool write_lsn_listed = false;
  for (std::uint8_t i = 0; i < writes.recent_count; ++i) {
    const Lsn w = writes.recent[i];
    if (w <= end) {
      writes.recent[kept++] = w;
    } else {
      lost.push_back(LostWrite{w, timeline, end});
      write_lsn_listed = write_lsn_listed || w == write_lsn;
    }
  }
  writes.recent_count = kept;
  // The highest write is known even when the log dropped it (or the session came in a token).
  if (write_lsn > end && !write_lsn_listed) lost.push_back(LostWrite{write_lsn, timeline, end});
  for (const auto& w : lost) push_bounded(writes.lost, writes.lost_count, w);
  const auto n = static_cast<std::uint32_t>(lost.size());
  writes.lost_total = writes.lost_total > kU32Max - n ? kU32Max : writes.lost_total + n;
  writes.unreported = writes.unreported > kU32Max - n ? kU32Max : writes.unreported + n;
  write_lsn = std::min(write_lsn, end);
  read_lsn = std::min(read_lsn, end);
  xid_floor = XidFloor{};
  last_replica = -1;
  timeline = history.current();
  return lost;
}

std::vector<LostWrite> Session::lost_writes() const {
  return std::vector<LostWrite>(writes.lost.begin(), writes.lost.begin() + writes.lost_count);
}

void Session::check_lost_writes() {
  if (writes.unreported == 0) return;
  const std::size_t shown = std::min<std::size_t>(writes.unreported, writes.lost_count);
  const std::uint32_t total = writes.unreported;
  writes.unreported = 0;
  std::vector<Lsn> lsns;
  std::string list;
  for (std::size_t i = writes.lost_count - shown; i < writes.lost_count; ++i) {
    lsns.push_back(writes.lost[i].lsn);
    list += (list.empty() ? "" : ", ") + writes.lost[i].lsn.to_string();
  }
  const LostWrite& last = writes.lost[writes.lost_count - 1u];
  throw LostWrites(std::to_string(total) + " write(s) of this session were lost in a failover: " + list +
                       " (committed on timeline " + std::to_string(last.timeline) + " above its switch point " +
                       last.switch_lsn.to_string() + ")",
                   std::move(lsns), last.timeline, last.switch_lsn);
}

std::string encode_token(const Session& session, const TokenSigner* signer) {
  std::string out = "1.";
  if (session.timeline != 0) {
    out = "2.";
    append_hex(out, session.timeline);
    out.push_back('.');
  }
  append_hex(out, session.write_lsn.value);
  out.push_back('.');
  append_hex(out, session.read_lsn.value);
  out.push_back('.');
  // Milliseconds are enough for a time window and keep the token short. Rounded up (and
  // clamped to what decodes), so a carried time window never ends earlier than the original.
  if (session.untracked_write_ns == kNever) {
    out.push_back('x');
  } else {
    // A negative time would encode as a huge hex number that decode_token then refuses.
    require(session.untracked_write_ns >= 0, "session", "untracked_write_ns must be kNever or >= 0");
    std::int64_t ns = session.untracked_write_ns;
    std::int64_t ms = ns / 1000000 + (ns % 1000000 != 0 ? 1 : 0);
    ms = std::min<std::int64_t>(ms, std::numeric_limits<std::int64_t>::max() / 1000000);
    append_hex(out, static_cast<std::uint64_t>(ms));
  }
  if (signer != nullptr) {
    std::string mac = mac_text(*signer, out);
    out.push_back('.');
    out += mac;
  }
  return out;
}

Session decode_token(std::string_view token, const TokenSigner* signer, const char* argument) {
  if (token.size() > kMaxTokenLength) {
    throw TokenError(argument, "token longer than " + std::to_string(kMaxTokenLength) + " characters");
  }
  if (token.empty()) throw TokenError(argument, "empty token");
  std::string_view all[6];
  std::size_t count = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= token.size(); ++i) {
    if (i == token.size() || token[i] == '.') {
      if (count == 6) throw TokenError(argument, "malformed token: too many fields");
      all[count++] = token.substr(start, i - start);
      start = i + 1;
    }
  }
  // Version 2 is version 1 with the timeline after the version: `fields` is the version 1 view.
  if (all[0] != "1" && all[0] != "2") throw TokenError(argument, "unknown token version (expected 1 or 2)");
  const bool v2 = all[0] == "2";
  const std::string_view* fields = v2 ? all + 1 : all;
  if (v2) --count;
  if (count != 4 && count != 5) {
    throw TokenError(argument, v2 ? "malformed token: expected 5 or 6 fields" : "malformed token: expected 4 or 5 fields");
  }
  bool signed_token = count == 5;
  if (signer != nullptr && !signed_token) throw TokenError(argument, "token is not signed");
  if (signer == nullptr && signed_token) {
    throw TokenError(argument, "token is signed but no signing key is configured");
  }
  if (signed_token) {
    std::string_view payload = token.substr(0, token.size() - fields[4].size() - 1);
    if (!equal_constant_time(mac_text(*signer, payload), fields[4])) {
      throw TokenError(argument, "token signature does not verify (tampered, or signed with another key)");
    }
  }
  Session s;
  if (v2) {
    const std::uint64_t timeline = parse_hex_field(fields[0], argument, "timeline");
    if (timeline == 0 || timeline > kU32Max) throw TokenError(argument, "malformed token: timeline out of range");
    s.timeline = static_cast<std::uint32_t>(timeline);
  }
  s.write_lsn = Lsn(parse_hex_field(fields[1], argument, "write LSN"));
  s.read_lsn = Lsn(parse_hex_field(fields[2], argument, "read LSN"));
  if (fields[3] == "x") {
    s.untracked_write_ns = kNever;
  } else {
    std::uint64_t ms = parse_hex_field(fields[3], argument, "write time");
    if (ms > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 1000000)) {
      throw TokenError(argument, "malformed token: write time out of range");
    }
    s.untracked_write_ns = static_cast<std::int64_t>(ms) * 1000000;
  }
  return s;
}

}  // namespace replikit
