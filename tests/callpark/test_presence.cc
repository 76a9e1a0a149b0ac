// Presence BLF for park slots (issue 10 item 8): SUBSCRIBE Event: presence (RFC 3856) to the URIs dialog BLF
// watches gets application/pidf+xml (RFC 3863) NOTIFYs: open when free, open + RPID on-the-phone (RFC 4480) and
// a note with the parked party when a call is parked; stored and resumed after a restart; Accept honoured.
#include "park_env.hh"

#include <regex>

using namespace parkway::test;
using nlohmann::json;

namespace {

std::vector<const SipMessage *> presenceNotifies(TestUa &ua) {
    std::vector<const SipMessage *> out;
    for (auto &in : ua.incoming)
        if (in->request.method() == "NOTIFY" && in->request.header("Event").rfind("presence", 0) == 0)
            out.push_back(&in->request);
    return out;
}

Client &subscribePresence(ParkEnv &p, TestUa &w, const std::string &ext, const std::string &target, int expires,
                          std::vector<std::string> extra = {}) {
    RequestOptions o;
    o.from = "<" + aorOf(ext) + ">";
    o.to = "<sip:" + target + "@" + kDomain + ">";
    o.headers = {"Event: presence", "Expires: " + std::to_string(expires)};
    for (auto &h : extra)
        o.headers.push_back(h);
    auto &c = w.send("SUBSCRIBE", "sip:" + target + "@" + kDomain, o);
    REQUIRE(p.waitFinal(c));
    return c;
}

// What a presence watcher shows, read off the PIDF document.
struct Pidf {
    std::string entity, basic, note;
    bool onThePhone = false;
};
Pidf parsePidf(const SipMessage &m) {
    Pidf r;
    std::string b = m.body();
    std::smatch sm;
    if (std::regex_search(b, sm, std::regex("<presence [^>]*entity=\"([^\"]*)\"")))
        r.entity = sm[1];
    if (std::regex_search(b, sm, std::regex("<tuple id=\"[^\"]+\">\\s*<status>\\s*<basic>([a-z]+)</basic>")))
        r.basic = sm[1];
    if (std::regex_search(b, sm, std::regex("<note>([^<]*)</note>")))
        r.note = sm[1];
    r.onThePhone = std::regex_search(b, std::regex("<rpid:activities>\\s*<rpid:on-the-phone/>\\s*</rpid:activities>"));
    return r;
}

} // namespace

TEST_CASE("presence BLF - pidf open when free - on-the-phone with the parked party's name - open again after "
          "the retrieve",
          "[watchers][presence]") {
    ParkEnv p;
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribePresence(p, w, "1010", "*88103", 120, {"Accept: application/pidf+xml"});
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 1; }));
    const SipMessage *n0 = presenceNotifies(w)[0];
    CHECK(n0->header("Content-Type") == "application/pidf+xml");
    CHECK(n0->header("Subscription-State").rfind("active", 0) == 0);
    Pidf free0 = parsePidf(*n0);
    CHECK(free0.entity == "sip:*88103@" + kDomain);
    CHECK(free0.basic == "open");
    CHECK_FALSE(free0.onThePhone);
    CHECK(free0.note.empty());

    // a park on 103 -> busy: open + on-the-phone, and who is parked (escaped)
    auto &a = p.ua("a");
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &inv = p.invite(a, "2001", "*68103", ma.port(), {}, "Alice & Co");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 2; }));
    const SipMessage *n1 = presenceNotifies(w)[1];
    CHECK(n1->callId() == sub.request.callId()); // in the subscription's dialog
    CHECK(n1->header("Content-Type") == "application/pidf+xml");
    Pidf busy = parsePidf(*n1);
    CHECK(busy.basic == "open");
    CHECK(busy.onThePhone);
    CHECK(busy.note == "Parked: Alice &amp; Co");

    // retrieved -> free again
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5006);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 3; }));
    Pidf free1 = parsePidf(*presenceNotifies(w)[2]);
    CHECK(free1.basic == "open");
    CHECK_FALSE(free1.onThePhone);
    CHECK(free1.note.empty());
    CHECK(p.metric("parkway_notify_sent_total", "kind=\"presence\"") == 3);

    // the presence watcher is no dialog-info watcher
    for (auto &in : w.incoming)
        if (in->request.method() == "NOTIFY")
            CHECK(in->request.body().find("dialog-info") == std::string::npos);
}

