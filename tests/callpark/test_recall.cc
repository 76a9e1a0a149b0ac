// Recall (docs/callpark.md "Recall"): offerless INVITE with Alert-Info and a "Recall" display name to the parker, retry
// after no answer, the alternate ladder, connecting on answer, and hang-up / retrieve during a recall.
#include "park_env.hh"

using namespace parkway::test;
using namespace parkway;
using nlohmann::json;

namespace {

void shortRecall(ParkEnv &p, json extra = json::object()) {
    json recall = {{"recall_seconds", 1}, {"ring_seconds", 1}, {"retry_seconds", 1}};
    for (auto &[k, v] : extra.items())
        recall[k] = v;
    int st = 0;
    auto r = p.command("domains.set", {{"domain", kDomain}, {"recall", recall}}, &st);
    INFO(r.dump());
    REQUIRE(st == 200);
}

Client &parkOn(ParkEnv &p, TestUa &ua, const std::string &parker, RawUdp &rtp) {
    ua.autoAnswer("INVITE", 200, answerSdp(rtp.port()), "application/sdp");
    auto &inv = p.invite(ua, "2001", "*68", rtp.port(), {"Referred-By: <" + aorOf(parker) + ">"}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    return inv;
}

size_t invitesTo(TestUa &ua) {
    size_t n = 0;
    for (auto &in : ua.incoming)
        if (in->request.method() == "INVITE" && in->request.toTag().empty())
            ++n;
    return n;
}

} // namespace

TEST_CASE("recall rings the parker with Alert-Info - retries after no answer - connects on answer", "[recall]") {
    ParkEnvOptions o;
    o.params["recall_alert_info"] = "<http://127.0.0.1/Bellcore-dr3>";
    ParkEnv p(o);
    shortRecall(p);
    auto &parker = p.phone("1003");
    auto &a = p.ua("a");
    RawUdp ma;
    parkOn(p, a, "1003", ma);

    REQUIRE(p.env().runUntil([&] { return invitesTo(parker) >= 1; }, 4000));
    Incoming *first = parker.last("INVITE");
    CHECK(first->request.header("Alert-Info") == "<http://127.0.0.1/Bellcore-dr3>");
    CHECK(first->request.header("From").find("Recall: Alice") != std::string::npos);
    CHECK(first->request.body().empty()); // offerless (RFC 3725)
    CHECK(p.command("parked.list")["parked"][0]["state"] == "recalling");
    // nobody answers: the branch is cancelled after the ring time and retried after the retry interval
    REQUIRE(p.env().runUntil([&] { return first->cancelled; }, 4000));
    REQUIRE(p.env().runUntil([&] { return invitesTo(parker) >= 2; }, 5000));

    // now the parker answers the next attempt: the parked party is re-INVITEd with the parker's offer
    parker.autoAnswer("INVITE", 200, offerSdp(5100), "application/sdp");
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }, 8000));
    REQUIRE(p.env().runUntil([&] {
        for (auto &in : a.incoming)
            if (in->request.method() == "INVITE" && sdpAudioPort(in->request.body()) == 5100)
                return true;
        return false;
    }));
    // the parker's ACK carries the parked party's answer
    REQUIRE(p.env().runUntil([&] {
        for (auto &in : parker.incoming)
            for (auto &ack : in->acks)
                if (sdpAudioPort(ack.body()) == ma.port())
                    return true;
        SipMessage *s = parker.lastAck();
        return s && sdpAudioPort(s->body()) == ma.port();
    }));
}

TEST_CASE("recall parker_then_alternate rings the alternate after the parker's wait", "[recall][alternate]") {
    ParkEnv p;
    shortRecall(p, {{"mode", "parker_then_alternate"}, {"alternate", "1004"}, {"alternate_wait", 1}});
    auto &parker = p.phone("1003");
    auto &alt = p.phone("1004");
    alt.autoAnswer("INVITE", 200, offerSdp(5102), "application/sdp");
    auto &a = p.ua("a");
    RawUdp ma;
    parkOn(p, a, "1003", ma);
    REQUIRE(p.env().runUntil([&] { return invitesTo(parker) >= 1; }, 4000));
    REQUIRE(p.env().runUntil([&] { return invitesTo(alt) >= 1; }, 6000));
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }, 4000));
    CHECK(alt.last("INVITE")->request.header("From").find("Recall") != std::string::npos);
}

