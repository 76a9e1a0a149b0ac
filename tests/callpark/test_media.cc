// Media towards real phones (issue 10): music on hold in G.722, SDP origin continuity per leg (RFC 3264 §8),
// the connected party's identity (RFC 3325 P-Asserted-Identity) on the retrieve re-INVITE and its 200.
#include "park_env.hh"

#include <set>

#include <cmath>
extern "C" {
#include <spandsp/telephony.h>

#include <spandsp/g722.h>
}

using namespace parkway::test;
using nlohmann::json;

namespace {

// A wideband phone's offer: G.722 only (and DTMF events), RTP expected on 127.0.0.1:port.
std::string g722OnlyOffer(uint16_t port) {
    return "v=0\r\no=- 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + std::to_string(port) +
           " RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";
}

uint32_t be32(const std::string &p, size_t at) {
    return uint32_t(uint8_t(p[at])) << 24 | uint32_t(uint8_t(p[at + 1])) << 16 | uint32_t(uint8_t(p[at + 2])) << 8 |
           uint32_t(uint8_t(p[at + 3]));
}

} // namespace

TEST_CASE("a party offering only G.722 is parked with G.722 music: PT 9, 160-byte payloads, +160 timestamps",
          "[park][media]") {
    ParkEnv p;
    auto &caller = p.ua("caller");
    RawUdp media;
    RequestOptions o;
    o.from = "<" + aorOf("2001") + ">";
    o.to = "<sip:*68103@" + kDomain + ">";
    o.body = g722OnlyOffer(media.port());
    o.contentType = "application/sdp";
    auto &inv = caller.send("INVITE", "sip:*68103@" + kDomain, o);
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    const std::string answer = inv.response(200)->body();
    INFO(answer);
    CHECK(answer.find("RTP/AVP 9\r\n") != std::string::npos);
    CHECK(answer.find("a=rtpmap:9 G722/8000\r\n") != std::string::npos);
    CHECK(answer.find("a=sendonly") != std::string::npos);
    CHECK(answer.find("a=inactive") == std::string::npos);

    REQUIRE(p.env().runUntil([&] { return rtpCount(media) >= 25; }, 3000));
    std::vector<std::string> pkts;
    for (auto &d : media.received)
        if (d.size() >= 12 && (uint8_t(d[0]) >> 6) == 2)
            pkts.push_back(d);
    REQUIRE(pkts.size() >= 25);
    std::string payload;
    for (size_t i = 0; i < pkts.size(); ++i) {
        CHECK((uint8_t(pkts[i][1]) & 0x7F) == 9);
        CHECK(pkts[i].size() == 12 + 160); // 20 ms of G.722 at 64 kbit/s
        if (i > 0)
            CHECK(be32(pkts[i - 1], 4) + 160 == be32(pkts[i], 4)); // 8000 Hz RTP clock (RFC 3551 §4.5.2)
        payload += pkts[i].substr(12);
    }
    // Decoded, it is music, not silence.
    g722_decode_state_t *dec = g722_decode_init(nullptr, 64000, G722_SAMPLE_RATE_8000);
    REQUIRE(dec);
    std::vector<int16_t> pcm(payload.size() * 2);
    int n = g722_decode(dec, pcm.data(), reinterpret_cast<const uint8_t *>(payload.data()), int(payload.size()));
    g722_decode_free(dec);
    REQUIRE(n > 0);
    double energy = 0;
    for (int i = 0; i < n; ++i)
        energy += double(pcm[i]) * pcm[i];
    CHECK(std::sqrt(energy / n) > 100);
}

