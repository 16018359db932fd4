#include "probe_query.hpp"

#include <cstdlib>
#include <cstring>
#include <exception>

#include "conninfo.hpp"

namespace replikit::pg::detail {

// One round trip reads everything. pg_current_wal_flush_lsn() is what a walsender can ship,
// so a caught-up replica's replay LSN reaches it (the insert LSN may stay ahead of it).
// The primary's timeline is the one of its current WAL file; a replica's is the one its WAL
// receiver streams (NULL when not streaming). Every function here is executable by PUBLIC.
const char* const kProbeSql =
    "SELECT pg_is_in_recovery(),"
    " CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_flush_lsn() END,"
    " pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(),"
    " CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver)"
    " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END";

void read_probe_result(const PGresult* r, ProbeAnswer& answer) {
  ExecStatusType status = PQresultStatus(r);
  if (status == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 5) {
    try {
      auto text = [&](int col) -> const char* { return PQgetisnull(r, 0, col) ? nullptr : PQgetvalue(r, 0, col); };
      answer.in_recovery = text(0) != nullptr && text(0)[0] == 't';
      answer.current_lsn = text(1) ? Lsn::parse(text(1), "current_lsn") : Lsn();
      answer.receive_lsn = text(2) ? Lsn::parse(text(2), "receive_lsn") : Lsn();
      answer.replay_lsn = text(3) ? Lsn::parse(text(3), "replay_lsn") : Lsn();
      answer.timeline = text(4) ? static_cast<std::uint32_t>(std::strtoul(text(4), nullptr, 10)) : 0;
      answer.have_row = true;
    } catch (const std::exception& e) {
      answer.error = std::string("unexpected probe result: ") + e.what();
    }
  } else if (status != PGRES_TUPLES_OK) {
    answer.error = trimmed(PQresultErrorMessage(r));
    if (answer.error.empty()) answer.error = PQresStatus(status);
    const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    answer.session_ended = answer.session_ended || (severity != nullptr && (std::strcmp(severity, "FATAL") == 0 ||
                                                                            std::strcmp(severity, "PANIC") == 0));
  }
}

}  // namespace replikit::pg::detail
