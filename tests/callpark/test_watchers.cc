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

// ---------------------------------------------------------------- caps (docs/limits.md "Call park")

namespace {

// An in-dialog SUBSCRIBE on an existing subscription (refresh, or Expires: 0 to end it).
Client &resubscribe(ParkEnv &p, TestUa &w, Client &sub, int expires) {
    RequestOptions r;
    r.headers = {"Event: dialog", "Expires: " + std::to_string(expires)};
    auto &c = w.inDialog(sub, "SUBSCRIBE", r);
    REQUIRE(p.waitFinal(c));
    return c;
}

} // namespace

TEST_CASE("watcher caps - per subscriber 403 - per target and per domain 503 with Retry-After - a refresh is never "
          "refused - an ended subscription frees its place",
          "[watchers][caps]") {
    ParkEnvOptions o;
    o.params = {{"max_watchers_per_subscriber", "2"},
                {"max_watchers_per_target", "3"},
                {"max_watchers_per_domain", "5"},
                {"max_watchers", "0"}};
    ParkEnv p(o);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);

    auto &s1 = subscribe(p, w, "1010", "*88103", "dialog", 120);
    auto &s2 = subscribe(p, w, "1010", "*88103", "dialog", 120);
    CHECK(s1.finalStatus == 200);
    CHECK(s2.finalStatus == 200);
    // the subscriber's third: its own cap, 403 (a policy on that identity, not server capacity)
    auto &s3 = subscribe(p, w, "1010", "*88104", "dialog", 120);
    CHECK(s3.finalStatus == 403);
    CHECK(s3.responses.back().header("Retry-After").empty());

    // the slot's fourth watcher: per-target cap, 503 + Retry-After (RFC 3261 §21.5.4)
    CHECK(subscribe(p, w, "1011", "*88103", "dialog", 120).finalStatus == 200);
    auto &t4 = subscribe(p, w, "1012", "*88103", "dialog", 120);
    CHECK(t4.finalStatus == 503);
    CHECK(t4.responses.back().header("Retry-After") == "60");

    // other targets until the domain holds 5; the 6th gets 503 + Retry-After
    CHECK(subscribe(p, w, "1012", "*88105", "dialog", 120).finalStatus == 200);
    CHECK(subscribe(p, w, "1013", "*88106", "dialog", 120).finalStatus == 200);
    auto &d6 = subscribe(p, w, "1014", "*88107", "dialog", 120);
    CHECK(d6.finalStatus == 503);
    CHECK(d6.responses.back().header("Retry-After") == "60");

    // a refresh of an existing subscription is never refused, the caps being reached or not
    CHECK(resubscribe(p, w, s1, 120).finalStatus == 200);
    // a BroadWorks call-info subscription counts against the same caps
    auto &bw = subscribe(p, w, "1015", "108", "call-info", 60, {"Accept: application/x-broadworks-callpark-info+xml"});
    CHECK(bw.finalStatus == 503);

    // ending one frees its place in every count
    CHECK(resubscribe(p, w, s2, 0).finalStatus == 200);
    p.env().runFor(100);
    CHECK(subscribe(p, w, "1014", "*88107", "dialog", 120).finalStatus == 200);
    CHECK(subscribe(p, w, "1010", "*88104", "dialog", 120).finalStatus == 503); // the domain is full again
}

TEST_CASE("watcher caps - max_watchers bounds the whole server - 0 turns a cap off", "[watchers][caps]") {
    ParkEnvOptions o;
    o.params = {{"max_watchers", "2"},
                {"max_watchers_per_domain", "0"},
                {"max_watchers_per_target", "0"},
                {"max_watchers_per_subscriber", "0"}};
    ParkEnv p(o);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    CHECK(subscribe(p, w, "1010", "*88103", "dialog", 60).finalStatus == 200);
    CHECK(subscribe(p, w, "1010", "*88103", "dialog", 60).finalStatus == 200);
    auto &third = subscribe(p, w, "1011", "*88104", "dialog", 60);
    CHECK(third.finalStatus == 503);
    CHECK(third.responses.back().header("Retry-After") == "60");
    // a fetch (Expires: 0) is a subscription too while it lasts: refused as well
    CHECK(subscribe(p, w, "1011", "*88104", "dialog", 0).finalStatus == 503);
}

