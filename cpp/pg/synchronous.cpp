// carry_synchronous: the old primary's synchronous_standby_names rewritten for the new primary
// (replikit/pg/failover.hpp). Pure text work; the action that applies it is set_synchronous.
#include <cctype>
#include <regex>
#include <string>
#include <vector>

#include "replikit/pg/failover.hpp"

namespace replikit::pg {

namespace {

std::string trimmed(const std::string& text) {
  std::size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b])) != 0) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1])) != 0) --e;
  return text.substr(b, e - b);
}

// PostgreSQL matches application_name against the list case-insensitively (pg_strcasecmp).
bool same_name(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

struct Entry {
  std::string name;
  bool star = false;  // a bare '*': every standby
};

// The comma-separated names of a standby list ("quoted" with "" for a quote, or bare); false
// when the text is not a list PostgreSQL would accept.
bool split_list(const std::string& text, std::vector<Entry>& out) {
  std::size_t i = 0;
  // Bounded: every round consumes at least one character or returns.
  while (true) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
    Entry e;
    if (i < text.size() && text[i] == '"') {
      for (++i;; ++i) {
        if (i >= text.size()) return false;
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            e.name.push_back('"');
            ++i;
            continue;
          }
          ++i;
          break;
        }
        e.name.push_back(text[i]);
      }
    } else {
      const std::size_t end = text.find(',', i);
      e.name = trimmed(text.substr(i, end == std::string::npos ? std::string::npos : end - i));
      e.star = e.name == "*";
      i = end == std::string::npos ? text.size() : end;
    }
    if (e.name.empty()) return false;
    out.push_back(std::move(e));
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
    if (i >= text.size()) return true;
    if (text[i] != ',') return false;
    ++i;
  }
}

std::string quoted(const std::string& name) {
  std::string out = "\"";
  for (char ch : name) {
    if (ch == '"') out.push_back('"');
    out.push_back(ch);
  }
  return out + "\"";
}

}  // namespace

SynchronousCarry carry_synchronous(const std::string& setting, const std::string& old_primary,
                                   const std::string& promoted, const std::vector<std::string>& survivors) {
  SynchronousCarry c;
  c.from = setting;
  const std::string text = trimmed(setting);
  if (text.empty()) {
    c.parsed = true;
    c.note = "the old primary was asynchronous: nothing to carry";
    return c;
  }
  static const std::regex counted(R"(^(?:(first|any)\s+)?(\d{1,9})\s*\(([\s\S]*)\)$)", std::regex::icase);
  std::smatch m;
  std::string method = "FIRST", list = text;
  c.wanted = 1;
  if (std::regex_match(text, m, counted)) {
    if (m[1].matched) method = same_name(m[1].str(), "any") ? "ANY" : "FIRST";
    c.wanted = std::stoi(m[2].str());
    list = m[3].str();
  }
  std::vector<Entry> entries;
  if (c.wanted < 1 || !split_list(list, entries)) {
    c.note = "'" + setting + "' could not be read: not carried";
    return c;
  }
  c.parsed = true;
  std::vector<std::string> kept;
  bool star = false;
  for (const Entry& e : entries) {
    if (e.star) {
      star = true;
      kept.push_back("*");
    } else if (!same_name(e.name, old_primary) && !same_name(e.name, promoted)) {
      kept.push_back(quoted(e.name));
    }
  }
  const std::size_t left = star ? std::max(survivors.size(), kept.size() - 1) : kept.size();
  c.count = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(c.wanted), left));
  if (c.count > 0) {
    c.to = method + " " + std::to_string(c.count) + " (";
    for (std::size_t i = 0; i < kept.size(); ++i) c.to += (i ? ", " : "") + kept[i];
    c.to += ")";
  }
  c.note = "'" + setting + "' carried over as '" + c.to + "'";
  if (c.count == 0) {
    c.note += ": no standby of its list is left, the new primary is asynchronous";
  } else if (c.count < c.wanted) {
    c.note += ": " + std::to_string(left) + " standby(s) left for a count of " + std::to_string(c.wanted);
  }
  return c;
}

}  // namespace replikit::pg
