// The admin API over real HTTP on 127.0.0.1 (ephemeral port), in-process: a Proxy from parkway_core on a
// su_root running in its own thread, with two static test modules ("callpark", "registrar") whose admin
// commands echo what they were called with, so every endpoint's mapping is visible from the outside.
#include "admin/admin_server.hh"
#include "admin/event_bus.hh"
#include "admin/metrics.hh"
#include "admin/ui_assets.hh"
#include "core/proxy.hh"
#include "plugin/loader.hh"

#include "http_client.hh" // tools/parkctl: the same client parkctl uses

#include "admin_routes.h" // module/callpark: callpark's REST routes (module.h pw_route_def)

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

using json = nlohmann::json;
using namespace parkway::proxy;
using parkway::tools::HttpClient;
using parkway::tools::ProtocolError;
using parkway::tools::Response;
using parkway::tools::TlsError;
using parkway::tools::TlsOptions;

namespace {

// ---------------------------------------------------------------- test modules

// State shared with the test modules (test-only; a module's ctx cannot be given from outside).
struct ModuleState {
    const pw_host_api *api = nullptr;
    pw_host *host = nullptr;
    std::atomic<int> reloads{0};
};
ModuleState callparkState, registrarState;

std::string str(pw_str s) {
    return s.len ? std::string(s.ptr, s.len) : std::string();
}
pw_str pws(const std::string &s) {
    return pw_str{s.data(), s.size()};
}

const char *const kCallparkCommands[] = {
    "parked.list",  "parked.get",  "parked.recall",  "parked.hangup", "groups.list",  "groups.set",   "groups.delete",
    "lots.list",    "lots.set",    "lots.delete",    "rules.list",    "rules.import", "rules.reload", "rules.explain",
    "domains.list", "domains.set", "domains.delete", "stats",         "emit",         "parked.move",  "rules.check"};

template <int N> int callparkRun(void *ctx, pw_str args, pw_writer *out) {
    auto *st = static_cast<ModuleState *>(ctx);
    const std::string name = kCallparkCommands[N];
    json a = json::parse(str(args), nullptr, false);
    if (name == "parked.get" && a.contains("id") && a["id"] == "missing")
        return st->api->writer_error(out, 404, PW_STR_LIT("no parked call with id missing"));
    if (name == "parked.list")
        return st->api->writer_json(
            out,
            pws(json{
                {"parked", {{{"id", "17"}, {"domain", "pbx.example.com"}, {"extension", "1003"}, {"parker", "1001"}}}},
                {"args",
                 a}}.dump()));
    if (name == "stats")
        return st->api->writer_json(out, PW_STR_LIT("{\"parked\":2}"));
    if (name == "domains.list")
        return st->api->writer_json(out, PW_STR_LIT("{\"domains\":[{\"domain\":\"pbx.example.com\"}]}"));
    if (name == "emit") {
        st->api->event_publish(st->host, PW_STR_LIT("parked"), args);
        return st->api->writer_json(out, PW_STR_LIT("{\"emitted\":true}"));
    }
    return st->api->writer_json(out, pws(json{{"command", name}, {"args", a}}.dump()));
}

template <int... I>
constexpr std::array<pw_command_def, sizeof...(I) + 1> makeCommands(std::integer_sequence<int, I...>) {
    return {{pw_command_def{sizeof(pw_command_def), kCallparkCommands[I], "test", &callparkRun<I>}...,
             pw_command_def{sizeof(pw_command_def), nullptr, nullptr, nullptr}}};
}
const auto kCallparkTable = makeCommands(std::make_integer_sequence<int, 21>{});

int regsRun(void *ctx, pw_str args, pw_writer *out) {
    auto *st = static_cast<ModuleState *>(ctx);
    json a = json::parse(str(args), nullptr, false);
    return st->api->writer_json(
        out, pws(json{
                 {"registrations", {{{"aor", "sip:1003@pbx.example.com"}, {"contact", "sip:1003@127.0.0.1:5070"}}}},
                 {"args",
                  a}}.dump()));
}
const pw_command_def kRegistrarTable[] = {{sizeof(pw_command_def), "registrations.list", "test", &regsRun},
                                          {sizeof(pw_command_def), nullptr, nullptr, nullptr}};

template <ModuleState *S> int modInit(const pw_host_api *api, pw_host *host, void **ctx) {
    S->api = api;
    S->host = host;
    *ctx = S;
    return PW_OK;
}
void modDestroy(void *) {}
pw_verdict modRequest(void *, pw_request *) {
    return PW_CONTINUE;
}
template <ModuleState *S> int modReload(void *) {
    ++S->reloads;
    return PW_OK;
}

const pw_route_def kRegistrarRoutes[] = {
    {sizeof(pw_route_def), "GET", "/api/registrations", "registrations.list", PW_ROUTE_ARGS_QUERY, "aor", 0},
    {sizeof(pw_route_def), nullptr, nullptr, nullptr, PW_ROUTE_ARGS_NONE, nullptr, 0},
};

pw_module makeModule(const char *name, const pw_command_def *cmds, ModuleState *st) {
    pw_module m{};
    m.struct_size = sizeof(pw_module);
    m.abi_major = PW_ABI_MAJOR;
    m.abi_minor = PW_ABI_MINOR;
    m.name = name;
    m.version = "1.0.0";
    m.description = "admin test module";
    m.params = nullptr;
    m.commands = cmds;
    m.init = st == &callparkState ? &modInit<&callparkState> : &modInit<&registrarState>;
    m.destroy = &modDestroy;
    m.on_request = &modRequest;
    m.reload = st == &callparkState ? &modReload<&callparkState> : &modReload<&registrarState>;
    // ABI 1.4: the REST routes are the modules' own (the admin server knows none): callpark's real table, and
    // the registrar's one route as module/registrar/registrar.cc declares it.
    m.routes = st == &callparkState ? kCallparkRoutes : kRegistrarRoutes;
    return m;
}
const pw_module kCallparkModule = makeModule("callpark", kCallparkTable.data(), &callparkState);
const pw_module kRegistrarModule = makeModule("registrar", kRegistrarTable, &registrarState);

// ---------------------------------------------------------------- the daemon in a thread

struct Daemon {
    Metrics metrics;
    EventBus events;
    std::unique_ptr<AdminServer> admin;
    std::thread sip;
    su_root_t *root = nullptr;
    Proxy *proxy = nullptr;
    std::string dir;
    // The SIP loop polls this instead of being woken by a post() to stop: sofia's cross-thread wakeup writes to a
    // socket the loop may already be closing once it has seen the message (ThreadSanitizer reports that race).
    std::atomic<bool> stopping{false};

    explicit Daemon(AdminConfig cfg = defaultConfig(), bool withCallpark = true, const pw_module *extra = nullptr) {
        char tmpl[] = "/tmp/parkway-admin-test-XXXXXX";
        dir = mkdtemp(tmpl);
        std::promise<void> ready;
        auto readyF = ready.get_future();
        sip = std::thread([this, &ready, withCallpark, extra] {
            su_init();
            root = su_root_create(nullptr);
            CoreConfig core;
            core.listen = {"sip:127.0.0.1:*;transport=udp"};
            core.database = dir + "/parkway.db";
            try {
                proxy = new Proxy(root, core, &metrics, &events);
                proxy->bind();
                std::vector<LoadedModule> mods;
                if (withCallpark)
                    mods.push_back(staticModule(&kCallparkModule, {}));
                mods.push_back(staticModule(&kRegistrarModule, {}));
                if (extra)
                    mods.push_back(staticModule(extra, {}));
                proxy->addModules(std::move(mods));
                proxy->start();
                ready.set_value();
            } catch (...) {
                delete proxy;
                proxy = nullptr;
                su_root_destroy(root);
                su_deinit();
                ready.set_exception(std::current_exception());
                return;
            }
            while (!stopping.load())
                su_root_step(root, 20);
            proxy->stop();
            delete proxy;
            proxy = nullptr;
            su_root_destroy(root);
            su_deinit();
        });
        try {
            readyF.get();
        } catch (...) {
            sip.join();
            std::filesystem::remove_all(dir);
            throw;
        }
        try {
            admin = std::make_unique<AdminServer>(cfg, *proxy, metrics, events);
            admin->start();
        } catch (...) {
            shutdown();
            throw;
        }
    }
    ~Daemon() { shutdown(); }
    void shutdown() {
        admin.reset(); // first: it posts into the SIP thread
        stopping = true;
        sip.join();
        std::filesystem::remove_all(dir);
    }
    static AdminConfig defaultConfig() {
        AdminConfig c;
        c.listen = "127.0.0.1:0";
        c.token = "s3cret";
        c.sseKeepaliveMs = 100;
        return c;
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(admin->port()); }
    HttpClient client(const std::string &token = "s3cret") const {
        return HttpClient(parkway::tools::parseUrl(url()), token, 5000);
    }
};

json body(const Response &r) {
    json v = json::parse(r.body, nullptr, false);
    INFO(r.body);
    REQUIRE_FALSE(v.is_discarded());
    return v;
}

// Poll a condition with a bounded wait (the admin thread works asynchronously).
template <class F> bool eventually(F f, int ms = 3000) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
        if (f())
            return true;
        std::this_thread::yield();
    }
    return f();
}

} // namespace

