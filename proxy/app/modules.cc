#include "config.hh"

#include "plugin/loader.hh"

#include <fmt/format.h>

namespace parkway::proxy {

// Load every module of the config, in order. A LoadError about a parameter gets the parameter's line.
std::vector<LoadedModule> loadModules(const AppConfig &cfg, const std::string &defaultModuleDir) {
    const std::string dir = cfg.moduleDir.empty() ? defaultModuleDir : cfg.moduleDir;
    std::vector<LoadedModule> out;
    try {
        for (const auto &m : cfg.modules) {
            std::string key = moduleKey(m);
            auto pit = cfg.moduleParams.find(key);
            static const std::map<std::string, std::string> kNone;
            try {
                out.push_back(loadModule(m, dir, pit == cfg.moduleParams.end() ? kNone : pit->second));
            } catch (const LoadError &e) {
                std::string msg = e.what();
                auto wit = cfg.paramWhere.find(key);
                if (wit != cfg.paramWhere.end())
                    for (const auto &[param, where] : wit->second)
                        if (msg.find("parameter '" + param + "'") != std::string::npos)
                            throw LoadError(fmt::format("{}: module.{}.{}: {}", where, key, param, msg));
                throw LoadError(fmt::format("{}: modules.load: {}", cfg.file, msg));
            }
            if (std::string(out.back().desc->name) != key)
                throw LoadError(fmt::format("{}: modules.load: '{}' declares the name '{}'; its parameters are read "
                                            "from [module.{}]",
                                            cfg.file, m, out.back().desc->name, key));
        }
    } catch (...) {
        for (auto &m : out) unloadModule(m);
        throw;
    }
    return out;
}

} // namespace parkway::proxy
