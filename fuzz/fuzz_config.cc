// fuzz_config: the TOML files an operator writes. The same input is read as
//   1. the daemon's config (proxy/app/config.cc loadConfig, then the module parameter checks of loadModules
//      when it only names our modules), exactly as `parkway --config` / `--check-config` read it;
//   2. callpark's provision_file (module/callpark/provision.cc), through the module's reload hook on a live
//      callpark module, as SIGHUP / POST /api/reload do.
// Invariants: no crash; loadConfig throws nothing but ConfigError and loadModules nothing but LoadError (the
// daemon catches exactly those and prints "config error: FILE:LINE:COL: ..."); reload never throws.
#include "fuzz_common.hh"

#include <app/config.hh>
#include <core/proxy.hh>
#include <plugin/loader.hh>
#include <sofia/sofia.hh>

#include <memory>
#include <set>
#include <string>

namespace px = parkway::proxy;
namespace fz = parkway::fuzz;

namespace {

constexpr unsigned kResetEvery = 500; // inputs between two fresh callpark modules: domains pile up, and each
                                      // setDomain costs more with every domain the engine holds

struct World {
    parkway::sofia::Root root;
    std::unique_ptr<px::Proxy> proxy;
    std::string configPath, provisionPath;
    unsigned inputs = 0;
};

World *gWorld = nullptr;

void startProxy(World &w) {
    w.proxy.reset();
    fz::writeFile(w.provisionPath, "");
    px::CoreConfig cfg;
    cfg.listen = {"sip:127.0.0.1:*"};
    cfg.domains = {"pbx.example.com"};
    cfg.database = ":memory:";
    cfg.configDir = fz::tempDir();
    cfg.logSink = fz::fuzzLog;
    w.proxy = std::make_unique<px::Proxy>(w.root.get(), cfg);
    w.proxy->bind();
    std::vector<px::LoadedModule> mods;
    mods.push_back(px::loadModule("callpark", fz::moduleDir(),
                                  {{"database", ":memory:"},
                                   {"provision_file", w.provisionPath},
                                   {"moh_port_min", "47000"},
                                   {"moh_port_max", "47099"}}));
    w.proxy->addModules(std::move(mods));
}

void readAsMainConfig(const std::string &path) {
    px::AppConfig cfg;
    try {
        cfg = px::loadConfig(path);
    } catch (const px::ConfigError &) {
        return;
    }
    static const std::set<std::string> ours = {"registrar", "router", "callpark"};
    for (const auto &m : cfg.modules)
        if (!ours.count(m))
            return; // never dlopen() a path the fuzzer made up
    try {
        auto mods = px::loadModules(cfg, fz::moduleDir());
        for (auto &m : mods)
            px::unloadModule(m);
    } catch (const px::LoadError &) {
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    fz::pinModules({"registrar", "router", "callpark"});
    gWorld = new World;
    gWorld->configPath = fz::tempDir() + "/parkway.toml";
    gWorld->provisionPath = fz::tempDir() + "/provision.toml";
    startProxy(*gWorld);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    World &w = *gWorld;
    if (++w.inputs % kResetEvery == 0)
        startProxy(w);
    std::string_view text(reinterpret_cast<const char *>(data), size);
    fz::writeFile(w.configPath, text);
    readAsMainConfig(w.configPath);
    fz::writeFile(w.provisionPath, text);
    (void)w.proxy->reload();
    return 0;
}
