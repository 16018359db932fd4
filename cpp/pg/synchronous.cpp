// carry_synchronous: the old primary's synchronous_standby_names rewritten for the new primary
// (replikit/pg/failover.hpp). Pure text work; the action that applies it is set_synchronous.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <string>
#include <vector>

#include "replikit/pg/failover.hpp"

namespace replikit::pg {

// PostgreSQL matches application_name against the list case-insensitively (pg_strcasecmp).
bool same_standby_name(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

namespace {

std::string trimmed(const std::string& text) {
  std::size_t b = 0, e = text.size();
  while (b < e && std::isspace(static_cast<unsigned char>(text[b])) != 0) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1])) != 0) --e;
  return text.substr(b, e - b);
}

struct Entry {
  std::string name;
  bool star = false;  // '*' (quoted or not, as PostgreSQL compares): every standby
};

// synchronous_standby_names as PostgreSQL's syncrep scanner and grammar read it (PostgreSQL
// documentation, synchronous_standby_names):
//   [FIRST] num_sync ( standby_name [, ...] ) | ANY num_sync ( standby_name [, ...] ) | standby_name [, ...]
// A standby_name is an identifier ([A-Za-z_\x80-\xff][A-Za-z_0-9$\x80-\xff]*, kept as written),
// digits, "*" or a "quoted" name ("" for a quote); FIRST and ANY are keywords in any case.
// One pass, no recursion, no backtracking: the cost is linear in the text whatever it holds.
enum class Kind { Name, Number, Any, First, Open, Close, Comma, End, Junk };

struct Token {
  Kind kind = Kind::End;
  std::string text;
  std::size_t at = 0;  // offset in the text, for the error
};