namespace {

// The fields of an SDP's o= line: username, sess-id, sess-version, nettype, addrtype, address.
std::vector<std::string> originOf(const std::string &sdp) {
    auto at = sdp.find("o=");
    REQUIRE(at != std::string::npos);
    std::string line = sdp.substr(at + 2, sdp.find("\r\n", at) - at - 2);
    std::vector<std::string> f;
    size_t i = 0;
    while (i < line.size()) {
        size_t j = line.find(' ', i);
        if (j == std::string::npos)
            j = line.size();
        f.push_back(line.substr(i, j - i));
        i = j + 1;
    }
    REQUIRE(f.size() == 6);
    return f;
}

// Every SDP the parked party received from Parkway, in order: the park 200, then its incoming INVITEs' offers.
std::vector<std::string> sdpsTo(Client &park, TestUa &ua) {
    std::vector<std::string> v{park.response(200)->body()};
    for (auto &in : ua.incoming)
        if (in->request.method() == "INVITE" && !in->request.body().empty())
            v.push_back(in->request.body());
    return v;
}

// Same username / session id / address throughout; version +1 where the body (o= aside) changed, same where not.
void checkOriginContinuity(const std::vector<std::string> &sdps) {
    REQUIRE(sdps.size() >= 2);
    auto first = originOf(sdps[0]);
    CHECK(first[0] == "parkway");
    auto stripped = [](const std::string &sdp) {
        auto at = sdp.find("o=");
        return sdp.substr(0, at) + sdp.substr(sdp.find("\r\n", at));
    };
    for (size_t i = 1; i < sdps.size(); ++i) {
        INFO("SDP #" << i << ":\n" << sdps[i] << "previous:\n" << sdps[i - 1]);
        auto o = originOf(sdps[i]), prev = originOf(sdps[i - 1]);
        CHECK(o[0] == first[0]);
        CHECK(o[1] == first[1]);
        CHECK(o[3] == first[3]);
        CHECK(o[4] == first[4]);
        CHECK(o[5] == first[5]);
        uint64_t v = std::stoull(o[2]), pv = std::stoull(prev[2]);
        if (stripped(sdps[i]) == stripped(sdps[i - 1]))
            CHECK(v == pv);
        else
            CHECK(v == pv + 1);
    }
}

} // namespace

TEST_CASE("every SDP a leg receives keeps that leg's o= and moves its version by one per change (RFC 3264 §8)",
          "[retrieve][media]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &park = p.invite(a, "2001", "*68103", ma.port(), {}, "Parked 2001");
    REQUIRE(p.waitFinal(park));
    REQUIRE(park.finalStatus == 200);

    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5030);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    REQUIRE(a.count("INVITE") == 1);
    CHECK(sdpAudioPort(a.last("INVITE")->request.body()) == 5030);

    // The retriever moves its media, then refreshes the session with the same SDP (RFC 4028 style).
    RequestOptions moved;
    moved.body = offerSdp(5032);
    moved.contentType = "application/sdp";
    auto &re1 = r.inDialog(ret, "INVITE", moved);
    REQUIRE(p.waitFinal(re1));
    REQUIRE(re1.finalStatus == 200);
    auto &re2 = r.inDialog(ret, "INVITE", moved);
    REQUIRE(p.waitFinal(re2));
    REQUIRE(re2.finalStatus == 200);
    REQUIRE(a.count("INVITE") == 3);

    // The parked party: our hold answer's origin throughout (the retriever's o= never shows), +1 per change.
    auto toParked = sdpsTo(park, a);
    REQUIRE(toParked.size() == 4);
    checkOriginContinuity(toParked);
    CHECK(std::stoull(originOf(toParked[1])[2]) == std::stoull(originOf(toParked[0])[2]) + 1);
    CHECK(std::stoull(originOf(toParked[3])[2]) == std::stoull(originOf(toParked[2])[2])); // unchanged re-send
    CHECK(sdpAudioPort(toParked[3]) == 5032);

    // The retriever: an origin of its own (not the parked party's "o=- 2 2"), the same for every answer;
    // the parked party answered the same SDP each time, so the version stays.
    std::vector<std::string> toRetriever{ret.response(200)->body(), re1.response(200)->body(),
                                         re2.response(200)->body()};
    for (auto &sdp : toRetriever)
        CHECK(sdpAudioPort(sdp) == ma.port());
    CHECK(originOf(toRetriever[0])[1] != originOf(toParked[0])[1]);
    checkOriginContinuity(toRetriever);
}

TEST_CASE("the parked party learns who picked up, the retriever whom it got: P-Asserted-Identity (RFC 3325)",
          "[retrieve][media]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &park = p.invite(a, "2001", "*68103", ma.port(), {}, "Parked Pat");
    REQUIRE(p.waitFinal(park));
    REQUIRE(park.finalStatus == 200);

    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5040, {}, "Rita Retriever");
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    Incoming *reinv = a.last("INVITE");
    REQUIRE(reinv);
    // The re-INVITE's From is still the park dialog's (the feature code); PAI names the retriever.
    CHECK(reinv->request.header("From").find("*68103") != std::string::npos);
    CHECK(reinv->request.header("P-Asserted-Identity") == "\"Rita Retriever\" <" + aorOf("1005") + ">");
    // The retriever's 200 names the parked party.
    CHECK(ret.response(200)->header("P-Asserted-Identity") == "\"Parked Pat\" <" + aorOf("2001") + ">");
}