TEST_CASE("presence BLF - a stored presence watcher is resumed after a restart with a pidf body in the same "
          "subscription",
          "[watchers][presence][restart]") {
    ParkEnv p;
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribePresence(p, w, "1010", "*88103", 120); // no Accept: pidf (RFC 3856 §6.5)
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 1; }));
    uint32_t cseq0 = presenceNotifies(w)[0]->cseq();
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68103", 4100, {}, "Bob");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 2; }));

    p.restart();
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 3; }));
    const SipMessage *n = presenceNotifies(w)[2];
    CHECK(n->callId() == sub.request.callId());
    CHECK(n->cseq() > cseq0);
    CHECK(n->header("Content-Type") == "application/pidf+xml");
    CHECK(n->header("Subscription-State").rfind("active", 0) == 0);
    Pidf busy = parsePidf(*n);
    CHECK(busy.basic == "open");
    CHECK(busy.onThePhone);
    CHECK(busy.note == "Parked: Bob");

    // after the restart changes still go out as pidf: the parked party hangs up -> free
    auto &bye = a.inDialog(inv, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 4; }));
    CHECK(presenceNotifies(w)[3]->header("Content-Type") == "application/pidf+xml");
    CHECK_FALSE(parsePidf(*presenceNotifies(w)[3]).onThePhone);
}

TEST_CASE("presence BLF - an Accept without application/pidf+xml is refused with 406 - no subscription is made",
          "[watchers][presence]") {
    ParkEnv p;
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &bad = subscribePresence(p, w, "1010", "*88103", 120, {"Accept: application/dialog-info+xml"});
    CHECK(bad.finalStatus == 406);
    // an Accept list naming pidf among others (with parameters) is fine
    auto &ok =
        subscribePresence(p, w, "1010", "*88103", 120, {"Accept: application/xpidf+xml, application/pidf+xml;q=0.9"});
    CHECK(ok.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 1; }));
    p.env().runFor(200);
    CHECK(presenceNotifies(w).size() == 1); // none for the refused one
    for (auto &in : w.incoming)
        if (in->request.method() == "NOTIFY")
            CHECK(in->request.callId() == ok.request.callId());
    // a plain extension's presence is still not ours: never 406 or 489 from the park module
    auto &other = subscribePresence(p, w, "1010", "103", 120, {"Accept: application/dialog-info+xml"});
    CHECK(other.finalStatus != 406);
    CHECK(other.response(406) == nullptr);
}

TEST_CASE("presence BLF on a lot slot - 700 parks into lot main - presence of 701 goes busy then free",
          "[watchers][presence][lot]") {
    ParkEnv p;
    int st = 0;
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 720}}, &st);
    REQUIRE(st == 200);
    p.command("rules.import",
              {{"text", "0\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"
                        "0\t\t0\t11\tregex\t^7[0-9][0-9]$\t0\t\t\taction=retrieve;lot=main\n"}},
              &st);
    REQUIRE(st == 200);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribePresence(p, w, "1010", "701", 60);
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 1; }));
    CHECK(parsePidf(*presenceNotifies(w)[0]).entity == "sip:701@" + kDomain);
    CHECK_FALSE(parsePidf(*presenceNotifies(w)[0]).onThePhone);
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(4120), "application/sdp");
    auto &inv = p.invite(a, "2001", "700", 4120, {}, "Orbit Caller");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 2; }));
    Pidf busy = parsePidf(*presenceNotifies(w)[1]);
    CHECK(busy.onThePhone);
    CHECK(busy.note == "Parked: Orbit Caller");
    auto &rt = p.ua("rt");
    auto &ret = p.invite(rt, "1005", "701", 4122);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return presenceNotifies(w).size() == 3; }));
    CHECK_FALSE(parsePidf(*presenceNotifies(w)[2]).onThePhone);
}
