// RFC 3261 §16 behaviour of the proxy core, seen from fake phones.
#include <sip_test.hh>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

using namespace parkway;
using namespace parkway::test;

namespace {

// A router for tests: every X-Target header becomes a branch.
void targetsFromHeader(HookModule &h) {
    h.onRequest = [&h](pw_request *req) {
        for (unsigned i = 0;; ++i) {
            std::string t = h.header(req, "X-Target", i);
            if (t.empty()) break;
            h.addTarget(req, t);
        }
        return PW_CONTINUE;
    };
}

uint16_t closedTcpPort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

std::string rawRequest(const std::string &method, const std::string &ruri, uint16_t fromPort, const std::string &extra,
                       const std::string &branch = "z9hG4bKraw1", const std::string &cseq = "1") {
    return method + " " + ruri + " SIP/2.0\r\n" + "Via: SIP/2.0/UDP 127.0.0.1:" + std::to_string(fromPort) +
           ";branch=" + branch + ";rport\r\n" + "From: <sip:raw@127.0.0.1>;tag=raw1\r\n" + "To: <" + ruri + ">\r\n" +
           "Call-ID: raw-" + branch + "@127.0.0.1\r\n" + "CSeq: " + cseq + " " + method + "\r\n" +
           "Max-Forwards: 70\r\n" + extra + "Content-Length: 0\r\n\r\n";
}

} // namespace

TEST_CASE("OPTIONS is forwarded to the Request-URI and the 200 comes back", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("OPTIONS", 200);
    auto &c = a->send("OPTIONS", b->uri());
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 200);
    REQUIRE(b->count("OPTIONS") == 1);
    // RFC 3261 §16.6 step 3: Max-Forwards decremented (the UA sent 70)
    CHECK(b->last("OPTIONS")->request.maxForwards() == 69);
    // the proxy's Via on top of alice's
    CHECK(b->last("OPTIONS")->request.headerCount("Via") == 2);
    // non-dialog request: no Record-Route
    CHECK(b->last("OPTIONS")->request.header("Record-Route").empty());
}

TEST_CASE("OPTIONS to the proxy itself is answered 200, other requests to it 404", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto &c = a->send("OPTIONS", env.proxyUri());
    RequestOptions mo;
    mo.body = "hi";
    mo.contentType = "text/plain";
    auto &d = a->send("MESSAGE", "sip:nobody@" + env.proxyHostPort(), mo);
    REQUIRE(env.runUntil([&] { return c.finalStatus && d.finalStatus; }));
    CHECK(c.finalStatus == 200);
    CHECK(d.finalStatus == 404);
}

TEST_CASE("INVITE through a module target: 100, 180, 200, ACK and BYE pass through (Record-Route)", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    int responsesSeen = 0;
    router.onResponse = [&](const pw_msg *) { ++responsesSeen; };
    env.add(router);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("INVITE", 180);
    b->autoAnswer("BYE", 200);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri()};
    o.body = "v=0\r\n";
    o.contentType = "application/sdp";
    auto &inv = a->send("INVITE", "sip:bob@parkway.test", o);
    REQUIRE(env.runUntil([&] { return inv.has(180); }));
    CHECK(inv.has(100));
    Incoming *in = b->last("INVITE");
    REQUIRE(in);
    CHECK(in->request.requestUri() == b->uri());
    CHECK(in->request.body() == "v=0\r\n");
    // RFC 3261 §16.6 step 4: Record-Route with ;lr
    std::string rr = in->request.header("Record-Route");
    CHECK(rr.find(env.proxyHostPort()) != std::string::npos);
    CHECK(rr.find(";lr") != std::string::npos);
    b->reply(*in, 200, "v=0\r\nanswer\r\n", "application/sdp");
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200; }));
    CHECK(inv.response(200)->body() == "v=0\r\nanswer\r\n");
    CHECK(inv.response(200)->header("Record-Route").find(env.proxyHostPort()) != std::string::npos);
    // ACK for the 2xx travels along the route set: it reaches bob through the proxy
    REQUIRE(env.runUntil([&] { return !in->acks.empty(); }));
    CHECK(in->acks[0].headerCount("Via") == 2);
    // in-dialog BYE passes through the proxy too
    auto &bye = a->inDialog(inv, "BYE");
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(b->last("BYE"));
    CHECK(b->last("BYE")->request.headerCount("Via") == 2);
    CHECK(b->last("BYE")->request.header("Route").empty()); // our Route entry was removed (§16.4)
    CHECK(responsesSeen >= 2); // modules saw relayed responses (180, 200, ...)
}

