// parkway-replay readers: TCP stream reassembly and SIP framing on the reassembled stream.
// Per direction of a connection: bytes are put in sequence order (RFC 9293 §3.4 sequence numbers, modulo 2^32),
// retransmitted and overlapping bytes are dropped, out-of-order segments wait for the missing bytes. The in-order
// stream is cut into SIP messages by Content-Length (RFC 3261 §18.3), CRLF keep-alives (RFC 5626 §3.5.1) are
// skipped. When bytes are missing for good (lost from the capture), the reader warns and resynchronises at the
// next SIP start line. TLS (RFC 8446) cannot be read: one warning per connection.
#pragma once
#include "read_internal.hh"

#include <map>
#include <string>

namespace parkway::replay::detail {

struct TcpSegment {
    Address src, dst;
    uint32_t seq = 0;
    bool syn = false, fin = false, rst = false;
    std::string payload;
    double time = 0;
    uint64_t frame = 0;
};

class TcpReassembly {
public:
    explicit TcpReassembly(Collector &out) : out_(out) {}
    void add(TcpSegment seg);
    // End of capture: flush what waits behind holes (with a warning each).
    void finish();

private:
    struct Stream {
        Address src, dst;
        bool started = false;                 // nextSeq is known
        uint32_t nextSeq = 0;                 // sequence number of the next in-order byte
        std::map<uint32_t, TcpSegment> early; // out-of-order segments by sequence number
        size_t earlyBytes = 0;
        std::string buffer; // in-order bytes not yet cut into messages
        bool resync = true; // looking for a start line (stream start or after a gap)
        bool tls = false;
        bool closed = false;
        bool haveIsn = false; // the SYN was seen: isn is its sequence number
        uint32_t isn = 0;
        size_t skipped = 0; // bytes dropped while resynchronising, not reported yet
    };
    using Key = std::pair<Address, Address>;
    Stream &stream(const TcpSegment &seg);
    void accept(Stream &s, TcpSegment seg);
    void drainEarly(Stream &s);
    void skipGap(Stream &s, const char *why);
    void cut(Stream &s, double time, uint64_t frame);
    bool findStart(Stream &s);
    std::string name(const Stream &s) const;
    void finishStream(Stream &s);

    Collector &out_;
    std::map<Key, Stream> streams_;
    uint64_t curFrame_ = 0; // the frame being read: messages completed now get its number and time
    double curTime_ = 0;
};

} // namespace parkway::replay::detail
