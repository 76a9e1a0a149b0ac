// The Parkway SIP core: a sofia-sip nta agent in proxy mode, the module pipeline, RFC 3261 §16 forwarding,
// the dialog helpers, and the pw_host_api given to modules. Owned and driven by the SIP thread.
//
// This is the contract used by the daemon (proxy/app), the admin plane (proxy/admin) and the tests.
// The implementation (proxy/core/*.cc) may add members, but not change these.
#pragma once
#include "../plugin/loaded_module.hh"
#include "core_config.hh"

#include <functional>
#include <memory>
#include <string>
#include <vector>

typedef struct su_root_s su_root_t;

namespace parkway::proxy {

class Metrics;  // proxy/admin/metrics.hh (thread-safe registry rendered as Prometheus text)
class EventBus; // proxy/admin/event_bus.hh (thread-safe fan-out of engine/module events to SSE clients)

struct CommandResult {
    int httpStatus = 200;  // 200 on success; 4xx/5xx from writer_error
    std::string json;      // the JSON value the command wrote, or {"error": "..."} on failure
    bool deferred = false; // the module will answer later (writer_defer): the result goes to runCommand's `later`
};

struct CommandInfo {
    std::string module, name, help;
};

// A REST route a module declares for one of its commands (module.h pw_route_def, ABI 1.4).
struct ModuleRoute {
    std::string module, method, path, command;
    pw_route_args args = PW_ROUTE_ARGS_NONE;
    std::vector<std::string> query; // PW_ROUTE_ARGS_QUERY: the names passed on
    uint32_t flags = 0;             // PW_ROUTE_*
};

class Proxy {
public:
    // root: the su_root of the calling (SIP) thread. metrics/events may be nullptr (tests).
    Proxy(su_root_t *root, CoreConfig cfg, Metrics *metrics = nullptr, EventBus *events = nullptr);
    ~Proxy(); // stops and destroys modules (reverse order), then the agent
    Proxy(const Proxy &) = delete;
    Proxy &operator=(const Proxy &) = delete;

    // Bind the listeners. Throws std::runtime_error naming the URL on failure.
    void bind();
    // Actual bound URLs (ephemeral ports resolved), same order as cfg.listen, e.g. "sip:127.0.0.1:40123".
    std::vector<std::string> boundUrls() const;
    // Port of the first UDP (or first) listener.
    uint16_t port() const;

    // Call init() of each module in order. Throws std::runtime_error naming the module on failure.
    void addModules(std::vector<LoadedModule> modules);
    // start() every module (after bind()).
    void start();
    // stop() every module in reverse order (no more SIP work accepted from modules).
    void stop();
    // reload() every module that has one; returns the number that failed (logged).
    int reload();

    // The REST routes of the loaded modules, in module then table order (fixed once addModules() returned; call it
    // from the thread that called addModules). A route whose `args` this host does not know is left out, logged.
    std::vector<ModuleRoute> moduleRoutes() const;

    // SIP thread. Take the [proxy] domains and the [auth] settings that name them (unauthenticated_domains,
    // md5_off_domains, users_file entries) from a config the loader validated. A domain leaving the list that no
    // module serves (domain_serve) is first offered to every module (domain_release): when one refuses, e.g.
    // because calls are parked in it, nothing changes and `error` says who refused and why. Users of a removed
    // domain stay in the users table (inert while it is not local); users_file entries are added or replaced.
    struct DomainUpdate {
        bool ok = true;
        std::string error;
        std::vector<std::string> added, removed; // as written in the config
    };
    DomainUpdate updateDomains(const CoreConfig &fresh);

    // SIP thread only.
    std::vector<CommandInfo> commands() const;
    // `later`: where the answer goes when the module defers it (ABI 1.8 writer_defer, called later on the SIP
    // thread; the result is then marked deferred); without it, the module must answer at once.
    CommandResult runCommand(const std::string &module, const std::string &name, const std::string &argsJson,
                             std::function<void(CommandResult)> later = {});
    // {"transactions":N,"dialogs":N,"subscriptions":N,"requests":{...},"unsent_responses":N,"late_responses":N}
    std::string statsJson() const;
    // Diagnostics: the references held on the listening transports (each counts itself once, plus one per
    // transaction or message using it). Back to the same figure when the proxy is idle again.
    size_t transportReferences() const;

    // SIP credentials (docs/auth.md), SIP thread only. The password is hashed at once (HA1 per algorithm) and
    // never stored. register_for: other users of the same domain this user may register contacts for.
    // 200 {"domain":..,"user":..,"created":bool}; 400 bad domain/user/password; 404 domain not local.
    CommandResult setUser(const std::string &domain, const std::string &user, const std::string &password,
                          const std::vector<std::string> &registerFor);
    CommandResult deleteUser(const std::string &domain, const std::string &user); // 200, or 404 when unknown
    // 200 [{"user":..,"algorithms":["SHA-256","MD5"],"register_for":[..]}] (never a hash), 404 domain not local
    CommandResult listUsers(const std::string &domain);

    // Thread-safe: run fn on the SIP thread (su_msg). Returns false when shutting down.
    bool post(std::function<void()> fn);

    const CoreConfig &config() const;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace parkway::proxy
