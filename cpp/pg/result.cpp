#include "result.hpp"

#include <cstdlib>

#include "replikit/errors.hpp"

namespace replikit::pg::detail {

void fill(QueryResult& out, const PGresult* r) {
  const int columns = PQnfields(r);
  const int rows = PQntuples(r);
  out.columns.reserve(static_cast<std::size_t>(columns));
  out.type_oids.reserve(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) {
    out.columns.emplace_back(PQfname(r, c));
    out.type_oids.push_back(static_cast<std::uint32_t>(PQftype(r, c)));
  }
  out.rows.resize(static_cast<std::size_t>(rows));
  for (int t = 0; t < rows; ++t) {
    auto& values = out.rows[static_cast<std::size_t>(t)];
    values.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(r, t, c)) {
        values.emplace_back(std::nullopt);
      } else {
        values.emplace_back(std::in_place, PQgetvalue(r, t, c), static_cast<std::size_t>(PQgetlength(r, t, c)));
      }
    }
  }
  const char* affected = PQcmdTuples(const_cast<PGresult*>(r));  // "" for commands without a count
  out.affected_rows = affected[0] != '\0' ? std::strtoll(affected, nullptr, 10) : 0;
}

Lsn lsn_of(const PGresult* r) {
  if (PQntuples(r) != 1 || PQnfields(r) != 1 || PQgetisnull(r, 0, 0)) return Lsn();
  return Lsn::parse(PQgetvalue(r, 0, 0), "lsn");
}

Lsn insert_end_of(const PGresult* r, int lsn_column, int layout_column) {
  if (PQntuples(r) < 1 || PQnfields(r) < layout_column + 2 || PQgetisnull(r, 0, lsn_column)) return Lsn();
  const Lsn lsn = Lsn::parse(PQgetvalue(r, 0, lsn_column), "lsn");
  if (PQgetisnull(r, 0, layout_column) || PQgetisnull(r, 0, layout_column + 1)) return lsn;
  try {
    return end_lsn_of_insert(lsn, std::strtoull(PQgetvalue(r, 0, layout_column), nullptr, 10),
                             std::strtoull(PQgetvalue(r, 0, layout_column + 1), nullptr, 10));
  } catch (const InvalidArgument&) {
    return lsn;  // sizes no server has: the LSN as read (a token too high sends reads to the primary)
  }
}

}  // namespace replikit::pg::detail