// ---------------------------------------------------------------- config validation

TEST_CASE("admin config: token and loopback rules name the admin.* key", "[admin]") {
    AdminConfig c;
    c.listen = "0.0.0.0:8089";
    c.requireToken = false;
    try {
        AdminServer::validate(c);
        FAIL("expected an error");
    } catch (const std::runtime_error &e) {
        CHECK(std::string(e.what()).find("admin.require_token") != std::string::npos);
    }
    c.listen = "127.0.0.1:8089";
    CHECK_NOTHROW(AdminServer::validate(c));
    c.listen = "[::1]:8089";
    CHECK_NOTHROW(AdminServer::validate(c));
    c.listen = "localhost:0";
    CHECK_NOTHROW(AdminServer::validate(c));
    c.requireToken = true;
    c.token.clear();
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.token"));
    c.token = "x";
    c.listen = "nonsense";
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.listen"));
    c.listen = "127.0.0.1:99999";
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.listen"));
}

TEST_CASE("admin: binding a port in use fails naming admin.listen", "[admin]") {
    Daemon d;
    AdminConfig c = Daemon::defaultConfig();
    c.listen = "127.0.0.1:" + std::to_string(d.admin->port());
    AdminServer second(c, *d.proxy, d.metrics, d.events);
    CHECK_THROWS_WITH(second.start(), Catch::Contains("admin.listen") && Catch::Contains("in use"));
}

// ---------------------------------------------------------------- auth

TEST_CASE("admin: bearer token required and checked", "[admin]") {
    Daemon d;
    auto none = d.client("").request("GET", "/api/parked");
    CHECK(none.status == 401);
    CHECK(body(none).at("error").get<std::string>().find("token") != std::string::npos);
    CHECK(none.headers["www-authenticate"].find("Bearer") == 0);

    auto wrong = d.client("s3creT").request("GET", "/api/parked");
    CHECK(wrong.status == 401);
    auto prefix = d.client("s3cre").request("GET", "/api/stats");
    CHECK(prefix.status == 401);
    auto longer = d.client("s3cret-and-more").request("GET", "/api/stats");
    CHECK(longer.status == 401);

    auto ok = d.client().request("GET", "/api/parked");
    CHECK(ok.status == 200);

    // /health needs no token; /metrics does by default.
    CHECK(d.client("").request("GET", "/health").status == 200);
    CHECK(d.client("").request("GET", "/metrics").status == 401);
    CHECK(d.client().request("GET", "/metrics").status == 200);
}

TEST_CASE("admin: metrics_require_token=false opens only /metrics", "[admin]") {
    AdminConfig c = Daemon::defaultConfig();
    c.metricsRequireToken = false;
    Daemon d(c);
    CHECK(d.client("").request("GET", "/metrics").status == 200);
    CHECK(d.client("").request("GET", "/api/stats").status == 401);
}

TEST_CASE("admin: require_token=false on loopback serves without a token", "[admin]") {
    AdminConfig c = Daemon::defaultConfig();
    c.requireToken = false;
    c.token.clear();
    Daemon d(c);
    CHECK(d.client("").request("GET", "/api/stats").status == 200);
}

// ---------------------------------------------------------------- endpoint mapping

TEST_CASE("admin: every endpoint maps to its module command", "[admin]") {
    Daemon d;
    auto c = d.client();
    auto expect = [&](const std::string &method, const std::string &target, const std::string &bodyText,
                      const std::string &command, const json &args) {
        INFO(method << " " << target);
        auto r = c.request(method, target, bodyText);
        REQUIRE(r.status == 200);
        CHECK(r.headers["content-type"] == "application/json");
        json v = body(r);
        CHECK(v.at("command") == command);
        CHECK(v.at("args") == args);
    };
    // parked.list gets only the filters that were given.
    {
        json v = body(c.request("GET", "/api/parked?domain=pbx.example.com&extension=1003&group=&lot=main"));
        CHECK(v.at("args") == json{{"domain", "pbx.example.com"}, {"extension", "1003"}, {"lot", "main"}});
        CHECK(v.at("parked").at(0).at("id") == "17");
    }
    // Numeric ids are passed as numbers (engine ids are integers).
    expect("GET", "/api/parked/42", "", "parked.get", {{"id", 42}});
    expect("POST", "/api/parked/42/recall", "", "parked.recall", {{"id", 42}});
    expect("DELETE", "/api/parked/42", "", "parked.hangup", {{"id", 42}});
    expect("POST", "/api/parked/42/move", R"({"extension":"104"})", "parked.move", {{"id", 42}, {"extension", "104"}});
    expect("GET", "/api/groups?domain=pbx.example.com", "", "groups.list", {{"domain", "pbx.example.com"}});
    expect("GET", "/api/groups", "", "groups.list", json::object());
    expect(
        "PUT", "/api/groups/pbx.example.com/sales", R"({"members":["1001","1002","1003"],"recall":"group"})",
        "groups.set",
        {{"domain", "pbx.example.com"}, {"name", "sales"}, {"members", {"1001", "1002", "1003"}}, {"recall", "group"}});
    expect("DELETE", "/api/groups/pbx.example.com/sales", "", "groups.delete",
           {{"domain", "pbx.example.com"}, {"name", "sales"}});
    expect("GET", "/api/lots?domain=d", "", "lots.list", {{"domain", "d"}});
    expect("PUT", "/api/lots/d/main", R"({"first_slot":701,"last_slot":720})", "lots.set",
           {{"domain", "d"}, {"name", "main"}, {"first_slot", 701}, {"last_slot", 720}});
    expect("DELETE", "/api/lots/d/main", "", "lots.delete", {{"domain", "d"}, {"name", "main"}});
    expect("PUT", "/api/domains/d", R"({"park_code":"*68"})", "domains.set", {{"domain", "d"}, {"park_code", "*68"}});
    expect("DELETE", "/api/domains/d", "", "domains.delete", {{"domain", "d"}});
    expect("GET", "/api/rules", "", "rules.list", json::object());
    expect("POST", "/api/rules", R"({"text":"1 0 ...","replace":true})", "rules.import",
           {{"text", "1 0 ..."}, {"replace", true}});
    expect("POST", "/api/rules/reload", "", "rules.reload", json::object());
    expect("POST", "/api/rules/check", R"({"text":"","dial":"*58"})", "rules.check", {{"text", ""}, {"dial", "*58"}});
    expect("GET", "/api/explain?domain=pbx.example.com&caller=1003&dial=%2A58", "", "rules.explain",
           {{"domain", "pbx.example.com"}, {"caller", "1003"}, {"dial", "*58"}});
    expect("POST", "/api/modules/callpark/rules.list", R"({"x":1})", "rules.list", {{"x", 1}});
    // Path segments are percent-decoded one by one.
    expect("GET", "/api/parked/a%2Fb", "", "parked.get", {{"id", "a/b"}});

    json regs = body(c.request("GET", "/api/registrations?aor=sip%3A1003%40pbx.example.com"));
    CHECK(regs.at("args") == json{{"aor", "sip:1003@pbx.example.com"}});
    CHECK(regs.at("registrations").size() == 1);

    json cmds = body(c.request("GET", "/api/commands"));
    bool sawExplain = false, sawRegs = false;
    for (const auto &x : cmds.at("commands")) {
        sawExplain |= x.at("module") == "callpark" && x.at("name") == "rules.explain";
        sawRegs |= x.at("module") == "registrar" && x.at("name") == "registrations.list";
    }
    CHECK(sawExplain);
    CHECK(sawRegs);

    json stats = body(c.request("GET", "/api/stats"));
    CHECK(stats.contains("core"));
    CHECK(stats.at("modules").at("callpark") == json{{"parked", 2}});
}

