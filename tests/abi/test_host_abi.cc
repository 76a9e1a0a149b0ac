// The real host (parkway_core, ABI 1.4 and later) in-process on this thread: the URI accessors parsed by sofia-sip with
// the escaping rules of module.h, their lifetime (until the loop turn ends), the v1.0 fixture module served by
// the real host table, and the routes a module declares.
#include "core/proxy.hh"
#include "plugin/loader.hh"

#include <catch2/catch.hpp>
#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

using namespace parkway::proxy;

namespace {

// What the probe module read through the host, by key (copied at once: the views live until the turn ends).
std::map<std::string, std::string> seen;
std::map<std::string, bool> present;
const pw_host_api *gApi = nullptr;
pw_host *gHost = nullptr;

std::string S(pw_str s) {
    return s.len ? std::string(s.ptr, s.len) : std::string();
}
pw_str P(const char *s) {
    return pw_str{s, std::char_traits<char>::length(s)};
}

void part(const char *key, const char *uri, pw_uri_part p) {
    pw_str v = gApi->uri_part(gHost, P(uri), p);
    seen[key] = S(v);
    present[key] = v.ptr != nullptr;
}
void param(const char *key, const char *uri, const char *name) {
    pw_str v = gApi->uri_param(gHost, P(uri), P(name));
    seen[key] = S(v);
    present[key] = v.ptr != nullptr;
}
void header(const char *key, const char *uri, const char *name) {
    pw_str v = gApi->uri_header(gHost, P(uri), P(name));
    seen[key] = S(v);
    present[key] = v.ptr != nullptr;
}

int probeInit(const pw_host_api *api, pw_host *host, void **ctx) {
    gApi = api;
    gHost = host;
    *ctx = nullptr;
    if (!PW_HOST_HAS(api, uri_part) || !PW_HOST_HAS(api, uri_param) || !PW_HOST_HAS(api, uri_header))
        return PW_EUNSUPPORTED;
    const char *u = "sip:%61lice%23@EXAMPLE.com:5062;transport=TCP;lr;x=a%20b?Replaces=cid%3Bto-tag%3Da%3Bfrom-tag%3Db"
                    "&Subject=hi";
    part("scheme", u, PW_URI_SCHEME);
    part("user", u, PW_URI_USER);
    part("host", u, PW_URI_HOST);
    part("port", u, PW_URI_PORT);
    part("aor", u, PW_URI_AOR);
    param("transport", u, "Transport");
    param("lr", u, "lr");
    param("x", u, "x");
    param("nope", u, "maddr");
    header("replaces", u, "replaces");
    header("subject", u, "Subject");
    header("absent", u, "To");
    part("nameaddr-user", "\"Park\" <sip:*68%23103@pbx.example.com?Replaces=a%3Bb>;tag=1", PW_URI_USER);
    header("nameaddr-replaces", "\"Park\" <sip:*68%23103@pbx.example.com?Replaces=a%3Bb>;tag=1", "Replaces");
    part("sips-aor", "sips:Bob@[::1]:5061", PW_URI_AOR);
    part("v6-host", "sips:Bob@[::1]:5061", PW_URI_HOST);
    part("tel-user", "tel:+1-555-0100;phone-context=x", PW_URI_USER);
    part("tel-aor", "tel:+1-555-0100;phone-context=x", PW_URI_AOR);
    part("space-aor", "sip:a%20b@h", PW_URI_AOR);
    part("bad-scheme", "not a uri", PW_URI_SCHEME);
    part("no-host", "sip:", PW_URI_SCHEME);
    part("unknown-part", u, static_cast<pw_uri_part>(99));
    part("no-port", "sip:h", PW_URI_PORT);
    return PW_OK;
}
void probeDestroy(void *) {}
pw_verdict probeRequest(void *, pw_request *) {
    return PW_CONTINUE;
}
int probeRun(void *, pw_str, pw_writer *out) {
    return gApi->writer_json(out, P("{}"));
}
const pw_command_def kProbeCommands[] = {{sizeof(pw_command_def), "probe.run", "test", probeRun},
                                         {sizeof(pw_command_def), nullptr, nullptr, nullptr}};
const pw_route_def kProbeRoutes[] = {
    {sizeof(pw_route_def), "GET", "/api/probe/{id}", "probe.run", PW_ROUTE_ARGS_QUERY, "a,b", PW_ROUTE_NUMERIC_PARAMS},
    {sizeof(pw_route_def), "GET", "/api/probe", "probe.run", static_cast<pw_route_args>(42), nullptr, 0},
    {sizeof(pw_route_def), nullptr, nullptr, nullptr, PW_ROUTE_ARGS_NONE, nullptr, 0},
};

pw_module probeModule() {
    pw_module m{};
    m.struct_size = sizeof m;
    m.abi_major = PW_ABI_MAJOR;
    m.abi_minor = PW_ABI_MINOR;
    m.name = "probe";
    m.version = "1";
    m.description = "test";
    m.commands = kProbeCommands;
    m.init = probeInit;
    m.destroy = probeDestroy;
    m.on_request = probeRequest;
    m.routes = kProbeRoutes;
    return m;
}
const pw_module kProbe = probeModule();

struct Host {
    su_root_t *root = nullptr;
    std::unique_ptr<Proxy> proxy;
    std::string dir;
    Host() {
        su_init();
        root = su_root_create(nullptr);
        char tmpl[] = "/tmp/parkway-hostabi-XXXXXX";
        dir = mkdtemp(tmpl);
        CoreConfig core;
        core.listen = {"sip:127.0.0.1:*;transport=udp"};
        core.database = dir + "/parkway.db";
        proxy = std::make_unique<Proxy>(root, core);
        proxy->bind();
        std::vector<LoadedModule> mods;
        mods.push_back(staticModule(&kProbe, {}));
        mods.push_back(loadModule("abi_v10", ABI_TEST_MODULE_DIR, {{"word", "real"}}));
        proxy->addModules(std::move(mods));
        proxy->start();
    }
    ~Host() {
        proxy.reset();
        su_root_destroy(root);
        su_deinit();
        std::filesystem::remove_all(dir);
    }
};

} // namespace

