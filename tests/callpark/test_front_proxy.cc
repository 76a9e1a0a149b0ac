// Parkway behind a carrier's front proxy (docs/routing.md): [proxy] outbound_proxy for what modules originate,
// callpark notify_target (contacts | aor | auto), Path (RFC 3327) on router forks, Service-Route (RFC 3608)
// from the registrar, and router routes with a "via" next hop. The front proxy is a fake UA that records.
#include "park_env.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <stdexcept>

using namespace parkway::test;
using namespace parkway;
using nlohmann::json;

namespace {

// A UDP port nobody holds right now (the fake front proxy binds it once the proxy under test runs). Picked below
// Linux's ephemeral range (32768+): a port the kernel handed out and took back could be handed to the proxy's own
// sockets (bound to port 0) before the front binds it ("Address already in use", seen in CI).
uint16_t freePort() {
    std::random_device rd;
    std::uniform_int_distribution<int> pick(20000, 31999);
    for (int attempt = 0; attempt < 200; ++attempt) {
        auto port = static_cast<uint16_t>(pick(rd));
        int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool free = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
        if (fd >= 0)
            ::close(fd);
        if (free)
            return port;
    }
    throw std::runtime_error("no free UDP port below 32000");
}

std::string obUri(uint16_t port) {
    return "sip:127.0.0.1:" + std::to_string(port) + ";lr";
}

std::vector<const SipMessage *> requests(TestUa &ua, const std::string &method) {
    std::vector<const SipMessage *> out;
    for (auto &in : ua.incoming)
        if (in->request.method() == method && in->request.toTag().empty())
            out.push_back(&in->request);
    return out;
}

void frontShortRecall(ParkEnv &p) {
    int st = 0;
    auto r = p.command(
        "domains.set",
        {{"domain", kDomain}, {"recall", {{"recall_seconds", 1}, {"ring_seconds", 1}, {"retry_seconds", 1}}}}, &st);
    INFO(r.dump());
    REQUIRE(st == 200);
}

// An outside caller parks itself on 103, naming 1003 as the parker (the recall rings 1003).
void parkOn103(ParkEnv &p, RawUdp &media) {
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(media.port()), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68103", media.port(), {"Referred-By: <" + aorOf("1003") + ">"}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
}

ParkEnvOptions withOutboundProxy(uint16_t port, const std::string &notifyTarget = "") {
    ParkEnvOptions o;
    o.core = [port](proxy::CoreConfig &c) { c.outboundProxy = obUri(port); };
    if (!notifyTarget.empty())
        o.params["notify_target"] = notifyTarget;
    return o;
}

} // namespace

TEST_CASE("outbound_proxy: a user without contact gets park-info and the recall at its AOR through the front proxy",
          "[front_proxy]") {
    uint16_t port = freePort();
    ParkEnv p(withOutboundProxy(port)); // notify_target = auto (the default)
    frontShortRecall(p);
    auto front = p.env().makeUa("front", "sip:127.0.0.1:" + std::to_string(port));
    front->autoAnswer("NOTIFY", 200);
    RawUdp media;
    parkOn103(p, media);

    REQUIRE(p.env().runUntil([&] { return !requests(*front, "NOTIFY").empty(); }));
    const SipMessage *n = requests(*front, "NOTIFY")[0];
    CHECK(n->requestUri() == aorOf("103"));
    CHECK(n->header("Route") == "<" + obUri(port) + ">"); // RFC 3261 §8.1.2: a preloaded loose route
    CHECK(n->header("Event") == "park-info");
    CHECK(n->body().find("state=\"parked\"") != std::string::npos);

    REQUIRE(p.env().runUntil([&] { return !requests(*front, "INVITE").empty(); }, 4000));
    const SipMessage *inv = requests(*front, "INVITE")[0];
    CHECK(inv->requestUri() == aorOf("1003"));
    CHECK(inv->header("Route") == "<" + obUri(port) + ">");
    CHECK(inv->header("From").find("Recall: Alice") != std::string::npos);
}

TEST_CASE("outbound_proxy_by_domain wins over outbound_proxy for a Request-URI in that domain", "[front_proxy]") {
    uint16_t port = freePort();
    ParkEnvOptions o;
    o.core = [port](proxy::CoreConfig &c) {
        c.outboundProxy = "sip:192.0.2.1:5060;lr"; // TEST-NET-1: nothing answers there
        c.outboundProxyByDomain[kDomain] = obUri(port);
    };
    ParkEnv p(o);
    auto front = p.env().makeUa("front", "sip:127.0.0.1:" + std::to_string(port));
    front->autoAnswer("NOTIFY", 200);
    RawUdp media;
    parkOn103(p, media);
    REQUIRE(p.env().runUntil([&] { return !requests(*front, "NOTIFY").empty(); }));
    CHECK(requests(*front, "NOTIFY")[0]->header("Route") == "<" + obUri(port) + ">");
}

