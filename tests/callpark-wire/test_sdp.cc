#include <catch2/catch.hpp>

#include "wire/sdp.hh"

using namespace parkway::callpark;

namespace {
const char *kOffer = "v=0\r\n"
                     "o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
                     "s=-\r\n"
                     "c=IN IP4 192.0.2.10\r\n"
                     "t=0 0\r\n"
                     "m=audio 49170 RTP/AVP 18 8 0 101\r\n"
                     "a=rtpmap:18 G729/8000\r\n"
                     "a=rtpmap:8 PCMA/8000\r\n"
                     "a=rtpmap:0 PCMU/8000\r\n"
                     "a=rtpmap:101 telephone-event/8000\r\n"
                     "a=fmtp:101 0-16\r\n"
                     "a=ptime:30\r\n"
                     "a=sendrecv\r\n";
} // namespace

TEST_CASE("parseSdp reads connection, first audio port, payload types, rtpmap, direction, ptime") {
    std::string err;
    auto s = parseSdp(kOffer, &err);
    REQUIRE(s);
    CHECK(s->sessionId == 2890844526u);
    CHECK(s->sessionVersion == 2890844526u);
    CHECK(s->originAddr == "192.0.2.10");
    const SdpMedia *a = s->audio();
    REQUIRE(a);
    CHECK(a->port == 49170);
    CHECK(a->connectionAddr == "192.0.2.10");
    CHECK(a->payloadTypes == std::vector<int>{18, 8, 0, 101});
    REQUIRE(a->rtpmaps.size() == 4);
    CHECK(a->rtpmaps[1].encoding == "PCMA");
    CHECK(a->rtpmaps[1].clockRate == 8000);
    CHECK(a->ptime == 30);
    CHECK(a->direction == SdpDirection::SendRecv);
}

TEST_CASE("parseSdp: media-level c= and direction override session level, LF line ends accepted") {
    auto s = parseSdp("v=0\no=- 1 2 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=recvonly\n"
                      "m=video 5000 RTP/AVP 96\n"
                      "m=audio 6000 RTP/AVP 0\nc=IN IP4 10.0.0.2\na=sendonly\n");
    REQUIRE(s);
    REQUIRE(s->media.size() == 2);
    CHECK(s->media[0].direction == SdpDirection::RecvOnly); // inherited from session level
    CHECK(s->media[0].connectionAddr == "10.0.0.1");
    REQUIRE(s->audio() == &s->media[1]);
    CHECK(s->audio()->connectionAddr == "10.0.0.2");
    CHECK(s->audio()->direction == SdpDirection::SendOnly);
}

TEST_CASE("parseSdp rejects malformed SDP with a message naming the line, never crashes") {
    struct Case {
        const char *sdp;
        const char *needle;
    };
    const Case cases[] = {
        {"", "empty"},
        {"hello world", "line 1"},
        {"o=- 1 1 IN IP4 1.2.3.4\r\n", "v="},
        {"v=1\r\n", "version"},
        {"v=0\r\n", "no o="},
        {"v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n", "bad o="},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio notaport RTP/AVP 0\r\n", "bad m="},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n", "bad m="},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP\r\n", "bad m="},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\n", "no c="},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4\r\n", "bad c="},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
         "rtpmap"},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
         "rtpmap"},
        {"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/abc\r\n",
         "clock"},
    };
    for (const auto &c : cases) {
        std::string err;
        INFO("sdp: " << c.sdp);
        CHECK_FALSE(parseSdp(c.sdp, &err));
        CHECK_THAT(err, Catch::Contains(c.needle));
    }
    // Random garbage of every length does not crash.
    std::string junk =
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 0 8\r\na=rtpmap:8 PCMA/8000";
    for (size_t i = 0; i <= junk.size(); ++i)
        (void)parseSdp(junk.substr(0, i));
}

