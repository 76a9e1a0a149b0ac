// The readers on real files (tests/replay/data/, README there says how each was made): one SIPp call through a
// stateless Kamailio on loopback, captured by tshark (pcapng, Ethernet), recorded by Kamailio's sipdump module and
// exported by sngrep as text; a SIPp call over TCP captured on "any" (Linux cooked v1) and one over UDP in SLL2;
// the SIPp -trace_msg logs of both ends; a Parkway text trace.
#include "trace.hh"

#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>

using namespace parkway::replay;

namespace {

std::string data(const std::string &name) {
    return std::string(REPLAY_TEST_DATA) + "/" + name;
}

std::string firstLine(const Captured &c) {
    return c.data.substr(0, c.data.find("\r\n"));
}

bool samplesWarning(const ReadResult &r, const std::string &part) {
    for (const auto &w : r.warnings)
        if (w.find(part) != std::string::npos)
            return true;
    return false;
}

const char *const kCallThroughKamailio[] = {"INVITE sip:1001@127.0.0.1:26070 SIP/2.0",
                                            "INVITE sip:1001@127.0.0.1:26070 SIP/2.0",
                                            "SIP/2.0 180 Ringing",
                                            "SIP/2.0 180 Ringing",
                                            "SIP/2.0 200 OK",
                                            "SIP/2.0 200 OK",
                                            "ACK sip:1001@127.0.0.1:26070 SIP/2.0",
                                            "ACK sip:1001@127.0.0.1:26070 SIP/2.0",
                                            "BYE sip:1001@127.0.0.1:26070 SIP/2.0",
                                            "BYE sip:1001@127.0.0.1:26070 SIP/2.0",
                                            "SIP/2.0 200 OK",
                                            "SIP/2.0 200 OK"};

} // namespace

TEST_CASE("pcapng from tshark on loopback: SIPp through Kamailio, 12 UDP messages") {
    ReadResult r = readTrace(data("sipp-udp-kamailio.pcapng"));
    REQUIRE(r.messages.size() == 12);
    for (size_t i = 0; i < 12; ++i)
        CHECK(firstLine(r.messages[i]) == kCallThroughKamailio[i]);
    CHECK(r.messages[0].src.str() == "127.0.0.1:26072");
    CHECK(r.messages[0].dst.str() == "127.0.0.1:26070");
    CHECK(r.messages[1].dst.str() == "127.0.0.1:26071");
    CHECK(r.messages[0].time == Approx(1796136861.890896).epsilon(1e-13));
    CHECK(r.warnings.empty());
}

TEST_CASE("sngrep's text export and Kamailio's sipdump hold the same messages as the capture") {
    ReadResult wire = readTrace(data("sipp-udp-kamailio.pcapng"));
    ReadResult sngrep = readTrace(data("sngrep-export.txt"));
    ReadResult kam = readTrace(data("kamailio-sipdump.data"));
    REQUIRE(sngrep.messages.size() == wire.messages.size());
    REQUIRE(kam.messages.size() == wire.messages.size());
    for (size_t i = 0; i < wire.messages.size(); ++i) {
        INFO("message " << i);
        CHECK(sngrep.messages[i].data == wire.messages[i].data);
        CHECK(sngrep.messages[i].src == wire.messages[i].src);
        CHECK(sngrep.messages[i].dst == wire.messages[i].dst);
        CHECK(sngrep.messages[i].transport == Transport::Udp);
        CHECK(sngrep.messages[i].time == Approx(wire.messages[i].time).epsilon(1e-13));
        CHECK(kam.messages[i].data == wire.messages[i].data);
        CHECK(kam.messages[i].src == wire.messages[i].src);
        CHECK(kam.messages[i].dst == wire.messages[i].dst);
        CHECK(kam.messages[i].time == Approx(wire.messages[i].time).margin(0.001));
    }
    CHECK(kam.warnings.empty());
    CHECK(samplesWarning(sngrep, "transports taken from each message's top Via"));
}

TEST_CASE("Linux cooked captures: TCP on 'any' (SLL) and UDP in SLL2") {
    ReadResult tcp = readTrace(data("sipp-tcp-sll.pcapng"));
    REQUIRE(tcp.messages.size() == 6);
    CHECK(firstLine(tcp.messages[0]) == "INVITE sip:1002@127.0.0.1:26081 SIP/2.0");
    CHECK(firstLine(tcp.messages[5]) == "SIP/2.0 200 OK");
    CHECK(tcp.messages[0].transport == Transport::Tcp);
    CHECK(tcp.messages[0].src.str() == "127.0.0.1:26082");
    CHECK(tcp.warnings.empty());
    ReadResult udp = readTrace(data("sipp-udp-sll2.pcap"));
    REQUIRE(udp.messages.size() == 6);
    CHECK(firstLine(udp.messages[3]) == "ACK sip:1003@127.0.0.1:26091 SIP/2.0");
    CHECK(udp.messages[3].dst.str() == "127.0.0.1:26091");
}

