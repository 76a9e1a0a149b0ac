// The plugin loader: dlopen() a module, validate its descriptor against ABI v1, validate and normalise its
// parameters. Contract used by the daemon (proxy/app), the tests and the host core.
//
// Parameter values in LoadedModule::params are normalised so the host's param_str/param_int are trivial:
//   INT      -> decimal text ("60")
//   BOOL     -> "true" / "false"            (param_int gives 1 / 0)
//   DURATION -> integer milliseconds text   ("30s" -> "30000"; a bare number is milliseconds)
//   STRING   -> as given
// Every declared parameter is present (defaults applied); a parameter without default must be given.
#pragma once
#include "loaded_module.hh"

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace parkway::proxy {

// Message always names the file (or "module <name>" for a static one) and the reason.
class LoadError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// nameOrPath: a bare name ("registrar") -> <moduleDir>/<name>.so; anything containing '/' or ending in
// ".so" is a path. Throws LoadError: dlopen failure, missing pw_module_entry, entry returned NULL, wrong
// abi_major, a struct shorter than the v1.0 layout (descriptor, param or command entry), bad module name,
// missing required hook (init/destroy/on_request), unknown parameter, bad typed value, missing required one.
LoadedModule loadModule(const std::string &nameOrPath, const std::string &moduleDir,
                        const std::map<std::string, std::string> &params);

// The same validation for a descriptor linked into the binary (no dlopen). path == "".
LoadedModule staticModule(const pw_module *desc, const std::map<std::string, std::string> &params);

// dlclose() the handle (if any) and clear the struct. Call only after the module's destroy() ran.
void unloadModule(LoadedModule &m);

// Resolve a module name to its file as loadModule would.
std::string modulePath(const std::string &nameOrPath, const std::string &moduleDir);

// dlopen + descriptor validation only (no parameter checks), for --dump-config. Throws LoadError.
LoadedModule openModule(const std::string &nameOrPath, const std::string &moduleDir);

// A commented TOML section documenting the module's parameters, usable as a config:
//   # registrar 1.0.0: REGISTER handling ...
//   [module.registrar]
//   # min_expires (int): smallest Expires accepted; 423 below
//   min_expires = 60
// Required parameters are written commented out with a REQUIRED note.
std::string dumpParams(const pw_module *desc);

// Typed value parsing shared with the host core and the config reader. nullopt when invalid.
std::optional<int64_t> parseInt(const std::string &text);
std::optional<bool> parseBool(const std::string &text);           // true/false/yes/no/on/off/1/0
std::optional<int64_t> parseDurationMs(const std::string &text);  // "500ms" "30s" "5m" "1h" or bare ms
const char *paramTypeName(pw_param_type type);                    // "string" "int" "bool" "duration"

// The module's REST routes (ABI 1.4 pw_module.routes, module.h pw_route_def) in table order; empty for a module
// built against an older header. Entries may be longer than this host's layout (a newer minor).
std::vector<const pw_route_def *> moduleRoutes(const pw_module *desc);

// Every <name>.so in dir, sorted (for --dump-config).
std::vector<std::string> listModuleFiles(const std::string &dir);

} // namespace parkway::proxy
