// parkway-replay trace readers: pieces shared by the pcap and text readers (not a contract; trace.hh is).
// See docs/replay.md "Trace formats read".
#pragma once
#include "trace.hh"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace parkway::replay::detail {

// Collects what the readers find. Every message carries the number of the frame (pcap) or record (text)
// that completed it, so messages finished late (TCP segments that came out of order) can be put back in
// capture order at the end.
class Collector {
public:
    explicit Collector(std::string name) : name_(std::move(name)) {}
    const std::string &name() const { return name_; }
    void message(Captured c, uint64_t frame);
    void warn(std::string text);
    // Stable sort by completing frame; returns the result.
    ReadResult finish();

private:
    std::string name_;
    std::vector<std::pair<uint64_t, Captured>> messages_;
    std::vector<std::string> warnings_;
};

// ---- SIP framing (sip_frame.cc)

// True when `line` (without its line end) is a SIP request line or status line (RFC 3261 §7.1, §7.2).
bool isSipStartLine(std::string_view line);
// Where a SIP start line begins inside `line` (after a gap it may be glued to the end of a body); npos if none.
size_t startLineWithin(std::string_view line);
// True when `data` begins with a SIP start line ended by a line end.
bool startsWithSip(std::string_view data);
// True when `data` is nothing but CR and LF bytes (RFC 5626 §3.5.1 keep-alives).
bool onlyLineEnds(std::string_view data);
// True when `data` looks like a TLS record header (RFC 8446 §5.1: type 20-23, legacy version 3.x).
bool looksLikeTls(std::string_view data);

struct Frame {
    enum Status { Complete, NeedMore, Bad } status = NeedMore;
    size_t length = 0;     // Complete: bytes of the whole message
    bool noLength = false; // Complete: there was no Content-Length (taken as 0)
    std::string reason;    // Bad: why
};
// Frames one message at the start of `buf` (which must start at a start line) by its Content-Length or
// compact `l` (RFC 3261 §7.5, §18.3, §20.14). A missing Content-Length counts as 0.
Frame frameMessage(std::string_view buf);
// The Content-Length of a message whose header section is complete; -1 when absent, -2 when malformed.
long long contentLength(std::string_view headers);
// Offset of the body (just after the blank line) or npos when the header section is not complete.
size_t bodyStart(std::string_view buf);
// Cut a whole SIP message out of a datagram (RFC 3261 §18.3: bytes past Content-Length are dropped).
// Returns the message and sets `note` when the datagram is shorter than Content-Length says.
std::string datagramMessage(std::string_view data, std::string *note);
// The first value of a header (full or compact name, case-insensitive), trimmed; empty when absent.
std::string headerValue(std::string_view message, std::string_view name, std::string_view compact);
// The transport of the top Via ("SIP/2.0/TCP host" -> Tcp); Udp when absent or unknown.
Transport topViaTransport(std::string_view message);

// ---- readers
bool isPcapMagic(std::string_view bytes);
void readPcap(const std::string &bytes, Collector &out);

// Text traces: returns false when `bytes` is none of the text formats we know.
bool readTextTrace(const std::string &bytes, Collector &out);
bool isSippLog(std::string_view bytes);
void readSippLog(const std::string &bytes, Collector &out);

// Seconds since the epoch for a broken-down UTC time; fraction is added as is.
double utcSeconds(int year, int month, int day, int hour, int minute, int second, double fraction);

} // namespace parkway::replay::detail
