#include "replikit/acked_writes.hpp"

#include <algorithm>
#include <string>

#include "replikit/errors.hpp"

namespace replikit {

AckedWrites::AckedWrites(std::size_t capacity) : capacity_(capacity) {
  if (capacity < 1 || capacity > kMaxAckedWrites) {
    throw InvalidArgument("capacity", "must be in [1, " + std::to_string(kMaxAckedWrites) + "], got " +
                                          std::to_string(capacity));
  }
}

void AckedWrites::add(const AckedWrite& write) {
  if (writes_.size() >= capacity_) {
    writes_.pop_front();
    ++dropped_;
  }
  writes_.push_back(write);
}

void AckedWrites::forget(const std::vector<std::uint64_t>& xids) {
  writes_.erase(std::remove_if(writes_.begin(), writes_.end(),
                               [&](const AckedWrite& w) {
                                 return std::find(xids.begin(), xids.end(), w.xid) != xids.end();
                               }),
                writes_.end());
}

WriteFate write_fate(std::uint64_t xid, std::uint64_t next_xid, std::optional<std::string_view> status) noexcept {
  if (xid == 0) return WriteFate::Unknown;
  // Never seen by the new timeline; the new primary hands these numbers out again.
  if (xid >= next_xid) return WriteFate::Lost;
  if (!status) return WriteFate::Unknown;  // older than the commit log keeps
  // 'aborted': replicated without its commit record, or never replicated at all (a gap below a
  // later xid the replica saw). 'in progress' cannot last past promotion; count it lost too.
  return *status == "committed" ? WriteFate::Survived : WriteFate::Lost;
}

}  // namespace replikit
