// CSeq numbers we inject into dialogs we only proxy (module.h dialog_inject_cseq), and the shift that keeps
// both ends of such a dialog in step afterwards. What session border controllers do:
//  * For requests the core forwards (in-dialog ones, and INVITEs that may create a dialog), the highest CSeq
//    seen per (Call-ID, From-tag, To-tag) is kept: that is the number the receiver last saw from that party.
//  * A module speaking as that party (e.g. sipfrag NOTIFYs for the transferee, callpark takeover) takes the next
//    number: highest + shift + 1, and the shift grows by one. The receiver sees the party's CSeq go up as
//    RFC 3261 §12.2.1.1 asks, so it does not answer 500 to the party's later requests (§12.2.2).
//  * Every later request from that party in that dialog is forwarded with CSeq + shift (RFC 3261 §16.6 lets
//    a proxy change it only like this, consistently), the ACK of a 2xx with the shift of its INVITE; CANCEL
//    and the ACK of a non-2xx are built by nta from the forwarded INVITE (same number); responses relayed
//    back to that party get CSeq - shift (the party matches them to its transactions).
// Bounded (docs/limits.md "CSeq shifts"): at most `cap` entries, least recently used evicted first; an
// entry idle for kIdleMs (kShiftedIdleMs when it shifts: the dialog breaks without it) is dropped, and both
// entries of a dialog go when a BYE in it is answered 2xx.
#pragma once
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace parkway::proxy {

class CseqShifts {
public:
    static constexpr int64_t kIdleMs = 3600000;         // 1 hour
    static constexpr int64_t kShiftedIdleMs = 86400000; // 24 hours
    static constexpr size_t kDefaultCap = 65536;
    static constexpr uint32_t kUnknownBase = 2000000000u; // see inject()

    explicit CseqShifts(size_t cap = kDefaultCap) : cap_(cap) {}

    // A request from the party with fromTag is being forwarded (not ACK/CANCEL; toTag "" = out of dialog,
    // recorded for INVITE only). Records its CSeq; returns what to add to it (0: none).
    uint32_t onRequest(std::string_view callId, std::string_view fromTag, std::string_view toTag, uint32_t cseq,
                       bool invite, int64_t nowMs);
    // The shift for an ACK from that party: the one its INVITE (with the same CSeq) was forwarded with.
    uint32_t ackShift(std::string_view callId, std::string_view fromTag, std::string_view toTag, uint32_t cseq) const;
    // A 2xx to an INVITE of that party arriving without a transaction, CSeq as on the wire (shifted): what to
    // subtract.
    uint32_t inviteResponseShift(std::string_view callId, std::string_view fromTag, std::string_view toTag,
                                 uint32_t wireCseq) const;
    // The CSeq to use for a request we send as the party fromTag in its dialog with toTag; 0 on bad arguments.
    uint32_t inject(std::string_view callId, std::string_view fromTag, std::string_view toTag, int64_t nowMs);
    void forgetDialog(std::string_view callId, std::string_view tag1, std::string_view tag2);
    void sweep(int64_t nowMs);
    size_t size() const { return map_.size(); }

    // the CSeq a request (or response) becomes: cseq + shift, unchanged when it would not fit in 32 bits
    static uint32_t shifted(uint32_t cseq, uint32_t shift) {
        uint64_t v = uint64_t(cseq) + shift;
        return v > 0xffffffffu ? cseq : static_cast<uint32_t>(v);
    }

private:
    struct Entry {
        uint32_t highest = 0;     // highest CSeq of the party, in its own numbering
        uint32_t shift = 0;       // numbers we injected (or the unknown-base offset)
        uint32_t inviteCseq = 0;  // its latest INVITE, own numbering ...
        uint32_t inviteShift = 0; // ... and the shift it was forwarded with
        int64_t lastUseMs = 0;
        std::list<std::string>::iterator lru;
    };
    // The map key of a party in a dialog, built in keyBuf_ (valid until the next key() call): the proxy asks on
    // every forwarded request, ACK and BYE response, so no temporary strings.
    const std::string &key(std::string_view callId, std::string_view fromTag, std::string_view toTag) const {
        keyBuf_.assign(callId).append(1, '\n').append(fromTag).append(1, '\n').append(toTag);
        return keyBuf_;
    }
    Entry &touch(const std::string &k, int64_t nowMs, bool *created = nullptr);
    const Entry *find(const std::string &k) const;
    void erase(const std::string &k);

    size_t cap_;
    std::unordered_map<std::string, Entry> map_;
    std::list<std::string> lru_; // front: most recently used
    mutable std::string keyBuf_;
};

} // namespace parkway::proxy
