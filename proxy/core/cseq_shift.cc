#include "cseq_shift.hh"

namespace parkway::proxy {

CseqShifts::Entry &CseqShifts::touch(const std::string &k, int64_t nowMs, bool *created) {
    auto it = map_.find(k);
    if (created)
        *created = it == map_.end();
    if (it == map_.end()) {
        while (cap_ && map_.size() >= cap_ && !lru_.empty())
            erase(lru_.back()); // over the cap: the least recently used goes (docs/limits.md)
        lru_.push_front(k);
        it = map_.emplace(k, Entry{}).first;
        it->second.lru = lru_.begin();
    } else {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
    }
    it->second.lastUseMs = nowMs;
    return it->second;
}

const CseqShifts::Entry *CseqShifts::find(const std::string &k) const {
    auto it = map_.find(k);
    return it == map_.end() ? nullptr : &it->second;
}

void CseqShifts::erase(const std::string &k) {
    auto it = map_.find(k);
    if (it == map_.end())
        return;
    lru_.erase(it->second.lru);
    map_.erase(it);
}

uint32_t CseqShifts::onRequest(std::string_view callId, std::string_view fromTag, std::string_view toTag, uint32_t cseq,
                               bool invite, int64_t nowMs) {
    if (callId.empty() || fromTag.empty() || (toTag.empty() && !invite))
        return 0;
    Entry &e = touch(key(callId, fromTag, toTag), nowMs);
    if (cseq > e.highest)
        e.highest = cseq;
    if (invite) {
        e.inviteCseq = cseq;
        e.inviteShift = e.shift;
    }
    return e.shift;
}

uint32_t CseqShifts::ackShift(std::string_view callId, std::string_view fromTag, std::string_view toTag,
                              uint32_t cseq) const {
    const Entry *e = find(key(callId, fromTag, toTag));
    if (!e)
        return 0;
    return e->inviteCseq == cseq ? e->inviteShift : e->shift;
}

uint32_t CseqShifts::inviteResponseShift(std::string_view callId, std::string_view fromTag, std::string_view toTag,
                                         uint32_t wireCseq) const {
    const Entry *e = find(key(callId, fromTag, toTag));
    if (!e || !e->inviteShift || shifted(e->inviteCseq, e->inviteShift) != wireCseq)
        return 0;
    return e->inviteShift;
}

uint32_t CseqShifts::inject(std::string_view callId, std::string_view fromTag, std::string_view toTag, int64_t nowMs) {
    if (callId.empty() || fromTag.empty() || toTag.empty())
        return 0;
    bool created = false;
    Entry &e = touch(key(callId, fromTag, toTag), nowMs, &created);
    if (created) {
        // No in-dialog request from that party passed yet: its INVITE, when it was the caller, is the last
        // number the other side saw from it.
        if (const Entry *initial = find(key(callId, fromTag, {})))
            e.highest = initial->highest;
        // Nothing seen at all (e.g. the dialog was set up before a restart): the party's numbering is
        // unknown. Fall back to a large number the other side takes as higher (as before this map existed)
        // and shift the party's own requests by it, so they stay above what we injected.
        if (!e.highest)
            e.shift = kUnknownBase + static_cast<uint32_t>(nowMs % 100000000) - 1;
    }
    uint32_t n = shifted(e.highest, e.shift + 1);
    ++e.shift;
    return n;
}

void CseqShifts::forgetDialog(std::string_view callId, std::string_view tag1, std::string_view tag2) {
    erase(key(callId, tag1, tag2));
    erase(key(callId, tag2, tag1));
}

void CseqShifts::sweep(int64_t nowMs) {
    // From the least recently used end; a shifting entry younger than kShiftedIdleMs is stepped over.
    for (auto it = lru_.rbegin(); it != lru_.rend();) {
        const Entry &e = map_.at(*it);
        int64_t idle = nowMs - e.lastUseMs;
        if (idle < kIdleMs)
            break;
        if (e.shift && idle < kShiftedIdleMs) {
            ++it;
            continue;
        }
        erase(std::string(*it)); // `it` stays valid (its base is the newer neighbour) and names the next one
    }
}

} // namespace parkway::proxy