TEST_CASE("watcher cap parameters are checked at load", "[watchers][caps]") {
    for (auto [k, v] : {std::pair{"max_watchers", "-1"}, {"notify_batch", "0"}, {"max_park_time", "500ms"}}) {
        ParkEnvOptions o;
        o.params[k] = v;
        INFO(k << " = " << v);
        CHECK_THROWS(ParkEnv(o));
    }
}

// ---------------------------------------------------------------- paced fan-out (docs/notifications.md "Pacing")

namespace {

struct Crowd {
    std::vector<TestUa *> uas;
    std::vector<Client *> subs;
};

// `n` dialog subscriptions to `target`, spread over `nUas` UAs (each reads one datagram per loop turn, so the
// load is shared), sent in chunks so no socket buffer overflows.
Crowd watchCrowd(ParkEnv &p, const std::string &target, size_t n, size_t nUas) {
    Crowd c;
    for (size_t u = 0; u < nUas; ++u) {
        auto &ua = p.ua("crowd" + std::to_string(u));
        ua.autoAnswer("NOTIFY", 200);
        c.uas.push_back(&ua);
    }
    const size_t chunk = 100;
    for (size_t i = 0; i < n; i += chunk) {
        std::vector<Client *> batch;
        for (size_t k = i; k < std::min(n, i + chunk); ++k) {
            RequestOptions o;
            o.from = "<" + aorOf(std::to_string(20000 + k)) + ">";
            o.to = "<sip:" + target + "@" + kDomain + ">";
            o.headers = {"Event: dialog", "Expires: 600"};
            batch.push_back(&c.uas[k % nUas]->send("SUBSCRIBE", "sip:" + target + "@" + kDomain, o));
        }
        bool done = p.env().runUntil(
            [&] {
                for (Client *b : batch)
                    if (b->finalStatus == 0)
                        return false;
                return true;
            },
            20000);
        if (!done) {
            size_t pending = 0;
            for (Client *b : batch)
                pending += b->finalStatus == 0;
            WARN("batch at " << i << ": " << pending << " pending");
        }
        REQUIRE(done);
        for (Client *b : batch)
            REQUIRE(b->finalStatus == 200);
        c.subs.insert(c.subs.end(), batch.begin(), batch.end());
    }
    return c;
}

// What each crowd subscription received, read incrementally (predicates run once per loop turn and must stay
// cheap: the proxy reads one datagram per socket per turn).
struct Seen {
    int version = -1;
    bool hasDialog = false;
    std::string subState;
};
struct CrowdLog {
    const Crowd &crowd;
    std::vector<size_t> read;                          // per UA: incoming entries already looked at
    std::map<std::string, std::vector<Seen>> byDialog; // Call-ID -> NOTIFYs in arrival order
    size_t atLeast1 = 0;                               // NOTIFYs with version >= 1
    explicit CrowdLog(const Crowd &c) : crowd(c), read(c.uas.size(), 0) {}
    void update() {
        for (size_t u = 0; u < crowd.uas.size(); ++u) {
            auto &in = crowd.uas[u]->incoming;
            for (; read[u] < in.size(); ++read[u]) {
                const SipMessage &m = in[read[u]]->request;
                if (m.method() != "NOTIFY" || m.header("Event") != "dialog")
                    continue;
                Seen s{version(m), m.body().find("<dialog ") != std::string::npos, m.header("Subscription-State")};
                if (s.version >= 1)
                    ++atLeast1;
                byDialog[m.callId()].push_back(s);
            }
        }
    }
};

// Every watcher's NOTIFYs have strictly increasing versions (RFC 4235 §4.1) and the last shows no <dialog>.
// Returns how many NOTIFYs came after the first (initial) one.
size_t checkFinalIdle(CrowdLog &log) {
    log.update();
    REQUIRE(log.byDialog.size() == log.crowd.subs.size());
    size_t after = 0;
    for (auto &[cid, list] : log.byDialog) {
        INFO("subscription " << cid << ": " << list.size() << " NOTIFYs");
        for (size_t i = 1; i < list.size(); ++i)
            REQUIRE(list[i].version > list[i - 1].version);
        REQUIRE(!list.back().hasDialog);
        after += list.size() - 1;
    }
    return after;
}

} // namespace

