// The pcap reader (tools/replay/read_pcap.cc): hand-made captures — UDP over each link type, both byte orders,
// nanosecond files, IPv6, IPv4 and IPv6 fragments, non-SIP datagrams.
#include "test_read_helpers.hh"
#include "trace.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;
using namespace readtest;

namespace {

bool anyWarning(const ReadResult &r, const std::string &part) {
    for (const auto &w : r.warnings)
        if (w.find(part) != std::string::npos)
            return true;
    return false;
}

std::string sdpBody(size_t lines) {
    std::string b =
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    for (size_t i = 0; i < lines; ++i)
        b += "a=x-filler:" + std::to_string(i) + " abcdefghijklmnopqrstuvwxyz0123456789\r\n";
    return b;
}

} // namespace

TEST_CASE("UDP over Ethernet: one datagram is one message, RTP, STUN and keep-alives are skipped") {
    std::string invite = sipRequest("INVITE", "c1", sdpBody(0));
    std::string ok = sipResponse("200 OK", "c1");
    std::string rtp = "\x80\x00\x00\x01" + std::string(168, 'x');
    std::string stun = std::string("\x00\x01\x00\x0c\x21\x12\xa4\x42", 8) + std::string(12, 'y');
    Pcap p(kEthernet);
    p.add(1796136861, 500000, ethernet(ipv4("127.0.0.1", "127.0.0.2", 17, udp(5062, 5060, invite))));
    p.add(1796136861, 600000, ethernet(ipv4("127.0.0.1", "127.0.0.2", 17, udp(4000, 4002, rtp))));
    p.add(1796136861, 650000, ethernet(ipv4("127.0.0.1", "127.0.0.2", 17, udp(5062, 5060, stun))));
    p.add(1796136861, 660000, ethernet(ipv4("127.0.0.1", "127.0.0.2", 17, udp(5062, 5060, "\r\n\r\n"))));
    p.add(1796136862, 1, ethernet(ipv4("127.0.0.2", "127.0.0.1", 17, udp(5060, 5062, ok))));
    ReadResult r = readTraceBytes(p.bytes, "udp.pcap");
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].data == invite);
    CHECK(r.messages[0].transport == Transport::Udp);
    CHECK(r.messages[0].src.str() == "127.0.0.1:5062");
    CHECK(r.messages[0].dst.str() == "127.0.0.2:5060");
    CHECK(r.messages[0].time == Approx(1796136861.5).epsilon(1e-12));
    CHECK(r.messages[1].data == ok);
    CHECK(r.messages[1].src.str() == "127.0.0.2:5060");
    CHECK(anyWarning(r, "2 UDP datagrams that are not SIP"));
    CHECK(anyWarning(r, "1 UDP keep-alives"));
}

TEST_CASE("pcap in both byte orders and with nanosecond timestamps reads the same") {
    std::string msg = sipRequest("OPTIONS", "c2");
    for (bool big : {false, true})
        for (bool nano : {false, true}) {
            Pcap p(kEthernet, big, nano);
            p.add(1700000000, 123456, ethernet(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5060, 5060, msg))));
            ReadResult r = readTraceBytes(p.bytes, "order.pcap");
            INFO("big-endian " << big << ", nanoseconds " << nano);
            REQUIRE(r.messages.size() == 1);
            CHECK(r.messages[0].data == msg);
            CHECK(r.messages[0].time == Approx(1700000000.123456).epsilon(1e-12));
        }
}

TEST_CASE("link types: Linux cooked v1 and v2, raw IP, BSD loopback, Ethernet with an 802.1Q tag") {
    std::string msg = sipRequest("REGISTER", "c3");
    std::string ip = ipv4("127.0.0.1", "127.0.0.1", 17, udp(5070, 5060, msg));
    std::string ip6 = ipv6("::1", "::1", 17, udp(5070, 5060, msg));
    struct Case {
        const char *name;
        uint32_t linktype;
        std::string frame;
    } cases[] = {
        {"sll", kSll, sll(ip)},
        {"sll ipv6", kSll, sll(ip6, 0x86dd)},
        {"sll2", kSll2, sll2(ip)},
        {"raw", kRaw, ip},
        {"raw ipv6", kRaw, ip6},
        {"null", kNull, bsdNull(ip, 2)},
        {"null ipv6", kNull, bsdNull(ip6, 30)},
        {"vlan", kEthernet, ethernet(ip, 0x0800, true)},
        {"ipv4 linktype", 228, ip},
    };
    for (const auto &c : cases) {
        INFO(c.name);
        Pcap p(c.linktype);
        p.add(1, 0, c.frame);
        ReadResult r = readTraceBytes(p.bytes, c.name);
        REQUIRE(r.messages.size() == 1);
        CHECK(r.messages[0].data == msg);
        CHECK(r.messages[0].src.port == 5070);
    }
}

TEST_CASE("IPv6 with a Hop-by-Hop extension header") {
    std::string msg = sipRequest("OPTIONS", "c4");
    Pcap p(kEthernet);
    p.add(5, 0, ethernet(ipv6("2001:db8::1", "2001:db8::2", 0, ipv6HopByHop(17, udp(5060, 5062, msg))), 0x86dd));
    ReadResult r = readTraceBytes(p.bytes, "v6.pcap");
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].src.str() == "[2001:db8::1]:5060");
    CHECK(r.messages[0].dst.ip == "2001:db8::2");
    CHECK(r.messages[0].data == msg);
}