TEST_CASE("buildHoldAnswer picks PCMU or PCMA in the offer's order, sendonly, our address") {
    auto s = parseSdp(kOffer);
    REQUIRE(s);
    HoldAnswer a = buildHoldAnswer(*s, "127.0.0.1", 20000, 42, 1);
    CHECK(a.chosenPt == 8); // G729 first is not playable, PCMA comes before PCMU
    CHECK(a.direction == SdpDirection::SendOnly);
    CHECK(a.remoteIp == "192.0.2.10");
    CHECK(a.remotePort == 49170);
    CHECK(a.sdp == "v=0\r\n"
                   "o=parkway 42 1 IN IP4 127.0.0.1\r\n"
                   "s=parkway\r\n"
                   "c=IN IP4 127.0.0.1\r\n"
                   "t=0 0\r\n"
                   "m=audio 20000 RTP/AVP 8\r\n"
                   "a=rtpmap:8 PCMA/8000\r\n"
                   "a=ptime:20\r\n"
                   "a=sendonly\r\n");
    // The answer itself parses.
    auto back = parseSdp(a.sdp);
    REQUIRE(back);
    CHECK(back->audio()->direction == SdpDirection::SendOnly);
}

TEST_CASE("buildHoldAnswer direction follows RFC 3264 §6.1 for a listen-only parked party") {
    auto offerWith = [](const char *dir) {
        return std::string("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                           "m=audio 4000 RTP/AVP 0\r\na=") +
               dir + "\r\n";
    };
    auto dirOf = [&](const char *d) {
        auto s = parseSdp(offerWith(d));
        REQUIRE(s);
        return buildHoldAnswer(*s, "127.0.0.1", 20000, 1, 1);
    };
    CHECK(dirOf("sendrecv").direction == SdpDirection::SendOnly);
    CHECK(dirOf("recvonly").direction == SdpDirection::SendOnly);
    CHECK(dirOf("sendonly").direction == SdpDirection::Inactive);
    CHECK(dirOf("inactive").direction == SdpDirection::Inactive);
    CHECK_THAT(dirOf("sendonly").sdp, Catch::Contains("a=inactive\r\n"));
    CHECK(dirOf("sendonly").chosenPt == 0); // codec still negotiated, so the stream can resume on re-INVITE
}

TEST_CASE("buildHoldAnswer with no common codec answers a=inactive with the codec list") {
    auto s = parseSdp("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                      "m=audio 4000 RTP/AVP 18 96\r\na=rtpmap:18 G729/8000\r\na=rtpmap:96 opus/48000/2\r\n");
    REQUIRE(s);
    auto a = buildHoldAnswer(*s, "127.0.0.1", 20002, 7, 3);
    CHECK(a.chosenPt == -1);
    CHECK(a.direction == SdpDirection::Inactive);
    CHECK_THAT(a.sdp, Catch::Contains("m=audio 20002 RTP/AVP 18 96\r\na=inactive\r\n"));
    CHECK(parseSdp(a.sdp));
}

TEST_CASE("buildHoldAnswer plays G.722 to a party offering only G.722: PT 9, G722/8000 (RFC 3551 §4.5.2)") {
    auto s = parseSdp("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                      "m=audio 4000 RTP/AVP 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n");
    REQUIRE(s);
    auto a = buildHoldAnswer(*s, "127.0.0.1", 20004, 7, 3);
    CHECK(a.chosenPt == 9);
    CHECK(a.direction == SdpDirection::SendOnly);
    CHECK_THAT(a.sdp, Catch::Contains("m=audio 20004 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\na=ptime:20\r\n"
                                      "a=sendonly\r\n"));
    // Without an rtpmap the static meaning of 9 holds (RFC 3551 §6).
    auto bare = parseSdp("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                         "m=audio 4000 RTP/AVP 9\r\n");
    REQUIRE(bare);
    CHECK(buildHoldAnswer(*bare, "127.0.0.1", 20004, 7, 3).chosenPt == 9);
}

TEST_CASE("buildHoldAnswer takes the first playable codec in the offer's order, G.722 included") {
    auto answerFor = [](const char *fmts, const char *maps) {
        auto s = parseSdp(std::string("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                                      "m=audio 4000 RTP/AVP ") +
                          fmts + "\r\n" + maps);
        REQUIRE(s);
        return buildHoldAnswer(*s, "127.0.0.1", 20006, 1, 1).chosenPt;
    };
    CHECK(answerFor("96 9 0 8", "a=rtpmap:96 opus/48000/2\r\na=rtpmap:9 G722/8000\r\n") == 9);
    CHECK(answerFor("0 9", "a=rtpmap:9 G722/8000\r\n") == 0);
    CHECK(answerFor("8 9", "") == 8);
    // 9 remapped to another codec (or G722 with the wrong clock) is not G.722; nothing else playable: inactive.
    CHECK(answerFor("9", "a=rtpmap:9 opus/48000/2\r\n") == -1);
    CHECK(answerFor("9 0", "a=rtpmap:9 G722/16000\r\n") == 0);
}

TEST_CASE("buildHoldAnswer: PT 0 remapped by rtpmap to another codec is not taken as PCMU") {
    auto s = parseSdp("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                      "m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 opus/48000/2\r\n");
    REQUIRE(s);
    CHECK(buildHoldAnswer(*s, "127.0.0.1", 20000, 1, 1).chosenPt == 8);
}

TEST_CASE("buildHoldAnswer keeps one m= per offered m=, rejecting the others with port 0") {
    auto s = parseSdp("v=0\r\no=- 1 1 IN IP4 10.0.0.9\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\n"
                      "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                      "m=audio 4000 RTP/AVP 0\r\n"
                      "m=audio 4002 RTP/AVP 0\r\n");
    REQUIRE(s);
    auto a = buildHoldAnswer(*s, "127.0.0.1", 20000, 1, 1);
    auto back = parseSdp(a.sdp);
    REQUIRE(back);
    REQUIRE(back->media.size() == 3);
    CHECK(back->media[0].port == 0);
    CHECK(back->media[1].port == 20000);
    CHECK(back->media[2].port == 0);
    CHECK(a.remotePort == 4000);
}

TEST_CASE("buildHoldOffer is a sendonly G.711 offer, o= version helpers") {
    std::string offer = buildHoldOffer("127.0.0.1", 20010, 99, 5);
    CHECK(offer == "v=0\r\no=parkway 99 5 IN IP4 127.0.0.1\r\ns=parkway\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                   "m=audio 20010 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n"
                   "a=sendonly\r\n");
    CHECK(sdpOriginVersion(offer) == 5u);
    auto bumped = withOriginVersion(offer, 6);
    REQUIRE(bumped);
    CHECK(sdpOriginVersion(*bumped) == 6u);
    CHECK(bumped->size() == offer.size());
    CHECK_FALSE(withOriginVersion("v=0\r\ns=-\r\n", 2));
    CHECK_FALSE(sdpOriginVersion("v=0\r\no=broken\r\n"));
    CHECK(buildHoldOffer("::1", 20010, 1, 1).find("c=IN IP6 ::1") != std::string::npos);
    CHECK(newSdpSessionId() != 0);
}

TEST_CASE("withLegOrigin keeps our o= on a leg, the version moves by one exactly when the body changes") {
    SdpOrigin o;
    o.sessionId = 4242;
    o.version = 7;
    o.addr = "192.0.2.5";
    const std::string theirs1 = "v=0\r\no=bob 1 1 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
                                "m=audio 5000 RTP/AVP 0\r\n";
    auto first = withLegOrigin(theirs1, "", o);
    REQUIRE(first);
    CHECK(*first == "v=0\r\no=parkway 4242 8 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n"
                    "m=audio 5000 RTP/AVP 0\r\n");
    // The same body again (their version moved or not): our version stays (RFC 3264 §8).
    std::string theirs1b = theirs1;
    theirs1b.replace(theirs1b.find("bob 1 1"), 7, "bob 1 2");
    auto again = withLegOrigin(theirs1b, *first, o);
    REQUIRE(again);
    CHECK(*again == *first);
    CHECK(o.version == 8u);
    // Another party's SDP with a new port: same user, session id and address, version + 1.
    const std::string other = "v=0\r\no=carol 99 5 IN IP6 2001:db8::9\r\ns=-\r\nc=IN IP4 203.0.113.4\r\nt=0 0\r\n"
                              "m=audio 6000 RTP/AVP 8\r\n";
    auto changed = withLegOrigin(other, *again, o);
    REQUIRE(changed);
    CHECK_THAT(*changed, Catch::StartsWith("v=0\r\no=parkway 4242 9 IN IP4 192.0.2.5\r\n"));
    CHECK_THAT(*changed, Catch::Contains("m=audio 6000 RTP/AVP 8\r\n"));
    // Not SDP we can read: nothing changes.
    CHECK_FALSE(withLegOrigin("v=0\r\ns=-\r\n", *changed, o));
    CHECK(o.version == 9u);
    o.addr = "::1";
    CHECK_THAT(*withLegOrigin(other, "", o), Catch::Contains("o=parkway 4242 10 IN IP6 ::1\r\n"));
}
