// Media towards real phones (issue 10): music on hold in G.722, SDP origin continuity per leg (RFC 3264 §8),
// the connected party's identity (RFC 3325 P-Asserted-Identity) on the retrieve re-INVITE and its 200.
#include "park_env.hh"

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
