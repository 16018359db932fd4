#pragma once
/// \file sim/simulator.hpp
/// A discrete-event simulator of a single-leader cluster with the core's own Router and
/// LagTracker inside it. Deterministic: the same configuration and seed give the same result
/// on any thread that owns one of the Router's per-thread slots (the first kRouterThreadSlots
/// routing threads of a process). Every queue is bounded (see SimConfig's limits).
///
/// The model, briefly. Writes and reads arrive as Poisson processes from uniformly drawn
/// sessions. A write goes (client latency) to the primary, waits for a server, commits after
/// its service time, and its WAL streams in order to every replica (replica latency), where it
/// is flushed on arrival and replayed by a single-server apply queue (exponential apply times
/// at apply_rate_per_s, scaled by a slow factor, stopped while paused, and with an apply delay
/// not started before the write's commit + delay; meanwhile the replay LSN stands at the
/// write's commit record, as PostgreSQL holds only that record). A write's WAL is
/// write_size_bytes, its commit record the last commit_record_bytes of it. The write is
/// acknowledged (client latency) by the mode's rule, with standby confirmations travelling
/// back (replica latency). A read is routed by the real Router at its arrival, with the real
/// Session of its level, over the Topology the real LagTracker keeps from probes every
/// probe_interval_ms; it then waits for a server on its node and sees what that node has
/// replayed when its service starts. A probe is stamped as replikit's prober stamps it: it
/// travels the client latency each way, reads the node's positions when it arrives there, and
/// the primary's LSN is stamped with the send time, a replica's positions with the answer's.
///
/// A read is stale when the node served lacks a write its level required: read-your-writes
/// the session's acknowledged writes, monotonic what the session has read, causal both,
/// strong every write acknowledged to any client before it arrived, bounded staleness every
/// write committed max_staleness_ms or more before its service started, eventual the latest
/// write committed on the primary when its service started. While no primary is up (crash to
/// promotion), "committed" means received by some live standby: what the crash did not lose;
/// lag series are measured against the same.
///
/// A primary crash fails what the primary held (queued, in service, committed but waiting
/// for standbys) and the WAL its standbys have not yet received; answers and acknowledgements
/// already sent still arrive (an async commit's acknowledgement does not wait for standbys). The FailoverModel sees heartbeats every
/// heartbeat_interval_ms (+ heartbeat_late_ms) and, once it suspects the primary (acted upon
/// within check_interval_ms), selects a replica; that replica
/// becomes the primary promote_ms later (or when its replay has caught up, if later).
/// Acknowledged writes above its received LSN are lost; replicas that received more diverge
/// and are taken out. Sessions forget LSNs of the lost timeline (what a LostWrites check
/// reports in the real client).
/// The other replicas stream from the new primary repoint_ms after the promotion (0: at once);
/// meanwhile they receive nothing new, stay readable and count as no attached standby.

#include <cstdint>

#include "replikit/sim/config.hpp"
#include "replikit/sim/failover_model.hpp"
#include "replikit/sim/result.hpp"

namespace replikit::sim {

/// Runs one simulation of `config` seeded with `seed` with the failover model config.failover_model
/// names; throws InvalidArgument for a bad config.
SimResult simulate(const SimConfig& config, std::uint64_t seed);

/// The same with the failover model made by `failover` (e.g. one on the core's detector).
SimResult simulate(const SimConfig& config, std::uint64_t seed, const SimFailoverFactory& failover);

}  // namespace replikit::sim