TEST_CASE("park-info to a contact registered with a Path goes through the Path's proxy (RFC 3327)", "[front_proxy]") {
    uint16_t port = freePort();
    ParkEnv p(withOutboundProxy(port));
    auto edge = p.env().makeUa("edge");
    edge->autoAnswer("NOTIFY", 200);
    auto &ph = p.ua("103");
    ph.autoAnswer("NOTIFY", 200);
    std::string path = "<sip:" + edge->hostPort() + ";lr>";
    RequestOptions r;
    r.from = r.to = "<" + aorOf("103") + ">";
    r.headers = {"Contact: <" + ph.uri("103") + ">", "Expires: 3600", "Path: " + path};
    auto &reg = ph.send("REGISTER", "sip:" + kDomain, r);
    REQUIRE(p.waitFinal(reg));
    REQUIRE(reg.finalStatus == 200);
    RawUdp media;
    parkOn103(p, media);
    REQUIRE(p.env().runUntil([&] { return !requests(*edge, "NOTIFY").empty(); }));
    const SipMessage *n = requests(*edge, "NOTIFY")[0];
    CHECK(n->requestUri() == ph.uri("103"));
    CHECK(n->header("Route") == path);
    CHECK(requests(ph, "NOTIFY").empty());
}

TEST_CASE("notify_target auto: a user with a contact here is told at the contact, not through the front proxy",
          "[front_proxy]") {
    uint16_t port = freePort();
    ParkEnv p(withOutboundProxy(port));
    auto front = p.env().makeUa("front", "sip:127.0.0.1:" + std::to_string(port));
    front->autoAnswer("*", 200);
    auto &ph = p.phone("103");
    ph.autoAnswer("NOTIFY", 200);
    RawUdp media;
    parkOn103(p, media);
    REQUIRE(p.env().runUntil([&] { return !requests(ph, "NOTIFY").empty(); }));
    CHECK(requests(ph, "NOTIFY")[0]->requestUri() == ph.uri("103"));
    CHECK(requests(ph, "NOTIFY")[0]->header("Route").empty());
    p.env().runFor(200);
    CHECK(requests(*front, "NOTIFY").empty());
}

TEST_CASE("notify_target aor: the AOR through the front proxy even when the user has a contact here", "[front_proxy]") {
    uint16_t port = freePort();
    ParkEnv p(withOutboundProxy(port, "aor"));
    auto front = p.env().makeUa("front", "sip:127.0.0.1:" + std::to_string(port));
    front->autoAnswer("NOTIFY", 200);
    auto &ph = p.phone("103");
    ph.autoAnswer("NOTIFY", 200);
    RawUdp media;
    parkOn103(p, media);
    REQUIRE(p.env().runUntil([&] { return !requests(*front, "NOTIFY").empty(); }));
    CHECK(requests(*front, "NOTIFY")[0]->requestUri() == aorOf("103"));
    p.env().runFor(200);
    CHECK(requests(ph, "NOTIFY").empty());
}

TEST_CASE("notify_target contacts: without a contact nothing goes to the outbound proxy (recall through our routing)",
          "[front_proxy]") {
    uint16_t port = freePort();
    ParkEnv p(withOutboundProxy(port, "contacts"));
    frontShortRecall(p);
    auto front = p.env().makeUa("front", "sip:127.0.0.1:" + std::to_string(port));
    front->autoAnswer("*", 200);
    RawUdp media;
    parkOn103(p, media);
    REQUIRE(p.env().runUntil([&] { return !p.logged("recall 1 of call").empty(); }, 4000));
    p.env().runFor(500);
    CHECK(front->incoming.empty());
}

TEST_CASE("a bad notify_target stops the module at start, naming the parameter", "[front_proxy]") {
    std::vector<std::string> errors;
    proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
    cfg.logSink = [&](int level, const std::string &, const std::string &text) {
        if (level == PW_LOG_ERROR)
            errors.push_back(text);
    };
    SipTestEnv env(cfg);
    env.add(proxy::loadModule("callpark", SipTestEnv::moduleDir(),
                              {{"notify_target", "everyone"}, {"database", ":memory:"}}));
    CHECK_THROWS(env.start());
    bool named = false;
    for (const auto &e : errors)
        named = named || e.find("notify_target 'everyone' must be contacts, aor or auto") != std::string::npos;
    CHECK(named);
}

// ---- registrar and router behind a front proxy

