// Notifications: RFC 4235 dialog-info for BLF (subscribe, refresh, unsubscribe; version +1 per NOTIFY),
// BroadWorks call-info, and the out-of-dialog park-info NOTIFY (a 481 from the phone is tolerated).
#include "park_env.hh"

#include <regex>

using namespace parkway::test;
using nlohmann::json;

namespace {

std::vector<const SipMessage *> notifies(TestUa &ua, const std::string &event) {
    std::vector<const SipMessage *> out;
    for (auto &in : ua.incoming)
        if (in->request.method() == "NOTIFY" && in->request.header("Event").rfind(event, 0) == 0)
            out.push_back(&in->request);
    return out;
}

int version(const SipMessage &m) {
    std::smatch sm;
    std::string b = m.body();
    if (std::regex_search(b, sm, std::regex("<dialog-info[^>]* version=\"([0-9]+)\""))) return std::stoi(sm[1]);
    return -1;
}

Client &subscribe(ParkEnv &p, TestUa &w, const std::string &ext, const std::string &target, const std::string &event,
                  int expires, std::vector<std::string> extra = {}) {
    RequestOptions o;
    o.from = "<" + aorOf(ext) + ">";
    o.to = "<sip:" + target + "@" + kDomain + ">";
    o.headers = {"Event: " + event, "Expires: " + std::to_string(expires)};
    for (auto &h : extra) o.headers.push_back(h);
    auto &c = w.send("SUBSCRIBE", "sip:" + target + "@" + kDomain, o);
    REQUIRE(p.waitFinal(c));
    return c;
}

} // namespace

TEST_CASE("BLF - dialog-info full state on subscribe and change and refresh - terminated on unsubscribe",
          "[watchers]") {
    ParkEnv p;
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribe(p, w, "1010", "*88103", "dialog", 120);
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 1; }));
    const SipMessage *n0 = notifies(w, "dialog")[0];
    CHECK(version(*n0) == 0);
    CHECK(n0->body().find("state=\"full\"") != std::string::npos);
    CHECK(n0->body().find("<dialog ") == std::string::npos); // idle: no dialog
    CHECK(n0->header("Subscription-State").rfind("active", 0) == 0);
    CHECK(n0->header("Content-Type") == "application/dialog-info+xml");

    // a park on 103 -> NOTIFY version 1 with the parked party and the park dialog's ids (Replaces pickup)
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4100, {}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 2; }));
    const SipMessage *n1 = notifies(w, "dialog")[1];
    CHECK(version(*n1) == 1);
    CHECK(n1->body().find("<state>early</state>") != std::string::npos);
    CHECK(n1->body().find(inv.request.callId()) != std::string::npos);
    CHECK(n1->body().find("remote-tag=\"" + inv.request.fromTag() + "\"") != std::string::npos);
    CHECK(n1->body().find("Alice") != std::string::npos);

    // refresh -> full state again, version 2
    RequestOptions r;
    r.headers = {"Event: dialog", "Expires: 120"};
    auto &refresh = w.inDialog(sub, "SUBSCRIBE", r);
    REQUIRE(p.waitFinal(refresh));
    CHECK(refresh.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 3; }));
    CHECK(version(*notifies(w, "dialog")[2]) == 2);
    CHECK(notifies(w, "dialog")[2]->body().find("<dialog ") != std::string::npos);

    // the parked party hangs up -> version 3, idle
    auto &bye = a.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 4; }));
    CHECK(version(*notifies(w, "dialog")[3]) == 3);
    CHECK(notifies(w, "dialog")[3]->body().find("<dialog ") == std::string::npos);

    // unsubscribe -> terminated NOTIFY, version 4, and no more NOTIFYs afterwards
    RequestOptions u;
    u.headers = {"Event: dialog", "Expires: 0"};
    auto &unsub = w.inDialog(sub, "SUBSCRIBE", u);
    REQUIRE(p.waitFinal(unsub));
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 5; }));
    CHECK(version(*notifies(w, "dialog")[4]) == 4);
    CHECK(notifies(w, "dialog")[4]->header("Subscription-State").rfind("terminated", 0) == 0);
    auto &a2 = p.ua("a2");
    auto &inv2 = p.invite(a2, "2002", "*68103", 4102);
    REQUIRE(p.waitFinal(inv2));
    p.env().runFor(300);
    CHECK(notifies(w, "dialog").size() == 5);
}

