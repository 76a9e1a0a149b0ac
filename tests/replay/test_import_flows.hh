// Hand-written SIP flows for the importer tests (tests/replay/test_import_*.cc): a park by REFER through
// Parkway as a proxy (passthrough), as Captured messages the way a trace reader returns them.
#pragma once
#include "trace.hh"

#include <string>
#include <vector>

namespace replaytest {

using parkway::replay::Captured;

// One captured message: LF -> CRLF, "Content-Length: ?" filled with the body's size.
inline Captured cap(double t, const char *src, const char *dst, std::string text) {
    std::string wire;
    for (char c : text) {
        if (c == '\n')
            wire += '\r';
        wire += c;
    }
    auto blank = wire.find("\r\n\r\n");
    size_t body = blank == std::string::npos ? 0 : wire.size() - blank - 4;
    auto cl = wire.find("Content-Length: ?");
    if (cl != std::string::npos)
        wire.replace(cl, 17, "Content-Length: " + std::to_string(body));
    Captured c;
    c.time = t;
    c.src = parkway::replay::parseAddress(src);
    c.dst = parkway::replay::parseAddress(dst);
    c.data = wire;
    return c;
}

constexpr const char *A = "127.0.0.1:5062"; // alice, user 1001: the caller, later the transferee (parked)
constexpr const char *B = "127.0.0.1:5064"; // bob, user 1002: the callee, who presses Park
constexpr const char *S = "127.0.0.1:5060"; // Parkway

inline std::string sdp(const char *user, const char *sess, const char *ver, int port) {
    return std::string("v=0\no=") + user + " " + sess + " " + ver + " IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\n" +
           "t=0 0\nm=audio " + std::to_string(port) + " RTP/AVP 0\na=rtpmap:0 PCMU/8000\na=sendrecv\n";
}

// Bob parks Alice on slot 103: call, REFER to *68103 (relayed to Alice), 202, sipfrag NOTIFYs, Alice's
// INVITE *68103 (answered by Parkway), Bob hangs up.
inline std::vector<Captured> parkByRefer() {
    const std::string viaA = "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-a-inv1;rport\n";
    const std::string viaS1 = "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s-inv1\n";
    const std::string dlgAB = "From: \"Alice\" <sip:1001@pbx.example.com>;tag=alice-tag-1\n"
                              "To: <sip:1002@pbx.example.com>;tag=bob-tag-1\nCall-ID: call-one-xyz@127.0.0.1\n";
    const std::string dlgBA = "From: <sip:1002@pbx.example.com>;tag=bob-tag-1\n"
                              "To: \"Alice\" <sip:1001@pbx.example.com>;tag=alice-tag-1\n"
                              "Call-ID: call-one-xyz@127.0.0.1\n";
    const std::string rr = "Record-Route: <sip:127.0.0.1:5060;lr>\n";
    std::vector<Captured> v;
    std::string invite = "INVITE sip:1002@pbx.example.com SIP/2.0\n" + viaA +
                         "From: \"Alice\" <sip:1001@pbx.example.com>;tag=alice-tag-1\n"
                         "To: <sip:1002@pbx.example.com>\nCall-ID: call-one-xyz@127.0.0.1\nCSeq: 10 INVITE\n"
                         "Contact: <sip:1001@127.0.0.1:5062>\nMax-Forwards: 70\nContent-Type: application/sdp\n"
                         "Content-Length: ?\n\n" +
                         sdp("1001", "4000", "4000", 6000);
    v.push_back(cap(100.000, A, S, invite));
    v.push_back(cap(100.001, S, A,
                    "SIP/2.0 100 Trying\n" + viaA +
                        "From: \"Alice\" <sip:1001@pbx.example.com>;tag=alice-tag-1\n"
                        "To: <sip:1002@pbx.example.com>\nCall-ID: call-one-xyz@127.0.0.1\nCSeq: 10 INVITE\n"
                        "Content-Length: 0\n\n"));
    v.push_back(cap(100.002, S, B,
                    "INVITE sip:1002@127.0.0.1:5064 SIP/2.0\n" + viaS1 + viaA + rr +
                        "From: \"Alice\" <sip:1001@pbx.example.com>;tag=alice-tag-1\n"
                        "To: <sip:1002@pbx.example.com>\nCall-ID: call-one-xyz@127.0.0.1\nCSeq: 10 INVITE\n"
                        "Contact: <sip:1001@127.0.0.1:5062>\nMax-Forwards: 69\nContent-Type: application/sdp\n"
                        "Content-Length: ?\n\n" +
                        sdp("1001", "4000", "4000", 6000)));
    std::string ok = "SIP/2.0 200 OK\n" + viaS1 + viaA + rr + dlgAB +
                     "CSeq: 10 INVITE\nContact: <sip:1002@127.0.0.1:5064>\nContent-Type: application/sdp\n"
                     "Content-Length: ?\n\n" +
                     sdp("1002", "5000", "5000", 6002);
    v.push_back(cap(100.500, B, S, ok));
    v.push_back(cap(100.501, S, A,
                    "SIP/2.0 200 OK\n" + viaA + rr + dlgAB +
                        "CSeq: 10 INVITE\nContact: <sip:1002@127.0.0.1:5064>\nContent-Type: application/sdp\n"
                        "Content-Length: ?\n\n" +
                        sdp("1002", "5000", "5000", 6002)));
    v.push_back(cap(100.510, A, S,
                    "ACK sip:1002@127.0.0.1:5064 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-a-ack1\n"
                    "Route: <sip:127.0.0.1:5060;lr>\n" +
                        dlgAB + "CSeq: 10 ACK\nContent-Length: 0\n\n"));
    v.push_back(cap(100.511, S, B,
                    "ACK sip:1002@127.0.0.1:5064 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s-ack1\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-a-ack1\n" +
                        dlgAB + "CSeq: 10 ACK\nContent-Length: 0\n\n"));
    // Bob presses Park -> 103: a blind transfer to *68103 (RFC 3515), through the proxy to Alice.
    const std::string viaB = "Via: SIP/2.0/UDP 127.0.0.1:5064;branch=z9hG4bK-b-ref1\n";
    const std::string viaS2 = "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s-ref1\n";
    const std::string refer = "CSeq: 7 REFER\nContact: <sip:1002@127.0.0.1:5064>\n"
                              "Refer-To: <sip:*68103@pbx.example.com>\nReferred-By: <sip:1002@pbx.example.com>\n"
                              "Content-Length: 0\n\n";
    v.push_back(
        cap(102.000, B, S,
            "REFER sip:1001@127.0.0.1:5062 SIP/2.0\n" + viaB + "Route: <sip:127.0.0.1:5060;lr>\n" + dlgBA + refer));
    v.push_back(cap(102.001, S, A, "REFER sip:1001@127.0.0.1:5062 SIP/2.0\n" + viaS2 + viaB + dlgBA + refer));
    v.push_back(cap(102.010, A, S,
                    "SIP/2.0 202 Accepted\n" + viaS2 + viaB + dlgBA +
                        "CSeq: 7 REFER\n"
                        "Contact: <sip:1001@127.0.0.1:5062>\nContent-Length: 0\n\n"));
    v.push_back(cap(102.011, S, B,
                    "SIP/2.0 202 Accepted\n" + viaB + dlgBA +
                        "CSeq: 7 REFER\n"
                        "Contact: <sip:1001@127.0.0.1:5062>\nContent-Length: 0\n\n"));
    auto notify = [&](double t, const char *branch, int cseq, const char *state, const char *frag) {
        std::string n = std::string("NOTIFY sip:1002@127.0.0.1:5064 SIP/2.0\n") +
                        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=" + branch + "\n" + dlgAB +
                        "CSeq: " + std::to_string(cseq) +
                        " NOTIFY\nContact: <sip:1001@127.0.0.1:5062>\n"
                        "Event: refer;id=7\nSubscription-State: " +
                        state +
                        "\n"
                        "Content-Type: message/sipfrag;version=2.0\nContent-Length: ?\n\n" +
                        frag + "\n";
        std::string relayed = n;
        relayed.insert(relayed.find("Via:"),
                       std::string("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s-") + branch + "\n");
        v.push_back(cap(t, A, S, n));
        v.push_back(cap(t + 0.001, S, B, relayed));
        std::string ok = "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s-" + std::string(branch) +
                         "\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=" + branch + "\n" + dlgAB +
                         "CSeq: " + std::to_string(cseq) + " NOTIFY\nContent-Length: 0\n\n";
        v.push_back(cap(t + 0.010, B, S, ok));
        std::string ok2 = ok;
        ok2.erase(ok2.find("Via: SIP/2.0/UDP 127.0.0.1:5060"),
                  ok2.find("Via: SIP/2.0/UDP 127.0.0.1:5062") - ok2.find("Via: SIP/2.0/UDP 127.0.0.1:5060"));
        v.push_back(cap(t + 0.011, S, A, ok2));
    };
    notify(102.020, "z9hG4bK-a-n1", 11, "active;expires=60", "SIP/2.0 100 Trying");
    // Alice follows the REFER: INVITE *68103, Parkway answers it (the call is parked).
    std::string parkInvite = "INVITE sip:*68103@pbx.example.com SIP/2.0\n"
                             "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-a-park1\n"
                             "From: \"Alice\" <sip:1001@pbx.example.com>;tag=alice-park-tag\n"
                             "To: <sip:*68103@pbx.example.com>\nCall-ID: park-call-2@127.0.0.1\nCSeq: 1 INVITE\n"
                             "Contact: <sip:1001@127.0.0.1:5062>\nReferred-By: <sip:1002@pbx.example.com>\n"
                             "Content-Type: application/sdp\nContent-Length: ?\n\n" +
                             sdp("1001", "4000", "4001", 6000);
    v.push_back(cap(102.030, A, S, parkInvite));
    std::string parkDlg = "From: \"Alice\" <sip:1001@pbx.example.com>;tag=alice-park-tag\n"
                          "To: <sip:*68103@pbx.example.com>;tag=pw-srv-tag-9\nCall-ID: park-call-2@127.0.0.1\n";
    v.push_back(cap(102.040, S, A,
                    "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-a-park1\n" + parkDlg +
                        "CSeq: 1 INVITE\nContact: <sip:127.0.0.1:5060>\nContent-Type: application/sdp\n"
                        "Content-Length: ?\n\n" +
                        sdp("parkway", "777", "1", 30000)));
    v.push_back(cap(102.050, A, S,
                    "ACK sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-a-pack\n" +
                        parkDlg + "CSeq: 1 ACK\nContent-Length: 0\n\n"));
    notify(102.060, "z9hG4bK-a-n2", 12, "terminated;reason=noresource", "SIP/2.0 200 OK");
    v.push_back(cap(103.000, B, S,
                    "BYE sip:1001@127.0.0.1:5062 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5064;branch=z9hG4bK-b-bye\n"
                    "Route: <sip:127.0.0.1:5060;lr>\n" +
                        dlgBA + "CSeq: 8 BYE\nContent-Length: 0\n\n"));
    return v;
}

} // namespace replaytest