TEST_CASE("Max-Forwards 0 is answered 483 and nothing is forwarded", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    RequestOptions o;
    o.headers = {"Max-Forwards: 0"};
    auto &c = a->send("OPTIONS", b->uri(), o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 483);
    CHECK(!c.response(483)->toTag().empty());
    env.runFor(50);
    CHECK(b->count("OPTIONS") == 0);
}

TEST_CASE("A request that loops back to the proxy unchanged is answered 482", "[proxy]") {
    SipTestEnv env;
    HookModule loop;
    // Send every request to ourselves: the second pass has the same key -> loop (RFC 3261 §16.3 item 4)
    loop.onRequest = [&](pw_request *req) {
        loop.addTarget(req, "sip:loop@" + env.proxyHostPort());
        return PW_CONTINUE;
    };
    env.add(loop);
    env.start();
    auto a = env.makeUa("alice");
    auto &c = a->send("OPTIONS", "sip:someone@parkway.test");
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 482);
}

TEST_CASE("Loose routing: our Route entry is removed and the next Route is followed", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    RequestOptions o;
    // R-URI points elsewhere; the Route set says: us, then bob.
    o.headers = {"Route: <" + env.proxyUri() + ";lr>, <sip:" + b->hostPort() + ";lr>"};
    auto &c = a->send("MESSAGE", "sip:carol@far.example.invalid", o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 200);
    REQUIRE(b->last("MESSAGE"));
    CHECK(b->last("MESSAGE")->request.requestUri() == "sip:carol@far.example.invalid");
    CHECK(b->last("MESSAGE")->request.headerCount("Route") == 1);
    CHECK(b->last("MESSAGE")->request.header("Route").find(b->hostPort()) != std::string::npos);
}

TEST_CASE("Strict-route compatibility: R-URI is ours, the last Route becomes the R-URI", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    RequestOptions o;
    o.headers = {"Route: <" + b->uri() + ">"};
    o.to = "<" + b->uri() + ">;tag=abc"; // an in-dialog request from a strict router
    o.from = "<" + a->uri() + ">;tag=xyz";
    auto &c = a->send("INFO", env.proxyUri(), o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 200);
    REQUIRE(b->last("INFO"));
    CHECK(b->last("INFO")->request.requestUri() == b->uri());
    CHECK(b->last("INFO")->request.headerCount("Route") == 0);
}

TEST_CASE("Forking: parallel branches, the 2xx wins and the other branch is cancelled", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    auto c = env.makeUa("carol");
    b->autoAnswer("INVITE", 180);
    c->autoAnswer("INVITE", 180);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri(), "X-Target: " + c->uri()};
    auto &inv = a->send("INVITE", "sip:group@parkway.test", o);
    REQUIRE(env.runUntil([&] { return b->last("INVITE") && c->last("INVITE") && inv.has(180); }));
    c->reply(*c->last("INVITE"), 200, "v=0\r\n", "application/sdp");
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200 && b->last("INVITE")->cancelled; }));
    env.runFor(100);
    CHECK(inv.count(487) == 0); // the loser's 487 is not relayed
    CHECK(inv.finalStatus == 200);
}

TEST_CASE("CANCEL from upstream: 200 to the CANCEL, branches cancelled, 487 relayed", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("INVITE", 180);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri()};
    auto &inv = a->send("INVITE", "sip:bob@parkway.test", o);
    REQUIRE(env.runUntil([&] { return inv.has(180); }));
    REQUIRE(a->cancel(inv) == 0);
    REQUIRE(env.runUntil([&] { return inv.finalStatus != 0; }));
    CHECK(inv.finalStatus == 487);
    CHECK(b->last("INVITE")->cancelled);
}

