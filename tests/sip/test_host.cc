// Host API behaviour seen by modules: location lookup results and where log lines go.
#include <sip_test.hh>

#include <admin/event_bus.hh>
#include <admin/metrics.hh>

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

using namespace parkway;
using namespace parkway::test;

namespace {

// A provider that knows "known@x" (no live contact: 0) and "live@x" (one contact); nothing else.
int provider(void *, pw_str aor, pw_contact_cb each, void *arg) {
    std::string a(aor.ptr, aor.len);
    if (a == "known@x") return 0;
    if (a == "live@x") {
        pw_contact c{};
        c.struct_size = sizeof c;
        c.uri = PW_STR_LIT("sip:live@127.0.0.1:5999");
        each(arg, &c);
        return 1;
    }
    return PW_ENOTFOUND;
}

int notFound(void *, pw_str, pw_contact_cb, void *) { return PW_ENOTFOUND; }

void countContact(void *arg, const pw_contact *) { ++*static_cast<int *>(arg); }

} // namespace

TEST_CASE("location_lookup: PW_ENOTFOUND for an AOR no provider knows, 0 for a known AOR without contact",
          "[host][location]") {
    SipTestEnv env;
    HookModule m("loc");
    env.add(m);
    env.start();
    int seen = 0;
    auto lookup = [&](const char *aor) { return m.api->location_lookup(m.host, pw_str{aor, strlen(aor)}, countContact, &seen); };
    CHECK(lookup("anyone@x") == PW_ENOTFOUND); // no provider at all
    REQUIRE(m.api->location_register_provider(m.host, notFound, nullptr) == PW_OK);
    REQUIRE(m.api->location_register_provider(m.host, provider, nullptr) == PW_OK);
    CHECK(lookup("never@x") == PW_ENOTFOUND); // the router answers 404
    CHECK(lookup("known@x") == 0);            // the router answers 480
    CHECK(lookup("live@x") == 1);
    CHECK(seen == 1);
}

TEST_CASE("Module log lines go to CoreConfig::logSink with level and module name", "[host][log]") {
    auto cfg = SipTestEnv::defaultConfig();
    std::vector<std::tuple<int, std::string, std::string>> lines;
    cfg.logSink = [&](int level, const std::string &module, const std::string &text) {
        lines.emplace_back(level, module, text);
    };
    SipTestEnv env(cfg);
    HookModule m("chatty");
    env.add(m);
    env.start();
    m.api->log(m.host, PW_LOG_WARN, PW_STR_LIT("disk nearly full"));
    m.api->log(m.host, PW_LOG_DEBUG, PW_STR_LIT("detail")); // the sink filters by level, not the core
    auto has = [&](int level, const std::string &text) {
        for (auto &[l, mod, t] : lines)
            if (l == level && mod == "chatty" && t == text) return true;
        return false;
    };
    CHECK(has(PW_LOG_WARN, "disk nearly full"));
    CHECK(has(PW_LOG_DEBUG, "detail"));
}

TEST_CASE("log_enabled says whether the daemon's logger writes a level (v1.6)", "[host][log]") {
    auto cfg = SipTestEnv::defaultConfig();
    int threshold = PW_LOG_WARN; // the daemon's log_level, changeable at run time (SIGHUP)
    cfg.logSink = [](int, const std::string &, const std::string &) {};
    cfg.logEnabled = [&](int level) { return level <= threshold; };
    SipTestEnv env(cfg);
    HookModule m("quiet");
    env.add(m);
    env.start();
    REQUIRE(PW_HOST_HAS(m.api, log_enabled));
    CHECK(m.api->log_enabled(m.host, PW_LOG_ERROR) == 1);
    CHECK(m.api->log_enabled(m.host, PW_LOG_WARN) == 1);
    CHECK(m.api->log_enabled(m.host, PW_LOG_INFO) == 0);
    CHECK(m.api->log_enabled(m.host, PW_LOG_DEBUG) == 0);
    threshold = PW_LOG_DEBUG; // asked each time, never cached
    CHECK(m.api->log_enabled(m.host, PW_LOG_INFO) == 1);
    CHECK(m.api->log_enabled(m.host, PW_LOG_DEBUG) == 1);
}