TEST_CASE("fragmented UDP over IPv4, fragments out of order, is reassembled") {
    std::string msg = sipRequest("INVITE", "frag4", sdpBody(60)); // about 3.5 KB
    std::string dgram = udp(5062, 5060, msg);
    REQUIRE(dgram.size() > 2 * 1480);
    Pcap p(kEthernet);
    // fragments of 1480 bytes (a multiple of 8), sent last, first, middle
    std::vector<uint32_t> order = {2, 0, 1};
    for (uint32_t i : order) {
        uint32_t off = i * 1480;
        std::string part = dgram.substr(off, 1480);
        bool more = off + 1480 < dgram.size();
        p.add(10, i, ethernet(ipv4("192.0.2.1", "192.0.2.2", 17, part, 777, off, more)));
    }
    ReadResult r = readTraceBytes(p.bytes, "frag4.pcap");
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].data == msg);
    CHECK(r.messages[0].src.str() == "192.0.2.1:5062");
    CHECK(r.warnings.empty());
}

TEST_CASE("fragmented UDP over IPv6 (Fragment header), out of order, is reassembled") {
    std::string msg = sipRequest("INVITE", "frag6", sdpBody(40));
    std::string dgram = udp(5062, 5060, msg);
    Pcap p(kRaw);
    const uint32_t chunk = 1232;
    std::vector<std::string> frames;
    for (uint32_t off = 0; off < dgram.size(); off += chunk) {
        bool more = off + chunk < dgram.size();
        frames.push_back(
            ipv6("2001:db8::1", "2001:db8::2", 44, ipv6Fragment(17, off, more, 0xabcd, dgram.substr(off, chunk))));
    }
    REQUIRE(frames.size() >= 2);
    for (size_t i = frames.size(); i-- > 0;)
        p.add(20, uint32_t(i), frames[i]);
    ReadResult r = readTraceBytes(p.bytes, "frag6.pcap");
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].data == msg);
    CHECK(r.messages[0].src.str() == "[2001:db8::1]:5062");
}

TEST_CASE("an incomplete fragmented datagram is dropped with a warning, the rest is read") {
    std::string msg = sipRequest("INVITE", "lost", sdpBody(30));
    std::string dgram = udp(5062, 5060, msg);
    Pcap p(kRaw);
    p.add(1, 0, ipv4("192.0.2.1", "192.0.2.2", 17, dgram.substr(0, 1480), 9, 0, true)); // the last one never came
    p.add(2, 0, ipv4("192.0.2.1", "192.0.2.2", 17, udp(5062, 5060, sipRequest("BYE", "after"))));
    ReadResult r = readTraceBytes(p.bytes, "lost.pcap");
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].data.rfind("BYE ", 0) == 0);
    CHECK(anyWarning(r, "IPv4 fragments of datagram id 9 192.0.2.1 -> 192.0.2.2"));
    CHECK(anyWarning(r, "incomplete"));
}

TEST_CASE("a datagram longer than its Content-Length is cut (RFC 3261 §18.3)") {
    std::string msg = sipRequest("MESSAGE", "c5", "hello");
    Pcap p(kRaw);
    p.add(1, 0, ipv4("127.0.0.1", "127.0.0.1", 17, udp(5062, 5060, msg + "junk after the body")));
    ReadResult r = readTraceBytes(p.bytes, "cl.pcap");
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].data == msg);
}

TEST_CASE("garbage, empty and damaged captures give clear errors naming the file") {
    CHECK_THROWS_WITH(readTraceBytes("hello, this is no trace\n", "notes.txt"),
                      "notes.txt: not a pcap, pcapng or known text trace");
    CHECK_THROWS_WITH(readTraceBytes("", "empty.pcap"), "empty.pcap: not a pcap, pcapng or known text trace");
    Pcap p(kEthernet);
    std::string header = p.bytes.substr(0, 10); // global header cut short
    CHECK_THROWS_WITH(readTraceBytes(header, "cut.pcap"), Catch::Contains("cut.pcap") && Catch::Contains("frame 1"));
    Pcap weird(147); // a user link type we do not read
    weird.add(1, 0, "x");
    CHECK_THROWS_WITH(readTraceBytes(weird.bytes, "weird.pcap"), Catch::Contains("weird.pcap: link type 147"));
    CHECK_THROWS_WITH(readTrace("/nonexistent/trace.pcap"), Catch::StartsWith("/nonexistent/trace.pcap: cannot open"));
    CHECK_THROWS_WITH(readTrace(REPLAY_TEST_DATA), Catch::EndsWith("/data: is a directory, not a trace"));
}

TEST_CASE("a capture cut in the middle of a frame keeps the frames before it, with a warning") {
    std::string msg = sipRequest("OPTIONS", "c6");
    Pcap p(kRaw);
    p.add(1, 0, ipv4("127.0.0.1", "127.0.0.1", 17, udp(5062, 5060, msg)));
    p.add(2, 0, ipv4("127.0.0.1", "127.0.0.1", 17, udp(5062, 5060, msg)));
    std::string cut = p.bytes.substr(0, p.bytes.size() - 40);
    ReadResult r = readTraceBytes(cut, "cut.pcap");
    REQUIRE(r.messages.size() == 1);
    CHECK(anyWarning(r, "frame 2: damaged capture"));
}