TEST_CASE("A 6xx ends the search: relayed at once and the other branches are cancelled", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    auto c = env.makeUa("carol");
    b->autoAnswer("INVITE", 180);
    c->autoAnswer("INVITE", 603);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri(), "X-Target: " + c->uri()};
    auto &inv = a->send("INVITE", "sip:group@parkway.test", o);
    REQUIRE(env.runUntil([&] { return inv.finalStatus != 0; }));
    CHECK(inv.finalStatus == 603);
    REQUIRE(env.runUntil([&] { return b->last("INVITE") && b->last("INVITE")->cancelled; }));
}

TEST_CASE("Best response: the lowest class wins when every branch failed", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    auto c = env.makeUa("carol");
    b->autoAnswer("INVITE", 500);
    c->autoAnswer("INVITE", 486);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri(), "X-Target: " + c->uri()};
    auto &inv = a->send("INVITE", "sip:group@parkway.test", o);
    REQUIRE(env.runUntil([&] { return inv.finalStatus != 0; }));
    CHECK(inv.finalStatus == 486);

    // a downstream 503 is turned into 500 (RFC 3261 §16.7 step 6)
    auto d = env.makeUa("dave");
    d->autoAnswer("OPTIONS", 503);
    RequestOptions o2;
    o2.headers = {"X-Target: " + d->uri()};
    auto &opt = a->send("OPTIONS", "sip:dave@parkway.test", o2);
    REQUIRE(env.runUntil([&] { return opt.finalStatus != 0; }));
    CHECK(opt.finalStatus == 500);
}

TEST_CASE("Late 2xx from a second branch is forwarded too", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    auto b = env.makeUa("bob");
    auto c = env.makeUa("carol");
    b->autoAnswer("INVITE", 200);
    c->autoAnswer("INVITE", 200);
    RawUdp a; // a raw phone: sees every 2xx on the wire
    a.sendTo(env.port(), rawRequest("INVITE", "sip:group@parkway.test", a.port(),
                                    "X-Target: " + b->uri() + "\r\nX-Target: " + c->uri() + "\r\nContact: <sip:a@127.0.0.1:" +
                                        std::to_string(a.port()) + ">\r\n",
                                    "z9hG4bKlate"));
    auto toTags = [&] {
        a.poll();
        std::set<std::string> tags;
        for (auto &r : a.received) {
            if (r.rfind("SIP/2.0 200", 0) != 0) continue;
            auto to = r.find("\nTo:");
            auto tag = r.find("tag=", to);
            auto end = r.find_first_of(";\r\n", tag);
            if (to != std::string::npos && tag != std::string::npos) tags.insert(r.substr(tag + 4, end - tag - 4));
        }
        return tags.size();
    };
    REQUIRE(env.runUntil([&] { return toTags() == 2; }));
}

TEST_CASE("A branch that never answers gives 408", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    RawUdp silent; // receives, never answers
    auto a = env.makeUa("alice");
    RequestOptions o;
    o.headers = {"X-Target: sip:silent@127.0.0.1:" + std::to_string(silent.port())};
    auto &c = a->send("OPTIONS", "sip:silent@parkway.test", o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }, 10000));
    CHECK(c.finalStatus == 408);
    CHECK(silent.countStartingWith("OPTIONS ") >= 1);
}

TEST_CASE("A target on a closed TCP port gives 503", "[proxy]") {
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    auto a = env.makeUa("alice");
    RequestOptions o;
    o.headers = {"X-Target: sip:gone@127.0.0.1:" + std::to_string(closedTcpPort()) + ";transport=tcp"};
    auto &c = a->send("OPTIONS", "sip:gone@parkway.test", o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }, 10000));
    CHECK(c.finalStatus == 503);
}

TEST_CASE("Malformed requests get 400 and the proxy keeps serving", "[proxy][badinput]") {
    SipTestEnv env;
    env.start();
    RawUdp raw;
    std::string proxy = env.proxyUri();
    // CSeq method does not match the request method: rejected by the sanity check
    std::string bad = rawRequest("OPTIONS", proxy, raw.port(), "", "z9hG4bKbad1");
    bad.replace(bad.find("CSeq: 1 OPTIONS"), 15, "CSeq: 1 INVITE ");
    raw.sendTo(env.port(), bad);
    REQUIRE(env.runUntil([&] { return raw.countStartingWith("SIP/2.0 400") >= 1; }));
    // garbage that is not SIP at all is dropped without a crash
    raw.sendTo(env.port(), "\x01\x02 hello there\r\n\r\n");
    // a broken header value
    std::string bad2 = rawRequest("OPTIONS", proxy, raw.port(), "", "z9hG4bKbad2", "notanumber");
    raw.sendTo(env.port(), bad2);
    REQUIRE(env.runUntil([&] { return raw.countStartingWith("SIP/2.0 400") >= 2; })); // bad2 is refused too
    // the next good request is still served
    raw.sendTo(env.port(), rawRequest("OPTIONS", proxy, raw.port(), "", "z9hG4bKgood"));
    REQUIRE(env.runUntil([&] { return raw.countStartingWith("SIP/2.0 200") >= 1; }));
}

