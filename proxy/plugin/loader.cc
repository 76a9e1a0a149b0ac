#include "loader.hh"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <dirent.h>
#include <dlfcn.h>

namespace parkway::proxy {
namespace {

// Sizes of the v1.0 layouts. ABI v1.0 is the current header, so sizeof is the v1.0 layout; when v1.1 appends
// members these constants must stay at the v1.0 values (offset of the last v1.0 member + its size).
constexpr uint32_t kModuleV10Size = offsetof(pw_module, reload) + sizeof(void *);
constexpr uint32_t kParamV10Size = offsetof(pw_param_def, help) + sizeof(const char *);
constexpr uint32_t kCommandV10Size = offsetof(pw_command_def, run) + sizeof(void *);
// pw_route_def came with v1.4: its first layout.
constexpr uint32_t kRouteV14Size = offsetof(pw_route_def, flags) + sizeof(uint32_t);

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

bool validName(const char *name) {
    if (!name || !*name) return false;
    for (const char *p = name; *p; ++p)
        if (!(std::islower(static_cast<unsigned char>(*p)) || std::isdigit(static_cast<unsigned char>(*p)) || *p == '_'))
            return false;
    return true;
}

bool hasCommand(const pw_module *d, const char *name) {
    if (!d->commands || !name)
        return false;
    for (const char *p = reinterpret_cast<const char *>(d->commands);;) {
        auto c = reinterpret_cast<const pw_command_def *>(p);
        if (!c->name || c->struct_size == 0)
            return false;
        if (std::string(c->name) == name)
            return true;
        p += c->struct_size;
    }
}

// A route's path: absolute under /api/, no empty segment, "{name}" segments with a name.
bool validRoutePath(const char *path) {
    std::string p = path ? path : "";
    if (p.rfind("/api/", 0) != 0 || p.size() <= 5 || p.back() == '/' || p.find("//") != std::string::npos)
        return false;
    for (size_t i = 0; i < p.size(); ++i)
        if (p[i] == '{' &&
            (i == 0 || p[i - 1] != '/' || p.find('}', i) == std::string::npos || p.find('}', i) == i + 1))
            return false;
    return p.find_first_of(" ?#%") == std::string::npos;
}

// v1.4 REST routes (module.h pw_route_def). An unknown `args` is not refused here: the admin server skips it.
void validateRoutes(const pw_module *d, const std::string &who) {
    for (const pw_route_def *r : moduleRoutes(d)) {
        std::string m = r->method ? r->method : "";
        if (r->struct_size < kRouteV14Size)
            throw LoadError(fmt::format("{}: module '{}': route entry struct_size {} is shorter than the ABI v1.4 "
                                        "layout ({})",
                                        who, d->name, r->struct_size, kRouteV14Size));
        if (m != "GET" && m != "POST" && m != "PUT" && m != "DELETE")
            throw LoadError(fmt::format("{}: module '{}': route '{}' has method '{}' (GET, POST, PUT or DELETE)", who,
                                        d->name, r->path ? r->path : "(null)", m));
        if (!validRoutePath(r->path))
            throw LoadError(fmt::format("{}: module '{}': route {} '{}' is not an absolute /api/ path with "
                                        "{{name}} segments",
                                        who, d->name, m, r->path ? r->path : "(null)"));
        if (!hasCommand(d, r->command))
            throw LoadError(fmt::format("{}: module '{}': route {} {} names command '{}', which the module does not "
                                        "have",
                                        who, d->name, m, r->path, r->command ? r->command : "(null)"));
    }
}

// Descriptor checks that do not depend on parameters. `who` names the file or the static module.
void validateDescriptor(const pw_module *d, const std::string &who) {
    if (!d) throw LoadError(fmt::format("{}: pw_module_entry() returned NULL (module declined to load)", who));
    if (d->struct_size < kModuleV10Size)
        throw LoadError(fmt::format("{}: module descriptor struct_size {} is shorter than the ABI v1.0 layout ({})",
                                    who, d->struct_size, kModuleV10Size));
    if (d->abi_major != PW_ABI_MAJOR)
        throw LoadError(fmt::format("{}: module ABI major {} does not match the host ABI major {}", who,
                                    d->abi_major, PW_ABI_MAJOR));
    if (!validName(d->name))
        throw LoadError(fmt::format("{}: module name '{}' is invalid (must match [a-z0-9_]+)", who,
                                    d->name ? d->name : "(null)"));
    if (!d->init) throw LoadError(fmt::format("{}: module '{}' has no init hook (required)", who, d->name));
    if (!d->destroy) throw LoadError(fmt::format("{}: module '{}' has no destroy hook (required)", who, d->name));
    if (!d->on_request)
        throw LoadError(fmt::format("{}: module '{}' has no on_request hook (required)", who, d->name));
    if (d->params) {
        for (const pw_param_def *p = d->params;; ++p) {
            if (p->struct_size == 0 && !p->name) break; // a {0} terminator is fine
            if (p->struct_size < kParamV10Size)
                throw LoadError(fmt::format(
                    "{}: module '{}': parameter entry struct_size {} is shorter than the ABI v1.0 layout ({})", who,
                    d->name, p->struct_size, kParamV10Size));
            if (!p->name) break;
            if (p->type < PW_PARAM_STRING || p->type > PW_PARAM_DURATION)
                throw LoadError(fmt::format("{}: module '{}': parameter '{}' has unknown type {}", who, d->name,
                                            p->name, static_cast<int>(p->type)));
            // Entries may be longer than v1.0 (newer minor): advance by the declared size, not by sizeof.
            p = reinterpret_cast<const pw_param_def *>(reinterpret_cast<const char *>(p) + p->struct_size) - 1;
        }
    }
    if (d->commands) {
        for (const pw_command_def *c = d->commands;; ++c) {
            if (c->struct_size == 0 && !c->name) break; // a {0} terminator is fine
            if (c->struct_size < kCommandV10Size)
                throw LoadError(fmt::format(
                    "{}: module '{}': command entry struct_size {} is shorter than the ABI v1.0 layout ({})", who,
                    d->name, c->struct_size, kCommandV10Size));
            if (!c->name) break;
            if (!c->run)
                throw LoadError(fmt::format("{}: module '{}': command '{}' has no run function", who, d->name,
                                            c->name));
            c = reinterpret_cast<const pw_command_def *>(reinterpret_cast<const char *>(c) + c->struct_size) - 1;
        }
    }
    validateRoutes(d, who);
}

template <typename F> void forEachParam(const pw_module *d, F f) {
    if (!d->params) return;
    for (const char *p = reinterpret_cast<const char *>(d->params);;) {
        auto def = reinterpret_cast<const pw_param_def *>(p);
        if (!def->name) return;
        f(*def);
        p += def->struct_size;
    }
}

// Returns the normalised value or throws naming the parameter.
std::string normalise(const pw_param_def &def, const std::string &value, const std::string &who,
                      const char *module) {
    auto bad = [&](const char *expect) {
        return LoadError(fmt::format("{}: module '{}': parameter '{}' = '{}' is not a valid {} ({})", who, module,
                                     def.name, value, paramTypeName(def.type), expect));
    };
    switch (def.type) {
    case PW_PARAM_INT:
        if (auto v = parseInt(value)) return std::to_string(*v);
        throw bad("expected a decimal integer");
    case PW_PARAM_BOOL:
        if (auto v = parseBool(value)) return *v ? "true" : "false";
        throw bad("expected true or false");
    case PW_PARAM_DURATION:
        if (auto v = parseDurationMs(value)) return std::to_string(*v);
        throw bad("expected e.g. 500ms, 30s, 5m, 1h or milliseconds");
    case PW_PARAM_STRING:
    default:
        return value;
    }
}

LoadedModule validateAll(const pw_module *d, const std::string &who,
                         const std::map<std::string, std::string> &params) {
    validateDescriptor(d, who);
    LoadedModule m;
    m.desc = d;
    std::map<std::string, const pw_param_def *> declared;
    forEachParam(d, [&](const pw_param_def &def) { declared[def.name] = &def; });
    for (const auto &[k, v] : params) {
        (void)v;
        if (!declared.count(k)) {
            std::string known;
            for (const auto &[n, _] : declared) known += (known.empty() ? "" : ", ") + n;
            throw LoadError(fmt::format("{}: module '{}': unknown parameter '{}' (known: {})", who, d->name, k,
                                        known.empty() ? "none" : known));
        }
    }
    for (const auto &[name, def] : declared) {
        auto it = params.find(name);
        if (it != params.end()) {
            m.params[name] = normalise(*def, it->second, who, d->name);
        } else if (def->default_value) {
            m.params[name] = normalise(*def, def->default_value, who, d->name);
        } else {
            throw LoadError(fmt::format("{}: module '{}': required parameter '{}' is missing", who, d->name, name));
        }
    }
    return m;
}

struct DlHandle {
    void *h = nullptr;
    ~DlHandle() {
        if (h) dlclose(h);
    }
};

} // namespace

std::vector<const pw_route_def *> moduleRoutes(const pw_module *d) {
    std::vector<const pw_route_def *> out;
    if (!d || !PW_MODULE_HAS(d, routes))
        return out;
    for (const char *p = reinterpret_cast<const char *>(d->routes);;) {
        auto r = reinterpret_cast<const pw_route_def *>(p);
        if (!r->method || r->struct_size == 0)
            break;
        out.push_back(r);
        if (r->struct_size < kRouteV14Size)
            break; // refused by the validation; never stride by a bogus size
        p += r->struct_size;
    }
    return out;
}

std::string modulePath(const std::string &nameOrPath, const std::string &moduleDir) {
    bool isPath = nameOrPath.find('/') != std::string::npos ||
                  (nameOrPath.size() > 3 && nameOrPath.compare(nameOrPath.size() - 3, 3, ".so") == 0);
    if (isPath) return nameOrPath;
    std::string dir = moduleDir.empty() ? "." : moduleDir;
    if (dir.back() == '/') dir.pop_back();
    return dir + "/" + nameOrPath + ".so";
}

LoadedModule openModule(const std::string &nameOrPath, const std::string &moduleDir) {
    std::string path = modulePath(nameOrPath, moduleDir);
    if (nameOrPath.empty()) throw LoadError("module name is empty");
    DlHandle h;
    // RTLD_LOCAL: modules never see each other's symbols; RTLD_NOW: fail here, not at first call.
    h.h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h.h) {
        const char *err = dlerror();
        throw LoadError(fmt::format("{}: cannot load module: {}", path, err ? err : "unknown dlopen error"));
    }
    dlerror();
    void *sym = dlsym(h.h, PW_MODULE_ENTRY_SYMBOL);
    if (!sym)
        throw LoadError(fmt::format("{}: missing symbol '{}' (not a Parkway module?)", path, PW_MODULE_ENTRY_SYMBOL));
    auto entry = reinterpret_cast<pw_module_entry_fn>(sym);
    const pw_module *d = entry(PW_ABI_MAJOR);
    validateDescriptor(d, path);
    LoadedModule m;
    m.path = path;
    m.desc = d;
    m.dlHandle = h.h;
    h.h = nullptr;
    return m;
}