TEST_CASE("host ABI 1.4: URI parts are parsed by sofia-sip and unescaped as module.h says", "[abi]") {
    seen.clear();
    Host h;
    CHECK(seen["scheme"] == "sip");
    CHECK(seen["user"] == "alice#"); // RFC 3261 §19.1.2: the user is unescaped
    CHECK(seen["host"] == "example.com");
    CHECK(seen["port"] == "5062");
    CHECK(seen["aor"] == "sip:alice%23@example.com"); // §19.1.4: canonical, '#' is not a user character
    CHECK(seen["transport"] == "TCP");
    CHECK(seen["lr"].empty());
    CHECK(present["lr"]); // present without a value: non-NULL
    CHECK(seen["x"] == "a b");
    CHECK_FALSE(present["nope"]);
    CHECK(seen["replaces"] == "cid;to-tag=a;from-tag=b"); // §19.1.1: header values unescaped
    CHECK(seen["subject"] == "hi");
    CHECK_FALSE(present["absent"]);
    CHECK(seen["nameaddr-user"] == "*68#103");
    CHECK(seen["nameaddr-replaces"] == "a;b");
    CHECK(seen["sips-aor"] == "sips:Bob@[::1]");
    CHECK(seen["v6-host"] == "[::1]");
    CHECK(seen["tel-user"] == "+1-555-0100");
    CHECK(seen["tel-aor"] == "tel:+1-555-0100");
    CHECK(seen["space-aor"] == "sip:a%20b@h");
    CHECK_FALSE(present["bad-scheme"]);
    CHECK_FALSE(present["no-host"]);
    CHECK_FALSE(present["unknown-part"]);
    CHECK_FALSE(present["no-port"]);
}

TEST_CASE("host ABI 1.4: uri strings live until the loop turn ends", "[abi]") {
    Host h;
    pw_str v = gApi->uri_part(gHost, P("sip:turn@example.com"), PW_URI_USER);
    std::string before(v.ptr, v.len);
    CHECK(before == "turn");
    // Another call in the same turn leaves the first view intact.
    for (int i = 0; i < 100; ++i)
        gApi->uri_part(gHost, P("sip:other@example.com"), PW_URI_HOST);
    CHECK(std::string(v.ptr, v.len) == "turn");
    su_root_step(h.root, 0); // the turn ends (prepoll): the arena is freed; new calls still work
    pw_str w = gApi->uri_part(gHost, P("sip:next@example.com"), PW_URI_USER);
    CHECK(S(w) == "next");
}