TEST_CASE("admin: errors are JSON with a message and the right status", "[admin]") {
    Daemon d;
    auto c = d.client();
    auto r = c.request("GET", "/api/parked/missing");
    CHECK(r.status == 404);
    CHECK(body(r).at("error") == "no parked call with id missing");

    r = c.request("GET", "/api/nothing/here");
    CHECK(r.status == 404);
    CHECK(body(r).at("error").get<std::string>().find("/api/nothing/here") != std::string::npos);

    r = c.request("POST", "/api/modules/nosuch/cmd", "{}");
    CHECK(r.status == 503);
    CHECK(body(r).at("error").get<std::string>().find("nosuch") != std::string::npos);

    r = c.request("POST", "/api/modules/callpark/nosuch", "{}");
    CHECK(r.status == 404);
    CHECK(body(r).at("error").get<std::string>().find("nosuch") != std::string::npos);

    r = c.request("DELETE", "/api/rules");
    CHECK(r.status == 405);
    CHECK(r.headers["allow"] == "GET, POST");

    r = c.request("GET", "/api/explain?domain=d&caller=1");
    CHECK(r.status == 400);
    CHECK(body(r).at("error").get<std::string>().find("dial") != std::string::npos);
    // The body checks of groups.set and rules.import are callpark's own (tests/callpark test_park.cc).
}

TEST_CASE("admin: bad JSON is a 400 that says where", "[admin]") {
    Daemon d;
    auto c = d.client();
    auto r = c.request("PUT", "/api/groups/d/sales", R"({"members": [1001, }")");
    CHECK(r.status == 400);
    std::string err = body(r).at("error");
    CHECK(err.find("invalid JSON") != std::string::npos);
    CHECK(err.find("at byte 20") != std::string::npos); // the offending '}'

    r = c.request("POST", "/api/rules", "[1,2]");
    CHECK(r.status == 400);
    CHECK(body(r).at("error").get<std::string>().find("JSON object") != std::string::npos);
}

TEST_CASE("admin: a module that is not loaded gives 503 naming it, and its routes are not served", "[admin]") {
    Daemon d(Daemon::defaultConfig(), /*withCallpark=*/false);
    auto r = d.client().request("POST", "/api/modules/callpark/parked.list", "{}");
    CHECK(r.status == 503);
    CHECK(body(r).at("error").get<std::string>().find("callpark") != std::string::npos);
    // The routes are declared by the module (ABI 1.4): without it the admin server does not know the path.
    r = d.client().request("GET", "/api/parked");
    CHECK(r.status == 404);
    CHECK(body(r).at("error").get<std::string>().find("/api/parked") != std::string::npos);
    CHECK(d.client().request("GET", "/api/registrations").status == 200);
}

TEST_CASE("admin: the admin server knows no module's command names (ABI 1.4 routes)", "[admin]") {
    // Black-box guard of the rule in docs/modules.md: every module route comes from the module's table.
    std::ifstream src(PARKWAY_ADMIN_SERVER_SOURCE);
    REQUIRE(src.good());
    std::string text((std::istreambuf_iterator<char>(src)), std::istreambuf_iterator<char>());
    for (const char *name : {"callpark", "parked.", "groups.", "lots.", "rules.", "domains.", "registrar",
                             "registrations.", "/api/parked", "/api/registrations"})
        CHECK(text.find(name) == std::string::npos);
}

TEST_CASE("admin: a module route that collides with a core endpoint is refused naming the module", "[admin]") {
    static const pw_route_def clash[] = {
        {sizeof(pw_route_def), "GET", "/api/stats", "stats", PW_ROUTE_ARGS_NONE, nullptr, 0},
        {sizeof(pw_route_def), nullptr, nullptr, nullptr, PW_ROUTE_ARGS_NONE, nullptr, 0},
    };
    pw_module m = makeModule("clashing", kCallparkTable.data(), &callparkState);
    m.routes = clash;
    CHECK_THROWS_WITH(Daemon(Daemon::defaultConfig(), true, &m),
                      Catch::Contains("module clashing declares route GET /api/stats") &&
                          Catch::Contains("the core already serves"));
}

// ---------------------------------------------------------------- reload

TEST_CASE("admin: POST /api/reload runs every module's reload hook", "[admin]") {
    Daemon d;
    int before = callparkState.reloads, regBefore = registrarState.reloads;
    auto r = d.client().request("POST", "/api/reload", "");
    REQUIRE(r.status == 200);
    CHECK(body(r) == json{{"reloaded", true}, {"failed", 0}});
    CHECK(callparkState.reloads == before + 1);
    CHECK(registrarState.reloads == regBefore + 1);
    CHECK(d.client().request("GET", "/api/reload").status == 405);
}

// ---------------------------------------------------------------- metrics

TEST_CASE("admin: /metrics serves the registry with build info and uptime", "[admin]") {
    Daemon d;
    d.metrics.setHelp("parkway_parks_total", "Calls parked");
    d.metrics.counterAdd("parkway_parks_total", R"(domain="pbx.example.com")", 3);
    d.metrics.histogramObserve("parkway_park_duration_seconds", R"(domain="pbx.example.com")", 12);
    auto r = d.client().request("GET", "/metrics");
    REQUIRE(r.status == 200);
    CHECK(r.headers["content-type"].find("text/plain; version=0.0.4") == 0);
    CHECK(r.body.find("# TYPE parkway_parks_total counter\n") != std::string::npos);
    CHECK(r.body.find("parkway_parks_total{domain=\"pbx.example.com\"} 3\n") != std::string::npos);
    CHECK(r.body.find("parkway_park_duration_seconds_bucket{domain=\"pbx.example.com\",le=\"+Inf\"} 1\n") !=
          std::string::npos);
    CHECK(r.body.find("parkway_build_info{version=") != std::string::npos);
    CHECK(r.body.find("# TYPE parkway_uptime_seconds gauge") != std::string::npos);
    // The admin plane counts its own requests.
    d.client().request("GET", "/api/stats");
    r = d.client().request("GET", "/metrics");
    CHECK(r.body.find(R"(parkway_admin_requests_total{method="GET",route="/api/stats",code="200"} 1)") !=
          std::string::npos);
}

// ---------------------------------------------------------------- event stream

TEST_CASE("admin: /api/events streams EventBus events as SSE", "[admin]") {
    Daemon d;
    std::string got;
    std::mutex mu;
    std::atomic<bool> headOk{false};
    std::thread reader([&] {
        try {
            d.client().stream(
                "/api/events",
                [&](const Response &h) {
                    headOk = h.status == 200 && h.headers.at("content-type") == "text/event-stream";
                    return true;
                },
                [&](const std::string &chunk) {
                    std::lock_guard<std::mutex> lock(mu);
                    got += chunk;
                    return got.find("event: retrieved") == std::string::npos;
                });
        } catch (...) {
        }
    });
    REQUIRE(eventually([&] { return d.admin->streamCount() == 1; }));
    d.events.publish("parked", R"({"id":"17","extension":"1003"})");
    // From a module on the SIP thread, through the host API.
    auto r = d.client().request("POST", "/api/modules/callpark/emit", R"({"id":"18"})");
    CHECK(r.status == 200);
    d.events.publish("retrieved", "{\"id\":\"17\",\n\"by\":\"1001\"}");
    reader.join();
    CHECK(headOk);
    std::lock_guard<std::mutex> lock(mu);
    INFO(got);
    CHECK(got.find("event: parked\ndata: {\"id\":\"17\",\"extension\":\"1003\"}\n\n") != std::string::npos);
    CHECK(got.find("event: parked\ndata: {\"id\":\"18\"}\n\n") != std::string::npos);
    CHECK(got.find("event: retrieved\ndata: {\"id\":\"17\",\ndata: \"by\":\"1001\"}\n\n") != std::string::npos);
    CHECK(got.find("id: ") != std::string::npos);
    // The stream is dropped once the client is gone (detected at the next keep-alive write).
    CHECK(eventually([&] { return d.admin->streamCount() == 0; }));
}

TEST_CASE("admin: event stream filters by type and sends keep-alives", "[admin]") {
    Daemon d;
    std::string got;
    std::thread reader([&] {
        try {
            d.client().stream(
                "/api/events?types=recalled", [](const Response &) { return true; },
                [&](const std::string &chunk) {
                    got += chunk;
                    return got.find("event: recalled") == std::string::npos ||
                           got.find(": keep-alive") == std::string::npos;
                });
        } catch (...) {
        }
    });
    REQUIRE(eventually([&] { return d.admin->streamCount() == 1; }));
    d.events.publish("parked", "{}");
    d.events.publish("recalled", R"({"id":"1"})");
    reader.join();
    CHECK(got.find("event: parked") == std::string::npos);
    CHECK(got.find("event: recalled") != std::string::npos);
    CHECK(got.find(": keep-alive\n\n") != std::string::npos);
}

TEST_CASE("admin: stopping the server ends open streams", "[admin]") {
    Daemon d;
    std::atomic<bool> ended{false};
    std::thread reader([&] {
        try {
            d.client().stream(
                "/api/events", [](const Response &) { return true; }, [](const std::string &) { return true; });
        } catch (...) {
        }
        ended = true;
    });
    REQUIRE(eventually([&] { return d.admin->streamCount() == 1; }));
    d.admin->stop();
    reader.join();
    CHECK(ended);
}

// ---------------------------------------------------------------- parkctl (the built binary)

