#include "config.hh"
#include "core/address_set.hh"

#include <toml++/toml.h>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <functional>
#include <set>

namespace parkway::proxy {
namespace {

struct Ctx {
    std::string file;
};

std::string where(const Ctx &c, const toml::node &n) {
    const auto &s = n.source();
    if (s.begin.line == 0) return c.file;
    return fmt::format("{}:{}:{}", c.file, s.begin.line, s.begin.column);
}

[[noreturn]] void fail(const Ctx &c, const toml::node &n, const std::string &key, const std::string &why) {
    throw ConfigError(fmt::format("{}: {}: {}", where(c, n), key, why));
}

// Errors about a key itself (unknown key/table) point at the key, not its value.
[[noreturn]] void failKey(const Ctx &c, const toml::key &k, const std::string &key, const std::string &why) {
    const auto &s = k.source();
    if (s.begin.line == 0) throw ConfigError(fmt::format("{}: {}: {}", c.file, key, why));
    throw ConfigError(fmt::format("{}:{}:{}: {}: {}", c.file, s.begin.line, s.begin.column, key, why));
}

const char *typeName(const toml::node &n) {
    switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
    }
}

std::string getString(const Ctx &c, const toml::node &n, const std::string &key) {
    if (auto v = n.value<std::string>(); v && n.is_string()) return *v;
    fail(c, n, key, fmt::format("expected a string, got {}", typeName(n)));
}

bool getBool(const Ctx &c, const toml::node &n, const std::string &key) {
    if (n.is_boolean()) return *n.value<bool>();
    fail(c, n, key, fmt::format("expected true or false, got {}", typeName(n)));
}

uint32_t getUint(const Ctx &c, const toml::node &n, const std::string &key, int64_t min, int64_t max) {
    if (!n.is_integer()) fail(c, n, key, fmt::format("expected an integer, got {}", typeName(n)));
    int64_t v = *n.value<int64_t>();
    if (v < min || v > max) fail(c, n, key, fmt::format("{} is out of range [{}, {}]", v, min, max));
    return static_cast<uint32_t>(v);
}

std::vector<std::string> getStrings(const Ctx &c, const toml::node &n, const std::string &key, bool allowEmpty) {
    if (!n.is_array()) fail(c, n, key, fmt::format("expected an array of strings, got {}", typeName(n)));
    std::vector<std::string> out;
    size_t i = 0;
    for (const auto &e : *n.as_array()) {
        std::string k = fmt::format("{}[{}]", key, i++);
        out.push_back(getString(c, e, k));
        if (out.back().empty()) fail(c, e, k, "must not be empty");
    }
    if (out.empty() && !allowEmpty) fail(c, n, key, "must not be empty");
    return out;
}

const toml::table &getTable(const Ctx &c, const toml::node &n, const std::string &key) {
    if (!n.is_table()) fail(c, n, key, fmt::format("expected a table, got {}", typeName(n)));
    return *n.as_table();
}

// Core keys, in documentation order. The same list drives validation of unknown keys and --dump-config.
struct KeyDoc {
    const char *table, *key, *value, *help;
};
const KeyDoc kKeys[] = {
    {"proxy", "listen", R"(["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"])",
     "SIP listeners, transport:address:port (udp or tcp; IPv6 as [::1]; port 0 = ephemeral). The first is "
     "used in Record-Route and Contact"},
    {"proxy", "domains", R"(["127.0.0.1"])", "local domains: requests to them are routed to registered contacts"},
    {"proxy", "database", R"("parkway.db")",
     "SQLite file shared by modules (relative paths are relative to this config file's folder)"},
    {"proxy", "record_route", "true", "add Record-Route so in-dialog requests (BYE, REFER, NOTIFY) pass through us"},
    {"proxy", "log_level", R"("info")", "error | warn | info | debug (debug also shows sofia-sip's log); SIGHUP re-reads it"},
    {"proxy", "module_dir", R"("")", "where bare module names are looked up; empty = the build tree's modules "
                                     "folder, else the installed one"},
    {"proxy", "instance", R"("parkway")", "a name for this node (used by modules, e.g. in events)"},
    {"proxy", "max_forwards", "70", "Max-Forwards inserted when a request has none (RFC 3261 §16.6 step 3)"},
    {"proxy", "t1_ms", "500", "SIP timer T1 in milliseconds (RFC 3261 §17)"},
    {"proxy", "t2_ms", "4000", "SIP timer T2 in milliseconds"},
    {"proxy", "t4_ms", "5000", "SIP timer T4 in milliseconds"},
    {"proxy", "sub_min_expires", "60", "smallest SUBSCRIBE Expires accepted (RFC 6665)"},
    {"proxy", "sub_max_expires", "3600", "largest SUBSCRIBE Expires granted"},
    {"proxy", "max_message_bytes", "65536", "largest SIP message taken in (UDP: 413; TCP: connection closed)"},
    {"proxy", "max_transactions", "10000", "requests in progress at once; beyond, new requests get 503 + Retry-After"},
    {"proxy", "max_dns_pending", "200", "forwarded requests waiting on DNS at once; beyond, 503 + Retry-After"},
    {"proxy", "retry_after_s", "5", "Retry-After (seconds) on the core's 503 answers"},
    {"proxy", "tcp_max_connections", "1024", "SIP TCP connections at once (further ones are refused)"},
    {"proxy", "tcp_max_connections_per_source", "32", "SIP TCP connections per source address (trusted peers exempt)"},
    {"proxy", "tcp_first_message_ms", "10000", "a new TCP connection must deliver a whole SIP message within this"},
    {"proxy", "tcp_idle_ms", "3600000", "a TCP connection that carried no SIP message for this long is closed"},
    {"proxy", "tcp_message_ms", "10000", "an incomplete message whose next byte does not come within this is dropped"},
    {"proxy", "rate_limit", "500", "requests per second per source address before a ban (0 = no rate limit)"},
    {"proxy", "rate_burst", "1000", "requests a source may send at once (token bucket size)"},
    {"proxy", "ban_ms", "60000", "how long a source over the rate is ignored (datagrams dropped, connections refused)"},
    {"proxy", "trusted_peers", "[]", "addresses or networks (\"10.0.0.0/8\", \"::1\") exempt from rate limits and "
                                     "per-source caps, e.g. a front proxy"},
    {"proxy", "dns_resolv_conf", R"("")", "resolv.conf the DNS resolver reads; empty = /etc/resolv.conf"},
    {"proxy", "dns_timeout_s", "2", "seconds before a DNS query is retried"},
    {"proxy", "dns_attempts", "2", "tries per DNS server before the next one"},
    {"proxy", "stop_timeout_ms", "5000", "on SIGTERM/SIGINT, exit anyway after this long if the SIP loop is stuck"},
    {"admin", "enabled", "true", "serve the admin HTTP API (only when an [admin] table is present)"},
    {"admin", "listen", R"("127.0.0.1:8089")", "admin HTTP API address host:port (port 0 = ephemeral)"},
    {"admin", "token", R"("change-me")", "bearer token for the admin API"},
    {"admin", "require_token", "true", "false is allowed only on a loopback listen address"},
    {"admin", "metrics_require_token", "true", "false lets Prometheus scrape /metrics without the bearer token"},
    {"admin", "max_connections", "64",
     "open admin connections at most (event streams included); more are answered 503"},
    {"admin", "max_body_bytes", "1048576",
     "largest request body (Content-Length); a larger one is answered 413 before it is read"},
    {"admin", "max_json_depth", "32", "deepest nesting of arrays/objects in a request body; deeper is answered 400"},
    {"admin", "max_header_bytes", "8192", "largest request line + headers; larger is answered 431"},
    {"admin", "header_timeout_ms", "10000",
     "a request's line and headers must arrive within this from its first byte, else the connection is closed"},
    {"admin", "idle_timeout_ms", "60000",
     "a connection that owes us a request (or its body) is closed after this; event streams are exempt"},
    {"modules", "load", R"(["registrar", "router"])",
     "modules in call order: a name (looked up in module_dir as <name>.so) or a path to a .so"},
};

void checkKnown(const Ctx &c, const toml::table &t, const char *table) {
    for (const auto &[k, v] : t) {
        bool known = false;
        std::string names;
        for (const auto &d : kKeys) {
            if (std::string(d.table) != table) continue;
            if (k.str() == d.key) known = true;
            names += (names.empty() ? "" : ", ") + std::string(d.key);
        }
        (void)v;
        if (!known) failKey(c, k, fmt::format("{}.{}", table, k.str()), fmt::format("unknown key (known: {})", names));
    }
}

std::string dirOf(const std::string &path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// A TOML value as the loader's textual parameter.
std::string paramText(const Ctx &c, const toml::node &n, const std::string &key) {
    switch (n.type()) {
    case toml::node_type::string: return *n.value<std::string>();
    case toml::node_type::integer: return std::to_string(*n.value<int64_t>());
    case toml::node_type::boolean: return *n.value<bool>() ? "true" : "false";
    case toml::node_type::floating_point: return fmt::format("{}", *n.value<double>());
    case toml::node_type::array: {
        // An array becomes its elements joined by newlines (e.g. a list of routes whose regexes hold commas).
        std::string out;
        size_t i = 0;
        for (const auto &e : *n.as_array()) {
            std::string s = paramText(c, e, fmt::format("{}[{}]", key, i++));
            out += (out.empty() ? "" : "\n") + s;
        }
        return out;
    }
    default: fail(c, n, key, fmt::format("unsupported value type ({})", typeName(n)));
    }
}

// [proxy] limits (docs/limits.md).
void readLimits(const Ctx &c, const toml::table &t, AppConfig &cfg) {
    CoreConfig &core = cfg.core;
    auto u = [&](const char *key, uint32_t &out, int64_t min, int64_t max) {
        if (auto *v = t.get(key)) out = getUint(c, *v, fmt::format("proxy.{}", key), min, max);
    };
    u("max_message_bytes", core.maxMessageBytes, 1024, 16 * 1024 * 1024);
    u("max_transactions", core.maxTransactions, 1, 10000000);
    u("max_dns_pending", core.maxDnsPending, 1, 1000000);
    u("retry_after_s", core.retryAfterS, 1, 86400);
    u("tcp_max_connections", core.tcpMaxConnections, 1, 1000000);
    u("tcp_max_connections_per_source", core.tcpMaxPerSource, 1, 1000000);
    u("tcp_first_message_ms", core.tcpFirstMessageMs, 100, 86400000);
    u("tcp_idle_ms", core.tcpIdleMs, 1000, 604800000);
    u("tcp_message_ms", core.tcpMessageMs, 100, 86400000);
    u("ban_ms", core.banMs, 1000, 86400000);
    u("dns_timeout_s", core.dnsTimeoutS, 1, 30);
    u("dns_attempts", core.dnsAttempts, 1, 5);
    u("stop_timeout_ms", cfg.stopTimeoutMs, 100, 600000);
    uint32_t rate = static_cast<uint32_t>(core.rateLimit), burst = static_cast<uint32_t>(core.rateBurst);
    u("rate_limit", rate, 0, 10000000);
    u("rate_burst", burst, 1, 10000000);
    core.rateLimit = rate;
    core.rateBurst = burst;
    if (rate > 0 && burst < rate && !t.get("rate_burst")) core.rateBurst = 2.0 * rate; // the default follows
    if (auto *v = t.get("trusted_peers")) {
        core.trustedPeers = getStrings(c, *v, "proxy.trusted_peers", true);
        AddressSet check;
        for (size_t i = 0; i < core.trustedPeers.size(); ++i) {
            try {
                check.add(core.trustedPeers[i]);
            } catch (const std::invalid_argument &e) {
                fail(c, *v->as_array()->get(i), fmt::format("proxy.trusted_peers[{}]", i), e.what());
            }
        }
    }
    if (auto *v = t.get("dns_resolv_conf")) {
        core.resolvConf = getString(c, *v, "proxy.dns_resolv_conf");
        if (!core.resolvConf.empty() && core.resolvConf[0] != '/') core.resolvConf = dirOf(c.file) + "/" + core.resolvConf;
    }
}

// admin.listen's host is 127.0.0.0/8, ::1 or localhost.
bool isLoopbackListen(const std::string &listen) {
    std::string host = listen.substr(0, listen.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host == "localhost") return true;
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    in6_addr a6{};
    return inet_pton(AF_INET6, host.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

} // namespace

std::string listenToSofiaUrl(const std::string &listen) {
    auto colon = listen.find(':');
    if (colon == std::string::npos) throw std::invalid_argument("expected transport:address:port, e.g. udp:127.0.0.1:5060");
    std::string transport = listen.substr(0, colon), rest = listen.substr(colon + 1);
    if (transport != "udp" && transport != "tcp")
        throw std::invalid_argument(fmt::format("unknown transport '{}' (udp or tcp)", transport));
    std::string host, port;
    if (!rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
            throw std::invalid_argument("expected [ipv6]:port");
        host = rest.substr(0, close + 1);
        port = rest.substr(close + 2);
    } else {
        auto c2 = rest.rfind(':');
        if (c2 == std::string::npos) throw std::invalid_argument("missing port (transport:address:port)");
        host = rest.substr(0, c2);
        port = rest.substr(c2 + 1);
    }
    if (host.empty()) throw std::invalid_argument("missing address");
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
        std::stoi(port) > 65535)
        throw std::invalid_argument(fmt::format("bad port '{}'", port));
    if (std::stoi(port) == 0) port = "*";
    return fmt::format("sip:{}:{};transport={}", host, port, transport);
}

std::string moduleKey(const std::string &nameOrPath) {
    std::string base = nameOrPath.substr(nameOrPath.rfind('/') == std::string::npos ? 0 : nameOrPath.rfind('/') + 1);
    if (base.size() > 3 && base.compare(base.size() - 3, 3, ".so") == 0) base.resize(base.size() - 3);
    return base;
}

AppConfig loadConfig(const std::string &path) {
    Ctx c{path};
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error &e) {
        const auto &s = e.source();
        throw ConfigError(fmt::format("{}:{}:{}: TOML syntax error: {}", path, s.begin.line, s.begin.column,
                                      e.description()));
    }
    AppConfig cfg;
    cfg.file = path;
    for (const auto &[k, v] : root) {
        std::string key(k.str());
        if (key != "proxy" && key != "admin" && key != "modules" && key != "module")
            failKey(c, k, key, "unknown table (known: proxy, admin, modules, module)");
    }

    if (auto *n = root.get("proxy")) {
        const auto &t = getTable(c, *n, "proxy");
        checkKnown(c, t, "proxy");
        if (auto *v = t.get("listen")) {
            auto list = getStrings(c, *v, "proxy.listen", false);
            cfg.core.listen.clear();
            size_t i = 0;
            for (const auto &l : list) {
                try {
                    cfg.core.listen.push_back(listenToSofiaUrl(l));
                } catch (const std::invalid_argument &e) {
                    fail(c, *v->as_array()->get(i), fmt::format("proxy.listen[{}]", i), fmt::format("'{}': {}", l, e.what()));
                }
                ++i;
            }
        }
        if (auto *v = t.get("domains")) cfg.core.domains = getStrings(c, *v, "proxy.domains", true);
        if (auto *v = t.get("database")) {
            cfg.core.database = getString(c, *v, "proxy.database");
            if (cfg.core.database.empty()) fail(c, *v, "proxy.database", "must not be empty");
        }
        if (auto *v = t.get("record_route")) cfg.core.recordRoute = getBool(c, *v, "proxy.record_route");
        if (auto *v = t.get("log_level")) {
            auto s = getString(c, *v, "proxy.log_level");
            auto l = parseLogLevel(s);
            if (!l) fail(c, *v, "proxy.log_level", fmt::format("'{}' is not one of error, warn, info, debug", s));
            cfg.logLevel = *l;
        }
        if (auto *v = t.get("module_dir")) cfg.moduleDir = getString(c, *v, "proxy.module_dir");
        if (auto *v = t.get("instance")) cfg.core.instance = getString(c, *v, "proxy.instance");
        if (auto *v = t.get("max_forwards")) cfg.core.maxForwards = getUint(c, *v, "proxy.max_forwards", 1, 255);
        if (auto *v = t.get("t1_ms")) cfg.core.t1Ms = getUint(c, *v, "proxy.t1_ms", 10, 60000);
        if (auto *v = t.get("t2_ms")) cfg.core.t2Ms = getUint(c, *v, "proxy.t2_ms", 10, 600000);
        if (auto *v = t.get("t4_ms")) cfg.core.t4Ms = getUint(c, *v, "proxy.t4_ms", 10, 600000);
        if (auto *v = t.get("sub_min_expires")) cfg.core.subMinExpires = getUint(c, *v, "proxy.sub_min_expires", 1, 86400);
        if (auto *v = t.get("sub_max_expires")) cfg.core.subMaxExpires = getUint(c, *v, "proxy.sub_max_expires", 1, 604800);
        readLimits(c, t, cfg);
        if (cfg.core.t2Ms < cfg.core.t1Ms) fail(c, *n, "proxy.t2_ms", "must not be smaller than proxy.t1_ms");
        if (cfg.core.subMaxExpires < cfg.core.subMinExpires)
            fail(c, *n, "proxy.sub_max_expires", "must not be smaller than proxy.sub_min_expires");
    }
    cfg.core.configDir = dirOf(path);
    // Relative database paths follow the config file, so a config works from any working directory.
    if (!cfg.core.database.empty() && cfg.core.database[0] != '/' && cfg.core.database != ":memory:")
        cfg.core.database = dirOf(path) + "/" + cfg.core.database;
    if (!cfg.moduleDir.empty() && cfg.moduleDir[0] != '/') cfg.moduleDir = dirOf(path) + "/" + cfg.moduleDir;

    if (auto *n = root.get("admin")) {
        const auto &t = getTable(c, *n, "admin");
        checkKnown(c, t, "admin");
        cfg.adminEnabled = true;
        cfg.admin.token.clear();
        if (auto *v = t.get("enabled")) cfg.adminEnabled = getBool(c, *v, "admin.enabled");
        if (auto *v = t.get("listen")) {
            cfg.admin.listen = getString(c, *v, "admin.listen");
            auto colon = cfg.admin.listen.rfind(':');
            std::string port = colon == std::string::npos ? "" : cfg.admin.listen.substr(colon + 1);
            if (colon == std::string::npos || colon == 0 || port.empty() ||
                port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
                std::stoi(port) > 65535)
                fail(c, *v, "admin.listen", fmt::format("'{}' is not host:port", cfg.admin.listen));
        }
        if (auto *v = t.get("token")) cfg.admin.token = getString(c, *v, "admin.token");
        if (auto *v = t.get("require_token")) cfg.admin.requireToken = getBool(c, *v, "admin.require_token");
        if (auto *v = t.get("metrics_require_token"))
            cfg.admin.metricsRequireToken = getBool(c, *v, "admin.metrics_require_token");
        if (auto *v = t.get("max_connections"))
            cfg.admin.maxConnections = getUint(c, *v, "admin.max_connections", 1, 10000);
        if (auto *v = t.get("max_body_bytes"))
            cfg.admin.maxBodyBytes = getUint(c, *v, "admin.max_body_bytes", 1024, 256 << 20);
        if (auto *v = t.get("max_json_depth")) cfg.admin.maxJsonDepth = getUint(c, *v, "admin.max_json_depth", 1, 1000);
        if (auto *v = t.get("max_header_bytes"))
            cfg.admin.maxHeaderBytes = getUint(c, *v, "admin.max_header_bytes", 256, 1 << 20);
        if (auto *v = t.get("header_timeout_ms"))
            cfg.admin.headerTimeoutMs = getUint(c, *v, "admin.header_timeout_ms", 100, 3600000);
        if (auto *v = t.get("idle_timeout_ms"))
            cfg.admin.idleTimeoutMs = getUint(c, *v, "admin.idle_timeout_ms", 100, 86400000);
        if (cfg.adminEnabled && cfg.admin.requireToken && cfg.admin.token.empty())
            fail(c, *n, "admin.token", "must be set when admin.require_token is true");
        bool loopback = isLoopbackListen(cfg.admin.listen);
        if (cfg.adminEnabled && !cfg.admin.requireToken && !loopback)
            fail(c, *t.get("require_token"), "admin.require_token",
                 "may be false only when admin.listen is a loopback address");
        // A short token can be guessed by whoever reaches the port: off the loopback it must be long.
        if (cfg.adminEnabled && cfg.admin.requireToken && !loopback &&
            cfg.admin.token.size() < kMinRemoteTokenLength)
            fail(c, *t.get("token"), "admin.token",
                 fmt::format("has {} characters; at least {} are needed when admin.listen ('{}') is not a loopback "
                             "address",
                             cfg.admin.token.size(), kMinRemoteTokenLength, cfg.admin.listen));
    }
    cfg.admin.enabled = cfg.adminEnabled;

    if (auto *n = root.get("modules")) {
        const auto &t = getTable(c, *n, "modules");
        checkKnown(c, t, "modules");
        if (auto *v = t.get("load")) {
            cfg.modules = getStrings(c, *v, "modules.load", true);
            std::set<std::string> seen;
            size_t i = 0;
            for (const auto &m : cfg.modules) {
                if (!seen.insert(moduleKey(m)).second)
                    fail(c, *v->as_array()->get(i), fmt::format("modules.load[{}]", i),
                         fmt::format("module '{}' is listed twice", moduleKey(m)));
                ++i;
            }
        }
    }
    if (auto *n = root.get("module")) {
        const auto &t = getTable(c, *n, "module");
        for (const auto &[k, v] : t) {
            std::string name(k.str());
            bool loaded = false;
            for (const auto &m : cfg.modules) loaded |= moduleKey(m) == name;
            if (!loaded)
                failKey(c, k, "module." + name, fmt::format("module '{}' is not in modules.load", name));
            const auto &pt = getTable(c, v, "module." + name);
            for (const auto &[pk, pv] : pt) {
                std::string key = fmt::format("module.{}.{}", name, pk.str());
                cfg.moduleParams[name][std::string(pk.str())] = paramText(c, pv, key);
                const auto &ks = pk.source();
                cfg.paramWhere[name][std::string(pk.str())] =
                    ks.begin.line ? fmt::format("{}:{}:{}", c.file, ks.begin.line, ks.begin.column) : c.file;
            }
        }
    }
    return cfg;
}

std::string dumpCoreConfig() {
    std::string out = "# Parkway configuration (TOML). Every key is shown with its default.\n";
    std::string table;
    for (const auto &d : kKeys) {
        if (table != d.table) {
            table = d.table;
            out += fmt::format("\n[{}]\n", table);
        }
        out += fmt::format("# {}\n{} = {}\n", d.help, d.key, d.value);
    }
    return out;
}

} // namespace parkway::proxy
