// parkway: the daemon. Reads the TOML config, loads modules, runs the SIP core on the main thread's su_root,
// starts the admin plane, and handles signals on a thread of their own (sigwaitinfo; never in a handler).
#include "config.hh"
#include "log.hh"

#include "admin/event_bus.hh"
#include "admin/metrics.hh"
#include "core/proxy.hh"
#include "plugin/loader.hh"
#ifdef PARKWAY_HAVE_ADMIN
#include "admin/admin_server.hh"
#include "core/sip_trace.hh"
#endif

#include <sofia-sip/su.h>
#include <sofia-sip/su_wait.h>
#ifdef PARKWAY_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sys/resource.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace parkway::proxy;

namespace {

bool isDirectory(const std::string &path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The folder of a path with symbolic links resolved; empty when it cannot be resolved.
std::string realDir(const char *path, bool parent) {
    char buf[PATH_MAX];
    if (!realpath(path, buf))
        return {};
    std::string s = buf;
    return parent ? s.substr(0, s.rfind('/')) : s;
}

// Where bare module names are looked up when [proxy] module_dir is empty (docs/install.md "Where the daemon
// finds its modules"): the build tree's modules for the build tree's binary; else the modules installed beside
// this executable (<prefix>/bin/../lib/parkway/modules, so an installed tree still works when moved or staged);
// else the folder compiled in for the configured prefix.
std::string defaultModuleDir() {
    const std::string exeDir = realDir("/proc/self/exe", true);
    if (!exeDir.empty() && exeDir == realDir(PARKWAY_BUILD_BIN_DIR, false))
        return PARKWAY_BUILD_MODULE_DIR;
    const std::string beside = exeDir.empty() ? "" : realDir((exeDir + "/" PARKWAY_MODULE_DIR_FROM_BIN).c_str(), false);
    if (!beside.empty() && isDirectory(beside))
        return beside;
    return PARKWAY_INSTALL_MODULE_DIR;
}

// Tells systemd (Type=notify, docs/install.md) what the daemon is doing; a no-op when not started by systemd
// or when built without libsystemd (then the unit is Type=exec).
void notifySystemd([[maybe_unused]] const char *state) {
#ifdef PARKWAY_HAVE_SYSTEMD
    sd_notify(0, state);
#endif
}

int dumpConfig(const std::string &moduleDirOpt) {
    std::string dir = moduleDirOpt.empty() ? defaultModuleDir() : moduleDirOpt;
    std::string out = dumpCoreConfig();
    out += fmt::format("\n# ---- module parameters (modules found in {}) ----\n", dir);
    // Modules in the default load list get live tables; the others are commented out (a [module.x] table for a
    // module that is not loaded is an error), so the whole output is a valid config.
    const std::vector<std::string> defaults = AppConfig{}.modules;
    for (const auto &file : listModuleFiles(dir)) {
        try {
            LoadedModule m = openModule(file, dir);
            std::string section = dumpParams(m.desc);
            if (std::find(defaults.begin(), defaults.end(), m.desc->name) == defaults.end()) {
                std::string commented = fmt::format("# (add \"{}\" to modules.load to use it)\n", m.desc->name);
                size_t pos = 0;
                while (pos < section.size()) {
                    size_t nl = section.find('\n', pos);
                    std::string line = section.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
                    commented += (line.rfind('#', 0) == 0 ? line : "# " + line) + "\n";
                    pos = nl == std::string::npos ? section.size() : nl + 1;
                }
                section = commented;
            }
            out += "\n" + section;
            unloadModule(m);
        } catch (const LoadError &e) {
            out += fmt::format("\n# skipped: {}\n", e.what());
        }
    }
    std::fputs(out.c_str(), stdout);
    return 0;
}

// Signals are taken by a thread of their own (sigwaitinfo), not by the SIP loop: a SIP thread that is stuck
// must not keep the daemon from stopping. SIGHUP and the first SIGTERM/SIGINT are handed to the SIP thread;
// if it has not stopped `stopTimeoutMs` after SIGTERM/SIGINT (or a second one comes), the process exits at
// once. That is safe: every acknowledged state is already committed (it survives kill -9 the same way).
class SignalThread {
public:
    SignalThread(const sigset_t &set, uint32_t stopTimeoutMs, const Logger &log, std::function<void(int)> deliver)
        : set_(set), stopTimeoutMs_(stopTimeoutMs), log_(log), deliver_(std::move(deliver)) {
        thread_ = std::thread([this] { run(); });
    }
    ~SignalThread() { // the daemon stopped by itself: let the thread go
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopped_ = true;
        }
        cv_.notify_all();
        pthread_kill(thread_.native_handle(), SIGUSR1);
        thread_.join();
    }

    void disarm() {
        std::lock_guard<std::mutex> lock(mutex_);
        stopRequested_ = true;
    }

private:
    void run() {
        siginfo_t si{};
        while (true) {
            int sig = sigwaitinfo(&set_, &si);
            if (sig < 0)
                continue; // EINTR
            std::unique_lock<std::mutex> lock(mutex_);
            if (stopped_)
                return;
            if (sig == SIGUSR1)
                continue;
            if (sig == SIGHUP || !stopRequested_) {
                stopRequested_ = stopRequested_ || sig != SIGHUP;
                lock.unlock();
                deliver_(sig);
                if (sig == SIGHUP)
                    continue;
                lock.lock();
                if (cv_.wait_for(lock, std::chrono::milliseconds(stopTimeoutMs_), [this] { return stopped_; }))
                    return;
                log_.write(LogLevel::Error,
                           fmt::format("the SIP thread did not stop within {} ms; exiting now", stopTimeoutMs_));
            } else {
                log_.write(LogLevel::Error, "second stop signal: exiting now");
            }
            std::_Exit(1);
        }
    }

    sigset_t set_;
    uint32_t stopTimeoutMs_;
    const Logger &log_;
    std::function<void(int)> deliver_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopped_ = false, stopRequested_ = false;
    std::thread thread_;
};

// The core prints module debug lines only when PARKWAY_DEBUG is set; keep it in step with log_level.
void applyLogLevel(Logger &log, LogLevel level) {
    log.setLevel(level);
    if (level == LogLevel::Debug)
        setenv("PARKWAY_DEBUG", "1", 1);
    else
        unsetenv("PARKWAY_DEBUG");
}

// SIGHUP and POST /api/reload, on the SIP thread: re-read the whole config file and validate it first (a bad
// file changes nothing; the error names the setting), then apply the [proxy] domains and the [auth] settings
// naming them (refused as a whole when a dropped domain still holds parked calls), the log level, and last the
// modules' reload hooks. Other settings (listeners, limits, TLS, admin) need a restart.
CommandResult reloadConfig(const std::string &configFile, Proxy &proxy, Logger &log) {
    using nlohmann::json;
    AppConfig fresh;
    try {
        fresh = loadConfig(configFile);
    } catch (const ConfigError &e) {
        log.error("reload refused, nothing changed: config error: {}", e.what());
        return {
            400,
            json{{"reloaded", false}, {"error", fmt::format("config error, nothing changed: {}", e.what())}}.dump()};
    }
    Proxy::DomainUpdate u = proxy.updateDomains(fresh.core);
    if (!u.ok) {
        log.error("reload refused, nothing changed: {}", u.error);
        return {409, json{{"reloaded", false}, {"error", "reload refused, nothing changed: " + u.error}}.dump()};
    }
    applyLogLevel(log, fresh.logLevel);
    log.captureSofia();
    // [proxy] sip_trace from the file wins over a trace started from the admin API (unchanged: keeps writing).
    TraceSettings trace{fresh.core.sipTrace, fresh.core.sipTraceMaxBytes, fresh.core.sipTraceFiles};
    std::string traceError = traceApply(trace);
    if (!traceError.empty())
        log.error("reload: proxy.sip_trace: {} (no trace runs)", traceError);
    int failed = proxy.reload();
    if (failed)
        log.warn("reload: {} module(s) failed to reload", failed);
    json out{{"reloaded", failed == 0}, {"failed", failed}, {"domains", {{"added", u.added}, {"removed", u.removed}}}};
    if (failed)
        out["error"] = fmt::format("{} module(s) failed to reload; see the log", failed);
    if (!traceError.empty())
        out["sip_trace_error"] = traceError;
    return {failed ? 500 : 200, out.dump()};
}

// Raise the open-file limit to its hard maximum, and refuse to start when the SIP TCP connection cap cannot fit
// in it: running out of descriptors at run time is what the caps exist to prevent.
bool checkFileLimit(const AppConfig &cfg, Logger &log) {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return true;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    constexpr rlim_t kReserve = 256; // listeners, databases, admin, modules' own
    rlim_t needed = static_cast<rlim_t>(cfg.core.tcpMaxConnections) + kReserve;
    if (rl.rlim_cur != RLIM_INFINITY && needed > rl.rlim_cur) {
        log.error("config error: {}: proxy.tcp_max_connections: {} connections plus {} other descriptors do not fit "
                  "the open-file limit ({}); lower it, or raise the limit (ulimit -n, systemd LimitNOFILE=)",
                  cfg.file, cfg.core.tcpMaxConnections, kReserve, static_cast<uint64_t>(rl.rlim_cur));
        return false;
    }
    return true;
}

int run(const std::string &configFile) {
    Logger log;
    AppConfig cfg;
    try {
        cfg = loadConfig(configFile);
    } catch (const ConfigError &e) {
        log.error("config error: {}", e.what());
        return 2;
    }
    applyLogLevel(log, cfg.logLevel);
    if (!checkFileLimit(cfg, log))
        return 2;

    // Block the signals before any thread exists so only the signal thread sees them.
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGUSR1})
        sigaddset(&set, s);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    std::vector<LoadedModule> modules;
    try {
        modules = loadModules(cfg, defaultModuleDir());
    } catch (const LoadError &e) {
        log.error("{}", e.what());
        return 2;
    }

    su_init();
    log.captureSofia();
    su_root_t *root = su_root_create(nullptr);
    if (!root) {
        log.error("cannot create the sofia-sip event loop");
        return 1;
    }
    int rc = 0;
    {
        Metrics metrics;
        EventBus events;
        std::unique_ptr<Proxy> proxy;
#ifdef PARKWAY_HAVE_ADMIN
        std::unique_ptr<AdminServer> admin;
#endif
        std::unique_ptr<SignalThread> signals;
        try {
            CoreConfig core = cfg.core;
            // Module and core lines go through the daemon's logger: its format, and log_level filters them.
            core.logSink = [&log](int level, const std::string &module, const std::string &text) {
                auto l = static_cast<LogLevel>(std::clamp(level, 0, 3));
                if (log.enabled(l))
                    log.write(l, fmt::format("[{}] {}", module, text));
            };
            core.logEnabled = [&log](int level) { return log.enabled(static_cast<LogLevel>(std::clamp(level, 0, 3))); };
            proxy = std::make_unique<Proxy>(root, core, &metrics, &events);
            proxy->bind();
            proxy->addModules(std::move(modules));
            modules.clear();
            proxy->start();
            if (cfg.adminEnabled) {
#ifdef PARKWAY_HAVE_ADMIN
                admin = std::make_unique<AdminServer>(cfg.admin, *proxy, metrics, events);
                admin->setReloadHandler([&configFile, &proxy, &log] { return reloadConfig(configFile, *proxy, log); });
                admin->start();
                log.info("admin API on {}:{}", cfg.admin.listen.substr(0, cfg.admin.listen.rfind(':')), admin->port());
#else
                log.warn("[admin] is configured but this build has no admin server; skipped");
#endif
            }
            auto onSignal = [&](int sig) { // SIP thread
                if (sig == SIGHUP) {
                    log.info("SIGHUP: reloading");
                    reloadConfig(configFile, *proxy, log);
                    return;
                }
                log.info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                su_root_break(root);
            };
            Proxy *p = proxy.get();
            signals = std::make_unique<SignalThread>(
                set, cfg.stopTimeoutMs, log, [p, onSignal](int sig) { p->post([onSignal, sig] { onSignal(sig); }); });
            std::string urls;
            for (const auto &u : proxy->boundUrls())
                urls += (urls.empty() ? "" : " ") + u;
            // Always printed, whatever the level: scripts and tests wait for this line.
            log.write(LogLevel::Info, fmt::format("parkway {} ready: listening on {}", PARKWAY_VERSION, urls));
            notifySystemd("READY=1"); // transports bound, modules started, admin API up
            su_root_run(root);
            notifySystemd("STOPPING=1");
        } catch (const std::exception &e) {
            log.error("{}", e.what());
            rc = 1;
        }
        if (signals)
            signals->disarm(); // from now on a stop signal exits at once (no SIP loop to hand it to)
        for (auto &m : modules)
            unloadModule(m); // only when addModules never took them
#ifdef PARKWAY_HAVE_ADMIN
        if (admin)
            admin->stop();
        admin.reset();
#endif
        if (proxy)
            proxy->stop();
        proxy.reset(); // destroys modules (reverse order) and the agent
        signals.reset();
    }
    su_root_destroy(root);
    su_deinit();
    if (rc == 0)
        log.info("stopped");
    return rc;
}

} // namespace