#ifdef PARKCTL_PATH
namespace {
struct Run {
    int code = -1;
    std::string out;
};
Run parkctl(const std::string &args) {
    std::string cmd = std::string(PARKCTL_PATH) + " " + args + " 2>&1";
    Run r;
    FILE *p = popen(cmd.c_str(), "r");
    REQUIRE(p);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        r.out.append(buf, n);
    int st = pclose(p);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}
} // namespace

TEST_CASE("parkctl: tables, --json, errors and exit codes", "[parkctl]") {
    Daemon d;
    const std::string base = "--url " + d.url() + " --token s3cret ";

    Run r = parkctl(base + "parked");
    INFO(r.out);
    CHECK(r.code == 0);
    CHECK(r.out.find("ID  DOMAIN           EXTENSION  PARKER") == 0);
    CHECK(r.out.find("17  pbx.example.com  1003       1001") != std::string::npos);

    r = parkctl(base + "--json parked");
    CHECK(r.code == 0);
    json v = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(v.is_discarded());
    CHECK(v.at("parked").at(0).at("id") == "17");

    // move: to an extension or a lot slot (parked.move); exactly one of --extension / --lot.
    r = parkctl(base + "--json move 42 --extension 104");
    CHECK(r.code == 0);
    v = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(v.is_discarded());
    CHECK(v.at("command") == "parked.move");
    CHECK(v.at("args") == json{{"id", 42}, {"extension", "104"}});
    r = parkctl(base + "--json move 42 --lot main --slot 705");
    CHECK(json::parse(r.out, nullptr, false).at("args") == json{{"id", 42}, {"lot", "main"}, {"slot", 705}});
    r = parkctl(base + "move 42 --lot main");
    CHECK(r.code == 0);
    CHECK(r.out == "parked call 42 moved to main\n");
    CHECK(parkctl(base + "move 42").code == 2);
    CHECK(parkctl(base + "move 42 --extension 104 --lot main").code == 2);
    CHECK(parkctl(base + "move 42 --slot 3").code == 2);

    r = parkctl(base + "--json groups add sales 1001 1002 1003");
    CHECK(r.code == 0);
    v = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(v.is_discarded());
    CHECK(v.at("command") == "groups.set");
    // No --domain: the daemon's only domain is used.
    CHECK(v.at("args") ==
          json{{"domain", "pbx.example.com"}, {"name", "sales"}, {"members", {"1001", "1002", "1003"}}});

    r = parkctl(base + "groups add sales 1001 1002 --domain other.example.com");
    CHECK(r.code == 0);
    CHECK(r.out == "group sales@other.example.com: 1001 1002\n");

    r = parkctl(base + "--json explain pbx.example.com 1003 '*58'");
    CHECK(r.code == 0);
    v = json::parse(r.out, nullptr, false);
    REQUIRE_FALSE(v.is_discarded());
    CHECK(v.at("args") == json{{"domain", "pbx.example.com"}, {"caller", "1003"}, {"dial", "*58"}});

    r = parkctl(base + "recall 17");
    CHECK(r.code == 0);
    CHECK(r.out == "recall started for parked call 17\n");

    r = parkctl(base + "registrations");
    CHECK(r.code == 0);
    CHECK(r.out.find("AOR") == 0);
    CHECK(r.out.find("sip:1003@pbx.example.com") != std::string::npos);

    r = parkctl(base + "stats");
    CHECK(r.code == 0);
    CHECK(r.out.find("modules.callpark.parked: 2") != std::string::npos);

    r = parkctl(base + "reload");
    CHECK(r.code == 0);
    CHECK(r.out == "reloaded\n");

    d.metrics.counterAdd("parkway_parks_total", "", 1);
    r = parkctl(base + "metrics");
    CHECK(r.code == 0);
    CHECK(r.out.find("parkway_parks_total 1") != std::string::npos);

    {
        std::string file = d.dir + "/rules.txt";
        FILE *f = std::fopen(file.c_str(), "w");
        std::fputs("1 0 exact *58 ...\n", f);
        std::fclose(f);
        r = parkctl(base + "--json rules load " + file + " --replace");
        CHECK(r.code == 0);
        v = json::parse(r.out, nullptr, false);
        REQUIRE_FALSE(v.is_discarded());
        CHECK(v.at("args") == json{{"text", "1 0 exact *58 ...\n"}, {"replace", true}});
        r = parkctl(base + "rules load " + d.dir + "/nope.txt");
        CHECK(r.code == 2);
        CHECK(r.out.find("nope.txt") != std::string::npos);
    }

    // The daemon answered with an error: exit 1 and its message.
    r = parkctl(base + "parked get missing");
    CHECK(r.code == 1);
    CHECK(r.out.find("no parked call with id missing") != std::string::npos);
    CHECK(r.out.find("404") != std::string::npos);

    // Wrong or missing token: exit 4.
    r = parkctl("--url " + d.url() + " --token nope parked");
    CHECK(r.code == 4);
    CHECK(r.out.find("unauthorized") != std::string::npos);
    r = parkctl("--url " + d.url() + " parked");
    CHECK(r.code == 4);

    // Usage errors: exit 2.
    CHECK(parkctl(base + "frobnicate").code == 2);
    CHECK(parkctl(base + "recall").code == 2);
    CHECK(parkctl("--url ftp://x parked").code == 2);

    // events --count stops by itself.
    std::thread pub([&] {
        eventually([&] { return d.admin->streamCount() == 1; });
        d.events.publish("parked", R"({"id":"5"})");
        d.events.publish("retrieved", R"({"id":"5"})");
    });
    r = parkctl(base + "events --count 2");
    pub.join();
    CHECK(r.code == 0);
    CHECK(r.out.find(" parked {\"id\":\"5\"}") != std::string::npos);
    CHECK(r.out.find(" retrieved {\"id\":\"5\"}") != std::string::npos);
}

TEST_CASE("parkctl: the daemon is down", "[parkctl]") {
    // A port that was just bound and released: nothing listens there.
    uint16_t port;
    {
        Daemon d;
        port = d.admin->port();
    }
    Run r = parkctl("--url http://127.0.0.1:" + std::to_string(port) + " --token x parked");
    CHECK(r.code == 3);
    CHECK(r.out.find("parkway is not reachable at http://127.0.0.1:" + std::to_string(port)) != std::string::npos);
}
#endif

// ---------------------------------------------------------------- limits

TEST_CASE("admin: a stuck SIP thread gives 504, not a hung request", "[admin]") {
    AdminConfig c = Daemon::defaultConfig();
    c.requestTimeoutMs = 200;
    Daemon d(c);
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    REQUIRE(d.proxy->post([released] { released.wait(); }));
    auto r = d.client().request("GET", "/api/stats");
    CHECK(r.status == 504);
    CHECK(body(r).at("error").get<std::string>().find("SIP thread") != std::string::npos);
    release.set_value();
    // The late answer is dropped; the server keeps serving.
    CHECK(d.client().request("GET", "/api/stats").status == 200);
}

// ---- ABI 1.8: a command answered later (writer_defer / writer_finish), as a module whose answer needs another
// thread (a database on the network) does it.
struct LaterState {
    const pw_host_api *api = nullptr;
    pw_host *host = nullptr;
    std::atomic<int> outAfterDefer{0};     // what writing to `out` after writer_defer returned
    std::atomic<bool> deferredNull{false}; // writer_defer returned NULL (an answer wanted at once)
    pw_writer *held = nullptr;             // "never": the deferred writer, finished by the test after the 504
    std::vector<std::thread> workers;
};
LaterState laterState;

// "later": defer, compute on a thread of its own, come back to the SIP thread with post() and answer there.
int laterRun(void *, pw_str args, pw_writer *out) {
    LaterState &st = laterState;
    pw_writer *later = st.api->writer_defer(out);
    if (!later) {
        st.deferredNull = true;
        return st.api->writer_json(out, PW_STR_LIT("{\"answered\":\"at once\"}"));
    }
    st.outAfterDefer = st.api->writer_json(out, PW_STR_LIT("{\"too\":\"early\"}"));
    std::string input = str(args);
    st.workers.emplace_back([later, input] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        auto *box = new std::pair<pw_writer *, std::string>(later, input);
        laterState.api->post(
            laterState.host,
            [](void *arg) {
                std::unique_ptr<std::pair<pw_writer *, std::string>> b(
                    static_cast<std::pair<pw_writer *, std::string> *>(arg));
                json a = json::parse(b->second);
                if (a.value("fail", false))
                    laterState.api->writer_error(b->first, 409, PW_STR_LIT("refused later"));
                else
                    laterState.api->writer_json(b->first, pws(json{{"answered", "later"}, {"args", a}}.dump()));
                laterState.api->writer_finish(b->first);
                laterState.api->writer_finish(b->first); // a second finish is ignored
            },
            box);
    });
    return PW_OK;
}