TEST_CASE("An unknown method is forwarded like any other request", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("FOOBAR", 200);
    auto &c = a->send("FOOBAR", b->uri());
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 200);
    REQUIRE(b->last("FOOBAR"));
}

TEST_CASE("A module that throws gets the request answered 500, the proxy keeps serving", "[proxy][badinput]") {
    SipTestEnv env;
    HookModule bad;
    bool thrown = false;
    bad.onRequest = [&](pw_request *) -> pw_verdict {
        if (!thrown) {
            thrown = true;
            throw std::runtime_error("module bug");
        }
        return PW_CONTINUE;
    };
    env.add(bad);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    auto &c1 = a->send("OPTIONS", b->uri());
    REQUIRE(env.runUntil([&] { return c1.finalStatus != 0; }));
    CHECK(c1.finalStatus == 500);
    auto &c2 = a->send("OPTIONS", b->uri());
    REQUIRE(env.runUntil([&] { return c2.finalStatus != 0; }));
    CHECK(c2.finalStatus == 200);
}

TEST_CASE("A module answers locally with headers and body, later modules are not called after STOP", "[proxy]") {
    SipTestEnv env;
    HookModule first("first"), second("second");
    int secondCalls = 0;
    first.onRequest = [&](pw_request *req) {
        first.reply(req, 202, "{}", "application/json", {{"X-Test", "yes"}});
        return PW_STOP;
    };
    second.onRequest = [&](pw_request *) {
        ++secondCalls;
        return PW_CONTINUE;
    };
    env.add(first);
    env.add(second);
    env.start();
    auto a = env.makeUa("alice");
    auto &c = a->send("MESSAGE", "sip:x@parkway.test");
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 202);
    CHECK(c.response(202)->header("X-Test") == "yes");
    CHECK(c.response(202)->body() == "{}");
    CHECK(!c.response(202)->toTag().empty());
    CHECK(secondCalls == 0);
}

TEST_CASE("SUSPEND then resume from another thread through post()", "[proxy][threads]") {
    SipTestEnv env;
    HookModule waiter;
    std::thread worker;
    waiter.onRequest = [&](pw_request *req) {
        pw_request *held = waiter.api->request_retain(req);
        waiter.addTarget(held, waiter.header(req, "X-Target"));
        const pw_host_api *api = waiter.api;
        pw_host *host = waiter.host;
        worker = std::thread([api, host, held] {
            // the only thread-safe entry: post back to the SIP thread
            struct Ctx {
                const pw_host_api *api;
                pw_request *req;
            };
            auto *ctx = new Ctx{api, held};
            api->post(host, [](void *arg) {
                auto *c = static_cast<Ctx *>(arg);
                c->api->request_resume(c->req, PW_CONTINUE);
                c->api->request_release(c->req);
                delete c;
            }, ctx);
        });
        return PW_SUSPEND;
    };
    env.add(waiter);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri()};
    auto &c = a->send("OPTIONS", "sip:bob@parkway.test", o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    if (worker.joinable()) worker.join();
    CHECK(c.finalStatus == 200);
    // Proxy::post from a foreign thread runs on the SIP thread
    std::atomic<int> ran{0};
    std::thread t([&] { env.proxy().post([&] { ran = 1; }); });
    t.join();
    REQUIRE(env.runUntil([&] { return ran.load() == 1; }));
}

TEST_CASE("Requests and responses are counted, stats are JSON", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto &c = a->send("OPTIONS", env.proxyUri());
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    std::string stats = env.proxy().statsJson();
    CHECK(stats.find("\"OPTIONS\":1") != std::string::npos);
}

#include <admin/event_bus.hh>
#include <admin/metrics.hh>