namespace {

Client &registerVia(SipTestEnv &env, TestUa &phone, const std::string &user, std::vector<std::string> extra = {}) {
    RequestOptions o;
    o.from = o.to = "<sip:" + user + "@parkway.test>";
    o.headers = {"Contact: <" + phone.uri(user) + ">", "Expires: 3600"};
    for (auto &h : extra)
        o.headers.push_back(h);
    auto &c = phone.send("REGISTER", "sip:parkway.test", o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    REQUIRE(c.finalStatus == 200);
    return c;
}

} // namespace

TEST_CASE("router: a fork to a contact registered with a Path goes to the Path's proxy with a Route (RFC 3327)",
          "[front_proxy][router]") {
    SipTestEnv env;
    env.load("registrar");
    env.load("router");
    env.start();
    auto edge = env.makeUa("edge");
    auto bob = env.makeUa("bob");
    auto alice = env.makeUa("alice");
    edge->autoAnswer("INVITE", 486);
    bob->autoAnswer("INVITE", 200);
    std::string path = "<sip:" + edge->hostPort() + ";lr>";
    registerVia(env, *bob, "bob", {"Path: " + path});

    RequestOptions o;
    o.from = "<sip:alice@parkway.test>";
    auto &call = alice->send("INVITE", "sip:bob@parkway.test", o);
    REQUIRE(env.runUntil([&] { return call.finalStatus != 0; }));
    CHECK(call.finalStatus == 486); // the edge answered: the fork went through it
    REQUIRE(requests(*edge, "INVITE").size() == 1);
    const SipMessage *in = requests(*edge, "INVITE")[0];
    CHECK(in->requestUri() == bob->uri("bob")); // the contact, reached through the Path
    CHECK(in->header("Route") == path);
    CHECK(requests(*bob, "INVITE").empty());
}

TEST_CASE("registrar: service_route is returned in Service-Route of the 200 to a REGISTER (RFC 3608)",
          "[front_proxy][registrar]") {
    SipTestEnv env;
    env.load("registrar", {{"service_route", "sip:edge.example;lr\nsip:as.example;lr"}});
    env.start();
    auto bob = env.makeUa("bob");
    auto &c = registerVia(env, *bob, "bob");
    const SipMessage *ok = c.response(200);
    REQUIRE(ok);
    REQUIRE(ok->headerCount("Service-Route") == 2);
    CHECK(ok->header("Service-Route", 0) == "<sip:edge.example;lr>");
    CHECK(ok->header("Service-Route", 1) == "<sip:as.example;lr>");

    SipTestEnv plain; // none by default
    plain.load("registrar");
    plain.start();
    auto carol = plain.makeUa("carol");
    auto &c2 = registerVia(plain, *carol, "carol");
    REQUIRE(c2.response(200));
    CHECK(c2.response(200)->headerCount("Service-Route") == 0);
}

TEST_CASE("registrar: a service_route that is not a SIP URI stops it at start, naming the parameter",
          "[front_proxy][registrar]") {
    std::vector<std::string> errors;
    proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
    cfg.logSink = [&](int level, const std::string &, const std::string &text) {
        if (level == PW_LOG_ERROR)
            errors.push_back(text);
    };
    SipTestEnv env(cfg);
    env.load("registrar", {{"service_route", "edge.example"}});
    CHECK_THROWS(env.start());
    bool named = false;
    for (const auto &e : errors)
        named = named || e.find("service_route: 'edge.example' is not a sip: URI") != std::string::npos;
    CHECK(named);
}

TEST_CASE("router: a route with 'via' keeps the rewritten Request-URI and sends to the hop", "[front_proxy][router]") {
    uint16_t hopPort = freePort();
    SipTestEnv env;
    env.load("router", {{"routes", "prefix:9 => sip:{user}@carrier.example via sip:127.0.0.1:" +
                                       std::to_string(hopPort) + ";transport=udp"},
                        {"routes_for_strangers", "true"}});
    env.start();
    auto hop = env.makeUa("hop", "sip:127.0.0.1:" + std::to_string(hopPort));
    hop->autoAnswer("INVITE", 486);
    auto alice = env.makeUa("alice");
    RequestOptions o;
    o.from = "<sip:alice@parkway.test>";
    auto &call = alice->send("INVITE", "sip:95551234@parkway.test", o);
    REQUIRE(env.runUntil([&] { return call.finalStatus != 0; }));
    CHECK(call.finalStatus == 486);
    REQUIRE(requests(*hop, "INVITE").size() == 1);
    CHECK(requests(*hop, "INVITE")[0]->requestUri() == "sip:95551234@carrier.example");
}

TEST_CASE("router: a bad 'via' URI stops it at start with a clear error", "[front_proxy][router]") {
    for (const char *bad : {"prefix:9 => sip:{user}@carrier.example via 10.0.0.5:5060",
                            "prefix:9 => sip:{user}@carrier.example through sip:10.0.0.5"}) {
        std::vector<std::string> errors;
        proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
        cfg.logSink = [&](int level, const std::string &, const std::string &text) {
            if (level == PW_LOG_ERROR)
                errors.push_back(text);
        };
        SipTestEnv env(cfg);
        env.load("router", {{"routes", bad}});
        CHECK_THROWS(env.start());
        bool named = false;
        for (const auto &e : errors)
            named = named || (e.find("parameter 'routes'") != std::string::npos &&
                              (e.find("via '10.0.0.5:5060' is not a sip: URI") != std::string::npos ||
                               e.find("expected '<uri>' or '<uri> via <next hop uri>'") != std::string::npos));
        INFO(bad);
        CHECK(named);
    }
}