LoadedModule loadModule(const std::string &nameOrPath, const std::string &moduleDir,
                        const std::map<std::string, std::string> &params) {
    LoadedModule opened = openModule(nameOrPath, moduleDir);
    DlHandle h{opened.dlHandle};
    LoadedModule m = validateAll(opened.desc, opened.path, params);
    m.path = opened.path;
    m.dlHandle = h.h;
    h.h = nullptr;
    return m;
}

LoadedModule staticModule(const pw_module *desc, const std::map<std::string, std::string> &params) {
    std::string who = fmt::format("module {}", desc && desc->struct_size >= kModuleV10Size && desc->name
                                                   ? desc->name
                                                   : "(static)");
    return validateAll(desc, who, params);
}

void unloadModule(LoadedModule &m) {
    if (m.dlHandle) dlclose(m.dlHandle);
    m = LoadedModule{};
}

std::string dumpParams(const pw_module *d) {
    std::string out = fmt::format("# {} {}: {}\n", d->name, d->version ? d->version : "",
                                  d->description ? d->description : "");
    out += fmt::format("[module.{}]\n", d->name);
    bool any = false;
    forEachParam(d, [&](const pw_param_def &p) {
        any = true;
        out += fmt::format("# {} ({}): {}\n", p.name, paramTypeName(p.type), p.help ? p.help : "");
        if (!p.default_value) {
            out += fmt::format("# {} =    # REQUIRED, no default\n", p.name);
            return;
        }
        switch (p.type) {
        case PW_PARAM_STRING: {
            std::string esc;
            for (char c : std::string(p.default_value)) {
                if (c == '"' || c == '\\') esc += '\\';
                esc += c;
            }
            out += fmt::format("{} = \"{}\"\n", p.name, esc);
            break;
        }
        case PW_PARAM_DURATION:
            out += fmt::format("{} = \"{}\"\n", p.name, p.default_value);
            break;
        default:
            out += fmt::format("{} = {}\n", p.name, p.default_value);
        }
    });
    if (!any) out += "# (no parameters)\n";
    if (d->commands) {
        out += "# admin commands:";
        for (const char *c = reinterpret_cast<const char *>(d->commands);;) {
            auto cmd = reinterpret_cast<const pw_command_def *>(c);
            if (!cmd->name) break;
            out += fmt::format(" {}", cmd->name);
            c += cmd->struct_size;
        }
        out += "\n";
    }
    return out;
}