TEST_CASE("SIPp -trace_msg logs: messages as logged, addresses inferred and said so") {
    ReadResult uac = readTrace(data("sipp-uac-trace_msg.log"));
    ReadResult wire = readTrace(data("sipp-udp-kamailio.pcapng"));
    REQUIRE(uac.messages.size() == 6);
    // the UAC sees the odd messages of the capture: its own and Kamailio's answers to it
    const size_t onWire[] = {0, 3, 5, 6, 8, 11};
    for (size_t i = 0; i < 6; ++i) {
        INFO("message " << i);
        CHECK(uac.messages[i].data == wire.messages[onWire[i]].data);
        CHECK(uac.messages[i].src == wire.messages[onWire[i]].src);
        CHECK(uac.messages[i].dst == wire.messages[onWire[i]].dst);
    }
    CHECK(uac.messages[0].time == Approx(1796136861.890918).epsilon(1e-13)); // read as UTC
    CHECK(samplesWarning(uac, "SIPp taken as 127.0.0.1:26072 (the Via of the first request it sent)"));

    ReadResult uas = readTrace(data("sipp-uas-trace_msg.log"));
    REQUIRE(uas.messages.size() == 6);
    CHECK(uas.messages[0].src.str() == "127.0.0.1:26070"); // Kamailio, from the top Via
    CHECK(uas.messages[0].dst.str() == "127.0.0.1:26071"); // SIPp, from its Contact
    CHECK(uas.messages[1].src.str() == "127.0.0.1:26071");

    ReadResult tcp = readTrace(data("sipp-uac-tcp-trace_msg.log")); // starts with SIPp's own diagnostics
    REQUIRE(tcp.messages.size() == 6);
    CHECK(tcp.messages[0].transport == Transport::Tcp);
    CHECK(tcp.messages[0].dst.str() == "127.0.0.1:26081");
}

TEST_CASE("Parkway's text trace") {
    ReadResult r = readTrace(data("parkway-text-trace.txt"));
    ReadResult wire = readTrace(data("sipp-udp-kamailio.pcapng"));
    REQUIRE(r.messages.size() == 8);
    for (size_t i = 0; i < 8; ++i) {
        CHECK(r.messages[i].data == wire.messages[i].data);
        CHECK(r.messages[i].src == wire.messages[i].src);
        CHECK(r.messages[i].time == Approx(wire.messages[i].time).epsilon(1e-13));
    }
    CHECK(r.warnings.empty());
}

TEST_CASE("Parkway's text trace: a record cut short is dropped with a warning, a bad header is an error") {
    std::string msg = "OPTIONS sip:a@example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    std::string head = "# parkway sip trace 1\n--- 2026-12-01T14:50:00.5Z recv tcp [::1]:5062 -> [::1]:5060 " +
                       std::to_string(msg.size()) + "\n";
    ReadResult r = readTraceBytes(head + msg + "\n" + head.substr(22) + msg.substr(0, 10), "pw.txt");
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].transport == Transport::Tcp);
    CHECK(r.messages[0].src.str() == "[::1]:5062");
    CHECK(r.messages[0].time == Approx(1796136600.5).epsilon(1e-13));
    CHECK(samplesWarning(r, "pw.txt: line 7: record cut short"));
    CHECK_THROWS_WITH(
        readTraceBytes("# parkway sip trace 1\n--- yesterday recv udp 1.2.3.4:5 -> 1.2.3.4:6 3\nabc\n", "bad.txt"),
        Catch::StartsWith("bad.txt: line 2: bad time 'yesterday'"));
    CHECK_THROWS_WITH(readTraceBytes("# parkway sip trace 1\nhello\n", "bad2.txt"),
                      Catch::StartsWith("bad2.txt: line 2: expected '--- TIME"));
}

TEST_CASE("truncated real captures: an error at the first frame, a warning later") {
    std::ifstream in(data("sipp-udp-sll2.pcap"), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() > 1000);
    CHECK_THROWS_WITH(readTraceBytes(bytes.substr(0, 30), "cut.pcap"), Catch::StartsWith("cut.pcap: frame 1: "));
    ReadResult r = readTraceBytes(bytes.substr(0, 1000), "cut.pcap");
    CHECK(!r.messages.empty());
    CHECK(r.messages.size() < 6);
    CHECK(samplesWarning(r, ": damaged capture"));
}
