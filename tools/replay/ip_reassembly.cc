// parkway-replay readers: IP fragment reassembly (ip_reassembly.hh).
#include "ip_reassembly.hh"

namespace parkway::replay::detail {

namespace {
constexpr uint32_t kMaxDatagram = 65535 + 65535; // IPv6 payload + headers; anything larger is junk
constexpr size_t kMaxPending = 256;              // datagrams waiting for fragments at once
} // namespace

std::string IpReassembly::describe(const FragmentKey &k, const Pending &p) {
    return "IPv" + std::to_string(k.version) + " fragments of datagram id " + std::to_string(k.id) + " " + k.src +
           " -> " + k.dst + " (first in frame " + std::to_string(p.firstFrame) + ")";
}

bool IpReassembly::complete(const Pending &p) {
    if (!p.total)
        return false;
    uint32_t covered = 0;
    for (const auto &[off, bytes] : p.pieces) {
        if (off > covered)
            return false;
        covered = std::max<uint32_t>(covered, off + static_cast<uint32_t>(bytes.size()));
    }
    return covered >= *p.total;
}

std::string IpReassembly::assemble(const Pending &p) {
    std::string out(*p.total, '\0');
    std::vector<bool> have(*p.total, false);
    for (const auto &[off, bytes] : p.pieces)
        for (size_t i = 0; i < bytes.size() && off + i < out.size(); ++i)
            if (!have[off + i]) {
                out[off + i] = bytes[i];
                have[off + i] = true;
            }
    return out;
}

std::optional<std::string> IpReassembly::add(const FragmentKey &key, uint32_t offset, bool more, std::string data,
                                             uint64_t frame, std::vector<std::string> &warnings) {
    if (offset + data.size() > kMaxDatagram) {
        warnings.push_back("frame " + std::to_string(frame) + ": IP fragment past 128 KB, dropped");
        return std::nullopt;
    }
    auto it = pending_.find(key);
    if (it == pending_.end()) {
        if (pending_.size() >= kMaxPending) {
            auto oldest = pending_.begin();
            warnings.push_back(describe(oldest->first, oldest->second) + ": incomplete, dropped (too many pending)");
            pending_.erase(oldest);
        }
        it = pending_.emplace(key, Pending{}).first;
        it->second.firstFrame = frame;
    }
    Pending &p = it->second;
    uint32_t end = offset + static_cast<uint32_t>(data.size());
    if (!more)
        p.total = end;
    auto [slot, inserted] = p.pieces.emplace(offset, std::move(data));
    if (!inserted)
        p.overlap = true; // a second copy of the same fragment: keep the first (RFC 8200 §4.5)
    if (!complete(p))
        return std::nullopt;
    if (p.overlap)
        warnings.push_back(describe(key, p) + ": repeated or overlapping fragments, first copy kept");
    std::string whole = assemble(p);
    pending_.erase(it);
    return whole;
}

void IpReassembly::finish(std::vector<std::string> &warnings) {
    for (const auto &[key, p] : pending_) {
        size_t have = 0;
        for (const auto &piece : p.pieces)
            have += piece.second.size();
        warnings.push_back(describe(key, p) + ": incomplete (" + std::to_string(have) + " bytes" +
                           (p.total ? " of " + std::to_string(*p.total) : ", last fragment missing") + "), dropped");
    }
    pending_.clear();
}

} // namespace parkway::replay::detail
