// Who parks, retrieves and watches (docs/auth.md): the authenticated user, never the From a sender wrote.
// Call park with digest authentication on, phones on loopback.
#include "digest_client.hh"
#include "park_env.hh"

using namespace parkway;
using namespace parkway::test;
using json = nlohmann::json;

namespace {

const std::string kParkSecret = "park-identity-secret-0123";

proxy::UserEntry parkUser(const std::string &name) {
    std::string pw = "password-of-" + name;
    return {kDomain,
            name,
            proxy::digest::ha1(proxy::digest::Algorithm::Sha256, name, kDomain, pw),
            proxy::digest::ha1(proxy::digest::Algorithm::Md5, name, kDomain, pw),
            {}};
}

ParkEnvOptions withAuth(std::vector<std::string> trusted = {}) {
    ParkEnvOptions o;
    o.core = [trusted](proxy::CoreConfig &c) {
        c.auth.unauthenticatedDomains.clear();
        c.auth.secret = kParkSecret;
        c.auth.users = {parkUser("1001"), parkUser("1002"), parkUser("2001")};
        c.trustedPeers = trusted;
    };
    return o;
}

// Send `method` to `ruri` as `ext` (From), answering a 401/407 with `authUser`'s credentials when given.
Client &sendAuthed(ParkEnv &p, TestUa &ua, const std::string &method, const std::string &ruri, RequestOptions o,
                   const std::string &authUser) {
    o.callId = o.callId.empty() ? "call-" + std::to_string(rand()) : o.callId;
    Client &first = ua.send(method, ruri, o);
    REQUIRE(p.waitFinal(first));
    if ((first.finalStatus != 401 && first.finalStatus != 407) || authUser.empty())
        return first;
    o.headers.push_back(
        authorize(*first.response(first.finalStatus), method, ruri, {authUser, "password-of-" + authUser}));
    o.callId += "-authed"; // the harness phone keeps one transaction per Call-ID and CSeq
    Client &second = ua.send(method, ruri, o);
    REQUIRE(p.waitFinal(second));
    return second;
}

RequestOptions inviteOpts(const std::string &fromExt, const std::string &dial, uint16_t rtpPort) {
    RequestOptions o;
    o.from = "<" + aorOf(fromExt) + ">";
    o.to = "<sip:" + dial + "@" + kDomain + ">";
    o.body = offerSdp(rtpPort);
    o.contentType = "application/sdp";
    return o;
}

} // namespace

TEST_CASE("park and retrieve as authenticated users, a forged From changes nothing", "[identity][park]") {
    ParkEnv p(withAuth());
    auto &phone = p.ua("1001");
    RawUdp media;
    phone.autoAnswer("INVITE", 200, answerSdp(media.port()), "application/sdp"); // the retrieve's re-INVITE
    // Without credentials: 407, nothing parked
    Client &bare = phone.send("INVITE", "sip:*68103@" + kDomain, inviteOpts("1001", "*68103", media.port()));
    REQUIRE(p.waitFinal(bare));
    CHECK(bare.finalStatus == 407);
    CHECK(p.parkedCount() == 0);
    // 1001 authenticates while its From claims to be 1002: the parker is 1001
    Client &park =
        sendAuthed(p, phone, "INVITE", "sip:*68103@" + kDomain, inviteOpts("1002", "*68103", media.port()), "1001");
    REQUIRE(park.finalStatus == 200);
    json list = p.command("parked.list", {{"domain", kDomain}});
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["parker"] == "1001");

    // A stranger from another domain cannot retrieve: 403, still parked
    auto &stranger = p.ua("stranger");
    RawUdp m2;
    RequestOptions so = inviteOpts("x", "*88103", m2.port());
    so.from = "<sip:x@elsewhere.example>";
    Client &steal = stranger.send("INVITE", "sip:*88103@" + kDomain, so);
    REQUIRE(p.waitFinal(steal));
    CHECK(steal.finalStatus == 403);
    // A local From without credentials is asked for them, and a wrong password does not help
    Client &spoof =
        sendAuthed(p, stranger, "INVITE", "sip:*88103@" + kDomain, inviteOpts("2001", "*88103", m2.port()), "");
    CHECK(spoof.finalStatus == 407);
    CHECK(p.parkedCount() == 1);

    // 2001, authenticated, retrieves; the engine records 2001 as the retriever
    auto &retriever = p.ua("2001");
    RawUdp m3;
    Client &got =
        sendAuthed(p, retriever, "INVITE", "sip:*88103@" + kDomain, inviteOpts("2001", "*88103", m3.port()), "2001");
    CHECK(got.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }));
}

TEST_CASE("a Referred-By naming someone else does not make them the parker", "[identity][park]") {
    ParkEnv p(withAuth());
    auto &phone = p.ua("1001");
    RawUdp media;
    RequestOptions o = inviteOpts("1001", "*68103", media.port());
    o.headers = {"Referred-By: <" + aorOf("1002") + ">"};
    Client &park = sendAuthed(p, phone, "INVITE", "sip:*68103@" + kDomain, o, "1001");
    REQUIRE(park.finalStatus == 200);
    json list = p.command("parked.list", {{"domain", kDomain}});
    REQUIRE(list["parked"].size() == 1);
    // Not 1002. The authenticated sender, 1001, parked itself: a self-park has no parker (docs/callpark.md).
    CHECK(list["parked"][0]["parker"] != "1002");
    CHECK(list["parked"][0]["parker"] == "");
}

