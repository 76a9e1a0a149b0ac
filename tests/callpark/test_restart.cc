// Restart (docs/callpark.md "Restart"): destroy the proxy with calls parked (no BYE goes out), start a new one on the
// same port and database: every call is still parked, retrievable (its dialog restored), hears music again and is
// recalled on time.
#include "park_env.hh"

#include <regex>

using namespace parkway::test;
using nlohmann::json;

namespace {

std::vector<const SipMessage *> dialogNotifies(TestUa &ua) {
    std::vector<const SipMessage *> out;
    for (auto &in : ua.incoming)
        if (in->request.method() == "NOTIFY" && in->request.header("Event").rfind("dialog", 0) == 0)
            out.push_back(&in->request);
    return out;
}

int dialogInfoVersion(const SipMessage &m) {
    std::smatch sm;
    std::string b = m.body();
    if (std::regex_search(b, sm, std::regex("<dialog-info[^>]* version=\"([0-9]+)\"")))
        return std::stoi(sm[1]);
    return -1;
}

} // namespace

TEST_CASE("restart - a parked call is restored and hears music and can be retrieved", "[restart]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68103", ma.port(), {}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return rtpCount(ma) >= 2; }, 3000));

    p.restart();
    CHECK(a.count("BYE") == 0);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "103");
    // music resumes towards the parked party
    size_t before = rtpCount(ma);
    REQUIRE(p.env().runUntil([&] { return rtpCount(ma) >= before + 5; }, 3000));

    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 4302);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    Incoming *reinv = a.last("INVITE");
    REQUIRE(reinv);
    CHECK(reinv->request.callId() == inv.request.callId()); // the restored park dialog
    CHECK(sdpAudioPort(reinv->request.body()) == 4302);
    CHECK(p.parkedCount() == 0);
    // and the bridge works after the restart: BYE from the parked party reaches the retriever
    r.autoAnswer("BYE", 200);
    auto &bye = a.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    CHECK(bye.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return r.count("BYE") == 1; }));
}

TEST_CASE("restart - the recall fires on time after the restart", "[restart][recall]") {
    ParkEnv p;
    int st = 0;
    p.command("domains.set", {{"domain", kDomain}, {"recall", {{"recall_seconds", 2}, {"ring_seconds", 5}}}}, &st);
    REQUIRE(st == 200);
    auto &parker = p.phone("1003");
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68", ma.port(), {"Referred-By: <" + aorOf("1003") + ">"});
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    auto parkedAt = std::chrono::steady_clock::now();
    p.restart();
    REQUIRE(p.env().runUntil([&] { return parker.count("INVITE") >= 1; }, 5000));
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - parkedAt);
    CHECK(waited.count() >= 1800);
    CHECK(waited.count() <= 3500);
    CHECK(parker.last("INVITE")->request.header("From").find("Recall") != std::string::npos);
}

TEST_CASE("reload re-reads the provision file without dropping parked calls", "[restart][admin]") {
    std::string prov = tempDb() + ".toml";
    {
        FILE *f = std::fopen(prov.c_str(), "w");
        std::fputs("[[domain]]\nname = \"parkway.test\"\nrecall_time = 120\n\n[[domain.group]]\nname = \"sales\"\n"
                   "members = [\"101\", \"102\"]\n",
                   f);
        std::fclose(f);
    }
    ParkEnvOptions o;
    o.params["provision_file"] = prov;
    ParkEnv p(o);
    auto groups = p.command("groups.list", {{"domain", kDomain}});
    REQUIRE(groups["groups"].size() == 1);
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4304);
    REQUIRE(p.waitFinal(inv));
    {
        FILE *f = std::fopen(prov.c_str(), "w");
        std::fputs("[[domain]]\nname = \"parkway.test\"\n\n[[domain.group]]\nname = \"sales\"\n"
                   "members = [\"101\", \"102\", \"103\"]\n",
                   f);
        std::fclose(f);
    }
    CHECK(p.env().proxy().reload() == 0);
    groups = p.command("groups.list", {{"domain", kDomain}});
    CHECK(groups["groups"][0]["members"].size() == 3);
    CHECK(p.parkedCount() == 1);
    // a broken file is refused with a message and changes nothing
    {
        FILE *f = std::fopen(prov.c_str(), "w");
        std::fputs("[[domain]]\nname = \"parkway.test\"\nrecall_mode = \"sometimes\"\n", f);
        std::fclose(f);
    }
    CHECK(p.env().proxy().reload() == 1);
    CHECK(p.parkedCount() == 1);
    std::remove(prov.c_str());
}