// "never": defers and does not answer (until the test finishes it after the 504).
int neverRun(void *, pw_str, pw_writer *out) {
    laterState.held = laterState.api->writer_defer(out);
    return laterState.held ? PW_OK : laterState.api->writer_json(out, PW_STR_LIT("null"));
}

const pw_command_def kLaterTable[] = {{sizeof(pw_command_def), "later", "test", &laterRun},
                                      {sizeof(pw_command_def), "never", "test", &neverRun},
                                      {sizeof(pw_command_def), nullptr, nullptr, nullptr}};

int laterInit(const pw_host_api *api, pw_host *host, void **ctx) {
    laterState.api = api;
    laterState.host = host;
    *ctx = &laterState;
    return PW_OK;
}

pw_module laterModule() {
    pw_module m{};
    m.struct_size = sizeof(pw_module);
    m.abi_major = PW_ABI_MAJOR;
    m.abi_minor = PW_ABI_MINOR;
    m.name = "later";
    m.version = "1.0.0";
    m.description = "admin test module: answers later";
    m.commands = kLaterTable;
    m.init = &laterInit;
    m.destroy = &modDestroy;
    m.on_request = &modRequest;
    return m;
}

TEST_CASE("admin: a module command answered later (ABI 1.8 writer_defer) reaches the client, 504 if it never comes",
          "[admin]") {
    AdminConfig c = Daemon::defaultConfig();
    c.requestTimeoutMs = 800;
    static const pw_module mod = laterModule();
    {
        Daemon d(c, true, &mod);
        auto r = d.client().request("POST", "/api/modules/later/later", R"({"n":7})");
        REQUIRE(r.status == 200);
        CHECK(body(r) == json{{"answered", "later"}, {"args", {{"n", 7}}}});
        CHECK(laterState.outAfterDefer == PW_ESTATE); // `out` takes nothing once deferred
        CHECK_FALSE(laterState.deferredNull);

        r = d.client().request("POST", "/api/modules/later/later", R"({"fail":true})");
        CHECK(r.status == 409);
        CHECK(body(r).at("error") == "refused later");

        // Without a place for a later answer (the host needs it at once), writer_defer is NULL.
        std::promise<CommandResult> direct;
        REQUIRE(d.proxy->post([&] { direct.set_value(d.proxy->runCommand("later", "later", "{}")); }));
        CommandResult cr = direct.get_future().get();
        CHECK(laterState.deferredNull);
        CHECK_FALSE(cr.deferred);
        CHECK(json::parse(cr.json) == json{{"answered", "at once"}});

        // Never answered: 504 at the deadline; the late answer is dropped and the server keeps serving.
        r = d.client().request("POST", "/api/modules/later/never", "{}");
        CHECK(r.status == 504);
        REQUIRE(laterState.held);
        std::promise<void> finished;
        REQUIRE(d.proxy->post([&] {
            laterState.api->writer_json(laterState.held, PW_STR_LIT("{\"late\":true}"));
            laterState.api->writer_finish(laterState.held);
            finished.set_value();
        }));
        finished.get_future().wait();
        CHECK(d.client().request("GET", "/api/stats").status == 200);

        // One left unfinished at the end is freed with the proxy (the sanitizer builds check that).
        r = d.client().request("POST", "/api/modules/later/never", "{}");
        CHECK(r.status == 504);
    }
    for (auto &t : laterState.workers)
        t.join();
    laterState.workers.clear();
}

TEST_CASE("admin: a body over the limit is refused with 413", "[admin]") {
    AdminConfig c = Daemon::defaultConfig();
    c.maxBodyBytes = 100;
    Daemon d(c);
    auto r = d.client().request("POST", "/api/rules", json{{"text", std::string(1000, 'x')}}.dump());
    CHECK(r.status == 413);
    CHECK(d.client().request("POST", "/api/rules", R"({"text":"ok"})").status == 200);
}

// ---------------------------------------------------------------- hardening (docs/limits.md "Admin API")

namespace {

// A raw TCP client: sends exactly the bytes given, so a test controls what the server has and has not got.
struct RawConn {
    int fd = -1;
    explicit RawConn(uint16_t port) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
    }
    ~RawConn() { close(); }
    void close() {
        if (fd >= 0)
            ::close(fd);
        fd = -1;
    }
    bool send(const std::string &bytes) {
        return ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
    }
    // What arrives until the server closes the connection (closed = true) or `ms` pass.
    std::string read(int ms, bool *closed = nullptr) {
        std::string out;
        auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
        if (closed)
            *closed = false;
        while (true) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
            if (left.count() <= 0)
                break;
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left.count())) <= 0)
                break;
            char buf[4096];
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) {
                if (closed)
                    *closed = true;
                break;
            }
            out.append(buf, static_cast<size_t>(n));
        }
        return out;
    }
};

int statusOf(const std::string &raw) {
    if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12)
        return 0;
    return std::atoi(raw.c_str() + 9);
}
std::string bodyOf(const std::string &raw) {
    auto p = raw.find("\r\n\r\n");
    return p == std::string::npos ? "" : raw.substr(p + 4);
}
json jsonOf(const std::string &raw) {
    json v = json::parse(bodyOf(raw), nullptr, false);
    INFO(raw);
    REQUIRE_FALSE(v.is_discarded());
    return v;
}
std::string nested(size_t depth, char open = '[') {
    std::string s = "{\"a\":";
    for (size_t i = 0; i < depth; ++i)
        s += open == '[' ? "[" : "{\"a\":";
    for (size_t i = 0; i < depth; ++i)
        s += open == '[' ? "]" : "}";
    return s + "}";
}
double refused(Daemon &d, const std::string &why) {
    return d.metrics.value("parkway_admin_refused_total", Metrics::label("reason", why));
}

} // namespace

TEST_CASE("admin: a 100,000-deep JSON body is a 400 and the server keeps serving", "[admin][limits]") {
    Daemon d;
    auto c = d.client();
    for (char open : {'[', '{'}) {
        auto r = c.request("POST", "/api/modules/callpark/rules.list", nested(100000, open));
        CHECK(r.status == 400);
        CHECK(body(r).at("error").get<std::string>().find("nested deeper than 32 levels") != std::string::npos);
    }
    // Unbalanced: never closed.
    auto r = c.request("PUT", "/api/groups/d/sales", "{\"members\":" + std::string(100000, '['));
    CHECK(r.status == 400);
    // Brackets inside strings are text, not nesting.
    r = c.request("POST", "/api/rules", json{{"text", std::string(1000, '[')}}.dump());
    CHECK(r.status == 200);
    // 32 levels are fine, 33 are not (admin.max_json_depth).
    CHECK(c.request("POST", "/api/modules/callpark/rules.list", nested(31)).status == 200);
    CHECK(c.request("POST", "/api/modules/callpark/rules.list", nested(32)).status == 400);
    CHECK(refused(d, "json_too_deep") == 4);
    CHECK(c.request("GET", "/api/stats").status == 200);
}

TEST_CASE("admin: a body over the limit is a JSON 413 before the body is read", "[admin][limits]") {
    AdminConfig cfg = Daemon::defaultConfig();
    cfg.maxBodyBytes = 1000;
    Daemon d(cfg);
    // The head alone announces 100 MB; no body byte is ever sent, yet the answer comes.
    RawConn raw(d.admin->port());
    REQUIRE(raw.send("POST /api/rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"));
    bool closed = false;
    std::string answer = raw.read(5000, &closed);
    CHECK(statusOf(answer) == 413);
    CHECK(answer.find("Content-Type: application/json") != std::string::npos);
    CHECK(jsonOf(answer).at("error").get<std::string>().find("admin.max_body_bytes") != std::string::npos);
    CHECK(closed);
    // Through the client too (the body is sent; the answer is the same JSON).
    auto r = d.client().request("POST", "/api/rules", json{{"text", std::string(2000, 'x')}}.dump());
    CHECK(r.status == 413);
    CHECK(body(r).at("error").get<std::string>().find("over the limit of 1000") != std::string::npos);
    CHECK(refused(d, "body_too_large") == 2);
    CHECK(d.client().request("POST", "/api/rules", R"({"text":"ok"})").status == 200);
}