TEST_CASE("the parked party hangs up while being recalled - the ringing branch is cancelled", "[recall]") {
    ParkEnv p;
    shortRecall(p);
    auto &parker = p.phone("1003");
    auto &a = p.ua("a");
    RawUdp ma;
    auto &inv = parkOn(p, a, "1003", ma);
    REQUIRE(p.env().runUntil([&] { return invitesTo(parker) >= 1; }, 4000));
    auto &bye = a.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return parker.last("INVITE")->cancelled; }, 3000));
    CHECK(p.parkedCount() == 0);
}

TEST_CASE("a retrieve during a recall cancels the ringing branches", "[recall][retrieve]") {
    ParkEnv p;
    shortRecall(p);
    auto &parker = p.phone("1003");
    auto &a = p.ua("a");
    RawUdp ma;
    parkOn(p, a, "1003", ma);
    REQUIRE(p.env().runUntil([&] { return invitesTo(parker) >= 1; }, 4000));
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*881003", 5104);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return parker.last("INVITE")->cancelled; }, 3000));
    CHECK(p.parkedCount() == 0);
}

TEST_CASE("parked.recall forces a recall now and parked.hangup ends the call", "[recall][admin]") {
    ParkEnv p; // default recall time 300 s: nothing would ring by itself
    auto &parker = p.phone("1003");
    auto &a = p.ua("a");
    RawUdp ma;
    parkOn(p, a, "1003", ma);
    auto id = p.command("parked.list")["parked"][0]["id"];
    int st = 0;
    p.command("parked.recall", {{"id", id}}, &st);
    CHECK(st == 200);
    REQUIRE(p.env().runUntil([&] { return invitesTo(parker) >= 1; }, 2000));
    p.command("parked.hangup", {{"id", id}}, &st);
    CHECK(st == 200);
    REQUIRE(p.env().runUntil([&] { return a.count("BYE") == 1; }));
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }));
    p.command("parked.get", {{"id", id}}, &st);
    CHECK(st == 404);
}

// ---------------------------------------------------------------- maximum park time (docs/callpark.md)

namespace {
size_t dialogNotifiesTo(TestUa &ua) {
    size_t n = 0;
    for (auto &in : ua.incoming)
        if (in->request.method() == "NOTIFY" && in->request.header("Event") == "dialog")
            ++n;
    return n;
}
} // namespace

TEST_CASE("max park time: the final recall target rings once more, then the parked party gets a BYE with a Reason, "
          "the slot is freed and watchers see it",
          "[recall][max_park]") {
    ParkEnv p;
    shortRecall(p, {{"max_park_seconds", 3}}); // recall 1 s, ring 1 s, retry 1 s: parked too long at 3 s
    auto &parker = p.phone("1003");            // never answers
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    RequestOptions so;
    so.from = "<" + aorOf("1010") + ">";
    so.to = "<sip:*881003@" + kDomain + ">";
    so.headers = {"Event: dialog", "Expires: 600"};
    auto &sub = w.send("SUBSCRIBE", "sip:*881003@" + kDomain, so);
    REQUIRE(p.waitFinal(sub));
    REQUIRE(sub.finalStatus == 200);

    auto &a = p.ua("a");
    RawUdp ma;
    parkOn(p, a, "1003", ma);
    CHECK(p.command("parked.list")["parked"][0]["recall"]["max_park_seconds"] == 3);
    REQUIRE(p.env().runUntil([&] { return a.count("BYE") == 1; }, 12000));
    const SipMessage &bye = a.last("BYE")->request;
    CHECK(bye.header("Reason") == "SIP;cause=480;text=\"Parked too long\""); // RFC 3326
    CHECK(invitesTo(parker) == 2); // the normal attempt at 1 s, then the final one: never again
    // (with a storage thread the abandon is stored a moment after the BYE)
    CHECK(p.env().runUntil([&] { return p.parkedCount() == 0; }));
    CHECK(p.metric("parkway_park_expired_total", "domain=\"" + kDomain + "\"") == 1);
    CHECK(p.env().runUntil([&] { return p.metric("parkway_abandons_total", "domain=\"" + kDomain + "\"") == 1; }));
    // the watcher's last NOTIFY shows the slot empty
    REQUIRE(p.env().runUntil([&] {
        Incoming *n = w.last("NOTIFY");
        return n && dialogNotifiesTo(w) >= 3 && n->request.body().find("<dialog ") == std::string::npos;
    }));
    p.env().runFor(1500);
    CHECK(a.count("BYE") == 1); // one BYE only
    CHECK(invitesTo(parker) == 2);
}