TEST_CASE("NOTIFY fan-out is paced - other requests are answered meanwhile - every watcher ends with the final "
          "state - a watcher still queued gets only the newest state",
          "[watchers][pacing]") {
    const size_t kWatchers = 2000;
    ParkEnvOptions o;
    o.params = {{"notify_batch", "20"},
                {"max_watchers", "0"},
                {"max_watchers_per_domain", "0"},
                {"max_watchers_per_target", "0"},
                {"max_watchers_per_subscriber", "0"}};
    // Thousands of NOTIFY transactions at once: on a loaded machine the crowd answers some of them after the
    // test's usual 64*T1 (3.2 s), a 408 ends those subscriptions (RFC 6665 §4.2.2) and they never see the final
    // state. The default T1 (500 ms, 32 s) keeps what is tested here (pacing, coalescing) independent of load.
    o.core = [](parkway::proxy::CoreConfig &c) {
        c.t1Ms = 500;
        c.t2Ms = 4000;
    };
    ParkEnv p(o);
    Crowd crowd = watchCrowd(p, "*88103", kWatchers, 20);
    CrowdLog log(crowd);
    REQUIRE(p.env().runUntil([&] { return log.update(), log.byDialog.size() == kWatchers; }, 20000));

    // One park: kWatchers NOTIFYs are owed. A REGISTER sent as soon as the park is answered is answered
    // while most of them are still queued.
    auto &ph = p.phone("1001");
    auto sentNotifies = [&] { return size_t(p.metric("parkway_notify_sent_total", "kind=\"dialog\"")); };
    const size_t sentBeforePark = sentNotifies();
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4130, {}, "Crowd Caller");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    RequestOptions r;
    r.from = r.to = "<" + aorOf("1001") + ">";
    r.headers = {"Contact: <" + ph.uri("1001") + ">", "Expires: 3600"};
    auto &reg = ph.send("REGISTER", "sip:" + kDomain, r);
    size_t sentBeforeRegisterAnswered = 0;
    REQUIRE(p.env().runUntil([&] {
        if (reg.finalStatus == 0)
            return false;
        sentBeforeRegisterAnswered = sentNotifies() - sentBeforePark; // what the proxy had sent by then
        return true;
    }));
    CHECK(reg.finalStatus == 200);
    INFO("park NOTIFYs sent before the REGISTER's answer arrived: " << sentBeforeRegisterAnswered);
    CHECK(sentBeforeRegisterAnswered < kWatchers / 2);

    // The parked party hangs up while NOTIFYs are still queued: those watchers get only the newest (idle) state.
    auto &bye = a.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    // Done when every watcher's latest NOTIFY shows the idle slot (cheap check: a count kept as they come).
    size_t idle = 0, heard = 0;
    bool allIdle = p.env().runUntil(
        [&] {
            log.update();
            idle = heard = 0;
            for (auto &[cid, list] : log.byDialog) {
                idle += list.size() >= 2 && !list.back().hasDialog;
                heard += list.size() >= 2;
            }
            return idle == kWatchers;
        },
        30000);
    INFO("watchers whose latest NOTIFY is idle: " << idle << ", that heard after the initial one: " << heard
                                                  << ", NOTIFYs sent: " << sentNotifies() - sentBeforePark
                                                  << ", failed (a 408 ends the subscription, RFC 6665 §4.2.2): "
                                                  << p.metric("parkway_notify_failed_total", "kind=\"dialog\""));
    REQUIRE(allIdle);
    p.env().runFor(300);
    size_t after = checkFinalIdle(log);
    INFO("NOTIFYs after the initial ones: " << after);
    CHECK(after >= kWatchers);    // everyone heard at least once
    CHECK(after < 2 * kWatchers); // ... and the queued ones only once (park + hang-up coalesced)
}