TEST_CASE("admin: no token and a huge Content-Length is a 401 without the body being read", "[admin][limits]") {
    Daemon d;
    for (const char *auth : {"", "Authorization: Bearer wrong\r\n"}) {
        RawConn raw(d.admin->port());
        REQUIRE(raw.send(std::string("PUT /api/groups/d/sales HTTP/1.1\r\nHost: x\r\n") + auth +
                         "Content-Length: 8388608\r\n\r\n"));
        bool closed = false;
        std::string answer = raw.read(5000, &closed);
        INFO(answer);
        CHECK(statusOf(answer) == 401);
        CHECK(answer.find("WWW-Authenticate: Bearer") != std::string::npos);
        CHECK(jsonOf(answer).at("error").get<std::string>().find("token") != std::string::npos);
        CHECK(closed);
    }
    CHECK(refused(d, "unauthorized") == 2);
    // Unknown paths need the token too; with it they are a 404.
    CHECK(d.client("").request("GET", "/nothing").status == 401);
    CHECK(d.client().request("GET", "/nothing").status == 404);
}

TEST_CASE("admin: heads the gate refuses are answered in JSON", "[admin][limits]") {
    AdminConfig cfg = Daemon::defaultConfig();
    cfg.maxHeaderBytes = 1024;
    Daemon d(cfg);
    auto ask = [&](const std::string &bytes) {
        RawConn raw(d.admin->port());
        REQUIRE(raw.send(bytes));
        return raw.read(5000);
    };
    std::string a =
        ask("POST /api/rules HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nTransfer-Encoding: chunked\r\n\r\n");
    CHECK(statusOf(a) == 411);
    CHECK(jsonOf(a).at("error").get<std::string>().find("Content-Length") != std::string::npos);
    a = ask("GET /api/stats HTTP/1.1\r\nX-Big: " + std::string(2000, 'x') + "\r\n\r\n");
    CHECK(statusOf(a) == 431);
    CHECK(jsonOf(a).at("error").get<std::string>().find("admin.max_header_bytes") != std::string::npos);
    a = ask("BREW /api/stats HTTP/1.1\r\n\r\n");
    CHECK(statusOf(a) == 501);
    CHECK(a.find("Allow: GET, POST, PUT, DELETE, HEAD") != std::string::npos);
    a = ask("GET /api/stats\r\n\r\n");
    CHECK(statusOf(a) == 400);
    CHECK(jsonOf(a).at("error").get<std::string>().find("request line") != std::string::npos);
    a = ask(
        "POST /api/rules HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n");
    CHECK(statusOf(a) == 400);
    CHECK(jsonOf(a).at("error").get<std::string>().find("conflicting Content-Length") != std::string::npos);
}