int main(int argc, char **argv) {
    CLI::App app{"parkway: a SIP call-park server and stateful proxy"};
    std::string config, checkConfig, moduleDir;
    bool dump = false, version = false;
    app.add_option("-c,--config", config, "run with this TOML config file")->check(CLI::ExistingFile);
    app.add_option("--check-config", checkConfig, "validate a config file (and its modules' parameters), then exit");
    app.add_flag("--dump-config", dump, "print every setting with its default and help, modules included");
    app.add_option("--module-dir", moduleDir, "with --dump-config: the folder of modules to document");
    app.add_flag("-V,--version", version, "print the version");
    app.failure_message(CLI::FailureMessage::help);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 2; // --help: 0; a bad argument: what was wrong, then the usage, exit 2
    }

    if (version) {
        std::printf("parkway %s (plugin ABI %u.%u)\n", PARKWAY_VERSION, PW_ABI_MAJOR, PW_ABI_MINOR);
        return 0;
    }
    if (dump)
        return dumpConfig(moduleDir);
    if (!checkConfig.empty()) {
        try {
            AppConfig cfg = loadConfig(checkConfig);
            auto modules = loadModules(cfg, defaultModuleDir());
            for (auto &m : modules)
                unloadModule(m);
            std::printf("config OK: %s (%zu module(s))\n", checkConfig.c_str(), cfg.modules.size());
            return 0;
        } catch (const std::exception &e) {
            std::fprintf(stderr, "config error: %s\n", e.what());
            return 2;
        }
    }
    if (config.empty()) { // nothing to do: a usage error
        std::fputs(app.help().c_str(), stderr);
        return 2;
    }
    return run(config);
}