TEST_CASE("admin commands - bad arguments are 4xx with a message - rules explain and import work", "[admin]") {
    ParkEnv p;
    int st = 0;
    auto e = p.command("parked.get", json::object(), &st);
    CHECK(st == 400);
    CHECK(e.dump().find("id") != std::string::npos);
    p.command("groups.set", {{"domain", kDomain}, {"name", "x"}, {"members", "101"}}, &st);
    CHECK(st == 400);
    auto ex = p.command("rules.explain", {{"domain", kDomain}, {"caller", "1003"}, {"dial", "*68103"}}, &st);
    CHECK(st == 200);
    CHECK(ex.dump().find("park") != std::string::npos);
    p.command("rules.import", {{"text", "1\t\t0\t10\texact\t700\t0\t\t\taction=bogus\n"}}, &st);
    CHECK(st == 400);
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 720}}, &st);
    CHECK(st == 200);
    p.command("rules.import", {{"text", "0\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"}}, &st);
    CHECK(st == 200);
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "700", 4306);
    REQUIRE(p.waitFinal(inv));
    CHECK(inv.finalStatus == 200);
    auto list = p.command("parked.list", {{"lot", "main"}});
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["slot"] == 701);
    auto stats = p.command("stats", json::object(), &st);
    CHECK(st == 200);
    CHECK(stats["parked"] == 1);
}

TEST_CASE("restart - when the music port changed the parked party gets a re-INVITE with a new hold offer",
          "[restart]") {
    ParkEnvOptions o;
    o.params["moh_port_min"] = "31000";
    o.params["moh_port_max"] = "31998";
    ParkEnv p(o);
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68103", ma.port());
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    uint16_t oldPort = sdpAudioPort(inv.response(200)->body());
    CHECK(oldPort >= 31000);
    CHECK(oldPort <= 31998);
    p.restart({{"moh_port_min", "32000"}, {"moh_port_max", "32998"}});
    REQUIRE(p.env().runUntil([&] { return a.count("INVITE") >= 1; }, 3000));
    Incoming *re = a.last("INVITE");
    CHECK(re->request.callId() == inv.request.callId());
    uint16_t newPort = sdpAudioPort(re->request.body());
    CHECK(newPort >= 32000);
    CHECK(newPort <= 32998);
    CHECK(re->request.body().find("a=sendonly") != std::string::npos);
    size_t before = rtpCount(ma);
    REQUIRE(p.env().runUntil([&] { return rtpCount(ma) >= before + 5; }, 3000));
    CHECK(p.parkedCount() == 1);
}

TEST_CASE("restart - a BLF watcher gets full state with the next version in the same subscription",
          "[restart][watchers]") {
    ParkEnv p;
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    RequestOptions o;
    o.from = "<" + aorOf("1010") + ">";
    o.to = std::string("<sip:*88103@") + kDomain + ">";
    o.headers = {"Event: dialog", "Expires: 120"};
    auto &sub = w.send("SUBSCRIBE", std::string("sip:*88103@") + kDomain, o);
    REQUIRE(p.waitFinal(sub));
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 1; }));
    CHECK(dialogInfoVersion(*dialogNotifies(w)[0]) == 0);
    std::string callId = dialogNotifies(w)[0]->callId();
    uint32_t cseq0 = dialogNotifies(w)[0]->cseq();

    p.restart();
    // Right after the restart: full state, version 1, in the same dialog, with a higher CSeq.
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 2; }));
    const SipMessage *n1 = dialogNotifies(w)[1];
    CHECK(dialogInfoVersion(*n1) == 1);
    CHECK(n1->callId() == callId);
    CHECK(n1->cseq() > cseq0);
    CHECK(n1->body().find("state=\"full\"") != std::string::npos);
    CHECK(n1->header("Subscription-State").rfind("active", 0) == 0);

    // A park on 103 -> version 2 showing the parked call.
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4100, {}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 3; }));
    CHECK(dialogInfoVersion(*dialogNotifies(w)[2]) == 2);
    CHECK(dialogNotifies(w)[2]->body().find(inv.request.callId()) != std::string::npos);

    // A refresh in the restored dialog is answered 200 (not 481) and gets full state, version 3.
    RequestOptions r;
    r.headers = {"Event: dialog", "Expires: 120"};
    auto &refresh = w.inDialog(sub, "SUBSCRIBE", r);
    REQUIRE(p.waitFinal(refresh));
    CHECK(refresh.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 4; }));
    CHECK(dialogInfoVersion(*dialogNotifies(w)[3]) == 3);

    // Restart again with the call parked: version 4 shows it (the restored park dialog's ids).
    p.restart();
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 5; }));
    CHECK(dialogInfoVersion(*dialogNotifies(w)[4]) == 4);
    CHECK(dialogNotifies(w)[4]->body().find(inv.request.callId()) != std::string::npos);

    // Unsubscribe -> terminated; the subscription is forgotten: no NOTIFY after the next restart.
    RequestOptions u;
    u.headers = {"Event: dialog", "Expires: 0"};
    auto &unsub = w.inDialog(sub, "SUBSCRIBE", u);
    REQUIRE(p.waitFinal(unsub));
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 6; }));
    CHECK(dialogNotifies(w)[5]->header("Subscription-State").rfind("terminated", 0) == 0);
    p.restart();
    p.env().runFor(300);
    CHECK(dialogNotifies(w).size() == 6);
}

