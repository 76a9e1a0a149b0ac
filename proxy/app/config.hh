// The daemon's TOML configuration (toml++): [proxy] -> CoreConfig, [admin] -> AdminConfig, [modules] load list,
// [module.<name>] parameters (validated later by the loader against the module's table).
#pragma once
#include "core/core_config.hh"
#include "admin/admin_server.hh"
#include "log.hh"
#include "plugin/loaded_module.hh"

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace parkway::proxy {

// "<file>:<line>:<col>: <key>: <reason>" (line omitted when the key is absent).
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct AppConfig {
    std::string file; // the config file as given
    CoreConfig core;
    LogLevel logLevel = LogLevel::Info;
    std::string moduleDir; // "" = default (build tree, then install dir)
    uint32_t stopTimeoutMs = 5000; // SIGTERM: exit anyway after this long if the SIP loop does not stop
    bool adminEnabled = false; // true when an [admin] table is present and enabled != false
    AdminConfig admin;
    std::vector<std::string> modules{"registrar", "router"}; // load order (default when [modules] is absent)
    // module name -> textual params: strings as is, integers in decimal, booleans true/false, floats as %g,
    // arrays as their elements joined by "\n".
    std::map<std::string, std::map<std::string, std::string>> moduleParams;
    // "file:line:col" of each module parameter, to locate loader errors: module -> param -> position
    std::map<std::string, std::map<std::string, std::string>> paramWhere;
};

// "udp:127.0.0.1:5060" -> "sip:127.0.0.1:5060;transport=udp" (port 0 -> "*", ephemeral). Throws
// std::invalid_argument with the reason.
std::string listenToSofiaUrl(const std::string &listen);

// Parse and validate. Unknown keys, wrong types and bad values throw ConfigError naming key and line.
// Relative database paths are resolved against the config file's folder.
AppConfig loadConfig(const std::string &path);

// A module's name as used for [module.<name>]: basename without ".so" for a path.
std::string moduleKey(const std::string &nameOrPath);

// Load (dlopen + validate) every module of cfg.modules in order, with its [module.<name>] parameters. Bare names
// are looked up in cfg.moduleDir, else defaultModuleDir. Throws LoadError prefixed with the config file and
// line of the offending parameter (or "modules.load"). All-or-nothing: nothing stays loaded on error.
std::vector<LoadedModule> loadModules(const AppConfig &cfg, const std::string &defaultModuleDir);

// Every core key ([proxy], [admin], [modules]) with its default and help, as commented TOML.
std::string dumpCoreConfig();

} // namespace parkway::proxy
