// Text trace readers on hand-written variations of the real formats (tests/replay/data/ has the real files):
// IPv6 and TCP in Kamailio's sipdump and sngrep's export, SIPp stream reads holding two messages, damaged records.
#include "trace.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;

namespace {

bool textWarning(const ReadResult &r, const std::string &part) {
    for (const auto &w : r.warnings)
        if (w.find(part) != std::string::npos)
            return true;
    return false;
}

const std::string kOptions = "OPTIONS sip:1002@example.com SIP/2.0\r\nVia: SIP/2.0/TCP [::1]:5062;branch=z9hG4bK1\r\n"
                             "Call-ID: t1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
const std::string kOk = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP [::1]:5062;branch=z9hG4bK1\r\nCall-ID: t1\r\n"
                        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

std::string kamRecord(const std::string &tag, const std::string &proto, const std::string &src, const std::string &dst,
                      const std::string &msg) {
    auto colon = [](const std::string &a) { return a.rfind(':'); };
    return "====================\ntag: " + tag +
           "\npid: 100\nprocess: 1\ntime: 1796136861.500000\n"
           "date: Tue Dec  1 14:54:21 2026\nproto: " +
           proto + "\nsrcip: " + src.substr(0, colon(src)) + "\nsrcport: " + src.substr(colon(src) + 1) +
           "\ndstip: " + dst.substr(0, colon(dst)) + "\ndstport: " + dst.substr(colon(dst) + 1) +
           "\n~~~~~~~~~~~~~~~~~~~~\n" + msg + "||||||||||||||||||||\n";
}

} // namespace

TEST_CASE("Kamailio sipdump: TCP over IPv6, bracketed addresses, a record cut short") {
    std::string file = kamRecord("rcv", "tcp ipv6", "::1:5062", "[::1]:5060", kOptions) +
                       kamRecord("snd", "tcp ipv6", "[::1]:5060", "::1:5062", kOk);
    ReadResult r = readTraceBytes(file + file.substr(0, 150), "k.data");
    REQUIRE(r.messages.size() == 2);
    CHECK(r.messages[0].transport == Transport::Tcp);
    CHECK(r.messages[0].src.str() == "[::1]:5062");
    CHECK(r.messages[0].dst.str() == "[::1]:5060");
    CHECK(r.messages[0].data == kOptions);
    CHECK(r.messages[1].data == kOk);
    CHECK(r.messages[0].time == Approx(1796136861.5).epsilon(1e-13));
    CHECK(textWarning(r, "k.data: record 3 (line 39): cut short, dropped"));
}

TEST_CASE("sngrep export: IPv6 addresses, transport from the Via, messages put back in time order") {
    // sngrep writes dialog by dialog: here the second dialog's message is older than the first one's answer
    std::string other = "MESSAGE sip:x@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK2\r\n"
                        "Content-Length: 2\r\n\r\nhi";
    std::string file = "2026/12/01 14:54:21.100000 [::1]:5062 -> [::1]:5060\n" + kOptions + "\n\n" +
                       "2026/12/01 14:54:21.300000 [::1]:5060 -> [::1]:5062\n" + kOk + "\n\n" +
                       "2026/12/01 14:54:21.200000 127.0.0.1:5070 -> 127.0.0.1:5060\n" + other + "\n\n";
    ReadResult r = readTraceBytes(file, "s.txt");
    REQUIRE(r.messages.size() == 3);
    CHECK(r.messages[0].data == kOptions);
    CHECK(r.messages[0].transport == Transport::Tcp);
    CHECK(r.messages[0].src.str() == "[::1]:5062");
    CHECK(r.messages[1].data == other);
    CHECK(r.messages[1].transport == Transport::Udp);
    CHECK(r.messages[2].data == kOk);
    CHECK(r.messages[2].time == Approx(1796136861.3).epsilon(1e-13));
}

TEST_CASE("SIPp log: a stream read holding two messages is split, a received-only log uses the Via") {
    std::string both = kOptions + kOptions;
    std::string file = "----------------------------------------------- 2026-12-01 14:54:21.000001\n"
                       "TCP message received [" +
                       std::to_string(both.size()) + "] bytes :\n\n" + both +
                       "\n"
                       "----------------------------------------------- 2026-12-01 14:54:21.000002\n"
                       "TCP message sent (" +
                       std::to_string(kOk.size()) + " bytes):\n\n" + kOk + "\n";
    ReadResult r = readTraceBytes(file, "sipp.log");
    REQUIRE(r.messages.size() == 3);
    CHECK(r.messages[0].data == kOptions);
    CHECK(r.messages[1].data == kOptions);
    CHECK(r.messages[0].src.str() == "[::1]:5062"); // the top Via of the request SIPp received
    CHECK(r.messages[2].dst.str() == "[::1]:5062");
    CHECK(r.messages[2].src.str() == "0.0.0.0:0"); // nothing tells SIPp's own address: said so
    CHECK(textWarning(r, "SIPp taken as 0.0.0.0:0 (nothing (0.0.0.0:0))"));
}

TEST_CASE("text traces that are not what they claim give clear errors or warnings") {
    CHECK_THROWS_WITH(readTraceBytes("# parkway sip trace 2\n", "v2.txt"),
                      "v2.txt: not a pcap, pcapng or known text trace");
    ReadResult r = readTraceBytes("====================\ntag: rcv\nno data marker\n", "k.data");
    CHECK(r.messages.empty());
    CHECK(textWarning(r, "k.data: record 1 (line 1): cut short, dropped"));
}