TEST_CASE("restart - a BroadWorks call-info watcher keeps its body flavour after the restart", "[restart][watchers]") {
    ParkEnv p;
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    RequestOptions o;
    o.from = "<" + aorOf("103") + ">";
    o.to = std::string("<sip:103@") + kDomain + ">";
    o.headers = {"Event: call-info", "Expires: 60", "Accept: application/x-broadworks-callpark-info+xml"};
    auto &sub = w.send("SUBSCRIBE", std::string("sip:103@") + kDomain, o);
    REQUIRE(p.waitFinal(sub));
    REQUIRE(sub.finalStatus == 200);
    auto callInfo = [&] {
        std::vector<const SipMessage *> out;
        for (auto &in : w.incoming)
            if (in->request.method() == "NOTIFY" && in->request.header("Event").rfind("call-info", 0) == 0)
                out.push_back(&in->request);
        return out;
    };
    REQUIRE(p.env().runUntil([&] { return callInfo().size() == 1; }));
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4106, {}, "C. Parked");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(p.env().runUntil([&] { return callInfo().size() == 2; }));

    p.restart();
    REQUIRE(p.env().runUntil([&] { return callInfo().size() == 3; }));
    const SipMessage *n = callInfo()[2];
    CHECK(n->callId() == sub.request.callId());
    CHECK(n->header("Content-Type") == "application/x-broadworks-callpark-info+xml");
    CHECK(n->body().find("<parked>") != std::string::npos);
    CHECK(n->body().find("C. Parked") != std::string::npos);
    CHECK(dialogNotifies(w).empty());
}

