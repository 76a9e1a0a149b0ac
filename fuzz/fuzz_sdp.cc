// fuzz_sdp: callpark's SDP parser and what it builds from a parsed offer (module/callpark/wire/sdp.*).
// Input: an SDP body as a phone would send it in a park INVITE or a re-INVITE.
// Invariants: nothing throws or crashes; the hold answer we build parses back with our own parser, keeps one m=
// line per offered one (RFC 3264 §6) and picks a codec we play (or none); withOriginVersion() really sets the o=
// version it was given (checked on plain text: a stray CR may legitimately end a field).
#include "fuzz_common.hh"

#include <wire/moh.hh>
#include <wire/sdp.hh>

#include <string>

using namespace parkway::callpark;
using parkway::fuzz::fail;

namespace {

// Text a real SDP can hold: printable bytes, tabs, CRLF or LF line ends (no stray CR, no other controls).
bool plainText(std::string_view t) {
    for (size_t i = 0; i < t.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(t[i]);
        if (c == '\r' && (i + 1 == t.size() || t[i + 1] != '\n'))
            return false;
        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
            return false;
    }
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    std::string err;
    auto offer = parseSdp(text, &err);
    if (offer) {
        for (const char *ip : {"127.0.0.1", "::1"}) {
            HoldAnswer a = buildHoldAnswer(*offer, ip, 40000, 7, offer->sessionVersion + 1);
            auto back = parseSdp(a.sdp, &err);
            if (!back)
                fail(("our hold answer does not parse: " + err).c_str(), a.sdp);
            if (back->media.size() != offer->media.size())
                fail("hold answer m= count differs from the offer", a.sdp);
            if (a.chosenPt != -1 && !isMohPayloadType(a.chosenPt))
                fail("hold answer chose a payload type we cannot play (PCMU, PCMA, G.722)", a.sdp);
        }
    }
    auto v = sdpOriginVersion(text);
    if (v && plainText(text)) {
        auto bumped = withOriginVersion(text, *v + 1);
        if (!bumped)
            fail("withOriginVersion refused an SDP whose version sdpOriginVersion read", text);
        auto v2 = sdpOriginVersion(*bumped);
        if (!v2 || *v2 != *v + 1)
            fail("withOriginVersion did not set the version", *bumped);
    } else {
        (void)withOriginVersion(text, 1);
    }
    return 0;
}