TEST_CASE("max park time: parker_then_alternate ends on the alternate, rung once", "[recall][max_park]") {
    ParkEnv p;
    shortRecall(
        p, {{"mode", "parker_then_alternate"}, {"alternate", "1004"}, {"alternate_wait", 1}, {"max_park_seconds", 2}});
    auto &parker = p.phone("1003");
    auto &alt = p.phone("1004");
    auto &a = p.ua("a");
    RawUdp ma;
    parkOn(p, a, "1003", ma);
    REQUIRE(p.env().runUntil([&] { return a.count("BYE") == 1; }, 12000));
    CHECK(invitesTo(parker) == 1);
    CHECK(invitesTo(alt) == 1);
    CHECK(p.env().runUntil([&] { return p.parkedCount() == 0; }));
}

TEST_CASE("max_park_time of the module applies to domains without their own setting, 0 is no limit",
          "[recall][max_park]") {
    auto maxPark = [](ParkEnv &p) {
        auto list = p.command("domains.list");
        for (auto &d : list["domains"])
            if (d["name"] == kDomain)
                return d["recall"]["max_park_seconds"].get<int>();
        return -1;
    };
    {
        ParkEnvOptions o;
        o.params["max_park_time"] = "0";
        ParkEnv p(o);
        CHECK(maxPark(p) == 0);
    }
    ParkEnvOptions o2;
    o2.params["max_park_time"] = "10m";
    ParkEnv p2(o2);
    CHECK(maxPark(p2) == 600);
    ParkEnv p3; // default: 30 minutes
    CHECK(maxPark(p3) == 1800);
}

TEST_CASE("phone_profile picks the recall Alert-Info, recall_alert_info overrides it, none sends none",
          "[recall][profile]") {
    struct Case {
        std::map<std::string, std::string> params;
        std::string alertInfo; // "" = no Alert-Info header
    };
    const Case cases[] = {
        {{}, "<urn:alert:tone:recall>"},
        {{{"phone_profile", "grandstream"}}, "<http://127.0.0.1/Bellcore-dr3>"},
        {{{"phone_profile", "grandstream"}, {"recall_alert_info", "<http://127.0.0.1>;info=recall"}},
         "<http://127.0.0.1>;info=recall"},
        {{{"recall_alert_info", "none"}}, ""},
    };
    for (const auto &c : cases) {
        INFO("expected Alert-Info: " << c.alertInfo);
        ParkEnvOptions o;
        o.params = c.params;
        ParkEnv p(o);
        shortRecall(p);
        auto &parker = p.phone("1003");
        auto &a = p.ua("a");
        RawUdp ma;
        parkOn(p, a, "1003", ma);
        REQUIRE(p.env().runUntil([&] { return invitesTo(parker) >= 1; }, 4000));
        const SipMessage &recall = parker.last("INVITE")->request;
        CHECK(recall.headerCount("Alert-Info") == (c.alertInfo.empty() ? 0 : 1));
        CHECK(recall.header("Alert-Info") == c.alertInfo);
    }
}