// Recovery at scale (docs/callpark.md "Restart"): the start only queues the stored calls; they come back in
// batches on later loop turns. A retrieve of a call still queued restores it on demand (never "nothing
// parked"), recalls are re-armed, watchers get full state with the next version once the calls are back.
TEST_CASE("restart - a large parked set comes back in batches while requests are served", "[restart][scale]") {
    ParkEnvOptions o;
    o.params["restore_batch"] = "3";
    ParkEnv p(o);
    int st = 0;
    p.command("domains.set", {{"domain", kDomain}, {"max_parked", 0}, {"recall", {{"recall_seconds", 600}}}}, &st);
    REQUIRE(st == 200);
    constexpr int kCalls = 240, kRecalled = 4, kWatched = 12;
    auto ext = [](int i) { return std::to_string(5000 + i); };
    auto &parker = p.phone("1003");
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(4400), "application/sdp");
    std::vector<Client *> parks;
    // In groups of 20: a burst of hundreds on a loaded machine only measures retransmissions.
    auto parkAll = [&](int from, int to, std::vector<std::string> headers) {
        for (int i = from; i < to; ++i) {
            parks.push_back(&p.invite(a, "2001", "*68" + ext(i), 4400, headers));
            if ((i + 1) % 20 == 0 || i + 1 == to)
                REQUIRE(p.env().runUntil(
                    [&] {
                        return std::all_of(parks.begin(), parks.end(), [](Client *c) { return c->finalStatus != 0; });
                    },
                    20000));
        }
    };
    parkAll(0, kCalls - kRecalled, {});
    // The last few recall soon (to the parker): their deadlines come first in the restore order.
    p.command("domains.set", {{"domain", kDomain}, {"recall", {{"recall_seconds", 2}, {"ring_seconds", 30}}}}, &st);
    REQUIRE(st == 200);
    parkAll(kCalls - kRecalled, kCalls, {"Referred-By: <" + aorOf("1003") + ">"});
    for (Client *c : parks) {
        INFO("park " << c->request.header("To") << " -> " << c->finalStatus);
        REQUIRE(c->finalStatus == 200);
    }

    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    std::vector<Client *> subs;
    for (int i = 0; i < kWatched; ++i) {
        RequestOptions so;
        so.from = "<" + aorOf("1010") + ">";
        so.to = "<sip:*88" + ext(i) + "@" + kDomain + ">";
        so.headers = {"Event: dialog", "Expires: 300"};
        subs.push_back(&w.send("SUBSCRIBE", "sip:*88" + ext(i) + "@" + kDomain, so));
    }
    auto notifiesIn = [&](const std::string &callId) {
        std::vector<int> v;
        for (const SipMessage *n : dialogNotifies(w))
            if (n->callId() == callId)
                v.push_back(dialogInfoVersion(*n));
        return v;
    };
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == size_t(kWatched); }, 5000));
    std::map<std::string, int> lastVersion;
    for (Client *s : subs)
        lastVersion[s->request.callId()] = notifiesIn(s->request.callId()).back();

    p.restart();
    // start() restored nothing itself: every call is queued for the loop turns to come (read at this loop turn).
    json stats = p.commandNow("stats");
    CHECK(stats["restore"]["calls"] == kCalls);
    CHECK(stats["restore"]["restored"] == 0);
    CHECK(stats["restore"]["done"] == false);

    // The parked party of a call still queued hangs up: its BYE reaches us before its dialog is restored; it is
    // answered 200 and the call leaves the park (restore.cc inDialogBeforeRestore).
    a.autoAnswer("BYE", 200);
    auto &bye = a.inDialog(*parks[kCalls - kRecalled - 2], "BYE");
    // A retrieve of the call restored last (latest recall deadline) arrives while the restore runs.
    const size_t incomingBefore = a.incoming.size();
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88" + ext(kCalls - kRecalled - 1), 4302);
    json atAnswer;
    REQUIRE(p.env().runUntil([&] {
        if (ret.finalStatus && atAnswer.is_null())
            atAnswer = p.commandNow("stats")["restore"];
        return ret.finalStatus != 0;
    }));
    CHECK(ret.finalStatus == 200);
    REQUIRE(p.waitFinal(bye));
    CHECK(bye.finalStatus == 200);
    INFO("restore progress when the retrieve was answered: " << atAnswer.dump());
    CHECK(atAnswer["on_demand"].get<int>() >= 1); // it was still queued: restored on demand
    // Its parked party got the re-INVITE, in its restored dialog. Other restored calls may re-INVITE their parties
    // meanwhile (the storage thread's restore batches run on), so it is looked for, not taken as the last one.
    const std::string retrievedCall = parks[kCalls - kRecalled - 1]->request.callId();
    bool reinvited = false;
    for (size_t i = incomingBefore; i < a.incoming.size(); ++i)
        reinvited |= a.incoming[i]->request.method() == "INVITE" && a.incoming[i]->request.callId() == retrievedCall;
    CHECK(reinvited);

    REQUIRE(p.env().runUntil([&] { return p.command("stats")["restore"]["done"] == true; }, 10000));
    stats = p.command("stats");
    CHECK(stats["restore"]["restored"] == kCalls);
    CHECK(stats["restore"]["lost"] == 0);
    CHECK(stats["restore"]["recalls_armed"] == kCalls);
    CHECK(stats["parked"].get<int>() + stats["recalling"].get<int>() == kCalls - 2); // one retrieved, one left
    CHECK(stats["moh_streams"].get<int>() >= kCalls - 2);
    // Every other call is retrievable in its own restored dialog.
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == size_t(kCalls - 2));
    size_t withDialog = 0;
    for (auto &c : list["parked"])
        withDialog += c.contains("dialog") ? 1 : 0;
    CHECK(withDialog == size_t(kCalls - 2));
    // The recalls still fire (to the parker), and every watcher got full state with the next version.
    REQUIRE(p.env().runUntil([&] { return parker.count("INVITE") >= size_t(kRecalled); }, 8000));
    for (Client *s : subs) {
        std::string cid = s->request.callId();
        REQUIRE(p.env().runUntil([&] { return notifiesIn(cid).size() >= 2; }, 5000));
        CHECK(notifiesIn(cid)[1] == lastVersion[cid] + 1);
    }
}