TEST_CASE("a trusted peer's Referred-By and P-Asserted-Identity are believed", "[identity][park][trust]") {
    ParkEnv p(withAuth({"127.0.0.2"}));
    auto peer = p.env().makeUa("sbc", "sip:127.0.0.2:*");
    RawUdp media;
    RequestOptions o = inviteOpts("outside", "*68103", media.port());
    o.from = "<sip:+15550001111@carrier.example>";
    o.headers = {"Referred-By: <" + aorOf("1002") + ">"};
    o.nextHop = p.env().proxyUri();
    Client &park = peer->send("INVITE", "sip:*68103@" + kDomain, o);
    REQUIRE(p.waitFinal(park));
    REQUIRE(park.finalStatus == 200);
    json list = p.command("parked.list", {{"domain", kDomain}});
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["parker"] == "1002");
    // the same INVITE from an untrusted address is asked who it is (its From is foreign: refused)
    auto &stranger = p.ua("stranger");
    RawUdp m2;
    RequestOptions s = inviteOpts("outside", "*68104", m2.port());
    s.from = "<sip:+15550001111@carrier.example>";
    s.headers = {"Referred-By: <" + aorOf("1002") + ">"};
    Client &no = stranger.send("INVITE", "sip:*68104@" + kDomain, s);
    REQUIRE(p.waitFinal(no));
    CHECK(no.finalStatus == 403);
    CHECK(p.parkedCount() == 1);
}

TEST_CASE("watching needs an identity of the same domain", "[identity][watch]") {
    ParkEnv p(withAuth());
    auto &stranger = p.ua("stranger");
    RequestOptions o;
    o.from = "<sip:x@elsewhere.example>";
    o.to = "<sip:*88103@" + kDomain + ">";
    o.headers = {"Event: dialog", "Accept: application/dialog-info+xml", "Expires: 60"};
    Client &s1 = stranger.send("SUBSCRIBE", "sip:*88103@" + kDomain, o);
    REQUIRE(p.waitFinal(s1));
    CHECK(s1.finalStatus == 403);
    // a local From is challenged; with 1001's credentials the subscription is accepted
    o.from = "<" + aorOf("1001") + ">";
    Client &s2 = sendAuthed(p, stranger, "SUBSCRIBE", "sip:*88103@" + kDomain, o, "1001");
    CHECK(s2.finalStatus == 200);
}

TEST_CASE("authenticated park and retrieve over TCP", "[identity][park][tcp]") {
    ParkEnv p(withAuth());
    // Requests (and their credentials) go over TCP; the phones also listen on UDP, where their Contact points.
    auto phone = p.env().makeUa("1001");
    phone->setProxy(p.env().proxyUri() + ";transport=tcp");
    auto retriever = p.env().makeUa("2001");
    retriever->setProxy(p.env().proxyUri() + ";transport=tcp");
    RawUdp media, m2;
    phone->autoAnswer("INVITE", 200, answerSdp(media.port()), "application/sdp");
    Client &park =
        sendAuthed(p, *phone, "INVITE", "sip:*68103@" + kDomain, inviteOpts("1001", "*68103", media.port()), "1001");
    REQUIRE(park.finalStatus == 200);
    CHECK(park.request.header("Via").find("TCP") != std::string::npos);
    CHECK(p.parkedCount() == 1);
    Client &got =
        sendAuthed(p, *retriever, "INVITE", "sip:*88103@" + kDomain, inviteOpts("2001", "*88103", m2.port()), "2001");
    CHECK(got.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }));
}

TEST_CASE("a lot's access list also decides who may watch its slots", "[identity][watch][lot]") {
    ParkEnv p;
    int st = 0;
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 720}, {"access", {"1010"}}},
              &st);
    REQUIRE(st == 200);
    auto r = p.command("rules.import",
                       {{"text", "0\t\t0\t11\tregex\t^7[0-9][0-9]$\t0\t\t\taction=retrieve;lot=main\n"}}, &st);
    REQUIRE(st == 200);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    RequestOptions o;
    o.to = "<sip:701@" + kDomain + ">";
    o.headers = {"Event: dialog", "Expires: 60"};
    o.from = "<" + aorOf("1011") + ">"; // not on the list: would see call-ids and tags it could pick up with
    Client &no = w.send("SUBSCRIBE", "sip:701@" + kDomain, o);
    REQUIRE(p.waitFinal(no));
    CHECK(no.finalStatus == 403);
    o.from = "<" + aorOf("1010") + ">";
    Client &yes = w.send("SUBSCRIBE", "sip:701@" + kDomain, o);
    REQUIRE(p.waitFinal(yes));
    CHECK(yes.finalStatus == 200);
}
