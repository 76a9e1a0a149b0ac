// Host API behaviour seen by modules: location lookup results and where log lines go.
#include <sip_test.hh>

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
