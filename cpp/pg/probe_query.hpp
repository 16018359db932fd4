#pragma once
// The prober's query and its answer: one round trip that reads a node's role, WAL positions
// and timeline (internal: includes libpq).
#include <libpq-fe.h>

#include <cstdint>
#include <string>

#include "replikit/lsn.hpp"

namespace replikit::pg::detail {

/// The probe's SQL text (a simple query: one result, one row, five columns).
extern const char* const kProbeSql;

/// What the results of one probe said: a row, or an error.
struct ProbeAnswer {
  bool have_row = false;
  std::string error;           // the query's error, or why its row could not be read
  bool session_ended = false;  // the server sent a FATAL or PANIC error (it closes the session)
  bool in_recovery = false;
  Lsn current_lsn, receive_lsn, replay_lsn;
  std::uint32_t timeline = 0;
};

/// Takes in one result of the probe: its row, or its error (with the server's severity).
void read_probe_result(const PGresult* r, ProbeAnswer& answer);

}  // namespace replikit::pg::detail
