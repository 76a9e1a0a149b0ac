#include "config.hh"
#include "core/address_set.hh"
#include "core/digest.hh"
#include "core/sip_trace.hh"
#include "core/tls.hh"

#include <sofia-sip/su_alloc.h>
#include <sofia-sip/url.h>
#include <toml++/toml.h>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdlib>
#include <functional>
#include <set>
#include <strings.h>
#include <unistd.h>

namespace parkway::proxy {
namespace {

struct Ctx {
    std::string file;
};

std::string where(const Ctx &c, const toml::node &n) {
    const auto &s = n.source();
    if (s.begin.line == 0)
        return c.file;
    return fmt::format("{}:{}:{}", c.file, s.begin.line, s.begin.column);
}

[[noreturn]] void fail(const Ctx &c, const toml::node &n, const std::string &key, const std::string &why) {
    throw ConfigError(fmt::format("{}: {}: {}", where(c, n), key, why));
}

// Errors about a key itself (unknown key/table) point at the key, not its value.
[[noreturn]] void failKey(const Ctx &c, const toml::key &k, const std::string &key, const std::string &why) {
    const auto &s = k.source();
    if (s.begin.line == 0)
        throw ConfigError(fmt::format("{}: {}: {}", c.file, key, why));
    throw ConfigError(fmt::format("{}:{}:{}: {}: {}", c.file, s.begin.line, s.begin.column, key, why));
}

const char *typeName(const toml::node &n) {
    switch (n.type()) {
    case toml::node_type::string:
        return "a string";
    case toml::node_type::integer:
        return "an integer";
    case toml::node_type::floating_point:
        return "a float";
    case toml::node_type::boolean:
        return "a boolean";
    case toml::node_type::array:
        return "an array";
    case toml::node_type::table:
        return "a table";
    default:
        return "a date/time";
    }
}

std::string getString(const Ctx &c, const toml::node &n, const std::string &key) {
    if (auto v = n.value<std::string>(); v && n.is_string())
        return *v;
    fail(c, n, key, fmt::format("expected a string, got {}", typeName(n)));
}

bool getBool(const Ctx &c, const toml::node &n, const std::string &key) {
    if (n.is_boolean())
        return *n.value<bool>();
    fail(c, n, key, fmt::format("expected true or false, got {}", typeName(n)));
}

uint32_t getUint(const Ctx &c, const toml::node &n, const std::string &key, int64_t min, int64_t max) {
    if (!n.is_integer())
        fail(c, n, key, fmt::format("expected an integer, got {}", typeName(n)));
    int64_t v = *n.value<int64_t>();
    if (v < min || v > max)
        fail(c, n, key, fmt::format("{} is out of range [{}, {}]", v, min, max));
    return static_cast<uint32_t>(v);
}

std::vector<std::string> getStrings(const Ctx &c, const toml::node &n, const std::string &key, bool allowEmpty) {
    if (!n.is_array())
        fail(c, n, key, fmt::format("expected an array of strings, got {}", typeName(n)));
    std::vector<std::string> out;
    size_t i = 0;
    for (const auto &e : *n.as_array()) {
        std::string k = fmt::format("{}[{}]", key, i++);
        out.push_back(getString(c, e, k));
        if (out.back().empty())
            fail(c, e, k, "must not be empty");
    }
    if (out.empty() && !allowEmpty)
        fail(c, n, key, "must not be empty");
    return out;
}

const toml::table &getTable(const Ctx &c, const toml::node &n, const std::string &key) {
    if (!n.is_table())
        fail(c, n, key, fmt::format("expected a table, got {}", typeName(n)));
    return *n.as_table();
}

// Core keys, in documentation order. The same list drives validation of unknown keys and --dump-config.
struct KeyDoc {
    const char *table, *key, *value, *help;
};
const KeyDoc kKeys[] = {
    {"proxy", "listen", R"(["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"])",
     "SIP listeners, transport:address:port (udp, tcp or tls; IPv6 as [::1]; port 0 = ephemeral). The first "
     "udp/tcp one is used in Record-Route and Contact; requests over TLS get the first tls one (\"tls:0.0.0.0:5061\" "
     "needs tls_certificate and tls_private_key)"},
    {"proxy", "domains", R"(["127.0.0.1"])",
     "local domains: requests to them are routed to registered contacts. SIGHUP / POST /api/reload re-read them "
     "(refused while a removed domain holds parked calls); domains a module serves (tenants provisioned with PUT "
     "/api/domains/{d}) are local without being listed"},
    {"proxy", "database", R"("parkway.db")",
     "SQLite file shared by modules (relative paths are relative to this config file's folder)"},
    {"proxy", "record_route", "true", "add Record-Route so in-dialog requests (BYE, REFER, NOTIFY) pass through us"},
    {"proxy", "huge_page_heap", "true",
     "ask the kernel for transparent huge pages as the heap grows (fewer page faults per call under load; costs at "
     "most a few MiB; docs/limits.md \"Memory\")"},
    {"proxy", "log_level", R"("info")",
     "error | warn | info | debug (debug also shows sofia-sip's log); SIGHUP re-reads it"},
    {"proxy", "module_dir", R"("")",
     "where bare module names are looked up; empty = the build tree's modules for the build tree's binary, "
     "else lib/parkway/modules beside the executable (docs/install.md)"},
    {"proxy", "instance", R"("parkway")", "a name for this node (used by modules, e.g. in events)"},
    {"proxy", "max_forwards", "70", "Max-Forwards inserted when a request has none (RFC 3261 §16.6 step 3)"},
    {"proxy", "t1_ms", "500", "SIP timer T1 in milliseconds (RFC 3261 §17)"},
    {"proxy", "t2_ms", "4000", "SIP timer T2 in milliseconds"},
    {"proxy", "t4_ms", "5000", "SIP timer T4 in milliseconds"},
    {"proxy", "sub_min_expires", "60", "smallest SUBSCRIBE Expires accepted (RFC 6665)"},
    {"proxy", "sub_max_expires", "3600", "largest SUBSCRIBE Expires granted"},
    {"proxy", "outbound_proxy", R"("")",
     "SIP URI, e.g. \"sip:kamailio.example;lr\": the next hop of requests modules originate out of a dialog "
     "(recall INVITEs, park-info NOTIFYs) when they name none; with ;lr it is also put in a Route header (RFC 3261 "
     "§8.1.2). Empty = none (docs/routing.md)"},
    {"proxy", "outbound_proxy_by_domain", "{}",
     "per-domain outbound_proxy, e.g. { \"pbx.example\" = \"sip:edge.example;lr\" }: used when the Request-URI's "
     "domain (else the From's) is listed; \"\" = no outbound proxy for that domain"},
    {"proxy", "max_message_bytes", "65536", "largest SIP message taken in (UDP: 413; TCP: connection closed)"},
    {"proxy", "max_transactions", "10000", "requests in progress at once; beyond, new requests get 503 + Retry-After"},
    {"proxy", "max_dns_pending", "200", "forwarded requests waiting on DNS at once; beyond, 503 + Retry-After"},
    {"proxy", "retry_after_s", "5", "Retry-After (seconds) on the core's 503 answers"},
    {"proxy", "overload_queue_ms", "200",
     "how far behind (ms) the SIP thread may fall (smoothed delay between a request's arrival and its handling) "
     "before new requests get 503 + Retry-After; in-dialog requests, ACK, CANCEL and BYE are always served. 0 = "
     "never refuse (docs/limits.md \"Overload\")"},
    {"proxy", "overload_soft_ms", "100",
     "from this delay (ms, below overload_queue_ms) clients that support RFC 7339 (Via ;oc) are asked to send "
     "less, in proportion; the 503s stop once the delay is back under it"},
    {"proxy", "overload_retry_after_s", "1", "Retry-After (seconds) on the 503 answers of the overload gate"},
    {"proxy", "overload_control", "true",
     "RFC 7339: put oc, oc-algo=\"loss\", oc-validity and oc-seq in the Via of responses to clients whose Via "
     "has ;oc"},
    {"proxy", "tcp_max_connections", "1024", "SIP TCP connections at once (further ones are refused)"},
    {"proxy", "tcp_max_connections_per_source", "32", "SIP TCP connections per source address (trusted peers exempt)"},
    {"proxy", "tcp_first_message_ms", "10000", "a new TCP connection must deliver a whole SIP message within this"},
    {"proxy", "tcp_idle_ms", "3600000", "a TCP connection that carried no SIP message for this long is closed"},
    {"proxy", "tcp_message_ms", "10000", "an incomplete message whose next byte does not come within this is dropped"},
    {"proxy", "rate_limit", "500", "requests per second per source address before a ban (0 = no rate limit)"},
    {"proxy", "rate_burst", "1000", "requests a source may send at once (token bucket size)"},
    {"proxy", "ban_ms", "60000", "how long a source over the rate is ignored (datagrams dropped, connections refused)"},
    {"proxy", "trusted_peers", "[]",
     "addresses or networks (\"10.0.0.0/8\", \"::1\") exempt from rate limits and "
     "per-source caps, e.g. a front proxy"},
    {"proxy", "dns_resolv_conf", R"("")", "resolv.conf the DNS resolver reads; empty = /etc/resolv.conf"},
    {"proxy", "dns_timeout_s", "2", "seconds before a DNS query is retried"},
    {"proxy", "dns_attempts", "2", "tries per DNS server before the next one"},
    {"proxy", "stop_timeout_ms", "5000", "on SIGTERM/SIGINT, exit anyway after this long if the SIP loop is stuck"},
    {"proxy", "sip_trace", R"("")",
     "record every SIP message sent and received: \"pcap:FILE\" or \"text:FILE\" (relative to this config file; "
     "mode 0600: traces hold bodies and Authorization headers), \"\" = off; also GET/PUT/DELETE /api/trace "
     "(docs/replay.md)"},
    {"proxy", "sip_trace_max_bytes", "104857600",
     "the trace file is rotated (FILE -> FILE.1 -> FILE.2 ...) before the record that would make it larger"},
    {"proxy", "sip_trace_files", "5", "rotated trace files kept (FILE.1 .. FILE.N; 0 = none)"},
    {"proxy", "tls_certificate", R"("")",
     "PEM certificate of the tls: listeners (relative to this config file); intermediates go in tls_ca_file"},
    {"proxy", "tls_private_key", R"("")", "PEM private key of tls_certificate (unencrypted, keep it mode 0600)"},
    {"proxy", "tls_ca_file", R"("")",
     "PEM CAs that TLS peers are verified against; empty = the system's CA bundle (outgoing only)"},
    {"proxy", "tls_verify_client", R"("none")",
     "none | require: require = a TLS client must present a certificate signed by tls_ca_file, else the "
     "handshake fails (sofia-sip has no optional mode)"},
    {"proxy", "tls_verify_server", "true",
     "outgoing TLS: the server's certificate must chain to tls_ca_file (or the system CAs) and name the host "
     "(subjectAltName DNS or CN)"},
    {"admin", "enabled", "true", "serve the admin HTTP API (only when an [admin] table is present)"},
    {"admin", "listen", R"("127.0.0.1:8089")", "admin HTTP API address host:port (port 0 = ephemeral)"},
    {"admin", "token", R"("change-me")", "bearer token for the admin API"},
    {"admin", "require_token", "true", "false is allowed only on a loopback listen address"},
    {"admin", "metrics_require_token", "true", "false lets Prometheus scrape /metrics without the bearer token"},
    {"admin", "console", "true",
     "serve the operator console (static files, no data) under /ui/; its data requests need the token"},
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
    {"admin", "tls_certificate", R"("")",
     "PEM certificate chain: with tls_private_key the admin API is served over HTTPS only (TLS 1.2 or later; "
     "relative to this config file)"},
    {"admin", "tls_private_key", R"("")", "PEM private key of admin.tls_certificate (unencrypted, keep it mode 0600)"},
    {"admin", "tls_ca_file", R"("")",
     "PEM CAs: when set, an admin client must present a certificate they signed (mutual TLS)"},
    {"admin", "allow_plaintext", "false",
     "true lets the admin API speak plain HTTP on a listen address that is not loopback (token in the clear)"},
    {"auth", "users_file", R"("")",
     "TOML file of SIP users ([[user]] domain, name, password or ha1_sha256/ha1_md5, register_for), applied at "
     "start and on reload (added or replaced); more with parkctl users set (docs/auth.md)"},
    {"auth", "secret", R"("")",
     "key of the digest nonces (HMAC-SHA-256); empty = a random one kept in the database. Give every node of a "
     "cluster the same one"},
    {"auth", "nonce_ttl_s", "300", "a nonce older than this is answered with a new challenge and stale=true"},
    {"auth", "unauthenticated_domains", "[]",
     "local domains whose users are NOT challenged (their From is believed): only with loopback listeners, or "
     "with allow_unauthenticated"},
    {"auth", "allow_unauthenticated", "false",
     "true permits unauthenticated_domains with a listener that is not a loopback address"},
    {"auth", "md5_off_domains", "[]", "local domains that offer and accept SHA-256 digest only (RFC 8760)"},
    {"auth", "max_failures", "10",
     "failed authentications from one address within failure_window_s that ban it for proxy.ban_ms (0 = never)"},
    {"auth", "failure_window_s", "60", "window of auth.max_failures, in seconds"},
    {"modules", "load", R"(["registrar", "router"])",
     "modules in call order: a name (looked up in module_dir as <name>.so) or a path to a .so"},
};

void checkKnown(const Ctx &c, const toml::table &t, const char *table) {
    for (const auto &[k, v] : t) {
        bool known = false;
        std::string names;
        for (const auto &d : kKeys) {
            if (std::string(d.table) != table)
                continue;
            if (k.str() == d.key)
                known = true;
            names += (names.empty() ? "" : ", ") + std::string(d.key);
        }
        (void)v;
        if (!known)
            failKey(c, k, fmt::format("{}.{}", table, k.str()), fmt::format("unknown key (known: {})", names));
    }
}

std::string dirOf(const std::string &path) {
    auto slash = path.rfind('/');
    if (slash == std::string::npos)
        return ".";
    return slash == 0 ? "/" : path.substr(0, slash);
}

// A TOML value as the loader's textual parameter.
std::string paramText(const Ctx &c, const toml::node &n, const std::string &key) {
    switch (n.type()) {
    case toml::node_type::string:
        return *n.value<std::string>();
    case toml::node_type::integer:
        return std::to_string(*n.value<int64_t>());
    case toml::node_type::boolean:
        return *n.value<bool>() ? "true" : "false";
    case toml::node_type::floating_point:
        return fmt::format("{}", *n.value<double>());
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
    default:
        fail(c, n, key, fmt::format("unsupported value type ({})", typeName(n)));
    }
}

// [proxy] overload_* (docs/limits.md "Overload", proxy/core/overload.hh).
void readOverload(const Ctx &c, const toml::table &t, CoreConfig &core) {
    if (auto *v = t.get("overload_queue_ms")) {
        core.overloadQueueMs = getUint(c, *v, "proxy.overload_queue_ms", 0, 60000);
        if (core.overloadQueueMs && core.overloadQueueMs < 2)
            fail(c, *v, "proxy.overload_queue_ms", "must be 0 (off) or at least 2 ms");
        if (!t.get("overload_soft_ms"))
            core.overloadSoftMs = core.overloadQueueMs / 2; // the default follows
    }
    if (auto *v = t.get("overload_soft_ms")) {
        core.overloadSoftMs = getUint(c, *v, "proxy.overload_soft_ms", 1, 60000);
        if (core.overloadQueueMs && core.overloadSoftMs >= core.overloadQueueMs)
            fail(c, *v, "proxy.overload_soft_ms",
                 fmt::format("{} must be below proxy.overload_queue_ms ({}): the 503s stop under it",
                             core.overloadSoftMs, core.overloadQueueMs));
    }
    if (auto *v = t.get("overload_retry_after_s"))
        core.overloadRetryAfterS = getUint(c, *v, "proxy.overload_retry_after_s", 1, 86400);
    if (auto *v = t.get("overload_control"))
        core.overloadControl = getBool(c, *v, "proxy.overload_control");
}

// [proxy] limits (docs/limits.md).
void readLimits(const Ctx &c, const toml::table &t, AppConfig &cfg) {
    CoreConfig &core = cfg.core;
    auto u = [&](const char *key, uint32_t &out, int64_t min, int64_t max) {
        if (auto *v = t.get(key))
            out = getUint(c, *v, fmt::format("proxy.{}", key), min, max);
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
    readOverload(c, t, core);
    uint32_t rate = static_cast<uint32_t>(core.rateLimit), burst = static_cast<uint32_t>(core.rateBurst);
    u("rate_limit", rate, 0, 10000000);
    u("rate_burst", burst, 1, 10000000);
    core.rateLimit = rate;
    core.rateBurst = burst;
    if (rate > 0 && burst < rate && !t.get("rate_burst"))
        core.rateBurst = 2.0 * rate; // the default follows
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
        if (!core.resolvConf.empty() && core.resolvConf[0] != '/')
            core.resolvConf = dirOf(c.file) + "/" + core.resolvConf;
    }
}

// [proxy] sip_trace, sip_trace_max_bytes, sip_trace_files (proxy/core/sip_trace.hh).
void readTrace(const Ctx &c, const toml::table &t, CoreConfig &core) {
    if (auto *v = t.get("sip_trace")) {
        core.sipTrace = getString(c, *v, "proxy.sip_trace");
        bool known = core.sipTrace.rfind("pcap:", 0) == 0 || core.sipTrace.rfind("text:", 0) == 0;
        if (known && core.sipTrace.size() > 5 && core.sipTrace[5] != '/') { // relative to the config file
            std::string dir = dirOf(c.file);
            if (dir[0] != '/')
                if (char *cwd = getcwd(nullptr, 0)) {
                    dir = std::string(cwd) + (dir == "." ? "" : "/" + dir);
                    free(cwd);
                }
            core.sipTrace = core.sipTrace.substr(0, 5) + dir + "/" + core.sipTrace.substr(5);
        }
        if (std::string why = checkTraceTarget(core.sipTrace); !why.empty())
            fail(c, *v, "proxy.sip_trace", why);
    }
    if (auto *v = t.get("sip_trace_max_bytes")) {
        if (!v->is_integer())
            fail(c, *v, "proxy.sip_trace_max_bytes", fmt::format("expected an integer, got {}", typeName(*v)));
        int64_t n = *v->value<int64_t>();
        if (n < static_cast<int64_t>(kTraceMinBytes) || n > static_cast<int64_t>(kTraceMaxBytes))
            fail(c, *v, "proxy.sip_trace_max_bytes",
                 fmt::format("{} is out of range [{}, {}]", n, kTraceMinBytes, kTraceMaxBytes));
        core.sipTraceMaxBytes = static_cast<uint64_t>(n);
    }
    if (auto *v = t.get("sip_trace_files"))
        core.sipTraceFiles = getUint(c, *v, "proxy.sip_trace_files", 0, kTraceMaxFiles);
}

// A sip:/sips: URI with a host (sofia's parser, as the host uses it to send): "" when fine, else the reason.
std::string checkSipUri(const std::string &uri) {
    auto *home = static_cast<su_home_t *>(su_home_new(sizeof(su_home_t)));
    url_t *u = home ? url_make(home, uri.c_str()) : nullptr;
    bool ok = u && (u->url_type == url_sip || u->url_type == url_sips) && u->url_host && *u->url_host;
    su_home_unref(home);
    return ok ? "" : fmt::format("'{}' is not a SIP URI (expected e.g. \"sip:proxy.example;lr\")", uri);
}

// [proxy] outbound_proxy and outbound_proxy_by_domain (docs/routing.md).
void readOutboundProxy(const Ctx &c, const toml::table &t, CoreConfig &core) {
    if (auto *v = t.get("outbound_proxy")) {
        core.outboundProxy = getString(c, *v, "proxy.outbound_proxy");
        if (!core.outboundProxy.empty())
            if (std::string why = checkSipUri(core.outboundProxy); !why.empty())
                fail(c, *v, "proxy.outbound_proxy", why);
    }
    if (auto *v = t.get("outbound_proxy_by_domain")) {
        for (const auto &[k, uv] : getTable(c, *v, "proxy.outbound_proxy_by_domain")) {
            std::string key = fmt::format("proxy.outbound_proxy_by_domain.\"{}\"", k.str());
            std::string uri = getString(c, uv, key);
            if (!uri.empty())
                if (std::string why = checkSipUri(uri); !why.empty())
                    fail(c, uv, key, why);
            std::string domain(k.str());
            for (auto &ch : domain)
                ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
            core.outboundProxyByDomain[domain] = uri;
        }
    }
}

// [proxy] tls_* (RFC 3261 §26.2): files are checked now, so a bad certificate is a config error, not a start failure.
void readTls(const Ctx &c, const toml::table &t, AppConfig &cfg) {
    CoreConfig &core = cfg.core;
    auto file = [&](const char *key, std::string &out) {
        if (auto *v = t.get(key)) {
            out = getString(c, *v, fmt::format("proxy.{}", key));
            if (!out.empty() && out[0] != '/')
                out = dirOf(c.file) + "/" + out;
        }
    };
    file("tls_certificate", core.tlsCertificate);
    file("tls_private_key", core.tlsPrivateKey);
    file("tls_ca_file", core.tlsCaFile);
    if (auto *v = t.get("tls_verify_client")) {
        auto s = getString(c, *v, "proxy.tls_verify_client");
        if (s != "none" && s != "require")
            fail(c, *v, "proxy.tls_verify_client",
                 fmt::format("'{}' is not one of none, require (sofia-sip cannot ask for an optional client "
                             "certificate)",
                             s));
        core.tlsVerifyClient = s == "require";
    }
    if (auto *v = t.get("tls_verify_server"))
        core.tlsVerifyServer = getBool(c, *v, "proxy.tls_verify_server");
    bool tlsListener = false;
    for (const auto &l : core.listen)
        tlsListener |= isTlsListenUrl(l);
    const toml::node &here = t.get("listen") ? *t.get("listen") : static_cast<const toml::node &>(t);
    auto at = [&](const char *key) -> const toml::node & { return t.get(key) ? *t.get(key) : here; };
    if (tlsListener && core.tlsCertificate.empty())
        fail(c, here, "proxy.tls_certificate", "must be set when proxy.listen has a tls: listener");
    if (tlsListener && core.tlsPrivateKey.empty())
        fail(c, here, "proxy.tls_private_key", "must be set when proxy.listen has a tls: listener");
    if (!core.tlsCertificate.empty() && core.tlsPrivateKey.empty())
        fail(c, at("tls_certificate"), "proxy.tls_private_key", "must be set with proxy.tls_certificate");
    if (core.tlsCertificate.empty() && !core.tlsPrivateKey.empty())
        fail(c, at("tls_private_key"), "proxy.tls_certificate", "must be set with proxy.tls_private_key");
    if (core.tlsVerifyClient && core.tlsCaFile.empty())
        fail(c, at("tls_verify_client"), "proxy.tls_ca_file",
             "must be set when proxy.tls_verify_client = \"require\" (the CAs that sign client certificates)");
    std::string err = checkTlsFiles(core.tlsCertificate, core.tlsPrivateKey, core.tlsCaFile);
    if (!err.empty()) {
        std::string key = err.substr(0, err.find(':'));
        fail(c, at(key.c_str()), "proxy." + key, err.substr(key.size() + 2));
    }
}

// ---- [auth] (docs/auth.md)

bool localDomain(const CoreConfig &core, const std::string &d) {
    for (const auto &x : core.domains)
        if (!strcasecmp(x.c_str(), d.c_str()))
            return true;
    return false;
}

// Host of a sofia listen URL ("sip:127.0.0.1:5060;transport=udp", "sips:[::1]:5061").
std::string listenHost(const std::string &url) {
    std::string rest = url.substr(url.find(':') + 1);
    if (!rest.empty() && rest[0] == '[')
        return rest.substr(1, rest.find(']') - 1);
    return rest.substr(0, rest.find(':'));
}

// An IP literal in 127.0.0.0/8 or ::1.
bool loopbackHost(const std::string &host) {
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    in6_addr a6{};
    return inet_pton(AF_INET6, host.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

std::vector<std::string> localDomains(const Ctx &c, const toml::table &t, const CoreConfig &core, const char *key) {
    std::vector<std::string> out;
    if (auto *v = t.get(key)) {
        out = getStrings(c, *v, fmt::format("auth.{}", key), true);
        for (size_t i = 0; i < out.size(); ++i)
            if (!localDomain(core, out[i]))
                fail(c, *v->as_array()->get(i), fmt::format("auth.{}[{}]", key, i),
                     fmt::format("'{}' is not in proxy.domains", out[i]));
    }
    return out;
}

UserEntry readUser(const Ctx &c, const toml::table &u, const CoreConfig &core, size_t i) {
    std::string at = fmt::format("user[{}]", i);
    for (const auto &[k, v] : u) {
        std::string key(k.str());
        if (key != "domain" && key != "name" && key != "password" && key != "ha1_sha256" && key != "ha1_md5" &&
            key != "register_for")
            failKey(c, k, at + "." + key,
                    "unknown key (known: domain, name, password, ha1_sha256, ha1_md5, register_for)");
    }
    auto need = [&](const char *key) -> const toml::node & {
        if (!u.get(key))
            fail(c, u, at + "." + key, "is required");
        return *u.get(key);
    };
    UserEntry e;
    e.domain = getString(c, need("domain"), at + ".domain");
    if (!localDomain(core, e.domain))
        fail(c, need("domain"), at + ".domain", fmt::format("'{}' is not in proxy.domains", e.domain));
    for (auto &ch : e.domain)
        ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
    e.user = getString(c, need("name"), at + ".name");
    if (e.user.empty() || e.user.find_first_of(" \t\"@:<>") != std::string::npos)
        fail(c, need("name"), at + ".name", "must be a SIP user part");
    if (auto *v = u.get("password")) {
        std::string pw = getString(c, *v, at + ".password");
        if (pw.size() < 8)
            fail(c, *v, at + ".password", "must have at least 8 characters");
        e.ha1Sha256 = digest::ha1(digest::Algorithm::Sha256, e.user, e.domain, pw);
        e.ha1Md5 = digest::ha1(digest::Algorithm::Md5, e.user, e.domain, pw);
    }
    if (auto *v = u.get("ha1_sha256"))
        e.ha1Sha256 = getString(c, *v, at + ".ha1_sha256");
    if (auto *v = u.get("ha1_md5"))
        e.ha1Md5 = getString(c, *v, at + ".ha1_md5");
    if (!e.ha1Sha256.empty() && !digest::validHa1(digest::Algorithm::Sha256, e.ha1Sha256))
        fail(c, u, at + ".ha1_sha256", "must be 64 hex digits");
    if (!e.ha1Md5.empty() && !digest::validHa1(digest::Algorithm::Md5, e.ha1Md5))
        fail(c, u, at + ".ha1_md5", "must be 32 hex digits");
    if (e.ha1Sha256.empty() && e.ha1Md5.empty())
        fail(c, u, at + ".password", "password, ha1_sha256 or ha1_md5 is required");
    if (auto *v = u.get("register_for"))
        e.registerFor = getStrings(c, *v, at + ".register_for", true);
    return e;
}

std::vector<UserEntry> readUsersFile(const std::string &path, const CoreConfig &core) {
    Ctx c{path};
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error &e) {
        const auto &s = e.source();
        throw ConfigError(fmt::format("{}:{}:{}: {}", path, s.begin.line, s.begin.column, e.description()));
    }
    std::vector<UserEntry> out;
    for (const auto &[k, v] : root)
        if (k.str() != "user")
            failKey(c, k, std::string(k.str()), "unknown key (a users file holds [[user]] tables)");
    if (auto *n = root.get("user")) {
        if (!n->is_array_of_tables())
            fail(c, *n, "user", "expected [[user]] tables");
        size_t i = 0;
        for (const auto &u : *n->as_array())
            out.push_back(readUser(c, *u.as_table(), core, i++));
    }
    return out;
}

void readAuth(const Ctx &c, const toml::table &root, AppConfig &cfg) {
    AuthConfig &a = cfg.core.auth;
    bool allow = false;
    const toml::node *unauth = nullptr;
    if (auto *n = root.get("auth")) {
        const auto &t = getTable(c, *n, "auth");
        checkKnown(c, t, "auth");
        if (auto *v = t.get("secret"))
            a.secret = getString(c, *v, "auth.secret");
        if (!a.secret.empty() && a.secret.size() < 16)
            fail(c, *t.get("secret"), "auth.secret", "must have at least 16 characters");
        if (auto *v = t.get("nonce_ttl_s"))
            a.nonceTtlS = getUint(c, *v, "auth.nonce_ttl_s", 10, 86400);
        if (auto *v = t.get("max_failures"))
            a.maxFailures = getUint(c, *v, "auth.max_failures", 0, 1000000);
        if (auto *v = t.get("failure_window_s"))
            a.failureWindowS = getUint(c, *v, "auth.failure_window_s", 1, 86400);
        if (auto *v = t.get("allow_unauthenticated"))
            allow = getBool(c, *v, "auth.allow_unauthenticated");
        a.unauthenticatedDomains = localDomains(c, t, cfg.core, "unauthenticated_domains");
        unauth = t.get("unauthenticated_domains");
        a.md5OffDomains = localDomains(c, t, cfg.core, "md5_off_domains");
        if (auto *v = t.get("users_file")) {
            std::string f = getString(c, *v, "auth.users_file");
            if (!f.empty() && f[0] != '/')
                f = dirOf(c.file) + "/" + f;
            if (!f.empty())
                a.users = readUsersFile(f, cfg.core);
        }
    }
    if (a.unauthenticatedDomains.empty() || allow)
        return;
    for (const auto &l : cfg.core.listen)
        if (!loopbackHost(listenHost(l)))
            fail(c, *unauth, "auth.unauthenticated_domains",
                 fmt::format("domains without authentication need loopback listeners (proxy.listen has '{}'); set "
                             "auth.allow_unauthenticated = true to run them anyway",
                             l));
}

// admin.listen's host is 127.0.0.0/8, ::1 or localhost.
bool isLoopbackListen(const std::string &listen) {
    std::string host = listen.substr(0, listen.rfind(':'));
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    return host == "localhost" || loopbackHost(host);
}

} // namespace

std::string listenToSofiaUrl(const std::string &listen) {
    auto colon = listen.find(':');
    if (colon == std::string::npos)
        throw std::invalid_argument("expected transport:address:port, e.g. udp:127.0.0.1:5060");
    std::string transport = listen.substr(0, colon), rest = listen.substr(colon + 1);
    if (transport != "udp" && transport != "tcp" && transport != "tls")
        throw std::invalid_argument(fmt::format("unknown transport '{}' (udp, tcp or tls)", transport));
    std::string host, port;
    if (!rest.empty() && rest[0] == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
            throw std::invalid_argument("expected [ipv6]:port");
        host = rest.substr(0, close + 1);
        port = rest.substr(close + 2);
    } else {
        auto c2 = rest.rfind(':');
        if (c2 == std::string::npos)
            throw std::invalid_argument("missing port (transport:address:port)");
        host = rest.substr(0, c2);
        port = rest.substr(c2 + 1);
    }
    if (host.empty())
        throw std::invalid_argument("missing address");
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
        std::stoi(port) > 65535)
        throw std::invalid_argument(fmt::format("bad port '{}'", port));
    if (std::stoi(port) == 0)
        port = "*";
    // sofia-sip binds only its TLS transport for a sips: URL (nta.c: tports_sips; RFC 3261 §26.2.2)
    if (transport == "tls")
        return fmt::format("sips:{}:{}", host, port);
    return fmt::format("sip:{}:{};transport={}", host, port, transport);
}

std::string moduleKey(const std::string &nameOrPath) {
    std::string base = nameOrPath.substr(nameOrPath.rfind('/') == std::string::npos ? 0 : nameOrPath.rfind('/') + 1);
    if (base.size() > 3 && base.compare(base.size() - 3, 3, ".so") == 0)
        base.resize(base.size() - 3);
    return base;
}

AppConfig loadConfig(const std::string &path) {
    Ctx c{path};
    toml::table root;
    try {
        root = toml::parse_file(path);
    } catch (const toml::parse_error &e) {
        const auto &s = e.source();
        throw ConfigError(
            fmt::format("{}:{}:{}: TOML syntax error: {}", path, s.begin.line, s.begin.column, e.description()));
    }
    AppConfig cfg;
    cfg.file = path;
    cfg.core.hugePageHeap = true; // the daemon's default (tests that build a CoreConfig leave it off)
    for (const auto &[k, v] : root) {
        std::string key(k.str());
        if (key != "proxy" && key != "admin" && key != "auth" && key != "modules" && key != "module")
            failKey(c, k, key, "unknown table (known: proxy, admin, auth, modules, module)");
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
                    fail(c, *v->as_array()->get(i), fmt::format("proxy.listen[{}]", i),
                         fmt::format("'{}': {}", l, e.what()));
                }
                ++i;
            }
        }
        if (auto *v = t.get("domains"))
            cfg.core.domains = getStrings(c, *v, "proxy.domains", true);
        if (auto *v = t.get("database")) {
            cfg.core.database = getString(c, *v, "proxy.database");
            if (cfg.core.database.empty())
                fail(c, *v, "proxy.database", "must not be empty");
        }
        if (auto *v = t.get("record_route"))
            cfg.core.recordRoute = getBool(c, *v, "proxy.record_route");
        if (auto *v = t.get("huge_page_heap"))
            cfg.core.hugePageHeap = getBool(c, *v, "proxy.huge_page_heap");
        if (auto *v = t.get("log_level")) {
            auto s = getString(c, *v, "proxy.log_level");
            auto l = parseLogLevel(s);
            if (!l)
                fail(c, *v, "proxy.log_level", fmt::format("'{}' is not one of error, warn, info, debug", s));
            cfg.logLevel = *l;
        }
        if (auto *v = t.get("module_dir"))
            cfg.moduleDir = getString(c, *v, "proxy.module_dir");
        if (auto *v = t.get("instance"))
            cfg.core.instance = getString(c, *v, "proxy.instance");
        if (auto *v = t.get("max_forwards"))
            cfg.core.maxForwards = getUint(c, *v, "proxy.max_forwards", 1, 255);
        if (auto *v = t.get("t1_ms"))
            cfg.core.t1Ms = getUint(c, *v, "proxy.t1_ms", 10, 60000);
        if (auto *v = t.get("t2_ms"))
            cfg.core.t2Ms = getUint(c, *v, "proxy.t2_ms", 10, 600000);
        if (auto *v = t.get("t4_ms"))
            cfg.core.t4Ms = getUint(c, *v, "proxy.t4_ms", 10, 600000);
        if (auto *v = t.get("sub_min_expires"))
            cfg.core.subMinExpires = getUint(c, *v, "proxy.sub_min_expires", 1, 86400);
        if (auto *v = t.get("sub_max_expires"))
            cfg.core.subMaxExpires = getUint(c, *v, "proxy.sub_max_expires", 1, 604800);
        readLimits(c, t, cfg);
        readTls(c, t, cfg);
        readOutboundProxy(c, t, cfg.core);
        readTrace(c, t, cfg.core);
        if (cfg.core.t2Ms < cfg.core.t1Ms)
            fail(c, *n, "proxy.t2_ms", "must not be smaller than proxy.t1_ms");
        if (cfg.core.subMaxExpires < cfg.core.subMinExpires)
            fail(c, *n, "proxy.sub_max_expires", "must not be smaller than proxy.sub_min_expires");
    }
    readAuth(c, root, cfg);
    cfg.core.configDir = dirOf(path);
    // Relative database paths follow the config file, so a config works from any working directory.
    if (!cfg.core.database.empty() && cfg.core.database[0] != '/' && cfg.core.database != ":memory:")
        cfg.core.database = dirOf(path) + "/" + cfg.core.database;
    if (!cfg.moduleDir.empty() && cfg.moduleDir[0] != '/')
        cfg.moduleDir = dirOf(path) + "/" + cfg.moduleDir;

    if (auto *n = root.get("admin")) {
        const auto &t = getTable(c, *n, "admin");
        checkKnown(c, t, "admin");
        cfg.adminEnabled = true;
        cfg.admin.token.clear();
        if (auto *v = t.get("enabled"))
            cfg.adminEnabled = getBool(c, *v, "admin.enabled");
        if (auto *v = t.get("listen")) {
            cfg.admin.listen = getString(c, *v, "admin.listen");
            auto colon = cfg.admin.listen.rfind(':');
            std::string port = colon == std::string::npos ? "" : cfg.admin.listen.substr(colon + 1);
            if (colon == std::string::npos || colon == 0 || port.empty() ||
                port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535)
                fail(c, *v, "admin.listen", fmt::format("'{}' is not host:port", cfg.admin.listen));
        }
        if (auto *v = t.get("token"))
            cfg.admin.token = getString(c, *v, "admin.token");
        if (auto *v = t.get("require_token"))
            cfg.admin.requireToken = getBool(c, *v, "admin.require_token");
        if (auto *v = t.get("metrics_require_token"))
            cfg.admin.metricsRequireToken = getBool(c, *v, "admin.metrics_require_token");
        if (auto *v = t.get("console"))
            cfg.admin.console = getBool(c, *v, "admin.console");
        if (auto *v = t.get("max_connections"))
            cfg.admin.maxConnections = getUint(c, *v, "admin.max_connections", 1, 10000);
        if (auto *v = t.get("max_body_bytes"))
            cfg.admin.maxBodyBytes = getUint(c, *v, "admin.max_body_bytes", 1024, 256 << 20);
        if (auto *v = t.get("max_json_depth"))
            cfg.admin.maxJsonDepth = getUint(c, *v, "admin.max_json_depth", 1, 1000);
        if (auto *v = t.get("max_header_bytes"))
            cfg.admin.maxHeaderBytes = getUint(c, *v, "admin.max_header_bytes", 256, 1 << 20);
        if (auto *v = t.get("header_timeout_ms"))
            cfg.admin.headerTimeoutMs = getUint(c, *v, "admin.header_timeout_ms", 100, 3600000);
        if (auto *v = t.get("idle_timeout_ms"))
            cfg.admin.idleTimeoutMs = getUint(c, *v, "admin.idle_timeout_ms", 100, 86400000);
        auto adminFile = [&](const char *key, std::string &out) {
            if (auto *v = t.get(key)) {
                out = getString(c, *v, fmt::format("admin.{}", key));
                if (!out.empty() && out[0] != '/')
                    out = dirOf(c.file) + "/" + out;
            }
        };
        adminFile("tls_certificate", cfg.admin.tlsCertificate);
        adminFile("tls_private_key", cfg.admin.tlsPrivateKey);
        adminFile("tls_ca_file", cfg.admin.tlsCaFile);
        if (auto *v = t.get("allow_plaintext"))
            cfg.admin.allowPlaintext = getBool(c, *v, "admin.allow_plaintext");
        if (cfg.adminEnabled && cfg.admin.requireToken && cfg.admin.token.empty())
            fail(c, *n, "admin.token", "must be set when admin.require_token is true");
        bool loopback = isLoopbackListen(cfg.admin.listen);
        if (cfg.adminEnabled && !cfg.admin.requireToken && !loopback)
            fail(c, *t.get("require_token"), "admin.require_token",
                 "may be false only when admin.listen is a loopback address");
        // A short token can be guessed by whoever reaches the port: off the loopback it must be long.
        if (cfg.adminEnabled && cfg.admin.requireToken && !loopback && cfg.admin.token.size() < kMinRemoteTokenLength)
            fail(c, *t.get("token"), "admin.token",
                 fmt::format("has {} characters; at least {} are needed when admin.listen ('{}') is not a loopback "
                             "address",
                             cfg.admin.token.size(), kMinRemoteTokenLength, cfg.admin.listen));
        if (cfg.adminEnabled) {
            auto at = [&](const char *key) -> const toml::node & { return t.get(key) ? *t.get(key) : *n; };
            const AdminConfig &a = cfg.admin;
            if (!a.tlsCertificate.empty() && a.tlsPrivateKey.empty())
                fail(c, at("tls_certificate"), "admin.tls_private_key", "must be set with admin.tls_certificate");
            if (a.tlsCertificate.empty() && !a.tlsPrivateKey.empty())
                fail(c, at("tls_private_key"), "admin.tls_certificate", "must be set with admin.tls_private_key");
            if (!a.tlsCaFile.empty() && !a.tls())
                fail(c, at("tls_ca_file"), "admin.tls_certificate",
                     "must be set (with admin.tls_private_key) when admin.tls_ca_file is");
            if (std::string err = checkTlsFiles(a.tlsCertificate, a.tlsPrivateKey, a.tlsCaFile); !err.empty()) {
                std::string key = err.substr(0, err.find(':'));
                fail(c, at(key.c_str()), "admin." + key, err.substr(key.size() + 2));
            }
            // The bearer token (and SIP passwords sent to /api/users) would cross the network in the clear.
            if (!loopback && !a.tls() && !a.allowPlaintext)
                fail(c, at("listen"), "admin.listen",
                     fmt::format("'{}' is not a loopback address: serve the admin API over TLS there "
                                 "(admin.tls_certificate and admin.tls_private_key) or set admin.allow_plaintext = "
                                 "true",
                                 a.listen));
        }
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
            for (const auto &m : cfg.modules)
                loaded |= moduleKey(m) == name;
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
