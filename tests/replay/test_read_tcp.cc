// TCP reassembly and SIP framing over the stream (tools/replay/tcp_reassembly.cc): split messages, several
// messages per segment, out-of-order and retransmitted segments, gaps, compact Content-Length, TLS.
#include "test_read_helpers.hh"
#include "trace.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;
using namespace readtest;

namespace {

bool tcpWarning(const ReadResult &r, const std::string &part) {
    for (const auto &w : r.warnings)
        if (w.find(part) != std::string::npos)
            return true;
    return false;
}

// One direction of a connection 127.0.0.1:40000 -> 127.0.0.1:5060 (or back), raw IP frames.
struct Conn {
    Pcap pcap{kRaw};
    uint32_t isn = 1000, back = 90000;
    uint32_t t = 0;
    void seg(uint32_t seq, const std::string &data, uint8_t flags = ACK | PSH, bool reverse = false) {
        std::string frame = reverse ? ipv4("127.0.0.1", "127.0.0.1", 6, tcp(5060, 40000, seq, flags, data))
                                    : ipv4("127.0.0.1", "127.0.0.1", 6, tcp(40000, 5060, seq, flags, data));
        pcap.add(100, t++, frame);
    }
    void handshake() {
        seg(isn, "", SYN);
        seg(back, "", SYN | ACK, true);
        seg(isn + 1, "", ACK);
    }
    ReadResult read() { return readTraceBytes(pcap.bytes, "tcp.pcap"); }
};

std::string body(size_t n) {
    return std::string(n, 'b');
}

} // namespace

TEST_CASE("TCP: a message split across three segments is put back together") {
    std::string msg = sipRequest("MESSAGE", "split", body(700));
    Conn c;
    c.handshake();
    uint32_t seq = c.isn + 1;
    c.seg(seq, msg.substr(0, 100));         // part of the start line and headers
    c.seg(seq + 100, msg.substr(100, 300)); // the rest of the headers and part of the body
    c.seg(seq + 400, msg.substr(400));
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].data == msg);
    CHECK(r.messages[0].transport == Transport::Tcp);
    CHECK(r.messages[0].src.str() == "127.0.0.1:40000");
    CHECK(r.messages[0].time == Approx(100.000005).epsilon(1e-12)); // the frame that completed it
    CHECK(r.warnings.empty());
}

TEST_CASE("TCP: two messages and a keep-alive in one segment") {
    std::string a = sipRequest("OPTIONS", "one"), b = sipRequest("MESSAGE", "two", "hi");
    Conn c;
    c.handshake();
    c.seg(c.isn + 1, a + "\r\n\r\n" + b);
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].data == a);
    CHECK(r.messages[1].data == b);
}

TEST_CASE("TCP: out-of-order, retransmitted and overlapping segments") {
    std::string a = sipRequest("INVITE", "ooo", body(300)), b = sipResponse("180 Ringing", "ooo");
    std::string stream = a + b;
    Conn c;
    c.handshake();
    uint32_t s0 = c.isn + 1;
    c.seg(s0 + 200, stream.substr(200, 200)); // arrives before the bytes in front of it
    c.seg(s0, stream.substr(0, 150));
    c.seg(s0, stream.substr(0, 150));         // plain retransmission
    c.seg(s0 + 100, stream.substr(100, 200)); // overlaps both sides
    c.seg(s0 + 400, stream.substr(400));
    c.seg(s0 + 400, stream.substr(400, 10)); // a late duplicate
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].data == a);
    CHECK(r.messages[1].data == b);
    CHECK(r.warnings.empty());
}

TEST_CASE("TCP: a message completed later is put in the order its last byte was captured") {
    std::string a = sipRequest("MESSAGE", "first", body(50)), b = sipRequest("MESSAGE", "second");
    Conn c;
    c.handshake();
    uint32_t s0 = c.isn + 1;
    c.seg(s0 + 20, a.substr(20));          // frame 4: waits for bytes 0..19
    c.seg(c.back + 1, b, ACK | PSH, true); // frame 5: the other direction, complete
    c.seg(s0, a.substr(0, 20));            // frame 6 completes a
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].data == b);
    CHECK(r.messages[1].data == a);
    CHECK(r.messages[1].time == Approx(100.000005).epsilon(1e-12));
}