TEST_CASE("SIP counters and gauges go to Metrics", "[proxy][metrics]") {
    proxy::Metrics metrics;
    proxy::EventBus events;
    SipTestEnv env(SipTestEnv::defaultConfig(), &metrics, &events);
    HookModule mod("metered");
    mod.onRequest = [&](pw_request *req) {
        // twice each, with values that tell the two apart: a host table with counter_add and gauge_set swapped
        // gives 2 and 14 instead of 4 and 7
        for (int i = 0; i < 2; ++i) {
            mod.api->counter_add(mod.host, PW_STR_LIT("parkway_test_total"), PW_STR_LIT("lot=\"main\""), 2);
            mod.api->gauge_set(mod.host, PW_STR_LIT("parkway_test_level"), PW_STR_LIT("lot=\"main\""), 7);
        }
        mod.api->event_publish(mod.host, PW_STR_LIT("tested"), PW_STR_LIT("{\"x\":1}"));
        (void)req;
        return PW_CONTINUE;
    };
    env.add(mod);
    env.start();
    uint64_t sub = events.subscribe([] {});
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    auto &c = a->send("OPTIONS", b->uri());
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(metrics.value("parkway_sip_requests_total", "method=\"OPTIONS\"") == 1);
    CHECK(metrics.value("parkway_sip_responses_total", "code=\"200\"") == 1);
    CHECK(metrics.value("parkway_test_total", "lot=\"main\"") == 4);
    CHECK(metrics.value("parkway_test_level", "lot=\"main\"") == 7);
    CHECK(metrics.value("parkway_sip_transactions", "") == 0);
    auto evs = events.drain(sub);
    REQUIRE(evs.size() == 1);
    CHECK(evs[0].type == "tested");
}

TEST_CASE("UDP and TCP listeners: a TCP phone reaches a UDP phone", "[proxy][tcp]") {
    proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
    cfg.listen = {"sip:127.0.0.1:*;transport=udp", "sip:127.0.0.1:*;transport=tcp"};
    SipTestEnv env(cfg);
    env.start();
    auto urls = env.proxy().boundUrls();
    REQUIRE(urls.size() == 2);
    CHECK(urls[1].find(";transport=tcp") != std::string::npos);
    auto a = env.makeUa("alice", "sip:127.0.0.1:*;transport=tcp");
    a->setProxy(urls[1]);
    auto b = env.makeUa("bob", "sip:127.0.0.1:*;transport=udp");
    b->autoAnswer("MESSAGE", 200);
    auto &c = a->send("MESSAGE", b->uri());
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 200);
    REQUIRE(b->last("MESSAGE"));
    CHECK(b->last("MESSAGE")->request.header("Via", 1).find("TCP") != std::string::npos);
}

TEST_CASE("A TCP phone calling a UDP phone keeps TCP in the dialog (two Record-Route entries)", "[proxy][tcp]") {
    // UDP and TCP share the proxy's address (the default); a Record-Route without ;transport would send the
    // TCP caller's in-dialog requests over UDP (RFC 3263 §4.1). RFC 3261 §16.6 step 4 / RFC 5658: one entry per
    // side, the callee's on top.
    SipTestEnv env;
    HookModule router;
    targetsFromHeader(router);
    env.add(router);
    env.start();
    auto a = env.makeUa("alice", "sip:127.0.0.1:*;transport=tcp");
    a->setProxy(env.proxyUri() + ";transport=tcp");
    auto b = env.makeUa("bob", "sip:127.0.0.1:*;transport=udp");
    b->autoAnswer("BYE", 200);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri()};
    auto &inv = a->send("INVITE", "sip:bob@parkway.test", o);
    REQUIRE(env.runUntil([&] { return b->last("INVITE") != nullptr; }));
    Incoming *in = b->last("INVITE");
    std::string top = in->request.header("Record-Route", 0), second = in->request.header("Record-Route", 1);
    INFO("Record-Route: " << top << " | " << second);
    CHECK(top.find(env.proxyHostPort()) != std::string::npos);
    CHECK(top.find("transport=tcp") == std::string::npos);                           // bob speaks UDP
    CHECK(second.find(env.proxyHostPort() + ";transport=tcp") != std::string::npos); // alice speaks TCP
    b->reply(*in, 200);
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200; }));
    REQUIRE(env.runUntil([&] { return !in->acks.empty(); }));
    auto &bye = a->inDialog(inv, "BYE");
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(b->last("BYE"));
    CHECK(b->last("BYE")->request.header("Via", 1).find("TCP") != std::string::npos);
    CHECK(b->last("BYE")->request.header("Route").empty()); // both our entries were removed (§16.4)
}