TEST_CASE("restart - stored watchers are resumed in paced batches - each with the next version - requests are "
          "answered meanwhile",
          "[watchers][pacing][restart]") {
    const size_t kWatchers = 1000;
    ParkEnvOptions o;
    o.params = {{"notify_batch", "20"},
                {"max_watchers", "0"},
                {"max_watchers_per_domain", "0"},
                {"max_watchers_per_target", "0"},
                {"max_watchers_per_subscriber", "0"}};
    // Thousands of NOTIFY transactions at once: on a loaded machine the crowd answers some of them after the
    // test's usual 64*T1 (3.2 s), a 408 ends those subscriptions (RFC 6665 §4.2.2) and they never see the final
    // state. The default T1 (500 ms, 32 s) keeps what is tested here (pacing, coalescing) independent of load.
    o.core = [](parkway::proxy::CoreConfig &c) {
        c.t1Ms = 500;
        c.t2Ms = 4000;
    };
    ParkEnv p(o);
    Crowd crowd = watchCrowd(p, "*88103", kWatchers, 10);
    CrowdLog log(crowd);
    REQUIRE(p.env().runUntil([&] { return log.update(), log.byDialog.size() == kWatchers; }, 20000));
    auto &ph = p.phone("1001");
    auto sentNotifies = [&] { return size_t(p.metric("parkway_notify_sent_total", "kind=\"dialog\"")); };
    const size_t sentBeforeRestart = sentNotifies();

    p.restart();
    RequestOptions r;
    r.from = r.to = "<" + aorOf("1001") + ">";
    r.headers = {"Contact: <" + ph.uri("1001") + ">", "Expires: 3600"};
    auto &reg = ph.send("REGISTER", "sip:" + kDomain, r);
    size_t resumedBeforeRegisterAnswered = 0;
    REQUIRE(p.env().runUntil([&] {
        if (reg.finalStatus == 0)
            return false;
        resumedBeforeRegisterAnswered = sentNotifies() - sentBeforeRestart;
        return true;
    }));
    CHECK(reg.finalStatus == 200);
    INFO("resumed NOTIFYs sent before the REGISTER's answer arrived: " << resumedBeforeRegisterAnswered);
    CHECK(resumedBeforeRegisterAnswered < kWatchers / 2);
    REQUIRE(p.env().runUntil([&] { return log.update(), log.atLeast1 == kWatchers; }, 30000));
    p.env().runFor(300);
    log.update();
    for (auto &[cid, list] : log.byDialog) {
        REQUIRE(list.size() == 2); // the initial one, then exactly one on resumption
        CHECK(list[1].version == 1);
        CHECK(list[1].subState.rfind("active", 0) == 0);
    }
}

// Issue 10 (A): a package we do not serve on a URI that is ours gets 489 + Allow-Events (RFC 6665 §4.2.2), not a
// 404 the phone retries for ever; the same package on a URI that is not ours still passes on untouched.
TEST_CASE("SUBSCRIBE of a package we do not serve to a park code gets 489 Bad Event with Allow-Events",
          "[watchers][issue10]") {
    ParkEnv p;
    auto &w = p.phone("1015");
    for (const std::string target : {"*88103", "*68103", "*88"}) {
        INFO(target);
        auto &c = subscribe(p, w, "1015", target, "conference", 600);
        CHECK(c.finalStatus == 489);
        const SipMessage *r = c.response(489);
        REQUIRE(r);
        CHECK(r->header("Allow-Events") == "dialog, call-info, presence");
    }
    // a parameter on the Event header does not make it a package we serve
    auto &mwi = subscribe(p, w, "1015", "*88103", "message-summary;id=1", 600);
    CHECK(mwi.finalStatus == 489);
    // the packages we serve are still accepted there
    w.autoAnswer("NOTIFY", 200);
    auto &ok = subscribe(p, w, "1015", "*88103", "dialog", 600);
    CHECK(ok.finalStatus == 200);
    // presence of a plain extension is not ours: the SUBSCRIBE continues (the router answers it, never 489)
    auto &other = subscribe(p, w, "1015", "103", "presence", 600);
    CHECK(other.finalStatus != 489);
    CHECK(other.response(489) == nullptr);
}