std::optional<int64_t> parseInt(const std::string &text) {
    std::string t = trim(text);
    if (t.empty()) return std::nullopt;
    errno = 0;
    char *end = nullptr;
    long long v = std::strtoll(t.c_str(), &end, 10);
    if (errno == ERANGE || *end != '\0') return std::nullopt;
    return static_cast<int64_t>(v);
}

std::optional<bool> parseBool(const std::string &text) {
    std::string t = lower(trim(text));
    if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
    if (t == "false" || t == "no" || t == "off" || t == "0") return false;
    return std::nullopt;
}

std::optional<int64_t> parseDurationMs(const std::string &text) {
    std::string t = lower(trim(text));
    size_t i = 0;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
    if (i == 0 || i > 15) return std::nullopt; // no number, or absurdly long
    int64_t n = std::stoll(t.substr(0, i));
    std::string unit = trim(t.substr(i));
    if (unit.empty() || unit == "ms") return n;
    if (unit == "s") return n * 1000;
    if (unit == "m" || unit == "min") return n * 60'000;
    if (unit == "h") return n * 3'600'000;
    return std::nullopt;
}

const char *paramTypeName(pw_param_type type) {
    switch (type) {
    case PW_PARAM_STRING: return "string";
    case PW_PARAM_INT: return "int";
    case PW_PARAM_BOOL: return "bool";
    case PW_PARAM_DURATION: return "duration";
    }
    return "unknown";
}

std::vector<std::string> listModuleFiles(const std::string &dir) {
    std::vector<std::string> out;
    DIR *d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 3 && n.compare(n.size() - 3, 3, ".so") == 0) out.push_back(dir + "/" + n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace parkway::proxy
