// Parking by INVITE: the feature codes, music on hold, group park, occupied policies, hang-up while parked.
#include "park_env.hh"

using namespace parkway::test;
using nlohmann::json;

TEST_CASE("park by INVITE to star-68 ext answers sendonly and plays music on hold", "[park]") {
    ParkEnv p;
    auto &caller = p.ua("caller");
    RawUdp media;
    auto &inv = p.invite(caller, "2001", "*68103", media.port(), {}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    const SipMessage *ok = inv.response(200);
    REQUIRE(ok);
    CHECK(ok->body().find("a=sendonly") != std::string::npos);
    CHECK(ok->header("Content-Type") == "application/sdp");

    json list = p.command("parked.list", {{"domain", kDomain}});
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "103");
    CHECK(list["parked"][0]["parker"] == ""); // 2001 dialled *68103 itself: never its own parker (issue 10)
    CHECK(list["parked"][0]["parked_uri"] == aorOf("2001"));
    CHECK(list["parked"][0]["parked_display"] == "Alice");
    CHECK(list["parked"][0]["state"] == "parked");

    // Music on hold: 20 ms G.711 packets, PCMU first in our offer -> payload type 0.
    REQUIRE(p.env().runUntil([&] { return rtpCount(media) >= 5; }, 3000));
    size_t before = rtpCount(media);
    p.env().runFor(1000);
    size_t perSecond = rtpCount(media) - before;
    CHECK(perSecond >= 35);
    CHECK(perSecond <= 65);
    CHECK(rtpPayloadType(media) == 0);

    // The parked party hangs up: the slot is freed and the music stops.
    auto &bye = caller.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    CHECK(bye.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }));
    p.env().runFor(100);
    size_t stopped = rtpCount(media);
    p.env().runFor(300);
    CHECK(rtpCount(media) == stopped);
}

TEST_CASE("bare star-68 and star-68 escaped hash park on the parker's own extension", "[park]") {
    ParkEnv p;
    auto &a = p.ua("a");
    auto &i1 = p.invite(a, "1003", "*68", 0);
    REQUIRE(p.waitFinal(i1));
    CHECK(i1.finalStatus == 200);
    // Offerless INVITE: our 200 carries the hold offer.
    CHECK(i1.response(200)->body().find("a=sendonly") != std::string::npos);
    auto &b = p.ua("b");
    auto &i2 = p.invite(b, "1004", "*68%23", 4000);
    REQUIRE(p.waitFinal(i2));
    CHECK(i2.finalStatus == 200);
    CHECK(p.parkedCount({{"extension", "1003"}}) == 1);
    CHECK(p.parkedCount({{"extension", "1004"}}) == 1);
}

TEST_CASE("Referred-By names the parker of a transferee's park INVITE", "[park]") {
    ParkEnv p;
    auto &t = p.ua("transferee");
    auto &inv = p.invite(t, "2002", "*68", 4002, {"Referred-By: <" + aorOf("1003") + ">"});
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    auto list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "1003"); // own extension of the parker, not of the transferee
    CHECK(list["parked"][0]["parker"] == "1003");
}

TEST_CASE("occupied extension - stack parks a second call and reject answers 486", "[park]") {
    SECTION("stack (default)") {
        ParkEnv p;
        auto &a = p.ua("a");
        auto &b = p.ua("b");
        auto &i1 = p.invite(a, "2001", "*68103", 4004);
        REQUIRE(p.waitFinal(i1));
        auto &i2 = p.invite(b, "2002", "*68103", 4006);
        REQUIRE(p.waitFinal(i2));
        CHECK(i1.finalStatus == 200);
        CHECK(i2.finalStatus == 200);
        CHECK(p.parkedCount({{"extension", "103"}}) == 2);
    }
    SECTION("reject") {
        ParkEnvOptions o;
        o.params["occupied_policy"] = "reject";
        ParkEnv p(o);
        auto &a = p.ua("a");
        auto &b = p.ua("b");
        auto &i1 = p.invite(a, "2001", "*68103", 4004);
        REQUIRE(p.waitFinal(i1));
        auto &i2 = p.invite(b, "2002", "*68103", 4006);
        REQUIRE(p.waitFinal(i2));
        CHECK(i1.finalStatus == 200);
        CHECK(i2.finalStatus == 486);
        CHECK(p.parkedCount({{"extension", "103"}}) == 1);
    }
}