// Issue 10 (B): docs/park-info.md promises +1 per park-info NOTIFY to an extension. Events that send no park-info
// (recall failed between two recall attempts, retrieve started before retrieved) must not consume a version, and
// the counter goes on after a restart.
namespace {
int parkInfoVersion(const SipMessage &m) {
    std::smatch sm;
    std::string b = m.body();
    if (std::regex_search(b, sm, std::regex("<park-info[^>]* version=\"([0-9]+)\"")))
        return std::stoi(sm[1]);
    return -1;
}
std::string parkInfoState(const SipMessage &m) {
    std::smatch sm;
    std::string b = m.body();
    if (std::regex_search(b, sm, std::regex("<parked [^>]*state=\"([a-z]+)\"")))
        return sm[1];
    return "";
}
} // namespace

TEST_CASE("park-info versions to one extension go up by exactly 1 per NOTIFY - events without park-info in between "
          "do not count - across a restart",
          "[watchers][issue10]") {
    ParkEnv p;
    int st = 0;
    p.command("domains.set",
              {{"domain", kDomain}, {"recall", {{"recall_seconds", 1}, {"ring_seconds", 1}, {"retry_seconds", 1}}}},
              &st);
    REQUIRE(st == 200);
    auto &ph = p.phone("103");
    ph.autoAnswer("NOTIFY", 200);
    p.phone("1003"); // the parker: rung by the recall, never answers
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(4140), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68103", 4140, {"Referred-By: <" + aorOf("1003") + ">"}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    // parked, recalled, (recall failed: no park-info), recalled again
    REQUIRE(p.env().runUntil([&] { return notifies(ph, "park-info").size() >= 3; }, 8000));
    // a retrieve: retrieve started (no park-info), then retrieved
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 4142);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] {
        auto n = notifies(ph, "park-info");
        return !n.empty() && parkInfoState(*n.back()) == "retrieved";
    }));

    // after a restart the next park-info goes on from there
    p.restart();
    auto &b = p.ua("b");
    b.autoAnswer("INVITE", 200, answerSdp(4144), "application/sdp");
    auto &inv2 = p.invite(b, "2002", "*68103", 4144, {"Referred-By: <" + aorOf("1003") + ">"}, "Bob");
    REQUIRE(p.waitFinal(inv2));
    REQUIRE(inv2.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] {
        auto n = notifies(ph, "park-info");
        return !n.empty() && parkInfoState(*n.back()) == "parked" && n.back()->body().find("Bob") != std::string::npos;
    }));

    auto n = notifies(ph, "park-info");
    std::vector<std::string> states;
    std::vector<int> versions;
    for (const SipMessage *m : n) {
        states.push_back(parkInfoState(*m));
        versions.push_back(parkInfoVersion(*m));
    }
    INFO("states " << Catch::Detail::stringify(states) << " versions " << Catch::Detail::stringify(versions));
    REQUIRE(n.size() >= 5);
    CHECK(states.front() == "parked");
    CHECK(std::count(states.begin(), states.end(), "recalled") >= 2);
    CHECK(states[states.size() - 2] == "retrieved");
    CHECK(states.back() == "parked");
    CHECK(versions.front() >= 1);
    for (size_t i = 1; i < versions.size(); ++i)
        CHECK(versions[i] == versions[i - 1] + 1);
}
