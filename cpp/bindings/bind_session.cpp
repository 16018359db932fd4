// Python bindings of sessions and tokens: TokenSigner, HmacSigner, Session.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>

#include "bindings.hpp"
#include "convert.hpp"
#include "replikit/session.hpp"
#include "replikit/topology.hpp"
#ifdef REPLIKIT_HAVE_OPENSSL
#include "hmac_signer.hpp"
#endif

namespace replikit::bindings {

void bind_signers(py::module_& m) {
  py::class_<TokenSigner, std::shared_ptr<TokenSigner>>(m, "TokenSigner", "Signs session tokens.");
#ifdef REPLIKIT_HAVE_OPENSSL
  py::class_<HmacSha256Signer, TokenSigner, std::shared_ptr<HmacSha256Signer>>(
      m, "HmacSigner", "HMAC-SHA256 token signer (OpenSSL) under an application key of at least 16 bytes.")
      .def(py::init([](const py::object& key) {
             if (!py::isinstance<py::bytes>(key)) wrong_type("key", "bytes (encode a str key first)", key);
             return std::make_shared<HmacSha256Signer>(key.cast<std::string>());
           }),
           py::arg("key"))
      .def("__repr__", [](const HmacSha256Signer&) { return std::string("HmacSigner(key=<hidden>)"); });
#endif
}

namespace {

void bind_acked_write(py::module_& m) {
  py::class_<AckedWrite>(m, "AckedWrite", "A write the primary acknowledged: its transaction id, LSN bound and time.")
      .def_readonly("xid", &AckedWrite::xid)
      .def_property_readonly("lsn", [](const AckedWrite& w) { return w.lsn.value == 0 ? py::none() : py::cast(w.lsn); })
      .def_readonly("at_ns", &AckedWrite::at_ns)
      .def_readonly("epoch", &AckedWrite::epoch)
      .def_readonly("timeline", &AckedWrite::timeline)
      .def("__repr__", [](const AckedWrite& w) {
        return repr_of("AckedWrite", {{"xid", py::cast(w.xid)}, {"timeline", py::cast(w.timeline)},
                                      {"lsn", w.lsn.value == 0 ? py::none() : py::cast(w.lsn)}});
      });
}

// Session.acked_writes, added to the bound class (bind_session stays readable).
void bind_session_acked_writes(py::class_<Session>& c) {
  c.def_property_readonly("acked_writes", [](const Session& s) {
     py::list out;
     for (const auto& w : s.acked_writes.writes()) out.append(py::cast(w));
     return out;
   },
   "The writes this session had acknowledged (oldest first, at most the last 1024), with their "
   "transaction ids: what a failover's loss report checks. Host-local: a token does not carry them.");
}

// A session time, or None for kNever.
std::optional<std::int64_t> time_or_none(std::int64_t ns) {
  if (ns == kNever) return std::nullopt;
  return ns;
}

}  // namespace

void bind_session(py::module_& m) {
  bind_acked_write(m);
  py::class_<Session>(m, "Session", "What one user has written and read, as LSNs; travels as a token. Not thread-safe.")
      .def(py::init([](const py::object& write_lsn, const py::object& read_lsn) {
             Session s;
             if (!write_lsn.is_none()) s.write_lsn = to_lsn(write_lsn, "write_lsn");
             if (!read_lsn.is_none()) s.read_lsn = to_lsn(read_lsn, "read_lsn");
             return s;
           }),
           py::arg("write_lsn") = py::none(), py::arg("read_lsn") = py::none())
      .def_property_readonly("write_lsn", [](const Session& s) { return s.write_lsn; })
      .def_property_readonly("read_lsn", [](const Session& s) { return s.read_lsn; })
      .def_property_readonly("untracked_write_ns", [](const Session& s) { return time_or_none(s.untracked_write_ns); },
                             "Time of the last write whose LSN was unknown (None: none).")
      .def_property_readonly("last_write_ns", [](const Session& s) { return time_or_none(s.last_write_ns); },
                             "Time of this session's latest write (None: none; host-local, not in the token).")
      .def("record_write",
           [](Session& s, const py::object& commit_lsn, const py::object& now_ns) {
             s.record_write(commit_lsn.is_none() ? Lsn() : to_lsn(commit_lsn, "commit_lsn"), now_or_wall(now_ns));
           },
           py::arg("commit_lsn") = py::none(), py::arg("now_ns") = py::none(),
           "Records a committed write at now_ns (wall-clock ns; default time.time_ns()); commit_lsn None "
           "means unknown (read-your-writes and causal reads then go to the primary until "
           "LagTracker.resolve_untracked_write resolves it; ReplicatedDatabase does that itself).")
      .def("observe", [](Session& s, const py::object& lsn) { s.observe(to_lsn(lsn, "lsn")); }, py::arg("lsn"),
           "Records that a read saw data up to `lsn`.")
      .def("observe_replica",
           [](Session& s, const py::object& lsn, const py::object& node, const py::object& topology) {
             if (!py::isinstance<Topology>(topology)) wrong_type("topology", "a replikit.Topology", topology);
             const Topology& t = topology.cast<const Topology&>();
             const Lsn seen = to_lsn(lsn, "lsn");
             s.observe_replica(seen, to_node(t, node, "node"), t.epoch());
           },
           py::arg("lsn"), py::arg("node"), py::arg("topology"),
           "Records that a read on replica `node` of `topology` (in its current epoch) saw data up to "
           "`lsn`, its replay LSN observed after the read; the router may send this session's reads "
           "needing no more than `lsn` back to that replica (host-local: not in the token).")
      .def("last_replica",
           [](const Session& s, const py::object& topology) -> std::optional<std::string> {
             if (!py::isinstance<Topology>(topology)) wrong_type("topology", "a replikit.Topology", topology);
             const Topology& t = topology.cast<const Topology&>();
             if (s.last_replica < 0 || s.last_replica >= t.size() || s.last_replica_epoch != t.epoch()) {
               return std::nullopt;
             }
             return t.name(s.last_replica);
           },
           py::arg("topology"),
           "The replica of `topology` this session last read from at an observed LSN, in its current "
           "epoch (None: none).")
      .def_property_readonly("last_replica_lsn", [](const Session& s) { return s.last_replica_lsn; },
                             "The replay LSN observed on the last replica read (0/0: none).")
      .def("merge", [](Session& s, const py::object& other, const py::object& signer) {
             s.merge(to_session(other, signer, "other"));
           },
           py::arg("other"), py::arg("signer") = py::none(),
           "Takes the maximum of each field of another Session or token (causal merge).")
      .def("causal_lsn", &Session::causal_lsn, "max(write_lsn, read_lsn).")
      .def("token", [](const Session& s, const py::object& signer) { return encode_token(s, to_signer(signer).get()); },
           py::arg("signer") = py::none(), "A short printable token (signed when a signer is given).")
      .def_static("from_token",
                  [](const py::object& token, const py::object& signer) {
                    if (!py::isinstance<py::str>(token)) wrong_type("token", "a str", token);
                    return decode_token(to_str(token, "token"), to_signer(signer).get(), "token");
                  },
                  py::arg("token"), py::arg("signer") = py::none(),
                  "The session a token carries; TokenError if malformed or tampered.")
      .def("copy", [](const Session& s) { return s; })
      .def("__copy__", [](const Session& s) { return s; })
      .def("__deepcopy__", [](const Session& s, const py::dict&) { return s; }, py::arg("memo"))
      .def("__eq__", [](const Session& a, const py::object& b) { return py::isinstance<Session>(b) && a == b.cast<Session>(); })
      .def("__repr__", [](const Session& s) {
        // LSNs only: a session holds no secret, and a signer is never part of it.
        if (s.timeline == 0) {
          return repr_of("Session", {{"write_lsn", py::cast(s.write_lsn)}, {"read_lsn", py::cast(s.read_lsn)}});
        }
        return repr_of("Session", {{"write_lsn", py::cast(s.write_lsn)}, {"read_lsn", py::cast(s.read_lsn)},
                                   {"timeline", py::int_(s.timeline)}});
      });
  auto session_class = py::reinterpret_borrow<py::class_<Session>>(m.attr("Session"));
  bind_session_acked_writes(session_class);
}

}  // namespace replikit::bindings