TEST_CASE("group park hunts from the first member and fails when all are occupied", "[park]") {
    ParkEnvOptions o;
    o.params["occupied_policy"] = "reject";
    ParkEnv p(o);
    int st = 0;
    p.command("groups.set", {{"domain", kDomain}, {"name", "sales"}, {"members", {"101", "102"}}}, &st);
    REQUIRE(st == 200);
    auto &a = p.ua("a");
    auto &b = p.ua("b");
    auto &c = p.ua("c");
    // 102 is occupied by a directed park first: the hunt must skip it only when 101 is taken too.
    auto &i0 = p.invite(a, "2001", "*68101", 4010);
    REQUIRE(p.waitFinal(i0));
    REQUIRE(i0.finalStatus == 200);
    auto &i1 = p.invite(b, "2002", "*58", 4012, {"Referred-By: <" + aorOf("101") + ">"});
    REQUIRE(p.waitFinal(i1));
    CHECK(i1.finalStatus == 200);
    auto list = p.command("parked.list", {{"extension", "102"}});
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["group"] == "sales");
    // all members occupied and no stacking: the park fails and nothing more is parked
    auto &i2 = p.invite(c, "2003", "*58%23", 4014, {"Referred-By: <" + aorOf("102") + ">"});
    REQUIRE(p.waitFinal(i2));
    CHECK((i2.finalStatus == 486 || i2.finalStatus == 480));
    CHECK(p.parkedCount() == 2);
}

TEST_CASE("park errors - unknown extension 404 - other domain 403 - bad SDP 488", "[park]") {
    ParkEnv p;
    int st = 0;
    p.command("domains.set", {{"domain", kDomain}, {"open_extensions", false}}, &st);
    REQUIRE(st == 200);
    auto &a = p.ua("a");
    auto &i1 = p.invite(a, "2001", "*68999", 4020);
    REQUIRE(p.waitFinal(i1));
    CHECK(i1.finalStatus == 404);

    RequestOptions o;
    o.from = "<sip:mallory@elsewhere.test>";
    o.body = offerSdp(4022);
    o.contentType = "application/sdp";
    auto &i2 = a.send("INVITE", "sip:*68103@" + kDomain, o);
    REQUIRE(p.waitFinal(i2));
    CHECK(i2.finalStatus == 403);

    RequestOptions bad;
    bad.from = "<" + aorOf("2001") + ">";
    bad.body = "this is not SDP";
    bad.contentType = "application/sdp";
    auto &i3 = a.send("INVITE", "sip:*68103@" + kDomain, bad);
    REQUIRE(p.waitFinal(i3));
    CHECK(i3.finalStatus == 488);
    CHECK(p.parkedCount() == 0);
}

TEST_CASE("a duplicated park INVITE (same Call-ID and From tag) parks once", "[park]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RequestOptions o;
    o.from = "<" + aorOf("2001") + ">;tag=dup1";
    o.callId = "dup-park-1@test";
    o.body = offerSdp(4030);
    o.contentType = "application/sdp";
    o.dialog = false;
    auto &i1 = a.send("INVITE", "sip:*68103@" + kDomain, o);
    REQUIRE(p.waitFinal(i1));
    CHECK(i1.finalStatus == 200);
    auto &i2 = a.send("INVITE", "sip:*68103@" + kDomain, o);
    REQUIRE(p.waitFinal(i2));
    CHECK(i2.finalStatus == 482);
    CHECK(p.parkedCount() == 1);
}

TEST_CASE("the parked dialog is held - re-INVITE and OPTIONS and INFO are answered", "[park]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp m1, m2;
    auto &inv = p.invite(a, "2001", "*68103", m1.port());
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    RequestOptions o;
    o.body = offerSdp(m2.port());
    o.contentType = "application/sdp";
    auto &re = a.inDialog(inv, "INVITE", o);
    REQUIRE(p.waitFinal(re));
    CHECK(re.finalStatus == 200);
    CHECK(re.response(200)->body().find("a=sendonly") != std::string::npos);
    // the music follows the new address
    REQUIRE(p.env().runUntil([&] { return rtpCount(m2) >= 3; }, 3000));
    auto &opt = a.inDialog(inv, "OPTIONS");
    REQUIRE(p.waitFinal(opt));
    CHECK(opt.finalStatus == 200);
    auto &info = a.inDialog(inv, "INFO");
    REQUIRE(p.waitFinal(info));
    CHECK(info.finalStatus == 200);
    CHECK(p.parkedCount() == 1);
}