TEST_CASE("blf_state confirmed shows a parked call as confirmed", "[watchers]") {
    ParkEnvOptions o;
    o.params["blf_state"] = "confirmed";
    ParkEnv p(o);
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4104);
    REQUIRE(p.waitFinal(inv));
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribe(p, w, "1010", "*88103", "dialog", 60);
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 1; }));
    CHECK(notifies(w, "dialog")[0]->body().find("<state>confirmed</state>") != std::string::npos);
}

TEST_CASE("BroadWorks call-info subscription gets x-broadworks-callpark-info bodies", "[watchers]") {
    ParkEnv p;
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribe(p, w, "103", "103", "call-info", 60,
                          {"Accept: application/x-broadworks-callpark-info+xml"});
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "call-info").size() == 1; }));
    CHECK(notifies(w, "call-info")[0]->header("Content-Type") == "application/x-broadworks-callpark-info+xml");
    CHECK(notifies(w, "call-info")[0]->body().find("<parked>") == std::string::npos);
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4106, {}, "C. Parked");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(p.env().runUntil([&] { return notifies(w, "call-info").size() == 2; }));
    std::string b = notifies(w, "call-info")[1]->body();
    CHECK(b.find("<parked>") != std::string::npos);
    CHECK(b.find("C. Parked") != std::string::npos);
}

TEST_CASE("park-info NOTIFY goes to the parked-on extension's contacts - a 481 is tolerated and not retried",
          "[watchers]") {
    ParkEnv p;
    auto &ph = p.phone("103");
    ph.autoAnswer("NOTIFY", 481);
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(4108), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68103", 4108, {}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(ph, "park-info").size() == 1; }));
    const SipMessage *n = notifies(ph, "park-info")[0];
    CHECK(n->header("Content-Type") == "application/x-park-info+xml");
    CHECK(n->header("Subscription-State").rfind("terminated", 0) == 0);
    CHECK(n->body().find("state=\"parked\"") != std::string::npos);
    CHECK(n->body().find("*88103") != std::string::npos);
    p.env().runFor(500);
    CHECK(notifies(ph, "park-info").size() == 1); // the 481 was not retried
    // the park goes on undisturbed and the retrieve is announced too
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "103", "*88", 4110);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(ph, "park-info").size() == 2; }));
    CHECK(notifies(ph, "park-info")[1]->body().find("state=\"retrieved\"") != std::string::npos);
}

TEST_CASE("group park notifies every member of the group", "[watchers]") {
    ParkEnv p;
    int st = 0;
    p.command("groups.set", {{"domain", kDomain}, {"name", "sales"}, {"members", {"101", "102"}}, {"notify_parker", true}},
              &st);
    REQUIRE(st == 200);
    auto &m1 = p.phone("101");
    auto &m2 = p.phone("102");
    m1.autoAnswer("NOTIFY", 200);
    m2.autoAnswer("NOTIFY", 200);
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*58", 4112, {"Referred-By: <" + aorOf("102") + ">"});
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    bool both = p.env().runUntil([&] { return notifies(m1, "park-info").size() >= 1 && notifies(m2, "park-info").size() >= 1; });
    INFO("m1 " << notifies(m1, "park-info").size() << " m2 " << notifies(m2, "park-info").size());
    REQUIRE(both);
    p.env().runFor(200);
    CHECK(notifies(m1, "park-info").size() == 1);
    CHECK(notifies(m2, "park-info").size() == 1);
    CHECK(notifies(m2, "park-info")[0]->body().find("<group>sales</group>") != std::string::npos);
}

TEST_CASE("orbit style by rules - 700 parks into lot main - BLF on 701 watches the slot - 701 retrieves", "[watchers][lot]") {
    ParkEnv p;
    int st = 0;
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 720}}, &st);
    REQUIRE(st == 200);
    auto r = p.command("rules.import",
                       {{"text", "0\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"
                                 "0\t\t0\t11\tregex\t^7[0-9][0-9]$\t0\t\t\taction=retrieve;lot=main\n"}},
                       &st);
    INFO(r.dump());
    REQUIRE(st == 200);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribe(p, w, "1010", "701", "dialog", 60);
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 1; }));
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(4120), "application/sdp");
    auto &inv = p.invite(a, "2001", "700", 4120, {}, "Orbit Caller");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 2; }));
    CHECK(notifies(w, "dialog")[1]->body().find("Orbit Caller") != std::string::npos);
    CHECK(p.command("parked.list")["parked"][0]["slot"] == 701);
    auto &rt = p.ua("rt");
    auto &ret = p.invite(rt, "1005", "701", 4122);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return notifies(w, "dialog").size() == 3; }));
    CHECK(notifies(w, "dialog")[2]->body().find("<dialog ") == std::string::npos);
}
