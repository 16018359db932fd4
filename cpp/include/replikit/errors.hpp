#pragma once
/// \file errors.hpp
/// The one exception hierarchy of replikit. Expected outcomes (a routing decision, a
/// failover plan) are values; exceptions are for bad input and broken connections.
/// The bindings map each class to a Python exception in one place (cpp/bindings/errors.cpp).

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "replikit/lsn.hpp"

namespace replikit {

/// Base of every replikit error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Base of the errors that reject one argument; `argument()` names it.
class ArgumentError : public Error {
 public:
  ArgumentError(std::string argument, const std::string& message)
      : Error(argument + ": " + message), argument_(std::move(argument)) {}
  /// The name of the argument that was rejected.
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string argument_;
};

/// Bad input to a public function: a wrong value. Python sees replikit.InvalidArgument, a ValueError.
class InvalidArgument : public ArgumentError {
 public:
  using ArgumentError::ArgumentError;
};

/// An argument of the wrong type (raised by the language bindings, where types are dynamic).
/// Python sees replikit.ArgumentTypeError, a TypeError.
class ArgumentTypeError : public ArgumentError {
 public:
  using ArgumentError::ArgumentError;
};

/// A session token that is malformed, from an unknown version, or fails its signature.
class TokenError : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// A name (node, key, ...) that is not known.
class NotFound : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// A capacity bound of the library was reached (nodes per topology, queue length, ...).
class CapacityExceeded : public Error {
 public:
  using Error::Error;
};

/// A connection could not be made or broke.
class ConnectionError : public Error {
 public:
  using Error::Error;
};

/// A bounded wait ran out.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// The server rejected a statement; keeps the SQLSTATE (five characters, may be empty).
class QueryError : public Error {
 public:
  QueryError(const std::string& message, std::string sqlstate)
      : Error(message), sqlstate_(std::move(sqlstate)) {}
  /// The SQLSTATE the server reported, e.g. "42P01"; empty when unknown.
  const std::string& sqlstate() const noexcept { return sqlstate_; }

 private:
  std::string sqlstate_;
};

/// The connection broke while a commit was in flight: it may or may not have committed.
class CommitUnknown : public Error {
 public:
  using Error::Error;
};

/// Writes of a session that a failover lost (see Session::reconcile): raised by a read that
/// requires them, instead of serving data without them.
class LostWrites : public Error {
 public:
  LostWrites(const std::string& message, std::vector<Lsn> lsns, std::uint32_t timeline, Lsn switch_lsn)
      : Error(message), lsns_(std::move(lsns)), timeline_(timeline), switch_lsn_(switch_lsn) {}
  /// The commit LSNs of the lost writes, oldest first.
  const std::vector<Lsn>& lsns() const noexcept { return lsns_; }
  /// The timeline they were written on (of the latest, when several failovers lost writes).
  std::uint32_t timeline() const noexcept { return timeline_; }
  /// Where that timeline ended: the lost writes lie above it.
  Lsn switch_lsn() const noexcept { return switch_lsn_; }

 private:
  std::vector<Lsn> lsns_;
  std::uint32_t timeline_;
  Lsn switch_lsn_;
};

/// Throws InvalidArgument(argument, message) unless `condition` holds.
inline void require(bool condition, const char* argument, const std::string& message) {
  if (!condition) throw InvalidArgument(argument, message);
}

/// The same for a literal message: builds no std::string unless the check fails (hot paths).
inline void require(bool condition, const char* argument, const char* message) {
  if (!condition) throw InvalidArgument(argument, message);
}

}  // namespace replikit