bool is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }
bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
bool ident_start(char ch) {
  const auto u = static_cast<unsigned char>(ch);
  return (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || u == '_' || u >= 0x80;
}
bool ident_cont(char ch) { return ident_start(ch) || is_digit(ch) || ch == '$'; }

// A one-character token: "*" is a name (every standby), anything else unknown is Junk.
Kind single(char ch) {
  switch (ch) {
    case '*': return Kind::Name;
    case '(': return Kind::Open;
    case ')': return Kind::Close;
    case ',': return Kind::Comma;
    default: return Kind::Junk;
  }
}

class Scanner {
 public:
  explicit Scanner(const std::string& text) : text_(text) {}

  // The next token; a quoted name left open is Junk with `error` set.
  Token next() {
    while (i_ < text_.size() && is_space(text_[i_])) ++i_;
    Token t;
    t.at = i_;
    if (i_ >= text_.size()) return t;
    const char ch = text_[i_];
    if (ch == '"') return quoted_name(t);
    if (ident_start(ch) || is_digit(ch)) {
      const bool number = is_digit(ch);
      while (i_ < text_.size() && (number ? is_digit(text_[i_]) : ident_cont(text_[i_]))) t.text.push_back(text_[i_++]);
      t.kind = number ? Kind::Number : same_standby_name(t.text, "any") ? Kind::Any
                                     : same_standby_name(t.text, "first") ? Kind::First : Kind::Name;
      return t;
    }
    ++i_;
    t.text = std::string(1, ch);
    t.kind = single(ch);
    return t;
  }

  std::string error;

 private:
  Token quoted_name(Token t) {
    for (++i_; i_ < text_.size(); ++i_) {
      if (text_[i_] != '"') {
        t.text.push_back(text_[i_]);
      } else if (i_ + 1 < text_.size() && text_[i_ + 1] == '"') {
        t.text.push_back('"');
        ++i_;
      } else {
        ++i_;
        t.kind = Kind::Name;
        return t;
      }
    }
    t.kind = Kind::Junk;
    error = "unterminated quoted name";
    return t;
  }

  const std::string& text_;
  std::size_t i_ = 0;
};

struct Parsed {
  std::string method = "FIRST";
  int wanted = 1;
  std::vector<Entry> entries;
  std::string error;  // empty: read
};

std::string unexpected(const Token& t, const std::string& error) {
  if (!error.empty()) return error + " at offset " + std::to_string(t.at);
  if (t.kind == Kind::End) return "syntax error at end of input";
  const std::string cut = t.text.size() > 32 ? t.text.substr(0, 32) + "..." : t.text;
  return "syntax error at offset " + std::to_string(t.at) + " ('" + cut + "')";
}

// Reads standby_name [, ...] up to the token `last` (Close or End). Bounded: every round
// consumes at least one token, and every token at least one character.
bool read_list(Scanner& scan, Token t, Kind last, Parsed& p) {
  while (true) {
    if (t.kind != Kind::Name && t.kind != Kind::Number) break;
    Entry e;
    e.name = std::move(t.text);
    e.star = e.name == "*";
    p.entries.push_back(std::move(e));
    t = scan.next();
    if (t.kind == last) return true;
    if (t.kind != Kind::Comma) break;
    t = scan.next();
  }
  p.error = unexpected(t, scan.error);
  return false;
}

// num_sync: digits, at least 1; more than 9 digits is refused (PostgreSQL would read it with atoi
// into an int, which overflows), so such a setting is not carried.
bool read_count(const Token& t, Parsed& p) {
  std::size_t b = 0;
  while (b + 1 < t.text.size() && t.text[b] == '0') ++b;
  if (t.text.size() - b > 9) {
    p.error = "count " + t.text.substr(0, 32) + (t.text.size() > 32 ? "..." : "") + " is too large";
    return false;
  }
  p.wanted = std::stoi(t.text.substr(b));
  if (p.wanted < 1) p.error = "the count must be at least 1";
  return p.wanted >= 1;
}

Parsed parse_setting(const std::string& text) {
  Parsed p;
  Scanner scan(text);
  Token t = scan.next();
  Token count = t;
  bool counted = false;
  if (t.kind == Kind::Any || t.kind == Kind::First) {
    p.method = t.kind == Kind::Any ? "ANY" : "FIRST";
    count = scan.next();
    if (count.kind != Kind::Number) {
      p.error = unexpected(count, scan.error);
      return p;
    }
    counted = true;
    t = scan.next();
  } else if (t.kind == Kind::Number) {
    t = scan.next();
    counted = t.kind == Kind::Open;  // "n (list)"; otherwise the number is the list's first name
    if (!counted) {
      p.entries.push_back(Entry{count.text, false});
      if (t.kind == Kind::End) return p;
      if (t.kind != Kind::Comma) {
        p.error = unexpected(t, scan.error);
        return p;
      }
      t = scan.next();
    }
  }
  if (!counted) {
    read_list(scan, t, Kind::End, p);
    return p;
  }
  if (t.kind != Kind::Open) {
    p.error = unexpected(t, scan.error);
    return p;
  }
  if (!read_count(count, p) || !read_list(scan, scan.next(), Kind::Close, p)) return p;
  t = scan.next();
  if (t.kind != Kind::End) p.error = unexpected(t, scan.error);
  return p;
}

// The setting as a note shows it, quoted: a long one cut (the note goes into reports and logs).
std::string shown(const std::string& setting) {
  constexpr std::size_t kShown = 200;
  if (setting.size() <= kShown) return "'" + setting + "'";
  return "'" + setting.substr(0, kShown) + "...' (" + std::to_string(setting.size()) + " bytes)";
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
  Parsed p = parse_setting(setting);  // offsets in errors: of the setting as given
  if (!p.error.empty()) {
    c.note = shown(setting) + " could not be read (" + p.error + "): not carried";
    return c;
  }
  c.wanted = p.wanted;
  c.parsed = true;
  std::vector<std::string> kept;
  bool star = false;
  for (const Entry& e : p.entries) {
    if (e.star) {
      star = true;
      kept.push_back("*");
    } else if (!same_standby_name(e.name, old_primary) && !same_standby_name(e.name, promoted)) {
      kept.push_back(quoted(e.name));
    }
  }
  const std::size_t left = star ? std::max(survivors.size(), kept.size() - 1) : kept.size();
  c.count = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(c.wanted), left));
  if (c.count > 0) {
    c.to = p.method + " " + std::to_string(c.count) + " (";
    for (std::size_t i = 0; i < kept.size(); ++i) c.to += (i ? ", " : "") + kept[i];
    c.to += ")";
  }
  c.note = shown(setting) + " carried over as " + shown(c.to);
  if (c.count == 0) {
    c.note += ": no standby of its list is left, the new primary is asynchronous";
  } else if (c.count < c.wanted) {
    c.note += ": " + std::to_string(left) + " standby(s) left for a count of " + std::to_string(c.wanted);
  }
  return c;
}

SynchronousCarry restore_synchronous(const std::string& setting, const std::string& promoted,
                                     const std::string& deposed) {
  SynchronousCarry c;
  c.from = setting;
  if (trimmed(setting).empty()) {
    c.parsed = true;
    c.note = "the old primary was asynchronous: nothing to restore";
    return c;
  }
  const Parsed p = parse_setting(setting);
  if (!p.error.empty()) {
    c.note = shown(setting) + " could not be read (" + p.error + "): not restored";
    return c;
  }
  c.parsed = true;
  c.wanted = p.wanted;
  std::vector<std::string> kept;
  bool listed = false;
  for (const Entry& e : p.entries) {
    if (e.star) {
      c.note = shown(setting) + " lists every standby ('*'): nothing to restore";
      return c;
    }
    if (same_standby_name(e.name, promoted)) continue;
    listed = listed || same_standby_name(e.name, deposed);
    kept.push_back(quoted(e.name));
  }
  if (!listed) kept.push_back(quoted(deposed));
  c.count = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(c.wanted), kept.size()));
  c.to = p.method + " " + std::to_string(c.count) + " (";
  for (std::size_t i = 0; i < kept.size(); ++i) c.to += (i ? ", " : "") + kept[i];
  c.to += ")";
  c.note = "'" + deposed + "' streams again: " + shown(setting) + " restored as " + shown(c.to);
  return c;
}

}  // namespace replikit::pg