TEST_CASE("music on hold latches on the parked party's RTP, its SIP source IP may latch (symmetric RTP)",
          "[park][moh]") {
    // The SDP names 127.0.0.3, where nobody listens (a phone behind NAT writes its private address; a forged SDP
    // names a victim). The phone's SIP and RTP both come from 127.0.0.1. With moh_prelatch_ms = 0 nothing goes
    // to the SDP address; music reaches the phone only by latching on its RTP, which only 127.0.0.1 being the
    // park INVITE's source allows.
    ParkEnvOptions o;
    o.params = {{"moh_prelatch_ms", "0"}};
    ParkEnv p(o);
    auto &caller = p.ua("caller");
    RawUdp rtp;
    RequestOptions ro;
    ro.from = "\"Alice\" <" + aorOf("2001") + ">";
    ro.to = "<sip:*68103@" + kDomain + ">";
    ro.contentType = "application/sdp";
    ro.body = "v=0\r\no=- 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
              "a=rtpmap:0 PCMU/8000\r\n";
    auto &inv = caller.send("INVITE", "sip:*68103@" + kDomain, ro);
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    uint16_t mohPort = sdpAudioPort(inv.response(200)->body());
    REQUIRE(mohPort != 0);
    p.env().runFor(300);
    CHECK(rtpCount(rtp) == 0); // nothing was sent to us before we sent anything

    std::string packet("\x80\x00\x00\x01\0\0\0\0\0\0\0\x07", 12); // RTP v2, PCMU
    REQUIRE(rtp.sendTo(mohPort, packet));
    REQUIRE(p.env().runUntil([&] { return rtpCount(rtp) >= 10; }, 3000));
    CHECK(rtpPayloadType(rtp) == 0);

    auto &bye = caller.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }));
    CHECK(p.metric("parkway_moh_streams_total", "latched=\"true\"") == 1);
    CHECK(p.metric("parkway_moh_streams_total", "latched=\"false\"") == 0);
}

// The body checks the admin server made before the routes became the module's own (ABI 1.4 pw_route_def): a
// REST client gets them from the commands now, as 400s naming the member.
TEST_CASE("admin commands refuse bad bodies naming the member (groups.set, rules.import)", "[park][admin]") {
    ParkEnv p;
    int st = 0;
    auto j = p.command("groups.set", {{"domain", kDomain}, {"name", "sales"}, {"members", "1001"}}, &st);
    CHECK(st == 400);
    CHECK(j.dump().find("members") != std::string::npos);
    j = p.command("rules.import", {{"replace", true}}, &st);
    CHECK(st == 400);
    CHECK(j.dump().find("text") != std::string::npos);
    j = p.command("rules.import", {{"text", "# nothing\n"}, {"replace", "yes"}}, &st);
    CHECK(st == 400);
    CHECK(j.dump().find("replace") != std::string::npos);
}

// groups.list -> groups.set round trip (the console's save): every recall timing the list shows can be written back,
// so reordering members does not drop a group's ring / alternate-wait / retry override.
TEST_CASE("groups.set takes back every recall override groups.list shows", "[park][admin]") {
    ParkEnv p;
    int st = 0;
    auto j = p.command("groups.set",
                       {{"domain", kDomain},
                        {"name", "sales"},
                        {"members", {"101", "102"}},
                        {"recall_time", 90},
                        {"ring_seconds", 25},
                        {"alternate_wait", 40},
                        {"retry_seconds", 7}},
                       &st);
    REQUIRE(st == 200);
    j = p.command("groups.list", {{"domain", kDomain}}, &st);
    REQUIRE(st == 200);
    REQUIRE(j["groups"].size() == 1);
    auto s = j["groups"][0]["settings"];
    CHECK(s["recall_seconds"] == 90);
    CHECK(s["ring_seconds"] == 25);
    CHECK(s["alternate_wait"] == 40);
    CHECK(s["retry_seconds"] == 7);
    p.command("groups.set", {{"domain", kDomain}, {"name", "sales"}, {"members", {"101"}}, {"ring_seconds", "x"}}, &st);
    CHECK(st == 400);
}