TEST_CASE("connected_identity = false sends no P-Asserted-Identity on retrieve", "[retrieve][media]") {
    ParkEnvOptions opts;
    opts.params["connected_identity"] = "false";
    ParkEnv p(opts);
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &park = p.invite(a, "2001", "*68103", ma.port(), {}, "Parked Pat");
    REQUIRE(p.waitFinal(park));
    REQUIRE(park.finalStatus == 200);
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5042, {}, "Rita Retriever");
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    REQUIRE(a.last("INVITE"));
    CHECK(a.last("INVITE")->request.header("P-Asserted-Identity").empty());
    CHECK(ret.response(200)->header("P-Asserted-Identity").empty());
}

TEST_CASE("a recall answered: the parked party's re-INVITE names the recalled party and keeps our o=",
          "[recall][media]") {
    ParkEnv p;
    int st = 0;
    p.command("domains.set",
              {{"domain", kDomain}, {"recall", {{"recall_seconds", 1}, {"ring_seconds", 5}, {"retry_seconds", 1}}}},
              &st);
    REQUIRE(st == 200);
    auto &parker = p.phone("1003");
    parker.autoAnswer("INVITE", 200, offerSdp(5100), "application/sdp");
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &park = p.invite(a, "2001", "*68", ma.port(), {"Referred-By: <" + aorOf("1003") + ">"}, "Alice");
    REQUIRE(p.waitFinal(park));
    REQUIRE(park.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return a.count("INVITE") >= 1; }, 8000));
    Incoming *reinv = a.last("INVITE");
    CHECK(sdpAudioPort(reinv->request.body()) == 5100);
    CHECK(reinv->request.header("P-Asserted-Identity") == "<" + aorOf("1003") + ">");
    checkOriginContinuity(sdpsTo(park, a));
}

TEST_CASE("an offer the parked party refused is not the baseline: the same offer again takes a new version",
          "[retrieve][media]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &park = p.invite(a, "2001", "*68103", ma.port());
    REQUIRE(p.waitFinal(park));
    REQUIRE(park.finalStatus == 200);
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5050);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);

    RequestOptions moved;
    moved.body = offerSdp(5052);
    moved.contentType = "application/sdp";
    a.clearRules();
    a.autoAnswer("INVITE", 488);
    auto &re1 = r.inDialog(ret, "INVITE", moved);
    REQUIRE(p.waitFinal(re1));
    REQUIRE(re1.finalStatus == 488);
    a.clearRules();
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &re2 = r.inDialog(ret, "INVITE", moved);
    REQUIRE(p.waitFinal(re2));
    REQUIRE(re2.finalStatus == 200);

    auto toParked = sdpsTo(park, a);
    REQUIRE(toParked.size() == 4);
    uint64_t refused = std::stoull(originOf(toParked[2])[2]), again = std::stoull(originOf(toParked[3])[2]);
    CHECK(sdpAudioPort(toParked[3]) == 5052);
    CHECK(again == refused + 1); // the parked party kept the session before the refused offer
    CHECK(originOf(toParked[3])[1] == originOf(toParked[0])[1]);
}

namespace {
// One even UDP port on 127.0.0.1 free right now.
uint16_t freeEvenPort() {
    for (uint16_t p = static_cast<uint16_t>(41000 + 2 * (::getpid() % 4000)), i = 0; i < 2000; ++i) {
        uint16_t port = static_cast<uint16_t>(41000 + (p - 41000 + 2 * i) % 8000);
        if (udpPortFree(port))
            return port;
    }
    FAIL("no free even UDP port");
    return 0;
}
std::set<uint32_t> ssrcsOf(RawUdp &s) {
    s.poll();
    std::set<uint32_t> out;
    for (auto &d : s.received)
        if (d.size() >= 12 && (uint8_t(d[0]) >> 6) == 2)
            out.insert(be32(d, 8));
    return out;
}
} // namespace

