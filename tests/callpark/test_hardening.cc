// Hardening of the park path (issue 8): text that is not UTF-8 (a Latin-1 display name) parks like any other,
// caps on parked calls per domain and per extension, music-on-hold port exhaustion answered 503 + Retry-After,
// and the durability of a park answered 200 (the call is stored, with its dialog, before the 2xx leaves).
#include "park_env.hh"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utf8cpp/utf8.h>

#include <random>

using namespace parkway::test;
using nlohmann::json;

namespace {

const std::string kReplacement = "\xef\xbf\xbd"; // U+FFFD in UTF-8

bool validUtf8(const std::string &s) { return utf8::is_valid(s.begin(), s.end()); }

std::vector<const SipMessage *> hardeningDialogNotifies(TestUa &ua) {
    std::vector<const SipMessage *> out;
    for (auto &in : ua.incoming)
        if (in->request.method() == "NOTIFY" && in->request.header("Event").rfind("dialog", 0) == 0)
            out.push_back(&in->request);
    return out;
}

// An even port P with P and P+2 free: a music-on-hold range of exactly two streams (RTP on even ports).
uint16_t twoPortRange() {
    std::mt19937 rng(static_cast<unsigned>(::getpid()));
    for (int i = 0; i < 500; ++i) {
        uint16_t p = static_cast<uint16_t>(41000 + 2 * (rng() % 4000));
        if (udpPortFree(p) && udpPortFree(static_cast<uint16_t>(p + 2))) return p;
    }
    FAIL("no two free even UDP ports");
    return 0;
}

void setDomain(ParkEnv &p, const json &settings) {
    int st = 0;
    json args = settings;
    args["domain"] = kDomain;
    auto r = p.command("domains.set", args, &st);
    INFO(r.dump());
    REQUIRE(st == 200);
}

} // namespace

TEST_CASE("a Latin-1 display name parks, is listed, reaches BLF, is recalled and survives a restart",
          "[hardening][utf8][restart]") {
    ParkEnv p;
    setDomain(p, {{"recall", {{"recall_seconds", 3}, {"ring_seconds", 5}}}});
    auto &parker = p.phone("1003");
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    RequestOptions so;
    so.from = "<" + aorOf("1010") + ">";
    so.to = "<sip:*88110@" + kDomain + ">";
    so.headers = {"Event: dialog", "Expires: 300"};
    auto &sub = w.send("SUBSCRIBE", "sip:*88110@" + kDomain, so);
    REQUIRE(p.waitFinal(sub));
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return hardeningDialogNotifies(w).size() == 1; }));

    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    // "José" in ISO-8859-1: 0xE9 is no UTF-8 (RFC 3261 §25.1 wants UTF-8; phones send it anyway)
    auto &inv = p.invite(a, "2001", "*68110", ma.port(), {"Referred-By: <" + aorOf("1003") + ">"}, "Jos\xe9");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);

    int st = 0;
    json list = p.command("parked.list", json::object(), &st);
    REQUIRE(st == 200); // was 400 for every call while this one was parked
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["parked_display"] == "Jos" + kReplacement);
    CHECK(list["parked"][0]["extension"] == "110");

    // BLF sees the parked call, in a well-formed UTF-8 body
    REQUIRE(p.env().runUntil([&] { return hardeningDialogNotifies(w).size() == 2; }));
    std::string body = hardeningDialogNotifies(w)[1]->body();
    CHECK(body.find("<dialog ") != std::string::npos);
    CHECK(body.find("Jos" + kReplacement) != std::string::npos);
    CHECK(validUtf8(body));

    // The dialog was stored: after a restart the call is still parked, and its recall still comes.
    p.restart();
    CHECK(a.count("BYE") == 0);
    CHECK(p.parkedCount() == 1);
    // (the restore line comes once the batches ran: on a loop turn after the start)
    CHECK(p.env().runUntil([&] { return p.logged("restored 1 parked call(s), 0 could not be resumed").size() == 1; }));
    REQUIRE(p.env().runUntil([&] { return parker.count("INVITE") >= 1; }, 6000));
    Incoming *recall = parker.last("INVITE");
    REQUIRE(recall);
    CHECK(validUtf8(recall->request.header("From")));
}