TEST_CASE("admin: requests split across reads and pipelined on one connection are all served", "[admin][limits]") {
    Daemon d;
    RawConn raw(d.admin->port());
    const std::string post = "POST /api/rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                             "Content-Length: 13\r\n\r\n{\"text\":\"ok\"}";
    // A request a byte at a time, then two more in one write (the last one asks to close).
    for (char ch : post) {
        REQUIRE(raw.send(std::string(1, ch)));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(raw.send("\r\n" + post + "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"));
    bool closed = false;
    std::string all = raw.read(5000, &closed);
    INFO(all);
    CHECK(closed);
    size_t n = 0;
    for (size_t p = all.find("HTTP/1.1 200 OK"); p != std::string::npos; p = all.find("HTTP/1.1 200 OK", p + 1))
        ++n;
    CHECK(n == 3);
    CHECK(all.find("\"command\":\"rules.import\"") != std::string::npos);
    CHECK(all.find("\"status\":\"ok\"") != std::string::npos);
}

TEST_CASE("admin: a slow client is cut after the header timeout, an idle one after the idle timeout",
          "[admin][limits]") {
    AdminConfig cfg = Daemon::defaultConfig();
    cfg.headerTimeoutMs = 300;
    cfg.idleTimeoutMs = 600;
    Daemon d(cfg);
    {
        // Slowloris: one header line every 50 ms, forever; the connection must be closed under it.
        RawConn raw(d.admin->port());
        REQUIRE(raw.send("GET /api/stats HTTP/1.1\r\n"));
        bool cut = false;
        for (int i = 0; i < 200 && !cut; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            bool closed = false;
            raw.read(1, &closed);
            cut = closed || !raw.send("X-Slow: " + std::to_string(i) + "\r\n");
        }
        CHECK(cut);
        CHECK(refused(d, "header_timeout") == 1);
    }
    {
        // Connected and silent.
        RawConn raw(d.admin->port());
        bool closed = false;
        raw.read(10000, &closed);
        CHECK(closed);
        CHECK(refused(d, "idle_timeout") == 1);
    }
    {
        // A head in time, then a body that never completes.
        RawConn raw(d.admin->port());
        REQUIRE(raw.send("POST /api/rules HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 100\r\n\r\n{"));
        bool closed = false;
        raw.read(10000, &closed);
        CHECK(closed);
        CHECK(refused(d, "idle_timeout") == 2);
    }
    // Answers already sent are not cut; the server keeps serving.
    CHECK(d.client().request("GET", "/api/stats").status == 200);
    CHECK(eventually([&] { return d.admin->connectionCount() == 0; }, 5000));
}

TEST_CASE("admin: over the connection cap a client gets 503 and the others are still served", "[admin][limits]") {
    AdminConfig cfg = Daemon::defaultConfig();
    cfg.maxConnections = 2;
    Daemon d(cfg);
    // An event stream and an idle connection take both places.
    std::thread reader([&] {
        try {
            d.client().stream(
                "/api/events", [](const Response &) { return true; }, [](const std::string &) { return true; });
        } catch (...) {
        }
    });
    REQUIRE(eventually([&] { return d.admin->streamCount() == 1; }));
    auto idle = std::make_unique<RawConn>(d.admin->port());
    REQUIRE(eventually([&] { return d.admin->connectionCount() == 2; }));
    auto r = d.client().request("GET", "/api/stats");
    CHECK(r.status == 503);
    CHECK(r.headers["retry-after"] == "1");
    CHECK(body(r).at("error").get<std::string>().find("admin.max_connections = 2") != std::string::npos);
    CHECK(refused(d, "too_many_connections") == 1);
    // The connections in place are still served.
    REQUIRE(idle->send("GET /health HTTP/1.1\r\n\r\n"));
    CHECK(statusOf(idle->read(5000)) == 200);
    d.events.publish("parked", "{}");
    // A place frees up: served again.
    idle.reset();
    REQUIRE(eventually([&] { return d.admin->connectionCount() == 1; }));
    CHECK(d.client().request("GET", "/api/stats").status == 200);
    d.admin->stop();
    reader.join();
}

TEST_CASE("admin: text that is not UTF-8 is a 400 naming where it is, never a 500", "[admin][limits]") {
    Daemon d;
    auto c = d.client();
    auto r = c.request("POST", "/api/rules", "{\"text\":\"Jos\xE9\"}");
    CHECK(r.status == 400);
    CHECK(body(r).at("error") == "request body is not valid UTF-8 (bad byte 0xE9 at byte 12)");
    r = c.request("PUT", "/api/groups/d/%E9quipe", R"({"members":["1"]})");
    CHECK(r.status == 400);
    CHECK(body(r).at("error") == "path segment 4 is not valid UTF-8");
    r = c.request("GET", "/api/parked?domain=%FF");
    CHECK(r.status == 400);
    CHECK(body(r).at("error") == "query parameter domain is not valid UTF-8");
    r = c.request("GET", "/api/parked/%C3%A9");
    CHECK(r.status == 200); // valid UTF-8 (é) passes
    CHECK(refused(d, "invalid_utf8") == 3);
    // An event whose text is not UTF-8 reaches the stream repaired (U+FFFD), still one readable JSON.
    std::string got;
    std::thread reader([&] {
        try {
            d.client().stream(
                "/api/events", [](const Response &) { return true; },
                [&](const std::string &chunk) {
                    got += chunk;
                    return got.find("event: parked") == std::string::npos;
                });
        } catch (...) {
        }
    });
    REQUIRE(eventually([&] { return d.admin->streamCount() == 1; }));
    d.events.publish("parked", "{\"display\":\"Jos\xE9\"}");
    reader.join();
    CHECK(got.find("data: {\"display\":\"Jos\xEF\xBF\xBD\"}") != std::string::npos);
}

TEST_CASE("admin config: a short token is refused on a listener that is not loopback", "[admin][limits]") {
    AdminConfig c;
    c.listen = "0.0.0.0:8089";
    c.token = "fifteen-chars!!";
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.token has 15 characters; at least 16"));
    c.token = "sixteen-chars!!!";
    c.allowPlaintext = true; // (plain HTTP off the loopback: next test case)
    CHECK_NOTHROW(AdminServer::validate(c));
    c.token = "short";
    for (const char *l : {"127.0.0.1:8089", "127.3.4.5:1", "[::1]:8089", "localhost:0"}) {
        c.listen = l;
        CHECK_NOTHROW(AdminServer::validate(c));
    }
    c.listen = "[::]:8089";
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.token"));
}

TEST_CASE("admin: an event-stream client that stops reading is disconnected, not buffered for ever",
          "[admin][limits]") {
    AdminConfig cfg = Daemon::defaultConfig();
    cfg.maxStreamBacklogBytes = 256 * 1024;
    Daemon d(cfg);
    RawConn raw(d.admin->port());
    // Small receive buffer: the server's send queue fills soon.
    int small = 4096;
    setsockopt(raw.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    REQUIRE(raw.send("GET /api/events HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n"));
    REQUIRE(eventually([&] { return d.admin->streamCount() == 1; }));
    const std::string big = json{{"pad", std::string(64 * 1024, 'x')}}.dump();
    for (int i = 0; i < 400 && d.admin->streamCount() == 1; ++i) {
        d.events.publish("parked", big);
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    CHECK(eventually([&] { return d.admin->streamCount() == 0; }, 5000));
    CHECK(refused(d, "slow_event_reader") == 1);
    CHECK(d.client().request("GET", "/api/stats").status == 200);
}

// ---------------------------------------------------------------- TLS (admin.tls_*)

TEST_CASE("admin config: a listener that is not loopback needs TLS or allow_plaintext", "[admin][tls]") {
    AdminConfig c;
    c.listen = "0.0.0.0:8089";
    c.token = "sixteen-chars!!!";
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.listen \"0.0.0.0:8089\" is not a loopback") &&
                                                    Catch::Contains("admin.allow_plaintext"));
    c.listen = "[::]:8089";
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.listen"));
    c.allowPlaintext = true;
    CHECK_NOTHROW(AdminServer::validate(c));
    c.allowPlaintext = false;
    c.tlsCertificate = "/x/cert.pem";
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.tls_private_key"));
    c.tlsPrivateKey = "/x/key.pem";
    CHECK_NOTHROW(AdminServer::validate(c));
    c.tlsCertificate.clear();
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.tls_certificate"));
    c.tlsPrivateKey.clear();
    c.tlsCaFile = "/x/ca.pem";
    c.allowPlaintext = true;
    CHECK_THROWS_WITH(AdminServer::validate(c), Catch::Contains("admin.tls_ca_file"));
    // Loopback stays plain HTTP by default.
    c.tlsCaFile.clear();
    c.allowPlaintext = false;
    c.listen = "127.0.0.1:8089";
    CHECK_NOTHROW(AdminServer::validate(c));
}

#ifdef MAKE_TEST_CA
namespace {

// A throwaway CA, server and client certificates made with the openssl CLI (tests/admin/make_test_ca.sh).
struct TestCa {
    std::string dir;
    TestCa() {
        char tmpl[] = "/tmp/parkway-admin-ca-XXXXXX";
        dir = mkdtemp(tmpl);
        REQUIRE(std::system(("sh " MAKE_TEST_CA " " + dir).c_str()) == 0);
    }
    ~TestCa() { std::filesystem::remove_all(dir); }
    std::string operator()(const char *name) const { return dir + "/" + name; }
    AdminConfig config() const {
        AdminConfig c = Daemon::defaultConfig();
        c.tlsCertificate = (*this)("server.pem");
        c.tlsPrivateKey = (*this)("server.key");
        return c;
    }
};

std::string httpsUrl(const Daemon &d) {
    return "https://127.0.0.1:" + std::to_string(d.admin->port());
}

TlsOptions trust(const std::string &caFile, bool insecure = false) {
    TlsOptions t;
    t.caFile = caFile;
    t.insecure = insecure;
    return t;
}

HttpClient httpsClient(const Daemon &d, const TlsOptions &tls, const std::string &token = "s3cret") {
    return HttpClient(parkway::tools::parseUrl(httpsUrl(d)), token, 5000, tls);
}

} // namespace

TEST_CASE("admin TLS: HTTPS verified with the CA, untrusted and plain HTTP clients fail cleanly", "[admin][tls]") {
    std::signal(SIGPIPE, SIG_IGN); // as the daemon does (OpenSSL writes with write())
    TestCa ca;
    Daemon d(ca.config());
    TlsOptions trusted = trust(ca("ca.pem"));
    auto r = httpsClient(d, trusted).request("GET", "/api/parked");
    CHECK(r.status == 200);
    CHECK(body(r).contains("parked"));
    CHECK(httpsClient(d, trusted, "wrong").request("GET", "/api/stats").status == 401);
    CHECK(httpsClient(d, trusted).request("POST", "/api/rules", R"({"text":"ok"})").status == 200);
    // localhost is in the certificate too; another CA is not trusted; --insecure skips the check.
    CHECK(HttpClient(parkway::tools::parseUrl("https://localhost:" + std::to_string(d.admin->port())), "s3cret", 5000,
                     trusted)
              .request("GET", "/health")
              .status == 200);
    try {
        httpsClient(d, trust(ca("other-ca.pem"))).request("GET", "/health");
        FAIL("an untrusted certificate was accepted");
    } catch (const TlsError &e) {
        CHECK(std::string(e.what()).find("was not verified") != std::string::npos);
        CHECK(std::string(e.what()).find("--cacert") != std::string::npos);
    }
    CHECK(httpsClient(d, trust("", true)).request("GET", "/health").status == 200);

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed, the server keeps serving.
    try {
        HttpClient(parkway::tools::parseUrl("http://127.0.0.1:" + std::to_string(d.admin->port())), "s3cret", 3000)
            .request("GET", "/health");
        FAIL("plain HTTP was answered on the TLS port");
    } catch (const TlsError &) {
        FAIL("plain HTTP reported as a TLS error");
    } catch (const ProtocolError &e) {
        CHECK(std::string(e.what()).find("https://") != std::string::npos);
    }
    {
        RawConn raw(d.admin->port());
        REQUIRE(raw.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
        bool closed = false;
        std::string answer = raw.read(3000, &closed);
        CHECK(closed);
        CHECK(answer.find("HTTP/") == std::string::npos);
        CHECK(answer.find("\"status\"") == std::string::npos);
    }
    CHECK(eventually([&] { return refused(d, "tls_handshake_failed") >= 2; }));
    CHECK(httpsClient(d, trusted).request("GET", "/api/stats").status == 200);
}

TEST_CASE("admin TLS: event streams, the connection cap and the handshake timeout", "[admin][tls][limits]") {
    std::signal(SIGPIPE, SIG_IGN);
    TestCa ca;
    AdminConfig cfg = ca.config();
    cfg.maxConnections = 2;
    cfg.headerTimeoutMs = 300;
    Daemon d(cfg);
    TlsOptions trusted = trust(ca("ca.pem"));
    std::string got;
    std::mutex mu;
    std::atomic<bool> headOk{false};
    std::thread reader([&] {
        try {
            httpsClient(d, trusted)
                .stream(
                    "/api/events",
                    [&](const Response &h) {
                        headOk = h.status == 200 && h.headers.at("content-type") == "text/event-stream";
                        return true;
                    },
                    [&](const std::string &chunk) {
                        std::lock_guard<std::mutex> lock(mu);
                        got += chunk;
                        return got.find("event: retrieved") == std::string::npos;
                    });
        } catch (...) {
        }
    });
    REQUIRE(eventually([&] { return d.admin->streamCount() == 1; }));
    // Over the cap (the stream + this request's place taken by an idle TLS-less socket): 503 over TLS.
    auto idle = std::make_unique<RawConn>(d.admin->port());
    REQUIRE(eventually([&] { return d.admin->connectionCount() == 2; }));
    auto over = httpsClient(d, trusted).request("GET", "/api/stats");
    CHECK(over.status == 503);
    CHECK(refused(d, "too_many_connections") == 1);
    // The idle socket never starts a handshake: cut after admin.header_timeout_ms.
    bool closed = false;
    idle->read(5000, &closed);
    CHECK(closed);
    CHECK(refused(d, "tls_handshake_timeout") == 1);
    idle.reset();
    REQUIRE(eventually([&] { return d.admin->connectionCount() == 1; }));
    // Events from the bus and from a module reach the stream, through TLS.
    d.events.publish("parked", R"({"id":"17"})");
    CHECK(httpsClient(d, trusted).request("POST", "/api/modules/callpark/emit", R"({"id":"18"})").status == 200);
    d.events.publish("retrieved", R"({"id":"17"})");
    reader.join();
    CHECK(headOk);
    std::lock_guard<std::mutex> lock(mu);
    INFO(got);
    CHECK(got.find("event: parked\ndata: {\"id\":\"17\"}\n\n") != std::string::npos);
    CHECK(got.find("event: parked\ndata: {\"id\":\"18\"}\n\n") != std::string::npos);
    CHECK(got.find("event: retrieved") != std::string::npos);
}

TEST_CASE("admin TLS: bad files are refused at start naming their key", "[admin][tls]") {
    TestCa ca;
    Daemon d; // the SIP side; the second admin server below is the one under test
    auto startWith = [&](const std::string &cert, const std::string &key, const std::string &caFile = "") {
        AdminConfig c = Daemon::defaultConfig();
        c.tlsCertificate = cert;
        c.tlsPrivateKey = key;
        c.tlsCaFile = caFile;
        AdminServer s(c, *d.proxy, d.metrics, d.events);
        s.start();
    };
    CHECK_THROWS_WITH(startWith(ca("missing.pem"), ca("server.key")), Catch::Contains("admin.tls_certificate"));
    CHECK_THROWS_WITH(startWith(ca("server.pem"), ca("client.key")),
                      Catch::Contains("admin.tls_private_key") && Catch::Contains("does not match"));
    CHECK_THROWS_WITH(startWith(ca("server.pem"), ca("ca.pem")), Catch::Contains("admin.tls_private_key"));
    CHECK_THROWS_WITH(startWith(ca("server.pem"), ca("server.key"), ca("missing.pem")),
                      Catch::Contains("admin.tls_ca_file"));
    CHECK_NOTHROW(startWith(ca("server.pem"), ca("server.key"), ca("ca.pem")));
}
#endif

// ---------------------------------------------------------------- SIP users (/api/users)

TEST_CASE("admin: /api/users checks its body and never echoes the password", "[admin][users]") {
    Daemon d;
    const std::string secret = "Tr0ub4dor&3-secret";
    auto put = [&](const std::string &bodyText) {
        return d.client().request("PUT", "/api/users/pbx.example.com/alice", bodyText);
    };
    for (const std::string &bad :
         {std::string("{}"), std::string(R"({"password":""})"), std::string(R"({"password":17})"),
          R"({"password":")" + secret + R"(","register_for":"1099"})",
          R"({"password":")" + secret + R"(","register_for":[1099]})",
          R"({"password":")" + secret + R"(","extra":true})", R"({"password":")" + secret,
          R"({"password":")" + secret + "\xE9\"}", R"({"password":")" + secret + R"(",)"}) {
        auto r = put(bad);
        INFO(bad << " -> " << r.body);
        CHECK(r.status == 400);
        CHECK(r.body.find(secret) == std::string::npos);
        CHECK(r.body.find("Tr0ub") == std::string::npos);
    }
    // A good body reaches Proxy::setUser on the SIP thread (its answer, whatever it is, is passed through).
    for (auto r : {put(R"({"password":")" + secret + R"(","register_for":["1099"]})"),
                   d.client().request("GET", "/api/users/pbx.example.com"),
                   d.client().request("DELETE", "/api/users/pbx.example.com/alice")}) {
        INFO(r.body);
        CHECK(r.status != 400);
        CHECK(r.status != 405);
        CHECK(r.body.find("no such endpoint") == std::string::npos);
        CHECK(r.body.find(secret) == std::string::npos);
    }
    CHECK(d.client("").request("GET", "/api/users/pbx.example.com").status == 401);
    CHECK(d.client().request("POST", "/api/users/pbx.example.com/alice", "{}").status == 405);
}

// ---------------------------------------------------------------- the operator console (/ui/, docs/console.md)

namespace {
// One request on its own connection, bytes as given (no client-side path normalisation).
std::string consoleRaw(Daemon &d, const std::string &request) {
    RawConn c(d.admin->port());
    REQUIRE(c.send(request));
    return c.read(2000);
}
std::string headerOf(const std::string &raw, const std::string &name) {
    std::string head = raw.substr(0, raw.find("\r\n\r\n"));
    std::string lowerHead = head;
    std::transform(lowerHead.begin(), lowerHead.end(), lowerHead.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    auto p = lowerHead.find("\r\n" + name + ":");
    if (p == std::string::npos)
        return "";
    auto start = head.find_first_not_of(' ', p + 3 + name.size());
    return head.substr(start, head.find("\r\n", start) - start);
}
} // namespace

TEST_CASE("admin console: the static shell is served without the token, with content types and caching",
          "[admin][console]") {
    Daemon d;
    // The shell: no token needed (the page asks for it), never cached stale, locked down by CSP.
    std::string index = consoleRaw(d, "GET /ui/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    INFO(index.substr(0, 600));
    REQUIRE(statusOf(index) == 200);
    CHECK(headerOf(index, "content-type") == "text/html; charset=utf-8");
    CHECK(headerOf(index, "cache-control") == "no-cache");
    CHECK(headerOf(index, "x-content-type-options") == "nosniff");
    CHECK(headerOf(index, "referrer-policy") == "no-referrer");
    CHECK(headerOf(index, "content-security-policy").find("default-src 'self'") == 0);
    CHECK(bodyOf(index).find("<!doctype html>") != std::string::npos);
    CHECK(bodyOf(consoleRaw(d, "GET /ui/index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) ==
          bodyOf(index));

    // Every embedded file is served with its type; hashed assets are cached for good.
    int scripts = 0;
    for (const UiAsset *a = uiAssets(); !a->path.empty(); ++a) {
        std::string raw =
            consoleRaw(d, "GET /ui/" + std::string(a->path) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        INFO(a->path);
        REQUIRE(statusOf(raw) == 200);
        CHECK(headerOf(raw, "content-type") == a->contentType);
        CHECK(bodyOf(raw) == a->body);
        if (a->path.rfind("assets/", 0) == 0)
            CHECK(headerOf(raw, "cache-control") == "public, max-age=31536000, immutable");
        scripts += a->path.size() > 3 && a->path.substr(a->path.size() - 3) == ".js";
        if (a->path.substr(a->path.size() - 3) == ".js")
            CHECK(a->contentType == "text/javascript; charset=utf-8");
    }
    CHECK(scripts >= 1); // the built page, not a placeholder

    // /ui without the slash: relative URLs in the page need the slash.
    std::string bare = consoleRaw(d, "GET /ui HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(statusOf(bare) == 301);
    CHECK(headerOf(bare, "location") == "/ui/");
    // HEAD works; other methods are 405 with Allow.
    std::string head = consoleRaw(d, "HEAD /ui/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(statusOf(head) == 200);
    CHECK(bodyOf(head).empty());
    CHECK(headerOf(head, "content-length") == std::to_string(bodyOf(index).size()));
    CHECK(head.find("Content-Length") == head.rfind("Content-Length")); // once
    // The same for the core's HEAD routes (/health): headers only.
    std::string health = consoleRaw(d, "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(statusOf(health) == 200);
    CHECK(bodyOf(health).empty());
    CHECK(std::stoul(headerOf(health, "content-length")) > 0);
    CHECK(headerOf(head, "content-type") == "text/html; charset=utf-8");
    std::string post = consoleRaw(d, "POST /ui/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    CHECK(statusOf(post) == 405);
    CHECK(headerOf(post, "allow") == "GET, HEAD");
}

TEST_CASE("admin console: unknown files are 404, traversal is refused, /api still needs the token",
          "[admin][console]") {
    Daemon d;
    std::string missing = consoleRaw(d, "GET /ui/nope.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(statusOf(missing) == 404);
    CHECK(jsonOf(missing).at("error") == "no such console file: /ui/nope.js");
    for (const char *path : {"/ui/../api/parked", "/ui/%2e%2e/api/parked", "/ui/assets/..%2f..%2fapi%2fparked",
                             "/ui/./index.html", "/ui/..", "/ui/a%5cb", "/ui/a%00b"}) {
        std::string raw =
            consoleRaw(d, std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        INFO(path << "\n" << raw);
        CHECK(statusOf(raw) == 400);
        CHECK(jsonOf(raw).at("error").get<std::string>().find("bad console path") == 0);
        CHECK(raw.find("\"parked\"") == std::string::npos); // nothing of the API leaked
    }
    // The API is as closed as before: without the token, with a wrong one, and for paths that only look like /ui.
    for (const char *path : {"/api/parked", "/api/events", "/api/groups", "/uix/", "/api/ui/index.html"}) {
        std::string raw =
            consoleRaw(d, std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        INFO(path);
        CHECK(statusOf(raw) == 401);
    }
    CHECK(statusOf(consoleRaw(d, "GET /api/parked HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                                 "Connection: close\r\n\r\n")) == 401);
    CHECK(d.client().request("GET", "/api/parked").status == 200);
    // A console page load counts under its own route in the metrics.
    CHECK(d.metrics.value("parkway_admin_requests_total",
                          Metrics::labels({Metrics::label("method", "GET"), Metrics::label("route", "/ui/"),
                                           Metrics::label("code", "404")})) >= 1);
}

TEST_CASE("admin console: admin.console = false serves no /ui/ (and it needs the token like any path)",
          "[admin][console]") {
    AdminConfig c = Daemon::defaultConfig();
    c.console = false;
    Daemon d(c);
    CHECK(statusOf(consoleRaw(d, "GET /ui/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 401);
    CHECK(d.client().request("GET", "/ui/").status == 404);
}
