// The parker behind a front proxy (issue 11 item 5, docs/carrier.md "The parker"): a transferee's park INVITE
// names its parker by, in this order, Referred-By, the REFER we relayed, a trusted peer's Parkway-Parker
// header, else nobody (the recall rings the parked-on extension; never the transferee itself).
// The front proxy is a UA on 127.0.0.2, listed in the core's trusted peers.
#include "park_env.hh"

using namespace parkway::test;
using namespace parkway;
using nlohmann::json;

namespace {

const std::string kPeerIp = "127.0.0.2";

ParkEnvOptions withFrontProxy() {
    ParkEnvOptions o;
    o.core = [](proxy::CoreConfig &c) { c.trustedPeers = {kPeerIp}; };
    return o;
}

// 1003 calls 2002 through Parkway (record-routed) and REFERs it to `code`; Parkway relays the REFER and
// remembers it (passthrough).
void referThrough(ParkEnv &p, TestUa &a, TestUa &b, const std::string &code, uint16_t rtpA, uint16_t rtpB) {
    b.autoAnswer("INVITE", 200, offerSdp(rtpB), "application/sdp");
    b.autoAnswer("REFER", 202);
    a.autoAnswer("BYE", 200);
    RequestOptions o;
    o.from = "<" + aorOf("1003") + ">";
    o.to = "<" + aorOf("2002") + ">";
    o.body = offerSdp(rtpA);
    o.contentType = "application/sdp";
    auto &c = a.send("INVITE", aorOf("2002"), o);
    REQUIRE(p.waitFinal(c));
    REQUIRE(c.finalStatus == 200);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:" + code + "@" + kDomain + ">"};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    REQUIRE(refer.finalStatus == 202);
}

// The transferee's park INVITE as the front proxy relays it: from the peer's address, From the transferee.
Client &viaPeer(ParkEnv &p, TestUa &peer, const std::string &fromUri, const std::string &dial, uint16_t rtp,
                std::vector<std::string> headers) {
    RequestOptions o;
    o.from = "<" + fromUri + ">";
    o.to = "<sip:" + dial + "@" + kDomain + ">";
    o.headers = std::move(headers);
    o.body = offerSdp(rtp);
    o.contentType = "application/sdp";
    o.nextHop = p.env().proxyUri();
    auto &c = peer.send("INVITE", "sip:" + dial + "@" + kDomain, o);
    REQUIRE(p.waitFinal(c));
    return c;
}

std::string parkerOfOnlyCall(ParkEnv &p) {
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    return list["parked"][0].value("parker", std::string());
}

} // namespace

TEST_CASE("front proxy parker 1 - Referred-By comes before the REFER we relayed", "[park][front-proxy]") {
    ParkEnv p;
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    referThrough(p, a, b, "*68103", 4300, 4302);
    auto &inv = p.invite(b, "2002", "*68103", 4304, {"Referred-By: <" + aorOf("1005") + ">"});
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    CHECK(parkerOfOnlyCall(p) == "1005");
}

TEST_CASE("front proxy parker 2 - the REFER we relayed comes before a trusted peer's Parkway-Parker",
          "[park][front-proxy]") {
    ParkEnv p(withFrontProxy());
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    referThrough(p, a, b, "*68103", 4310, 4312);
    auto peer = p.env().makeUa("kamailio", "sip:" + kPeerIp + ":*");
    auto &inv = viaPeer(p, *peer, aorOf("2002"), "*68103", 4314, {"Parkway-Parker: <" + aorOf("1005") + ">"});
    REQUIRE(inv.finalStatus == 200);
    CHECK(parkerOfOnlyCall(p) == "1003");
}

TEST_CASE("front proxy parker 3 - a trusted peer's Parkway-Parker names the parker, nobody else's does",
          "[park][front-proxy]") {
    ParkEnv p(withFrontProxy());
    auto peer = p.env().makeUa("kamailio", "sip:" + kPeerIp + ":*");
    // The front proxy asserts the transferee (PAI) and names the REFER's sender in Parkway-Parker.
    auto &inv = viaPeer(p, *peer, aorOf("2002"), "*68103", 4320,
                        {"P-Asserted-Identity: <" + aorOf("2002") + ">",
                         "Parkway-Parker: \"James\" <" + aorOf("1003") + ">"});
    REQUIRE(inv.finalStatus == 200);
    CHECK(parkerOfOnlyCall(p) == "1003");
    // The same header from a phone is not believed: it parks itself, so no parker is recorded.
    auto &phone = p.phone("2003");
    auto &own = p.invite(phone, "2003", "*68104", 4322, {"Parkway-Parker: <" + aorOf("1003") + ">"});
    REQUIRE(p.waitFinal(own));
    REQUIRE(own.finalStatus == 200);
    json list = p.command("parked.list", {{"extension", "104"}});
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0].value("parker", std::string()) == "");
}

TEST_CASE("front proxy parker 4 - nothing names the parker: none is recorded, the recall rings the parked-on "
          "extension, never the transferee",
          "[park][front-proxy][recall]") {
    ParkEnv p(withFrontProxy());
    int st = 0;
    p.command("domains.set", {{"domain", kDomain}, {"recall", {{"recall_seconds", 1}, {"ring_seconds", 1}}}}, &st);
    REQUIRE(st == 200);
    auto &ext = p.phone("103");
    auto peer = p.env().makeUa("kamailio", "sip:" + kPeerIp + ":*");
    // An outside caller transferred by a phone behind the front proxy: its identity is foreign, and it is the
    // party being parked, not the parker.
    auto &inv = viaPeer(p, *peer, "sip:+15550001111@carrier.example", "*68103", 4330, {});
    REQUIRE(inv.finalStatus == 200);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "103");
    CHECK(list["parked"][0].value("parker", std::string()) == "");
    REQUIRE(p.env().runUntil(
        [&] {
            for (auto &in : ext.incoming)
                if (in->request.method() == "INVITE" && in->request.toTag().empty()) return true;
            return false;
        },
        4000));
}
