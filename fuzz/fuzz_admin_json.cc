// fuzz_admin_json: what the admin API does with a stranger's request before and after authentication.
// Input: an HTTP/1.1 request as bytes (head + body), e.g.
//   POST /api/cmd/groups.set HTTP/1.1\r\nAuthorization: Bearer ...\r\nContent-Length: 40\r\n\r\n{"domain": ...}
// 1. the head gate (proxy/admin/request_gate.*): headLength, parseHead, pathSegments, inspectHead;
// 2. the body parser with its size, UTF-8 and depth limits (proxy/admin/request_body.*: parseRequestBody);
// 3. an accepted body goes as the arguments of a module command on a live proxy with callpark and registrar
//    (Proxy::runCommand, as the admin thread posts it); the command is the last path segment when it names one,
//    else one picked from the body's length. The answer must be JSON once made valid UTF-8 (what the server
//    sends), and toValidUtf8 must always give valid UTF-8.
// Without a head (no blank line in the input) the whole input is the body.
#include "fuzz_common.hh"

#include <admin/request_body.hh>
#include <admin/request_gate.hh>
#include <core/proxy.hh>
#include <plugin/loader.hh>
#include <sofia/sofia.hh>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace px = parkway::proxy;
namespace fz = parkway::fuzz;

namespace {

constexpr unsigned kResetEvery = 1000; // domains.set piles up domains; each one makes the next slower
constexpr const char *kToken = "fuzz-token-0123456789";

struct Command {
    const char *module, *name;
};
// Every command a body reaches; rules.reload reads the rules file (none here) and is kept for its error path.
constexpr Command kCommands[] = {
    {"callpark", "parked.list"},   {"callpark", "parked.get"},    {"callpark", "parked.recall"},
    {"callpark", "parked.hangup"}, {"callpark", "groups.list"},   {"callpark", "groups.set"},
    {"callpark", "groups.delete"}, {"callpark", "lots.list"},     {"callpark", "lots.set"},
    {"callpark", "lots.delete"},   {"callpark", "rules.list"},    {"callpark", "rules.import"},
    {"callpark", "rules.reload"},  {"callpark", "rules.explain"}, {"callpark", "domains.list"},
    {"callpark", "domains.set"},   {"callpark", "stats"},         {"registrar", "registrations.list"},
};

struct World {
    parkway::sofia::Root root;
    std::unique_ptr<px::Proxy> proxy;
    unsigned inputs = 0;
};

World *gWorld = nullptr;

void startProxy(World &w) {
    w.proxy.reset();
    px::CoreConfig cfg;
    cfg.listen = {"sip:127.0.0.1:*"};
    cfg.domains = {"pbx.example.com", "127.0.0.1"};
    cfg.database = ":memory:";
    cfg.configDir = PARKWAY_FUZZ_FIXTURES;
    cfg.logSink = fz::fuzzLog;
    w.proxy = std::make_unique<px::Proxy>(w.root.get(), cfg);
    w.proxy->bind();
    std::vector<px::LoadedModule> mods;
    mods.push_back(px::loadModule("registrar", fz::moduleDir(), {}));
    mods.push_back(px::loadModule("callpark", fz::moduleDir(),
                                  {{"database", ":memory:"},
                                   {"provision_file", "provision.toml"},
                                   {"moh_port_min", "47100"},
                                   {"moh_port_max", "47199"}}));
    w.proxy->addModules(std::move(mods));
    w.proxy->start(); // the daemon serves the admin API only once every module started
}

const Command &pickCommand(const px::RequestHead *head, std::string_view body) {
    if (head) {
        auto seg = px::pathSegments(head->path);
        if (!seg.empty())
            for (const auto &c : kCommands)
                if (seg.back() == c.name)
                    return c;
    }
    return kCommands[body.size() % std::size(kCommands)];
}

void checkUtf8(std::string_view text) {
    std::string valid = px::toValidUtf8(text);
    if (!px::isValidUtf8(valid))
        fz::fail("toValidUtf8 output is not valid UTF-8", valid);
    if (px::isValidUtf8(text) && valid != text)
        fz::fail("toValidUtf8 changed valid UTF-8", text);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    fz::pinModules({"registrar", "callpark"});
    gWorld = new World;
    startProxy(*gWorld);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    World &w = *gWorld;
    if (++w.inputs % kResetEvery == 0)
        startProxy(w);
    std::string_view input(reinterpret_cast<const char *>(data), size);

    px::RequestHead head;
    bool haveHead = false;
    std::string_view body = input;
    if (size_t n = px::headLength(input); n > 0) {
        std::string_view headText = input.substr(0, n);
        body = input.substr(n);
        px::GatePolicy policy;
        policy.token = kToken;
        policy.needsToken = [](const std::vector<std::string> &) { return true; };
        (void)px::inspectHead(headText, policy);
        std::string error;
        haveHead = px::parseHead(headText, head, error);
        if (haveHead)
            (void)px::bearerMatches(head.find("authorization"), kToken);
    }
    checkUtf8(body);

    std::string error;
    auto args = px::parseRequestBody(body, error);
    if (!args)
        return 0;
    const Command &cmd = pickCommand(haveHead ? &head : nullptr, body);
    auto result = w.proxy->runCommand(cmd.module, cmd.name, args->dump());
    auto answer = nlohmann::json::parse(px::toValidUtf8(result.json), nullptr, false);
    if (answer.is_discarded())
        fz::fail("a module command answered something that is not JSON", result.json);
    return 0;
}
