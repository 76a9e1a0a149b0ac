// The registrar and router modules driven through the real loader and a fake host (no SIP): RFC 3261 §10.3
// REGISTER rules, persistence across a restart, expiry, the location lookup, and routing decisions.
#include "fake_host.hh"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <stdexcept>
#include <unistd.h>

using fakehost::Host;
using fakehost::Request;

namespace {
const std::string kModDir = PARKWAY_TEST_MODULE_DIR;

struct TempDb {
    std::string path;
    TempDb() {
        char tmpl[] = "/tmp/parkway-regtest-XXXXXX";
        int fd = mkstemp(tmpl);
        close(fd);
        path = tmpl;
        std::remove(path.c_str()); // let SQLite create it
    }
    ~TempDb() {
        for (const char *suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
    }
};

Request reg(const std::string &user, const std::vector<std::string> &contacts, const std::string &callId,
            int cseq, const std::string &expires = "") {
    Request r;
    r.method = "REGISTER";
    r.ruri = "sip:127.0.0.1";
    r.headers = {{"To", "<sip:" + user + "@127.0.0.1>"},
                 {"From", "<sip:" + user + "@127.0.0.1>;tag=abc"},
                 {"Call-ID", callId},
                 {"CSeq", std::to_string(cseq) + " REGISTER"}};
    for (const auto &c : contacts) r.headers.emplace_back("Contact", c);
    if (!expires.empty()) r.headers.emplace_back("Expires", expires);
    return r;
}

struct Found {
    std::vector<std::string> uris;
    std::vector<int> q;
};

Found lookup(Host &h, const std::string &aor, int *rcOut = nullptr) {
    Found f;
    int rc = h.api()->location_lookup(reinterpret_cast<pw_host *>(&h), pw_str{aor.data(), aor.size()},
                                      [](void *arg, const pw_contact *c) {
                                          auto *f = static_cast<Found *>(arg);
                                          f->uris.emplace_back(c->uri.ptr, c->uri.len);
                                          f->q.push_back(c->q_milli);
                                      },
                                      &f);
    if (rcOut) *rcOut = rc;
    return f;
}

struct RegFixture {
    TempDb db;
    Host h;
    RegFixture() {
        h.core["database"] = db.path;
        REQUIRE(h.init("registrar", kModDir, {}) == PW_OK);
    }
    ~RegFixture() { h.destroy(); }
    Request send(Request r) {
        CHECK(h.send(r) == PW_STOP);
        REQUIRE(r.replies.size() == 1);
        return r;
    }
};
} // namespace

TEST_CASE_METHOD(RegFixture, "REGISTER adds a contact, lists it, and the location lookup finds it") {
    Request r = send(reg("1001", {"<sip:1001@127.0.0.1:5062>"}, "c1", 1, "600"));
    CHECK(r.replies[0].status == 200);
    REQUIRE(r.replies[0].all("Contact").size() == 1);
    CHECK(r.replies[0].all("Contact")[0] == "<sip:1001@127.0.0.1:5062>;expires=600");
    Found f = lookup(h, "sip:1001@127.0.0.1:5060;transport=udp"); // port and params do not matter
    REQUIRE(f.uris.size() == 1);
    CHECK(f.uris[0] == "sip:1001@127.0.0.1:5062");
    CHECK(h.events.size() == 1);
}

TEST_CASE_METHOD(RegFixture, "several contacts per AOR, refresh keeps one binding, expires param beats header") {
    send(reg("1001", {"<sip:1001@127.0.0.1:5062>;expires=120", "<sip:1001@127.0.0.1:5064>;q=0.5"}, "c1", 1, "300"));
    Request r = send(reg("1001", {"<sip:1001@127.0.0.1:5062>"}, "c1", 2, "900"));
    auto contacts = r.replies[0].all("Contact");
    REQUIRE(contacts.size() == 2);
    CHECK(contacts[0] == "<sip:1001@127.0.0.1:5062>;expires=900");
    CHECK(contacts[1] == "<sip:1001@127.0.0.1:5064>;expires=300;q=0.500");
    Found f = lookup(h, "sip:1001@127.0.0.1");
    CHECK(f.uris.size() == 2);
}

TEST_CASE_METHOD(RegFixture, "too brief an interval gets 423 with Min-Expires and changes nothing") {
    Request r = send(reg("1001", {"<sip:1001@127.0.0.1:5062>"}, "c1", 1, "30"));
    CHECK(r.replies[0].status == 423);
    CHECK(r.replies[0].all("Min-Expires") == std::vector<std::string>{"60"});
    int rc = 0;
    CHECK(lookup(h, "sip:1001@127.0.0.1", &rc).uris.empty());
}

TEST_CASE_METHOD(RegFixture, "Expires 0 removes one contact and a wildcard removes all") {
    send(reg("1001", {"<sip:a@127.0.0.1:5062>", "<sip:b@127.0.0.1:5064>"}, "c1", 1, "600"));
    Request r = send(reg("1001", {"<sip:a@127.0.0.1:5062>;expires=0"}, "c1", 2));
    CHECK(r.replies[0].all("Contact").size() == 1);
    r = send(reg("1001", {"*"}, "c1", 3, "0"));
    CHECK(r.replies[0].status == 200);
    CHECK(r.replies[0].all("Contact").empty());
    int rc = -99;
    CHECK(lookup(h, "sip:1001@127.0.0.1", &rc).uris.empty());
    CHECK(rc == 0); // known AOR, no live contact
}

TEST_CASE_METHOD(RegFixture, "a wildcard without Expires 0, or with other contacts, is a 400") {
    CHECK(send(reg("1001", {"*"}, "c1", 1, "60")).replies[0].status == 400);
    CHECK(send(reg("1001", {"*", "<sip:a@127.0.0.1>"}, "c1", 1, "0")).replies[0].status == 400);
    CHECK(send(reg("1001", {"<no uri"}, "c1", 1)).replies[0].status == 400);
}

TEST_CASE_METHOD(RegFixture, "an out-of-order CSeq on the same Call-ID is refused (RFC 3261 §10.3 step 7)") {
    send(reg("1001", {"<sip:a@127.0.0.1:5062>"}, "c1", 5, "600"));
    CHECK(send(reg("1001", {"<sip:a@127.0.0.1:5062>;expires=0"}, "c1", 4)).replies[0].status == 500);
    CHECK(lookup(h, "sip:1001@127.0.0.1").uris.size() == 1);
    // A different Call-ID (another device / reboot) may replace it.
    CHECK(send(reg("1001", {"<sip:a@127.0.0.1:5062>;expires=0"}, "other", 1)).replies[0].status == 200);
}

TEST_CASE_METHOD(RegFixture, "contacts expire and the AOR stays known") {
    send(reg("1001", {"<sip:a@127.0.0.1:5062>"}, "c1", 1, "60"));
    h.advance(59'000);
    CHECK(lookup(h, "sip:1001@127.0.0.1").uris.size() == 1);
    h.advance(2'000);
    int rc = -99;
    CHECK(lookup(h, "sip:1001@127.0.0.1", &rc).uris.empty());
    CHECK(rc == 0);
    CHECK(lookup(h, "sip:never@127.0.0.1", &rc).uris.empty());
    CHECK(rc == PW_ENOTFOUND);
}

TEST_CASE_METHOD(RegFixture, "REGISTER for another domain is left to the core") {
    Request r = reg("1001", {"<sip:a@127.0.0.1:5062>"}, "c1", 1, "60");
    r.ruri = "sip:elsewhere.example.org";
    CHECK(h.send(r) == PW_CONTINUE);
    CHECK(r.replies.empty());
}

TEST_CASE("contacts survive a restart on the same database") {
    TempDb db;
    {
        Host h;
        h.core["database"] = db.path;
        REQUIRE(h.init("registrar", kModDir, {}) == PW_OK);
        Request r = reg("1001", {"<sip:a@127.0.0.1:5062>"}, "c1", 1, "600");
        h.send(r);
        h.destroy();
    }
    Host h;
    h.core["database"] = db.path;
    REQUIRE(h.init("registrar", kModDir, {}) == PW_OK);
    Found f = lookup(h, "sip:1001@127.0.0.1");
    REQUIRE(f.uris.size() == 1);
    CHECK(f.uris[0] == "sip:a@127.0.0.1:5062");
    h.destroy();
}

TEST_CASE("the registrar refuses a database it cannot open, naming it") {
    Host h;
    h.core["database"] = "/nonexistent-dir/x.db";
    CHECK(h.init("registrar", kModDir, {}) == PW_EINVAL);
    REQUIRE_FALSE(h.logs.empty());
    CHECK_THAT(h.logs.back(), Catch::Contains("/nonexistent-dir/x.db"));
}

TEST_CASE_METHOD(RegFixture, "registrations.list shows contacts and an AOR filter narrows it") {
    send(reg("1001", {"<sip:a@127.0.0.1:5062>"}, "c1", 1, "600"));
    send(reg("1002", {"<sip:b@127.0.0.1:5064>"}, "c2", 1, "600"));
    auto [status, json] = h.command("registrations.list", "{}");
    CHECK(status == 200);
    auto j = nlohmann::json::parse(json);
    CHECK(j["registrations"].size() == 2);
    std::tie(status, json) = h.command("registrations.list", R"({"aor":"sip:1002@127.0.0.1"})");
    j = nlohmann::json::parse(json);
    REQUIRE(j["registrations"].size() == 1);
    CHECK(j["registrations"][0]["contacts"][0]["uri"] == "sip:b@127.0.0.1:5064");
    CHECK(j["registrations"][0]["contacts"][0]["expires"] == 600);
    CHECK(h.command("registrations.list", "[1]").first == 400);
    CHECK(h.command("registrations.list", R"({"aor":"sip:nobody@127.0.0.1"})").first == 404);
}

// ------------------------------------------------------------------ registrar caps (docs/limits.md "Registrar")

namespace {
struct CappedRegistrar {
    TempDb db;
    Host h;
    explicit CappedRegistrar(const std::map<std::string, std::string> &params) {
        h.core["database"] = db.path;
        REQUIRE(h.init("registrar", kModDir, params) == PW_OK);
    }
    ~CappedRegistrar() { h.destroy(); }
    fakehost::Reply send(Request r) {
        CHECK(h.send(r) == PW_STOP);
        REQUIRE(r.replies.size() == 1);
        return r.replies[0];
    }
    std::string header(const fakehost::Reply &rep, const std::string &name) {
        auto all = rep.all(name);
        return all.empty() ? "" : all[0];
    }
    int known(const std::string &aor) {
        int rc = 0;
        lookup(h, aor, &rc);
        return rc;
    }
};

Request regIn(const std::string &domain, const std::string &user, const std::string &contact, const std::string &callId,
              int cseq) {
    Request r = reg(user, {contact}, callId, cseq, "600");
    r.ruri = "sip:" + domain;
    for (auto &[n, v] : r.headers)
        if (n == "To") v = "<sip:" + user + "@" + domain + ">";
    return r;
}
} // namespace

TEST_CASE("registrar max_contacts: adding one beyond gets 503 Too Many Registered Contacts with Retry-After - a "
          "refresh or a swap is never refused") {
    CappedRegistrar c(std::map<std::string, std::string>{{"max_contacts", "2"}});
    CHECK(c.send(reg("1001", {"<sip:a@127.0.0.1:5062>;expires=300", "<sip:b@127.0.0.1:5064>"}, "c1", 1, "600")).status ==
          200);
    c.h.advance(100'000);
    auto refused = c.send(reg("1001", {"<sip:c@127.0.0.1:5066>"}, "c1", 2, "600"));
    CHECK(refused.status == 503);
    CHECK(refused.reason == "Too Many Registered Contacts");
    CHECK(c.header(refused, "Retry-After") == "200"); // when contact a lapses
    CHECK(c.h.counters["parkway_registrar_refused_total{reason=\"max_contacts\"}"] == 1);
    CHECK(lookup(c.h, "sip:1001@127.0.0.1").uris.size() == 2); // nothing changed
    // a refresh of both, and a swap (remove a, add c) in one REGISTER, are fine
    CHECK(c.send(reg("1001", {"<sip:a@127.0.0.1:5062>", "<sip:b@127.0.0.1:5064>"}, "c1", 3, "600")).status == 200);
    CHECK(c.send(reg("1001", {"<sip:a@127.0.0.1:5062>;expires=0", "<sip:c@127.0.0.1:5066>"}, "c1", 4, "600")).status ==
          200);
    CHECK(lookup(c.h, "sip:1001@127.0.0.1").uris.size() == 2);
}

TEST_CASE("registrar max_contacts lowered below what an AOR holds: its refreshes still pass") {
    TempDb db;
    {
        Host h;
        h.core["database"] = db.path;
        REQUIRE(h.init("registrar", kModDir, {{"max_contacts", "3"}}) == PW_OK);
        Request r = reg("1001", {"<sip:a@127.0.0.1:5062>", "<sip:b@127.0.0.1:5064>", "<sip:c@127.0.0.1:5066>"}, "c1", 1,
                        "600");
        h.send(r);
        REQUIRE(r.replies[0].status == 200);
        h.destroy();
    }
    Host h;
    h.core["database"] = db.path;
    REQUIRE(h.init("registrar", kModDir, {{"max_contacts", "1"}}) == PW_OK);
    Request refresh = reg("1001", {"<sip:b@127.0.0.1:5064>"}, "c1", 2, "600");
    h.send(refresh);
    CHECK(refresh.replies[0].status == 200);
    Request more = reg("1001", {"<sip:d@127.0.0.1:5068>"}, "c1", 3, "600");
    h.send(more);
    CHECK(more.replies[0].status == 503);
    h.destroy();
}

TEST_CASE("registrar max_aors: a new AOR beyond gets 503 + Retry-After - a known one refreshes - a refused or "
          "query-only REGISTER stores nothing - a lapsed AOR frees its place") {
    CappedRegistrar c({{"max_aors", "2"}, {"retry_after", "90s"}});
    CHECK(c.send(reg("1001", {"<sip:a@127.0.0.1:5062>"}, "c1", 1, "60")).status == 200);
    CHECK(c.send(reg("1002", {"<sip:b@127.0.0.1:5064>"}, "c2", 1, "600")).status == 200);
    auto refused = c.send(reg("1003", {"<sip:c@127.0.0.1:5066>"}, "c3", 1, "600"));
    CHECK(refused.status == 503);
    CHECK(refused.reason == "Registrar Capacity Reached");
    CHECK(c.header(refused, "Retry-After") == "90");
    CHECK(c.h.counters["parkway_registrar_refused_total{reason=\"max_aors\"}"] == 1);
    CHECK(c.known("sip:1003@127.0.0.1") == PW_ENOTFOUND); // the refused AOR left no trace
    CHECK(c.h.counters["parkway_registrar_aors{}"] == 2);
    // a known AOR refreshes and adds contacts while the cap is reached
    CHECK(c.send(reg("1002", {"<sip:b@127.0.0.1:5064>", "<sip:b2@127.0.0.1:5065>"}, "c2", 2, "600")).status == 200);
    // a query (no Contact) for an unknown AOR is answered and stores nothing
    CHECK(c.send(reg("1004", {}, "c4", 1)).status == 200);
    CHECK(c.known("sip:1004@127.0.0.1") == PW_ENOTFOUND);
    // 1001's contact lapses (the purge runs): its place is free, 1001 stays known (480, not 404)
    c.h.advance(75'000);
    CHECK(c.h.counters["parkway_registrar_aors{}"] == 1);
    CHECK(c.send(reg("1003", {"<sip:c@127.0.0.1:5066>"}, "c3", 2, "600")).status == 200);
    CHECK(c.known("sip:1001@127.0.0.1") == 0);
    // and now 1001 coming back is a new live AOR: refused while 1002 and 1003 hold the places
    CHECK(c.send(reg("1001", {"<sip:a@127.0.0.1:5062>"}, "c1", 2, "600")).status == 503);
}

TEST_CASE("registrar: AORs left without contacts are remembered only up to max_aors, the oldest forgotten first") {
    CappedRegistrar c(std::map<std::string, std::string>{{"max_aors", "2"}});
    for (int i = 1; i <= 4; ++i) {
        std::string u = std::to_string(1000 + i);
        REQUIRE(c.send(reg(u, {"<sip:x@127.0.0.1:5062>"}, "c" + u, 1, "600")).status == 200);
        REQUIRE(c.send(reg(u, {"*"}, "c" + u, 2, "0")).status == 200);
    }
    CHECK(c.known("sip:1001@127.0.0.1") == PW_ENOTFOUND);
    CHECK(c.known("sip:1002@127.0.0.1") == PW_ENOTFOUND);
    CHECK(c.known("sip:1003@127.0.0.1") == 0);
    CHECK(c.known("sip:1004@127.0.0.1") == 0);
    auto [status, json] = c.h.command("registrations.list", R"({"aor":"sip:1001@127.0.0.1"})");
    CHECK(status == 404);
}

TEST_CASE("registrar max_aors_per_domain: one domain's AORs cannot take another domain's places") {
    CappedRegistrar c(std::map<std::string, std::string>{{"max_aors_per_domain", "1"}});
    CHECK(c.send(regIn("127.0.0.1", "1001", "<sip:a@127.0.0.1:5062>", "c1", 1)).status == 200);
    auto refused = c.send(regIn("127.0.0.1", "1002", "<sip:b@127.0.0.1:5064>", "c2", 1));
    CHECK(refused.status == 503);
    CHECK(c.header(refused, "Retry-After") == "60");
    CHECK(c.h.counters["parkway_registrar_refused_total{reason=\"max_aors_per_domain\"}"] == 1);
    CHECK(c.send(regIn("pbx.example.com", "1002", "<sip:b@127.0.0.1:5064>", "c3", 1)).status == 200);
}

TEST_CASE("registrar cap parameters are checked at load") {
    for (auto [k, v] : {std::pair{"max_aors", "-1"}, {"max_aors_per_domain", "-5"}, {"retry_after", "0"}}) {
        TempDb db;
        Host h;
        h.core["database"] = db.path;
        INFO(k << " = " << v);
        CHECK(h.init("registrar", kModDir, {{k, v}}) == PW_EINVAL);
        REQUIRE_FALSE(h.logs.empty());
        CHECK_THAT(h.logs.back(), Catch::Contains(k));
    }
}

// ------------------------------------------------------------------ router

namespace {
struct RouterFixture {
    TempDb db;
    Host reg, router;
    explicit RouterFixture(const std::map<std::string, std::string> &params = {}) {
        reg.core["database"] = db.path;
        REQUIRE(reg.init("registrar", kModDir, {}) == PW_OK);
        REQUIRE(router.init("router", kModDir, params) == PW_OK);
        router.provider = reg.provider;
        router.providerCtx = reg.providerCtx;
    }
    ~RouterFixture() {
        router.destroy();
        reg.destroy();
    }
    Request invite(const std::string &ruri, const std::string &toTag = "") {
        Request r;
        r.method = "INVITE";
        r.ruri = ruri;
        r.headers = {{"To", "<" + ruri + ">" + (toTag.empty() ? "" : ";tag=" + toTag)},
                     {"From", "<sip:1001@127.0.0.1>;tag=x"}, {"Call-ID", "call1"}, {"CSeq", "1 INVITE"}};
        return r;
    }
};
} // namespace

TEST_CASE("router forks to every live contact of a local user") {
    RouterFixture f;
    Request r = reg("1002", {"<sip:1002@127.0.0.1:6001>", "<sip:1002@127.0.0.1:6002>"}, "c", 1, "600");
    f.reg.send(r);
    Request inv = f.invite("sip:1002@127.0.0.1");
    CHECK(f.router.send(inv) == PW_CONTINUE);
    REQUIRE(inv.targets.size() == 2);
    CHECK(inv.targets[0].first == "sip:1002@127.0.0.1:6001");
    CHECK(inv.targets[1].first == "sip:1002@127.0.0.1:6002");
    CHECK(inv.targets[0].second.empty());
}

TEST_CASE("router: 404 for a user never registered, 480 for one whose contacts are gone") {
    RouterFixture f;
    Request inv = f.invite("sip:9999@127.0.0.1");
    CHECK(f.router.send(inv) == PW_STOP);
    REQUIRE(inv.replies.size() == 1);
    CHECK(inv.replies[0].status == 404);
    Request r = reg("1002", {"<sip:1002@127.0.0.1:6001>"}, "c", 1, "60");
    f.reg.send(r);
    f.reg.advance(61'000);
    Request inv2 = f.invite("sip:1002@127.0.0.1");
    CHECK(f.router.send(inv2) == PW_STOP);
    REQUIRE(inv2.replies.size() == 1);
    CHECK(inv2.replies[0].status == 480);
}

TEST_CASE("router: static prefix and regex routes to trunks") {
    RouterFixture f(std::map<std::string, std::string>{
        {"routes", "prefix:9 => sip:gw1.example.net:5070\nregex:^\\+44[0-9]{3,}$ => sip:{user}@uk.example.net"}});
    Request a = f.invite("sip:90123@127.0.0.1");
    CHECK(f.router.send(a) == PW_CONTINUE);
    REQUIRE(a.targets.size() == 1);
    CHECK(a.targets[0].first == "sip:90123@gw1.example.net:5070");
    Request b = f.invite("sip:+442071234@pbx.example.com");
    CHECK(f.router.send(b) == PW_CONTINUE);
    REQUIRE(b.targets.size() == 1);
    CHECK(b.targets[0].first == "sip:+442071234@uk.example.net");
    Request c = f.invite("sip:5555@127.0.0.1");
    CHECK(f.router.send(c) == PW_STOP);
    CHECK(c.replies.at(0).status == 404);
}

TEST_CASE("router: static routes are for senders with an identity unless routes_for_strangers") {
    RouterFixture f(std::map<std::string, std::string>{{"routes", "prefix:9 => sip:gw1.example.net:5070"}});
    Request a = f.invite("sip:90123@127.0.0.1");
    a.identity = ""; // a stranger: no toll call through the gateway
    CHECK(f.router.send(a) == PW_STOP);
    CHECK(a.targets.empty());
    CHECK(a.replies.at(0).status == 404);
    RouterFixture open(std::map<std::string, std::string>{{"routes", "prefix:9 => sip:gw1.example.net:5070"},
                                                          {"routes_for_strangers", "true"}});
    Request b = open.invite("sip:90123@127.0.0.1");
    b.identity = "";
    CHECK(open.router.send(b) == PW_CONTINUE);
    REQUIRE(b.targets.size() == 1);
}

TEST_CASE("router leaves foreign domains, in-dialog and loose-routed requests to the core") {
    RouterFixture f(std::map<std::string, std::string>{{"routes", "prefix:9 => sip:gw1.example.net"}});
    Request a = f.invite("sip:9999@elsewhere.example.org");
    CHECK(f.router.send(a) == PW_CONTINUE);
    CHECK(a.targets.empty());
    CHECK(a.replies.empty());
    // 9999 would match the prefix route: without the To-tag and Route guards the router would add a target.
    Request b = f.invite("sip:9999@127.0.0.1", "totag");
    CHECK(f.router.send(b) == PW_CONTINUE);
    CHECK(b.replies.empty());
    CHECK(b.targets.empty());
    Request c = f.invite("sip:9999@127.0.0.1");
    c.headers.emplace_back("Route", "<sip:127.0.0.1:5090;lr>");
    CHECK(f.router.send(c) == PW_CONTINUE);
    CHECK(c.replies.empty());
    CHECK(c.targets.empty());
}

TEST_CASE("router: a user part over 256 bytes gets 414 before any route or lookup sees it") {
    // The README's kind of regex route. A 40 KB user part once overflowed std::regex's recursion.
    RouterFixture f(std::map<std::string, std::string>{{"routes", "regex:^\\+44[0-9]+$ => sip:{user}@uk.example.net"}});
    Request big = f.invite("sip:+44" + std::string(40'000, '1') + "@127.0.0.1");
    CHECK(f.router.send(big) == PW_STOP);
    REQUIRE(big.replies.size() == 1);
    CHECK(big.replies[0].status == 414); // RFC 3261 §21.4.12
    CHECK(big.targets.empty());
    Request edge = f.invite("sip:+44" + std::string(253, '1') + "@127.0.0.1"); // 256 bytes: routed
    CHECK(f.router.send(edge) == PW_CONTINUE);
    CHECK(edge.targets.size() == 1);
    Request over = f.invite("sip:+44" + std::string(254, '1') + "@127.0.0.1");
    CHECK(f.router.send(over) == PW_STOP);
    CHECK(over.replies.at(0).status == 414);
    // Foreign domains are not interpreted by the router (the core forwards them).
    Request foreign = f.invite("sip:+44" + std::string(40'000, '1') + "@elsewhere.example.org");
    CHECK(f.router.send(foreign) == PW_CONTINUE);
    CHECK(foreign.replies.empty());
}

TEST_CASE("router: regex routes run in linear time (no catastrophic backtracking)") {
    // ^(a+)+$ against a's and a final mismatch: a backtracking matcher takes 2^n steps (hours at n = 60).
    RouterFixture f(std::map<std::string, std::string>{{"routes", "regex:^(a+)+$ => sip:gw.example.net"}});
    Request r = f.invite("sip:" + std::string(200, 'a') + "!@127.0.0.1");
    CHECK(f.router.send(r) == PW_STOP);
    CHECK(r.targets.empty());
    CHECK(r.replies.at(0).status == 404);
    Request ok = f.invite("sip:" + std::string(200, 'a') + "@127.0.0.1");
    CHECK(f.router.send(ok) == PW_CONTINUE);
    CHECK(ok.targets.size() == 1);
}

TEST_CASE("router: an exception inside the module becomes a 500, never crosses the C ABI") {
    RouterFixture f;
    // A location provider that fails the way an allocation would.
    f.router.provider = [](void *, pw_str, pw_contact_cb, void *) -> int {
        throw std::runtime_error("provider broke");
    };
    Request r = f.invite("sip:1001@127.0.0.1");
    CHECK(f.router.send(r) == PW_STOP);
    REQUIRE(r.replies.size() == 1);
    CHECK(r.replies[0].status == 500);
    CHECK_THAT(f.router.logs.back(), Catch::Contains("provider broke"));
    f.router.provider = f.reg.provider; // the module still works afterwards
    CHECK(f.router.send(r = f.invite("sip:1001@127.0.0.1")) == PW_STOP);
    CHECK(r.replies.at(0).status == 404);
}

TEST_CASE("router answers OPTIONS for the proxy itself") {
    RouterFixture f;
    Request o = f.invite("sip:127.0.0.1");
    o.method = "OPTIONS";
    CHECK(f.router.send(o) == PW_STOP);
    CHECK(o.replies.at(0).status == 200);
}

TEST_CASE("router refuses bad routes at init, naming the route") {
    Host h;
    CHECK(h.init("router", kModDir, {{"routes", "prefix:9 -> sip:gw"}}) == PW_EINVAL);
    CHECK_THAT(h.logs.back(), Catch::Contains("prefix:9 -> sip:gw"));
    Host h2;
    CHECK(h2.init("router", kModDir, {{"routes", "regex:([ => sip:gw"}}) == PW_EINVAL);
    CHECK_THAT(h2.logs.back(), Catch::Contains("bad regular expression"));
    Host h4; // RE2 has no back-references (they need backtracking): refused, naming the route
    CHECK(h4.init("router", kModDir, {{"routes", "regex:^(1)\\1$ => sip:gw"}}) == PW_EINVAL);
    CHECK_THAT(h4.logs.back(), Catch::Contains("regex:^(1)\\1$") && Catch::Contains("back-references"));
    Host h3;
    CHECK(h3.init("router", kModDir, {{"routes", "prefix:9 => http://x"}}) == PW_EINVAL);
    CHECK_THAT(h3.logs.back(), Catch::Contains("not a sip: URI"));
}

TEST_CASE("hello adds its header and continues") {
    Host h;
    REQUIRE(h.init("hello", kModDir, {{"value", "hi there"}}) == PW_OK);
    Request r;
    r.method = "INVITE";
    r.ruri = "sip:1@127.0.0.1";
    CHECK(h.send(r) == PW_CONTINUE);
    REQUIRE(r.added.size() == 2);
    CHECK(r.added[0] == std::make_pair(std::string("X-Hello"), std::string("hi there")));
    // ABI 1.4: the user part through the host's uri_part (unescaped).
    CHECK(r.added[1] == std::make_pair(std::string("X-Hello-User"), std::string("1")));
    h.destroy();
}

TEST_CASE("ABI: a v1.4 module checking PW_HOST_HAS degrades on a host table shortened to v1.0") {
    Host h;
    // The v1.0 table ended with post (module.h: the v1.1 member dialog_accept_commit came right after it).
    h.limitTo(offsetof(pw_host_api, dialog_accept_commit));
    REQUIRE_FALSE(PW_HOST_HAS(h.api(), uri_part));
    REQUIRE(h.init("hello", kModDir, {}) == PW_OK);
    Request r("INVITE", "sip:%61lice@127.0.0.1");
    CHECK(h.send(r) == PW_CONTINUE);
    REQUIRE(r.added.size() == 1); // X-Hello only: no call through the missing member (it would crash)
    CHECK(r.added[0].first == "X-Hello");
    h.destroy();

    Host full;
    REQUIRE(full.init("hello", kModDir, {}) == PW_OK);
    Request r2("INVITE", "sip:%61lice@127.0.0.1");
    CHECK(full.send(r2) == PW_CONTINUE);
    REQUIRE(r2.added.size() == 2);
    CHECK(r2.added[1].second == "alice");
    full.destroy();
}

TEST_CASE("ABI: the registrar and the router work on a host table shortened to v1.0") {
    TempDb db;
    Host registrar, router;
    registrar.limitTo(offsetof(pw_host_api, dialog_accept_commit));
    router.limitTo(offsetof(pw_host_api, dialog_accept_commit));
    registrar.core["database"] = db.path;
    REQUIRE(registrar.init("registrar", kModDir, {}) == PW_OK);
    REQUIRE(router.init("router", kModDir, {}) == PW_OK);
    router.provider = registrar.provider;
    router.providerCtx = registrar.providerCtx;
    Request r = reg("1001", {"<sip:1001@127.0.0.1:5070>"}, "cid-v10", 1);
    CHECK(registrar.send(r) == PW_STOP);
    REQUIRE(r.replies.at(0).status == 200);
    Request inv("INVITE", "sip:1001@127.0.0.1");
    inv.header("From", "<sip:1002@127.0.0.1>;tag=x").header("To", "<sip:1001@127.0.0.1>").header("Call-ID", "c");
    CHECK(router.send(inv) == PW_CONTINUE);
    REQUIRE(inv.targets.size() == 1);
    CHECK(inv.targets[0].first == "sip:1001@127.0.0.1:5070");
    router.destroy();
    registrar.destroy();
}

TEST_CASE("fake host: dialog_accept_commit runs commit with a readable dialog before the 2xx, or answers its refusal") {
    Host h;
    const pw_host_api *api = h.api();
    REQUIRE(api->abi_minor >= 1);
    REQUIRE(PW_HOST_HAS(api, dialog_accept_commit));
    // A v1.0 host's table ends before the member: PW_HOST_HAS says so without reading past the end.
    pw_host_api v10 = *api;
    v10.struct_size = static_cast<uint32_t>(offsetof(pw_host_api, dialog_accept_commit));
    CHECK_FALSE(PW_HOST_HAS(&v10, dialog_accept_commit));
    v10.struct_size = sizeof(pw_host_api);
    v10.dialog_accept_commit = nullptr;
    CHECK_FALSE(PW_HOST_HAS(&v10, dialog_accept_commit));
    auto invite = [] {
        Request r;
        r.method = "INVITE";
        r.ruri = "sip:*68103@pbx.example.com";
        r.headers = {{"From", "\"A\" <sip:2001@pbx.example.com>;tag=ft"},
                     {"To", "<sip:*68103@pbx.example.com>"},
                     {"Call-ID", "c1@x"}};
        return r;
    };
    struct Seen {
        const pw_host_api *api = nullptr;
        int rc = 0;
        size_t repliesAtCommit = 99;
        std::string callId, remoteTag, exported;
        Request *req = nullptr;
    };
    auto commit = [](void *arg, pw_dialog *d) -> int {
        auto *s = static_cast<Seen *>(arg);
        s->repliesAtCommit = s->req->replies.size();
        pw_str c = s->api->dialog_get(d, PW_DLG_CALL_ID), t = s->api->dialog_get(d, PW_DLG_REMOTE_TAG);
        s->callId.assign(c.ptr, c.len);
        s->remoteTag.assign(t.ptr, t.len);
        std::string buf(512, '\0');
        buf.resize(static_cast<size_t>(s->api->dialog_export(d, buf.data(), buf.size())));
        s->exported = buf;
        return s->rc;
    };
    pw_dialog_callbacks cbs{};
    cbs.struct_size = sizeof cbs;

    Request ok = invite();
    Seen s;
    s.api = api;
    s.req = &ok;
    pw_dialog *d = api->dialog_accept_commit(reinterpret_cast<pw_request *>(&ok), 200, nullptr, 0, pw_str{}, pw_str{},
                                             &cbs, nullptr, commit, &s);
    REQUIRE(d);
    CHECK(s.repliesAtCommit == 0); // nothing answered yet when commit ran
    CHECK(s.callId == "c1@x");
    CHECK(s.remoteTag == "ft");
    CHECK(s.exported.find("\"localTag\"") != std::string::npos);
    REQUIRE(ok.replies.size() == 1);
    CHECK(ok.replies[0].status == 200);

    Request no = invite();
    Seen r;
    r.api = api;
    r.req = &no;
    r.rc = 486;
    CHECK(api->dialog_accept_commit(reinterpret_cast<pw_request *>(&no), 200, nullptr, 0, pw_str{}, pw_str{}, &cbs,
                                    nullptr, commit, &r) == nullptr);
    REQUIRE(no.replies.size() == 1);
    CHECK(no.replies[0].status == 486);
}

TEST_CASE("ABI: a v1.0 module compiled against the v1.0 header loads and works on the v1.4 host") {
    const std::string dir = ABI_TEST_MODULE_DIR;
    Host h;
    REQUIRE(PW_HOST_HAS(h.api(), uri_header)); // the full v1.4 table
    REQUIRE(h.init("abi_v10", dir, {{"word", "carrier"}}) == PW_OK);
    const pw_module *d = h.module();
    CHECK(d->abi_minor == 0);
    CHECK(d->struct_size == offsetof(pw_module, reload) + sizeof(void *)); // the v1.0 descriptor, no routes
    CHECK(parkway::proxy::moduleRoutes(d).empty());                        // the host reads no member past struct_size
    Request r("INVITE", "sip:1@127.0.0.1");
    r.header("From", "\"Bob\" <sip:1002@127.0.0.1>;tag=9");
    CHECK(h.send(r) == PW_CONTINUE);
    REQUIRE(r.added.size() == 1);
    CHECK(r.added[0] == std::make_pair(std::string("X-V10"), std::string("sip:1002@127.0.0.1")));
    auto [status, json] = h.command("echo");
    CHECK(status == 200);
    CHECK(json == "{\"v10\":true,\"host_minor\":" + std::to_string(PW_ABI_MINOR) + ",\"param\":\"carrier\"}");
    h.destroy();
}

// RFC 3261 §19.1.4: "%31001" and "1001" are the same user. The registrar keys AORs with the host's uri_part
// (PW_URI_AOR, ABI 1.4) and, on an older host, with its own canonicalAor, which must agree with it.
TEST_CASE("registrar: one AOR for two spellings of a user, on the 1.4 host and on a v1.0 table") {
    for (bool old : {false, true}) {
        INFO((old ? "v1.0 table" : "v1.4 table"));
        TempDb db;
        Host h;
        if (old)
            h.limitTo(offsetof(pw_host_api, dialog_accept_commit));
        h.core["database"] = db.path;
        REQUIRE(h.init("registrar", kModDir, {}) == PW_OK);
        Request r = reg("%31001", {"<sip:1001@127.0.0.1:5070>"}, "cid-esc", 1);
        CHECK(h.send(r) == PW_STOP);
        REQUIRE(r.replies.at(0).status == 200);
        CHECK(lookup(h, "sip:1001@127.0.0.1").uris == std::vector<std::string>{"sip:1001@127.0.0.1:5070"});
        CHECK(lookup(h, "sips:%31001@127.0.0.1:5061;transport=tls").uris.size() == 1);
        auto [status, json] = h.command("registrations.list", R"({"aor":"sip:1001@127.0.0.1"})");
        CHECK(status == 200);
        CHECK(json.find("\"aor\":\"sip:1001@127.0.0.1\"") != std::string::npos);
        h.destroy();
    }
}