TEST_CASE("caps - the domain cap answers 503 with Retry-After, the extension cap answers like an occupied one",
          "[hardening][caps]") {
    ParkEnv p;
    auto &a = p.ua("a");
    SECTION("max_parked per domain") {
        setDomain(p, {{"max_parked", 2}});
        auto &i1 = p.invite(a, "2001", "*68101", 4400);
        auto &i2 = p.invite(a, "2002", "*68102", 4402);
        REQUIRE(p.waitFinal(i1));
        REQUIRE(p.waitFinal(i2));
        CHECK(i1.finalStatus == 200);
        CHECK(i2.finalStatus == 200);
        auto &i3 = p.invite(a, "2003", "*68103", 4404);
        REQUIRE(p.waitFinal(i3));
        CHECK(i3.finalStatus == 503);
        REQUIRE(i3.response(503));
        CHECK(i3.response(503)->header("Retry-After") == "30"); // RFC 3261 §21.5.4
        CHECK(p.parkedCount() == 2);
        CHECK(p.metric("parkway_park_failures_total", "reason=\"domain_full\"") == 1);
        // a call that leaves makes room
        auto &bye = a.inDialog(i1, "BYE");
        REQUIRE(p.waitFinal(bye));
        REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 1; }));
        auto &i4 = p.invite(a, "2004", "*68104", 4406);
        REQUIRE(p.waitFinal(i4));
        CHECK(i4.finalStatus == 200);
    }
    SECTION("max_parked_per_extension, even with stacking") {
        setDomain(p, {{"max_parked_per_extension", 1}, {"occupied", "stack"}});
        auto &i1 = p.invite(a, "2001", "*68103", 4410);
        REQUIRE(p.waitFinal(i1));
        CHECK(i1.finalStatus == 200);
        auto &i2 = p.invite(a, "2002", "*68103", 4412);
        REQUIRE(p.waitFinal(i2));
        CHECK(i2.finalStatus == 486);
        CHECK(p.metric("parkway_park_failures_total", "reason=\"extension_full\"") == 1);
        auto &i3 = p.invite(a, "2003", "*68104", 4414);
        REQUIRE(p.waitFinal(i3));
        CHECK(i3.finalStatus == 200);
        CHECK(p.parkedCount() == 2);
    }
    SECTION("the defaults are documented values and shown by domains.list") {
        auto d = p.command("domains.list");
        INFO(d.dump());
        REQUIRE(d.dump().find("max_parked") != std::string::npos);
    }
}

TEST_CASE("music on hold out of ports: 503 with Retry-After (not 488/500), counted, and free again after a hang-up",
          "[hardening][caps][moh]") {
    uint16_t base = twoPortRange();
    ParkEnvOptions o;
    o.params = {{"moh_port_min", std::to_string(base)},
                {"moh_port_max", std::to_string(base + 2)},
                {"moh_streams_per_port", "1"}}; // two calls fill the range
    ParkEnv p(o);
    auto &a = p.ua("a");
    auto &i1 = p.invite(a, "2001", "*68101", 4420);
    auto &i2 = p.invite(a, "2002", "*68102", 0); // offerless: our 200 offers
    REQUIRE(p.waitFinal(i1));
    REQUIRE(p.waitFinal(i2));
    REQUIRE(i1.finalStatus == 200);
    REQUIRE(i2.finalStatus == 200);
    auto &full = p.invite(a, "2003", "*68103", 4424);
    REQUIRE(p.waitFinal(full));
    CHECK(full.finalStatus == 503);
    REQUIRE(full.response(503));
    CHECK(full.response(503)->header("Retry-After") == "30");
    auto &fullNoSdp = p.invite(a, "2004", "*68104", 0);
    REQUIRE(p.waitFinal(fullNoSdp));
    CHECK(fullNoSdp.finalStatus == 503); // was "500 No Media Port"
    CHECK(p.metric("parkway_park_failures_total", "reason=\"no_media_port\"") == 2);
    CHECK(p.parkedCount() == 2);

    auto &bye = a.inDialog(i1, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 1; }));
    p.env().runFor(100); // the port is released when the session is reaped
    auto &again = p.invite(a, "2005", "*68105", 4426);
    REQUIRE(p.waitFinal(again));
    CHECK(again.finalStatus == 200);
}

TEST_CASE("the park 200 reveals a stored call: its dialog is in the store when the caller is answered",
          "[hardening][durability]") {
    ParkEnv p;
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4430, {}, "Alice");
    // Stop the proxy the moment the 200 is seen (nothing else runs after it: no later loop turn, no timer);
    // the store must already hold everything needed to resume the call.
    REQUIRE(p.env().runUntil([&] { return inv.finalStatus != 0; }));
    REQUIRE(inv.finalStatus == 200);
    p.restart();
    CHECK(p.logged("has no stored dialog").empty());
    // (the restore line comes once the batches ran: on a loop turn after the start)
    CHECK(p.env().runUntil([&] { return p.logged("restored 1 parked call(s), 0 could not be resumed").size() == 1; }));
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    // retrievable: the restored park dialog is re-INVITEd for the retriever
    a.autoAnswer("INVITE", 200, answerSdp(4430), "application/sdp");
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 4432);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    REQUIRE(a.last("INVITE"));
    CHECK(a.last("INVITE")->request.callId() == inv.request.callId());
}

TEST_CASE("the log names the parked call when its party hangs up after a retrieve", "[hardening][log]") {
    ParkEnv p;
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(4440), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68103", 4440);
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    int64_t id = list["parked"][0]["id"];
    auto &r = p.ua("r");
    r.autoAnswer("BYE", 200);
    auto &ret = p.invite(r, "1005", "*88103", 4442);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    auto &bye = a.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return !p.logged("parked party of call").empty(); }));
    CHECK(p.logged("parked party of call " + std::to_string(id) + " left").size() == 1);
    CHECK(p.logged("parked party of call 0 ").empty());
}