TEST_CASE("A listener that cannot be bound is reported by URL", "[proxy][badinput]") {
    sofia::Root root;
    proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
    cfg.listen = {"sip:192.0.2.123:5060"}; // TEST-NET address, not ours
    proxy::Proxy p(root.get(), cfg);
    try {
        p.bind();
        FAIL("bind succeeded");
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()).find("sip:192.0.2.123:5060") != std::string::npos);
    }
    proxy::CoreConfig bad = SipTestEnv::defaultConfig();
    bad.t1Ms = 0;
    CHECK_THROWS_WITH(proxy::Proxy(root.get(), bad), Catch::Contains("t1"));
}

TEST_CASE("Proxy-Require with an unknown extension is refused with 420 and Unsupported", "[proxy][badinput]") {
    SipTestEnv env;
    HookModule src("src");
    std::string source;
    src.onRequest = [&](pw_request *req) {
        pw_str v = src.api->msg_source(src.api->request_msg(req));
        source.assign(v.ptr, v.len);
        return PW_CONTINUE;
    };
    env.add(src);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    RequestOptions o;
    o.headers = {"Proxy-Require: foo-ext"};
    auto &c = a->send("OPTIONS", b->uri(), o);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 420);
    CHECK(c.response(420)->header("Unsupported") == "foo-ext");
    CHECK(b->count("OPTIONS") == 0);
    auto &ok = a->send("OPTIONS", b->uri());
    REQUIRE(env.runUntil([&] { return ok.finalStatus != 0; }));
    CHECK(ok.finalStatus == 200);
    CHECK(source == "udp:127.0.0.1:" + std::to_string(a->port()));
}

TEST_CASE("Headers added and removed by a module reach the wire as headers, the body is untouched", "[proxy]") {
    SipTestEnv env;
    HookModule h("addhdr");
    h.onRequest = [&h](pw_request *req) {
        h.api->request_add_header(req, PW_STR_LIT("X-Added"), PW_STR_LIT("yes"));
        h.api->request_remove_header(req, PW_STR_LIT("X-Drop"));
        return PW_CONTINUE;
    };
    env.add(h);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("MESSAGE", 200);
    RequestOptions mo;
    mo.body = "hello body";
    mo.contentType = "text/plain";
    mo.headers = {"X-Drop: 1"};
    auto &c = a->send("MESSAGE", b->uri(), mo);
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 200);
    REQUIRE(b->count("MESSAGE") == 1);
    const auto &m = b->last("MESSAGE")->request;
    CHECK(m.header("X-Added") == "yes");
    CHECK(m.header("X-Drop").empty());
    CHECK(m.body() == "hello body");
}

// module.h pw_verdict: a verdict the host does not know (a newer module) is STOP, logged; never CONTINUE, so a
// module that meant to stop a request is obeyed. The unanswered request gets 500 and later modules never run.
TEST_CASE("An unknown verdict is taken as STOP: logged, answered 500, later modules not called", "[proxy][abi]") {
    auto cfg = SipTestEnv::defaultConfig();
    std::vector<std::string> lines;
    cfg.logSink = [&](int, const std::string &module, const std::string &text) {
        lines.push_back(module + ": " + text);
    };
    SipTestEnv env(cfg);
    HookModule newer("newer"), later("later");
    int laterCalls = 0;
    newer.onRequest = [](pw_request *) { return static_cast<pw_verdict>(7); };
    later.onRequest = [&](pw_request *) {
        ++laterCalls;
        return PW_CONTINUE;
    };
    env.add(newer);
    env.add(later);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("*", 200);
    auto &c = a->send("OPTIONS", b->uri());
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 500);
    CHECK(laterCalls == 0);
    bool logged = false;
    for (const auto &l : lines)
        logged |= l.find("newer: on_request returned unknown verdict 7") != std::string::npos;
    CHECK(logged);
}