TEST_CASE("host ABI 1.4: the v1.0 fixture module is served by the real host table", "[abi]") {
    Host h;
    CommandResult r = h.proxy->runCommand("v10", "echo", "{}");
    CHECK(r.httpStatus == 200);
    CHECK(r.json == "{\"v10\":true,\"host_minor\":" + std::to_string(PW_ABI_MINOR) + ",\"param\":\"real\"}");
}

TEST_CASE("host ABI 1.4: module routes: an unknown args kind is left out, an older module has none", "[abi]") {
    Host h;
    std::vector<ModuleRoute> routes = h.proxy->moduleRoutes();
    REQUIRE(routes.size() == 1); // the probe's second route has args 42: not served; abi_v10 has no routes
    CHECK(routes[0].module == "probe");
    CHECK(routes[0].method == "GET");
    CHECK(routes[0].path == "/api/probe/{id}");
    CHECK(routes[0].command == "probe.run");
    CHECK(routes[0].query == std::vector<std::string>{"a", "b"});
    CHECK(routes[0].flags == PW_ROUTE_NUMERIC_PARAMS);
}

TEST_CASE("host ABI 1.7: dialog_forget is appended after 1.6, in the real table, absent from a 1.6-sized one",
          "[abi]") {
    Host h;
    REQUIRE(gApi);
    CHECK(PW_ABI_MAJOR == 1u);
    CHECK(gApi->abi_major == PW_ABI_MAJOR);
    CHECK(gApi->abi_minor == PW_ABI_MINOR);
    CHECK(gApi->struct_size == sizeof(pw_host_api));
    // Additive: the new member comes after every older one.
    CHECK(offsetof(pw_host_api, dialog_forget) > offsetof(pw_host_api, log_enabled));
    CHECK(PW_HOST_HAS(gApi, dialog_forget));
    CHECK(gApi->dialog_forget(nullptr) == PW_EINVAL);
    // What a module built against 1.7 sees on a 1.6 host: the table ends before the member.
    pw_host_api v16 = *gApi;
    v16.struct_size = static_cast<uint32_t>(offsetof(pw_host_api, dialog_forget));
    CHECK_FALSE(PW_HOST_HAS(&v16, dialog_forget));
    CHECK(PW_HOST_HAS(&v16, log_enabled));
}

TEST_CASE("host ABI 1.8: writer_defer and writer_finish follow 1.7, absent from a 1.7-sized one", "[abi]") {
    Host h;
    REQUIRE(gApi);
    CHECK(PW_ABI_MINOR >= 8u);
    CHECK(offsetof(pw_host_api, writer_defer) > offsetof(pw_host_api, dialog_forget));
    CHECK(offsetof(pw_host_api, writer_finish) > offsetof(pw_host_api, writer_defer));
    CHECK(PW_HOST_HAS(gApi, writer_defer));
    CHECK(PW_HOST_HAS(gApi, writer_finish));
    CHECK(gApi->writer_defer(nullptr) == nullptr);
    gApi->writer_finish(nullptr); // ignored
    pw_host_api v17 = *gApi;
    v17.struct_size = static_cast<uint32_t>(offsetof(pw_host_api, writer_defer));
    CHECK_FALSE(PW_HOST_HAS(&v17, writer_defer));
    CHECK_FALSE(PW_HOST_HAS(&v17, writer_finish));
    CHECK(PW_HOST_HAS(&v17, dialog_forget));
}

TEST_CASE("host ABI 1.9: dialog_accept_finish ends the table, absent from a 1.8-sized one", "[abi]") {
    Host h;
    REQUIRE(gApi);
    CHECK(PW_ABI_MINOR == 9u);
    CHECK(offsetof(pw_host_api, dialog_accept_finish) > offsetof(pw_host_api, writer_finish));
    CHECK(offsetof(pw_host_api, dialog_accept_finish) + sizeof(gApi->dialog_accept_finish) == sizeof(pw_host_api));
    CHECK(PW_HOST_HAS(gApi, dialog_accept_finish));
    CHECK(gApi->dialog_accept_finish(nullptr, 0) == -1);
    pw_host_api v18 = *gApi;
    v18.struct_size = static_cast<uint32_t>(offsetof(pw_host_api, dialog_accept_finish));
    CHECK_FALSE(PW_HOST_HAS(&v18, dialog_accept_finish));
    CHECK(PW_HOST_HAS(&v18, writer_finish));
}