TEST_CASE("music on hold at scale: two parked calls share one port (moh_streams_per_port), each its own stream",
          "[park][media][moh]") {
    // One even port in the range: with moh_streams_per_port 1 the second park would be a 503 (test_hardening).
    const uint16_t port = freeEvenPort();
    ParkEnvOptions o;
    o.params = {{"moh_port_min", std::to_string(port)}, {"moh_port_max", std::to_string(port)}};
    ParkEnv p(o);
    auto &a = p.ua("a");
    auto &b = p.ua("b");
    RawUdp ma, mb;
    auto &pa = p.invite(a, "2001", "*68101", ma.port());
    auto &pb = p.invite(b, "2002", "*68102", mb.port());
    REQUIRE(p.waitFinal(pa));
    REQUIRE(p.waitFinal(pb));
    REQUIRE(pa.finalStatus == 200);
    REQUIRE(pb.finalStatus == 200);
    // Our SDP names the shared port for both (RFC 3550 §8: the SSRC tells the streams apart, not the port).
    CHECK(sdpAudioPort(pa.response(200)->body()) == port);
    CHECK(sdpAudioPort(pb.response(200)->body()) == port);
    REQUIRE(p.env().runUntil([&] { return rtpCount(ma) >= 10 && rtpCount(mb) >= 10; }, 3000));
    auto sa = ssrcsOf(ma), sb = ssrcsOf(mb);
    REQUIRE(sa.size() == 1);
    REQUIRE(sb.size() == 1);
    CHECK(*sa.begin() != *sb.begin());
    // Each party's RTP, from exactly its SDP address:port, latches its own stream on the shared port.
    std::string packet("\x80\x00\x00\x01\0\0\0\0\0\0\0\x07", 12);
    REQUIRE(ma.sendTo(port, packet));
    REQUIRE(mb.sendTo(port, packet));
    p.env().runFor(300);
    // One hangs up: its music stops, the other's plays on.
    auto &bye = a.inDialog(pa, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 1; }));
    p.env().runFor(100);
    ma.poll();
    ma.received.clear();
    size_t before = rtpCount(mb);
    p.env().runFor(300);
    CHECK(rtpCount(ma) == 0);
    CHECK(rtpCount(mb) >= before + 5);
    CHECK(ssrcsOf(mb) == sb);
    CHECK(p.metric("parkway_moh_streams_total", "latched=\"true\"") == 1); // a's stream had latched
}

TEST_CASE("music on hold behind a front proxy: parks a trusted peer relays share a port, direct parks from one IP "
          "spread over the range",
          "[park][media][moh][front-proxy]") {
    // Two even ports, 16 streams each (the default moh_streams_per_port); 127.0.0.2 is the trusted front proxy.
    auto pairFree = [](uint16_t c) { return udpPortFree(c) && udpPortFree(static_cast<uint16_t>(c + 2)); };
    uint16_t port = freeEvenPort();
    for (int i = 0; i < 2000 && !pairFree(port); ++i)
        port = static_cast<uint16_t>(41000 + (port - 41000 + 2) % 8000);
    REQUIRE(pairFree(port));
    ParkEnvOptions o;
    o.params = {{"moh_port_min", std::to_string(port)}, {"moh_port_max", std::to_string(port + 2)}};
    o.core = [](parkway::proxy::CoreConfig &c) { c.trustedPeers = {"127.0.0.2"}; };
    ParkEnv p(o);
    // Two phones signalling from one address (as phones behind one NAT do): a port each while the range has room.
    auto &a = p.ua("a");
    auto &b = p.ua("b");
    auto &pa = p.invite(a, "2001", "*68101", 4340);
    auto &pb = p.invite(b, "2002", "*68102", 4342);
    REQUIRE(p.waitFinal(pa));
    REQUIRE(p.waitFinal(pb));
    REQUIRE(pa.finalStatus == 200);
    REQUIRE(pb.finalStatus == 200);
    CHECK(sdpAudioPort(pa.response(200)->body()) != sdpAudioPort(pb.response(200)->body()));
    // Two parties the front proxy relays: its address is not theirs, so they share the first port with room.
    auto peer = p.env().makeUa("kamailio", "sip:127.0.0.2:*");
    RawUdp m1, m2;
    uint16_t got[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
        RequestOptions r;
        r.from = "<sip:+4930555000" + std::to_string(i) + "@carrier.example.net>";
        r.to = "<sip:*6810" + std::to_string(3 + i) + "@" + kDomain + ">";
        r.headers = {"P-Asserted-Identity: <sip:+4930555000" + std::to_string(i) + "@carrier.example.net>"};
        r.body = offerSdp(i == 0 ? m1.port() : m2.port());
        r.contentType = "application/sdp";
        r.nextHop = p.env().proxyUri();
        auto &c = peer->send("INVITE", "sip:*6810" + std::to_string(3 + i) + "@" + kDomain, r);
        REQUIRE(p.waitFinal(c));
        REQUIRE(c.finalStatus == 200);
        got[i] = sdpAudioPort(c.response(200)->body());
    }
    CHECK(got[0] == got[1]);
    CHECK((got[0] == port || got[0] == port + 2));
    // Each hears its own stream on the shared port (one SSRC each, RFC 3550 §8).
    REQUIRE(p.env().runUntil([&] { return rtpCount(m1) >= 10 && rtpCount(m2) >= 10; }, 3000));
    auto s1 = ssrcsOf(m1), s2 = ssrcsOf(m2);
    REQUIRE(s1.size() == 1);
    REQUIRE(s2.size() == 1);
    CHECK(*s1.begin() != *s2.begin());
}