TEST_CASE("TCP: bytes missing from the capture give a warning and a resync at the next start line") {
    std::string a = sipRequest("INVITE", "gap", body(400)), b = sipRequest("BYE", "gap");
    Conn c;
    c.handshake();
    uint32_t s0 = c.isn + 1;
    c.seg(s0, a.substr(0, 100));
    c.seg(s0 + 300, a.substr(300)); // bytes 100..299 were never captured
    c.seg(s0 + uint32_t(a.size()), b);
    c.seg(s0 + uint32_t(a.size() + b.size()), "", FIN | ACK);
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].data == b);
    CHECK(tcpWarning(r, "TCP 127.0.0.1:40000 -> 127.0.0.1:5060: gap, 200 bytes missing"));
}

TEST_CASE("TCP: a capture that starts in the middle of a message resyncs at the next start line") {
    std::string a = sipRequest("INVITE", "mid", body(100)), b = sipRequest("ACK", "mid");
    Conn c; // no handshake
    c.seg(5000, a.substr(60) + b);
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].data == b);
    CHECK(tcpWarning(r, "bytes before a SIP start line skipped"));
}

TEST_CASE("TCP: compact Content-Length (l:) and sequence numbers wrapping past 2^32") {
    std::string a = sipRequest("MESSAGE", "compact", body(64), "l"), b = sipRequest("OPTIONS", "wrap");
    std::string stream = a + b;
    Conn c;
    c.isn = 0xffffff00u;
    c.handshake();
    uint32_t s0 = c.isn + 1;
    c.seg(s0, stream.substr(0, 200));
    c.seg(s0 + 200, stream.substr(200)); // crosses 2^32
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].data == a);
    CHECK(r.messages[1].data == b);
}

TEST_CASE("TCP: an incomplete message at the end of the capture is reported") {
    std::string a = sipRequest("MESSAGE", "short", body(300));
    Conn c;
    c.handshake();
    c.seg(c.isn + 1, a.substr(0, a.size() - 10));
    ReadResult r = c.read();
    CHECK(r.messages.empty());
    CHECK(tcpWarning(r, "incomplete message at the end"));
}

TEST_CASE("TLS on port 5061 cannot be read: one 'encrypted' warning per connection") {
    Pcap p(kRaw);
    std::string hello("\x16\x03\x01\x00\x05hello", 10), appData("\x17\x03\x03\x00\x04"
                                                                "abcd",
                                                                9);
    p.add(1, 0, ipv4("127.0.0.1", "127.0.0.1", 6, tcp(40001, 5061, 10, SYN, "")));
    p.add(1, 1, ipv4("127.0.0.1", "127.0.0.1", 6, tcp(40001, 5061, 11, ACK | PSH, hello)));
    p.add(1, 2, ipv4("127.0.0.1", "127.0.0.1", 6, tcp(5061, 40001, 500, ACK | PSH, hello)));
    p.add(1, 3, ipv4("127.0.0.1", "127.0.0.1", 6, tcp(40001, 5061, 21, ACK | PSH, appData)));
    ReadResult r = readTraceBytes(p.bytes, "tls.pcap");
    CHECK(r.messages.empty());
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0] == "TCP 127.0.0.1:40001 <-> 127.0.0.1:5061: encrypted (TLS), not read");
}

TEST_CASE("TCP: a message without Content-Length is taken as bodiless, its body is skipped up to the next message") {
    // found by fuzz_trace: the body used to come out as a "message" of its own
    std::string a = "MESSAGE sip:1002@example.com SIP/2.0\r\nCall-ID: nolen\r\n\r\nv=0\r\ns=-\r\n";
    std::string b = sipRequest("OPTIONS", "after");
    Conn c;
    c.handshake();
    c.seg(c.isn + 1, a + b);
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].data == a.substr(0, a.find("v=0")));
    CHECK(r.messages[1].data == b);
    CHECK(tcpWarning(r, "message without Content-Length (required on TCP, RFC 3261 §18.3)"));
    CHECK(tcpWarning(r, "bytes before a SIP start line skipped"));
}

TEST_CASE("TCP: a new connection on the same ports (another SYN) starts a new stream") {
    std::string a = sipRequest("OPTIONS", "first"), b = sipRequest("OPTIONS", "second");
    Conn c;
    c.handshake();
    c.seg(c.isn + 1, a);
    c.seg(c.isn + 1 + uint32_t(a.size()), "", FIN | ACK); // the server side never closes in this capture
    c.isn = 777777;                                       // the port is used again, other sequence numbers
    c.back = 5555;
    c.handshake();
    c.seg(c.back + 1, sipResponse("200 OK", "second"), ACK | PSH, true);
    c.seg(c.isn + 1, b);
    ReadResult r = c.read();
    REQUIRE(r.messages.size() == 3);
    CHECK(r.messages[0].data == a);
    CHECK(r.messages[1].data == sipResponse("200 OK", "second"));
    CHECK(r.messages[2].data == b);
    CHECK(r.warnings.empty());
}