TEST_CASE("log_enabled with a sink that filters nothing itself: every level", "[host][log]") {
    auto cfg = SipTestEnv::defaultConfig();
    cfg.logSink = [](int, const std::string &, const std::string &) {};
    SipTestEnv env(cfg);
    HookModule m("talkative");
    env.add(m);
    env.start();
    CHECK(m.api->log_enabled(m.host, PW_LOG_INFO) == 1);
    CHECK(m.api->log_enabled(m.host, PW_LOG_DEBUG) == 1);
}

TEST_CASE("domain_serve makes a domain local, a reload's domains apply at once, domain_release can refuse it all",
          "[host][tenants]") {
    auto cfg = SipTestEnv::defaultConfig();
    cfg.domains = {"a.example", "b.example"};
    SipTestEnv env(cfg);
    HookModule m("tenants");
    std::vector<std::string> asked;
    m.onDomainRelease = [&](const std::string &d, pw_writer *why) {
        asked.push_back(d);
        if (d != "b.example")
            return PW_OK;
        m.api->writer_error(why, 409, PW_STR_LIT("domain b.example has 1 parked call"));
        return PW_ESTATE;
    };
    env.add(m);
    env.start();
    auto local = [&](const char *d) { return m.api->is_local_domain(m.host, pw_str{d, strlen(d)}) == 1; };
    auto serve = [&](const char *d, int on) { return m.api->domain_serve(m.host, pw_str{d, strlen(d)}, on); };
    REQUIRE(PW_HOST_HAS(m.api, domain_serve));

    CHECK_FALSE(local("t.example"));
    CHECK(serve("T.Example", 1) == PW_OK); // case-insensitive, like host names
    CHECK(local("t.example"));
    CHECK(serve("", 1) == PW_EINVAL);
    CHECK(serve("bad domain", 1) == PW_EINVAL);

    // Dropping b.example, which the module refuses: nothing changes, the error names domain, module and reason.
    proxy::CoreConfig fresh = cfg;
    fresh.domains = {"c.example"};
    auto u = env.proxy().updateDomains(fresh);
    CHECK_FALSE(u.ok);
    CHECK(u.error == "proxy.domains: cannot remove b.example: module tenants: domain b.example has 1 parked call");
    CHECK(local("a.example"));
    CHECK(local("b.example"));
    CHECK_FALSE(local("c.example"));

    // Dropping a.example (released) and t.example's config entry (a module serves it: not even asked).
    fresh.domains = {"b.example", "c.example", "t.example"};
    u = env.proxy().updateDomains(fresh);
    REQUIRE(u.ok);
    CHECK(u.added == std::vector<std::string>{"c.example", "t.example"});
    CHECK(u.removed == std::vector<std::string>{"a.example"});
    CHECK_FALSE(local("a.example"));
    CHECK(local("c.example"));
    asked.clear();
    fresh.domains = {"b.example", "c.example"};
    REQUIRE(env.proxy().updateDomains(fresh).ok);
    CHECK(asked.empty()); // t.example stays local: the module serves it
    CHECK(local("t.example"));
    CHECK(serve("t.example", 0) == PW_OK);
    CHECK_FALSE(local("t.example"));
}

TEST_CASE("event_listening: 1 only while an admin event-stream client is subscribed (v1.5)", "[host][events]") {
    proxy::Metrics metrics;
    proxy::EventBus events;
    SipTestEnv env(SipTestEnv::defaultConfig(), &metrics, &events);
    HookModule m("publisher");
    env.add(m);
    env.start();
    REQUIRE(PW_HOST_HAS(m.api, event_listening));
    CHECK(m.api->event_listening(m.host) == 0); // nobody: a module may skip building the event
    uint64_t sub = events.subscribe(nullptr);
    CHECK(m.api->event_listening(m.host) == 1);
    m.api->event_publish(m.host, PW_STR_LIT("parked"), PW_STR_LIT("{}"));
    CHECK(events.drain(sub).size() == 1);
    events.unsubscribe(sub);
    CHECK(m.api->event_listening(m.host) == 0);
}
