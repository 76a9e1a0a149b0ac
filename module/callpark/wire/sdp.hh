// SDP for the park leg: parse the parked party's offer, build our hold answer / hold offer.
// Pure text (RFC 4566 / RFC 3264); no sofia types. Errors are values, never exceptions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::callpark {

// The Content-Type of an SDP body (RFC 3264, RFC 4566 §5).
inline constexpr std::string_view kSdp = "application/sdp";

enum class SdpDirection { SendRecv, SendOnly, RecvOnly, Inactive };

std::string_view toString(SdpDirection d); // "sendrecv", "sendonly", ...

struct SdpRtpMap {
    int pt = -1;
    std::string encoding; // as written, e.g. "PCMU"
    int clockRate = 0;
    std::string params; // e.g. channels, may be empty
};

// One m= section.
struct SdpMedia {
    std::string type;                 // "audio", "video", ...
    uint16_t port = 0;                // 0 = stream rejected/disabled
    std::string proto;                // "RTP/AVP", ...
    std::vector<std::string> formats; // the m= format list, verbatim
    std::vector<int> payloadTypes;    // the numeric formats, in offer order
    std::vector<SdpRtpMap> rtpmaps;
    std::string connectionAddr;                      // media-level c=, else the session-level one ("" if none)
    SdpDirection direction = SdpDirection::SendRecv; // media-level a=, else session-level, else sendrecv
    int ptime = 0;                                   // a=ptime, 0 when absent
};

struct SdpSession {
    std::string originUser = "-";
    uint64_t sessionId = 0;
    uint64_t sessionVersion = 0;
    std::string originAddr;
    std::string connectionAddr; // session-level c= ("" if none)
    std::vector<SdpMedia> media;

    // The first audio m= section with a non-zero port, else nullptr.
    const SdpMedia *audio() const;
};

// Parse an SDP body (CRLF or LF line ends). On failure returns nullopt and, if err is given, a message
// naming the offending line ("line 3: bad m= line 'm=audio x RTP/AVP 0'").
std::optional<SdpSession> parseSdp(std::string_view text, std::string *err = nullptr);

struct HoldAnswer {
    std::string sdp;         // complete SDP body, CRLF line ends
    int chosenPt = -1;       // 0 (PCMU), 8 (PCMA) or 9 (G722); -1 when no common codec (answer is a=inactive)
    SdpDirection direction;  // what we put in the answer
    std::string remoteIp;    // where the parked party wants RTP (c= of its audio stream)
    uint16_t remotePort = 0; // its audio port (0 when there is no usable audio stream)
};

// Answer an offer for a parked call (RFC 3264 §6): one m= per offered m=; the first audio stream is
// accepted with PCMU, PCMA or G722 (RFC 3551 §4.5.2: a=rtpmap:9 G722/8000), whichever the offer lists first;
// every other stream is rejected (port 0). Opus and other dynamic codecs are not played (no encoder).
// Direction (we send music, the parked party listens; RFC 3264 §6.1):
//   offer sendrecv/recvonly -> sendonly; offer sendonly/inactive -> inactive.
// No common codec: still a valid answer, the offered formats with a=inactive and chosenPt = -1.
// `sessionId`/`version` fill our o= line; keep sessionId for the dialog and bump version on every change.
HoldAnswer buildHoldAnswer(const SdpSession &offer, std::string_view localIp, uint16_t localPort, uint64_t sessionId,
                           uint64_t version);

// A hold offer (re-INVITE after a restart when our media port changed, and re-park):
// audio PCMU+PCMA, a=sendonly, ptime 20.
std::string buildHoldOffer(std::string_view localIp, uint16_t localPort, uint64_t sessionId, uint64_t version);

// The o= session version of an SDP body, nullopt if absent/malformed.
std::optional<uint64_t> sdpOriginVersion(std::string_view sdp);
// The same SDP with its o= version replaced by `version` (RFC 3264 §8: +1 for every changed offer/answer).
// nullopt when there is no well-formed o= line.
std::optional<std::string> withOriginVersion(std::string_view sdp, uint64_t version);

// Our o= on one leg (RFC 3264 §8, RFC 4566 §5.2): username, session id and address stay the same for the whole
// dialog, whatever SDP we relay on it; the version moves by one exactly when the body changes.
struct SdpOrigin {
    std::string user = "parkway";
    uint64_t sessionId = 0;
    uint64_t version = 0;
    std::string addr; // our IP; the address type (IP4 / IP6) follows it
};
// `body` with its o= line replaced by `origin`'s. origin.version is incremented first when `body` differs from
// `lastSent`, the last SDP sent on the leg, o= lines ignored ("" = nothing sent yet: a change too); an unchanged
// body keeps the version (RFC 3264 §8: "If the version in the origin line does not increment, the SDP MUST be
// identical"). nullopt, origin untouched, when `body` has no well-formed o= line.
std::optional<std::string> withLegOrigin(std::string_view body, std::string_view lastSent, SdpOrigin &origin);

// A fresh session id (NTP-ish time based, RFC 4566 §5.2 suggests it), never 0.
uint64_t newSdpSessionId();

} // namespace parkway::callpark