TEST_CASE("An unknown phone_profile stops the module at start, naming the parameter", "[recall][profile]") {
    std::vector<std::string> errors;
    proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
    cfg.logSink = [&](int level, const std::string &, const std::string &text) {
        if (level == PW_LOG_ERROR)
            errors.push_back(text);
    };
    SipTestEnv env(cfg);
    env.add(
        proxy::loadModule("callpark", SipTestEnv::moduleDir(), {{"phone_profile", "nokia"}, {"database", ":memory:"}}));
    CHECK_THROWS(env.start());
    bool named = false;
    for (const auto &e : errors)
        named = named || e.find("phone_profile 'nokia' must be generic or grandstream") != std::string::npos;
    CHECK(named);
}

// Issue 10 (C): a caller that dials the park code itself (no REFER, no Referred-By) is not its own parker: the
// recall rings the parked-on extension's phone, never the parked caller's ("Recall: me").
TEST_CASE("self-park - the caller dials *68103 itself - the recall rings 103's phone, not the caller",
          "[recall][issue10]") {
    ParkEnv p;
    shortRecall(p);
    auto &caller = p.phone("2001");
    auto &ext = p.phone("103");
    RawUdp mc;
    caller.autoAnswer("INVITE", 200, answerSdp(mc.port()), "application/sdp");
    auto &inv = p.invite(caller, "2001", "*68103", mc.port(), {}, "Carol");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    auto list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "103");
    CHECK(list["parked"][0].value("parker", std::string()) == ""); // no parker recorded: it parked itself

    REQUIRE(p.env().runUntil([&] { return invitesTo(ext) >= 1; }, 4000));
    CHECK(ext.last("INVITE")->request.header("From").find("Recall: Carol") != std::string::npos);
    p.env().runFor(300);
    CHECK(invitesTo(caller) == 0); // the parked caller's own phone never rings
}

TEST_CASE("self-park on an extension without a contact - the recall rings the domain's alternate, not the caller",
          "[recall][issue10][alternate]") {
    ParkEnv p;
    shortRecall(p, {{"alternate", "1004"}}); // mode parker: the alternate is only the fallback
    auto &caller = p.phone("2001");
    auto &alt = p.phone("1004");
    RawUdp mc;
    caller.autoAnswer("INVITE", 200, answerSdp(mc.port()), "application/sdp");
    auto &inv = p.invite(caller, "2001", "*68103", mc.port(), {}, "Carol"); // 103 has no registered phone
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return invitesTo(alt) >= 1; }, 4000));
    CHECK(alt.last("INVITE")->request.header("From").find("Recall: Carol") != std::string::npos);
    alt.autoAnswer("INVITE", 200, offerSdp(5106), "application/sdp");
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }, 6000)); // the alternate answers the retry
    CHECK(invitesTo(caller) == 0);
}

// The alternate group's members are read with the recall step (on the storage thread when there is one,
// docs/cluster.md "Threads"): every member rings.
TEST_CASE("self-park on an extension without a contact - an alternate group rings every member", "[recall][issue10]") {
    ParkEnv p;
    int st = 0;
    p.command("groups.set", {{"domain", kDomain}, {"name", "backoffice"}, {"members", {"1004", "1005"}}}, &st);
    REQUIRE(st == 200);
    shortRecall(p, {{"alternate", "group:backoffice"}});
    auto &caller = p.phone("2001");
    auto &m1 = p.phone("1004");
    auto &m2 = p.phone("1005");
    RawUdp mc;
    caller.autoAnswer("INVITE", 200, answerSdp(mc.port()), "application/sdp");
    auto &inv = p.invite(caller, "2001", "*68103", mc.port(), {}, "Carol"); // 103 has no registered phone
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return invitesTo(m1) >= 1 && invitesTo(m2) >= 1; }, 4000));
    CHECK(m2.last("INVITE")->request.header("From").find("Recall: Carol") != std::string::npos);
    m2.autoAnswer("INVITE", 200, offerSdp(5108), "application/sdp");
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }, 6000)); // a member answers the retry
    CHECK(invitesTo(caller) == 0);
}
