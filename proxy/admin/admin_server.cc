// The admin plane. Threads: everything libevent runs on the admin thread (its own event_base); SIP state is
// touched only inside closures handed to Proxy::post(), whose results come back through a locked queue and
// event_active() on a pre-created event, so evhttp_send_reply() is only ever called on the admin thread.
//
// The gate: every connection's socket bufferevent is ours (evhttp_set_bevcb), with a callback on its input
// buffer that runs after each socket read and before evhttp parses. It takes the new bytes out, holds a
// request's head until it is complete and lets request_gate.cc judge it, so the token, the body size and the
// connection cap are checked before a single body byte is read (libevent 2.1 has no per-request hook that runs
// early enough; a filter bufferevent would make evhttp take a reply for sent before it reached the socket).
// An accepted request's head and Content-Length body bytes are put back for evhttp; a refused one is replaced
// by a stand-in request the handler answers with a JSON error. Timeouts close a connection the way libevent's
// own timeouts do.
//
// TLS (admin.tls_certificate + admin.tls_private_key): the bufferevent handed to evhttp is an OpenSSL one
// (bufferevent_openssl, accepting); its input buffer holds the decrypted bytes, so the gate, the limits and the
// event streams work on it unchanged. A handshake that has not finished within admin.header_timeout_ms is cut.
// The process must ignore SIGPIPE (the daemon does): OpenSSL writes to the socket with write().
#include "admin_server.hh"

#include "core/proxy.hh"
#include "core/sip_trace.hh"
#include "event_bus.hh"
#include "metrics.hh"
#include "request_body.hh"
#include "request_gate.hh"
#include "ui_assets.hh"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <event2/util.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#ifndef PARKWAY_VERSION
#define PARKWAY_VERSION "0.0.0"
#endif

namespace parkway::proxy {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// What the gate hands evhttp in place of a refused request; the handler answers it with the refusal.
constexpr const char kRefusedPath[] = "/-parkway-refused";
constexpr const char kRefusedRequest[] = "GET /-parkway-refused HTTP/1.0\r\n\r\n";

struct HostPort {
    std::string host;
    std::string port;
};

// "127.0.0.1:8089", "[::1]:8089", "localhost:8089". Throws naming admin.listen.
HostPort splitListen(const std::string &listen) {
    HostPort hp;
    if (!listen.empty() && listen[0] == '[') {
        auto close = listen.find(']');
        if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
            throw std::runtime_error("admin.listen \"" + listen + "\": expected [ipv6]:port");
        hp.host = listen.substr(1, close - 1);
        hp.port = listen.substr(close + 2);
    } else {
        auto colon = listen.rfind(':');
        if (colon == std::string::npos || colon == 0)
            throw std::runtime_error("admin.listen \"" + listen + "\": expected host:port");
        hp.host = listen.substr(0, colon);
        hp.port = listen.substr(colon + 1);
    }
    if (hp.port.empty() || hp.port.find_first_not_of("0123456789") != std::string::npos || hp.port.size() > 5 ||
        std::stoul(hp.port) > 65535)
        throw std::runtime_error("admin.listen \"" + listen + "\": port must be 0..65535");
    return hp;
}

// Never throws on invalid UTF-8 (nlohmann's dump would: type_error 316); such bytes become U+FFFD.
std::string dumpJson(const json &v) {
    return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string errorJson(const std::string &message) {
    return dumpJson(json{{"error", message}});
}

const char *reason(int code) {
    switch (code) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Entity";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return code < 400 ? "OK" : "Error";
    }
}

const char *methodName(evhttp_cmd_type m) {
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    default:
        return "OTHER";
    }
}

// A metric label for a method named by a stranger: only the served ones by name.
std::string methodLabel(const std::string &m) {
    for (const char *k : {"GET", "POST", "PUT", "DELETE", "HEAD"})
        if (m == k)
            return m;
    return "OTHER";
}

// Seconds since this process started, from /proc (Linux); nullopt-like -1 when unavailable.
double processStartEpochSeconds() {
    std::ifstream stat("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto rp = text.rfind(')'); // comm may contain spaces; fields after it are fixed
    if (rp == std::string::npos)
        return -1;
    std::istringstream in(text.substr(rp + 2));
    std::string field;
    unsigned long long startTicks = 0;
    for (int i = 3; i <= 22 && in >> field; ++i)
        if (i == 22)
            startTicks = std::stoull(field);
    std::ifstream up("/proc/uptime");
    double uptime = 0;
    if (!(up >> uptime) || startTicks == 0)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return now - uptime + static_cast<double>(startTicks) / static_cast<double>(hz > 0 ? hz : 100);
}

// Pattern segments of a route ("/api/users/{domain}" -> {"api", "users", "{domain}"}).
std::vector<std::string> patternSegments(const char *pattern) {
    std::vector<std::string> out;
    std::stringstream ss(pattern);
    std::string s;
    while (std::getline(ss, s, '/'))
        if (!s.empty())
            out.push_back(s);
    return out;
}

// A route with PW_ROUTE_NUMERIC_PARAMS: a numeric segment is passed as a number, anything else as text (the
// module then answers with its own error).
json numericValue(const std::string &text) {
    bool digits = !text.empty() && text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos;
    return digits ? json(std::stoll(text)) : json(text);
}

// The last OpenSSL error as text (and the queue cleared).
std::string sslError() {
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

// The server side of admin TLS: TLS 1.2 at least, the certificate chain and key from PEM files, client
// certificates required when a CA file is given. Throws naming the admin.tls_* key whose file is wrong.
SSL_CTX *makeTlsContext(const AdminConfig &cfg) {
    if (cfg.tlsCertificate.empty() || cfg.tlsPrivateKey.empty())
        throw std::runtime_error(cfg.tlsCertificate.empty() ? "admin.tls_certificate is empty: it is needed with "
                                                              "admin.tls_private_key"
                                                            : "admin.tls_private_key is empty: it is needed with "
                                                              "admin.tls_certificate");
    ERR_clear_error();
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()), &SSL_CTX_free);
    if (!ctx)
        throw std::runtime_error("admin: cannot create a TLS context: " + sslError());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    // An encrypted key fails here instead of prompting on the daemon's terminal.
    SSL_CTX_set_default_passwd_cb(ctx.get(), [](char *, int, int, void *) { return 0; });
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), cfg.tlsCertificate.c_str()) != 1)
        throw std::runtime_error("admin.tls_certificate \"" + cfg.tlsCertificate +
                                 "\": cannot load a PEM certificate chain: " + sslError());
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), cfg.tlsPrivateKey.c_str(), SSL_FILETYPE_PEM) != 1) {
        bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
        throw std::runtime_error(
            "admin.tls_private_key \"" + cfg.tlsPrivateKey + "\": " +
            (mismatch ? "does not match admin.tls_certificate: " : "cannot load an unencrypted PEM private key: ") +
            sslError());
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
        throw std::runtime_error("admin.tls_private_key \"" + cfg.tlsPrivateKey +
                                 "\" does not match admin.tls_certificate: " + sslError());
    if (!cfg.tlsCaFile.empty()) {
        if (SSL_CTX_load_verify_locations(ctx.get(), cfg.tlsCaFile.c_str(), nullptr) != 1)
            throw std::runtime_error("admin.tls_ca_file \"" + cfg.tlsCaFile +
                                     "\": cannot load PEM CA certificates: " + sslError());
        if (STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg.tlsCaFile.c_str()))
            SSL_CTX_set_client_CA_list(ctx.get(), names);
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return ctx.release();
}

} // namespace

// ------------------------------------------------------------------------------------------------ Impl

struct AdminServer::Impl {
    // Shared with closures running on the SIP thread and with EventBus wakeups; outlives the Impl if needed.
    struct Shared {
        std::mutex mu;
        event *doneEv = nullptr;   // nulled (under mu) before the event is freed
        event *eventsEv = nullptr; // ditto
        std::deque<std::pair<uint64_t, CommandResult>> done;
    };
    struct Pending {
        evhttp_request *req = nullptr;
        evhttp_connection *conn = nullptr; // nullptr once the connection went away
        Clock::time_point deadline;
        std::string method, path;
    };
    struct Stream {
        evhttp_request *req = nullptr;
        evhttp_connection *conn = nullptr;
        uint64_t sub = 0;
        std::set<std::string> types; // empty = all
        Clock::time_point lastWrite;
        bool drop = false; // the client stopped reading: dropped after the current pass
    };
    // One admin connection, as seen by the gate. Holds a reference on its bufferevent (released when evhttp is
    // done with it) so the pointer stays valid for the checks below.
    struct Conn {
        Impl *impl = nullptr;
        bufferevent *bev = nullptr; // the socket bufferevent evhttp reads from
        evbuffer *stash = nullptr;  // bytes taken from evhttp's input, not yet judged or let through
        evbuffer_cb_entry *watch = nullptr;
        bool inCallback = false;
        enum class Phase { Head, Pass, Refused } phase = Phase::Head;
        uint64_t passLeft = 0; // head + body bytes of an accepted request still to hand to evhttp
        Clock::time_point opened, idleSince, headStart;
        bool headStarted = false; // a request head has begun arriving
        bool busy = false;        // a request is with the handler (or the connection is an event stream)
        bool overCap = false;     // accepted over admin.max_connections: answered 503
        bool tls = false;         // an OpenSSL bufferevent
        bool broken = false;      // its TLS state could not be made: closed at the next tick, nothing served
        bool cut = false;         // closed by a limit (counted under that reason)
        std::optional<Refusal> refusal;
        std::string refusedMethod;
    };

    // One request on its way through the route table.
    struct Call {
        evhttp_request *req = nullptr;
        evhttp_cmd_type cmd{};
        std::string method, path, route;
        std::vector<std::string> seg;
        std::map<std::string, std::string> query;
        std::vector<std::pair<std::string, std::string>> params; // {name} path segments
    };
    enum class Auth { None, Token, MetricsToken };
    using Handler = void (Impl::*)(Call &);
    struct Route {
        std::string method;
        std::string pattern; // "{name}" matches one segment; for module commands it becomes an argument
        Auth auth = Auth::Token;
        // A module command (module.h pw_route_def)...
        std::string module, command;
        pw_route_args args = PW_ROUTE_ARGS_NONE;
        std::vector<std::string> query; // PW_ROUTE_ARGS_QUERY: the parameters passed on (empty ones left out)
        uint32_t flags = 0;             // PW_ROUTE_*
        // ...or a core handler.
        Handler core = nullptr;
        std::vector<std::string> segments; // pattern, split
    };

    AdminConfig cfg;
    Proxy &proxy;
    std::function<CommandResult()> reloadHandler; // POST /api/reload; unset: the modules' reload hooks
    Metrics &metrics;
    EventBus &events;
    std::shared_ptr<Shared> shared = std::make_shared<Shared>();

    event_base *base = nullptr;
    evhttp *http = nullptr;
    SSL_CTX *sslCtx = nullptr; // admin TLS: made by start(), freed with the Impl
    event *doneEv = nullptr, *eventsEv = nullptr, *tickEv = nullptr, *stopEv = nullptr;
    std::thread thread;
    uint16_t boundPort = 0;
    bool running = false;
    std::atomic<size_t> streamCount{0};
    std::atomic<size_t> connectionCount{0};

    uint64_t nextPending = 1;
    std::map<uint64_t, Pending> pending; // admin thread only
    std::map<evhttp_connection *, Stream> streams;
    std::map<bufferevent *, std::unique_ptr<Conn>> conns;
    GatePolicy gate;
    double startEpoch = -1;

    Impl(AdminConfig c, Proxy &p, Metrics &m, EventBus &e) : cfg(std::move(c)), proxy(p), metrics(m), events(e) {}
    ~Impl() {
        if (sslCtx)
            SSL_CTX_free(sslCtx);
    }

    // ---- the route table ----
    // The core's endpoints, then every module's (module.h pw_route_def, declared by the modules: the core knows no
    // module's command names); POST /api/modules/{module}/{command} reaches any command. Built by start().
    std::vector<Route> table;
    static Route coreRoute(const char *method, const char *pattern, Auth auth, Handler h) {
        Route r;
        r.method = method;
        r.pattern = pattern;
        r.auth = auth;
        r.core = h;
        return r;
    }
    static std::vector<Route> coreRoutes() {
        return {
            coreRoute("GET", "/health", Auth::None, &Impl::health),
            coreRoute("HEAD", "/health", Auth::None, &Impl::health),
            coreRoute("GET", "/metrics", Auth::MetricsToken, &Impl::metricsText),
            coreRoute("HEAD", "/metrics", Auth::MetricsToken, &Impl::metricsText),
            coreRoute("GET", "/api/stats", Auth::Token, &Impl::stats),
            coreRoute("GET", "/api/commands", Auth::Token, &Impl::commandList),
            coreRoute("POST", "/api/modules/{module}/{command}", Auth::Token, &Impl::anyCommand),
            coreRoute("POST", "/api/reload", Auth::Token, &Impl::reloadAll),
            coreRoute("GET", "/api/events", Auth::Token, &Impl::eventStream),
            coreRoute("PUT", "/api/users/{domain}/{user}", Auth::Token, &Impl::userSet),
            coreRoute("DELETE", "/api/users/{domain}/{user}", Auth::Token, &Impl::userDelete),
            coreRoute("GET", "/api/users/{domain}", Auth::Token, &Impl::userList),
            coreRoute("GET", "/api/trace", Auth::Token, &Impl::traceGet),
            coreRoute("PUT", "/api/trace", Auth::Token, &Impl::tracePut),
            coreRoute("DELETE", "/api/trace", Auth::Token, &Impl::traceDelete),
        };
    }
    // Two routes with the same method whose patterns match the same paths ("{x}" matches anything).
    static bool overlap(const Route &a, const Route &b) {
        if (a.method != b.method || a.segments.size() != b.segments.size())
            return false;
        for (size_t i = 0; i < a.segments.size(); ++i) {
            const std::string &x = a.segments[i], &y = b.segments[i];
            if (x != y && x.front() != '{' && y.front() != '{')
                return false;
        }
        return true;
    }
    // Throws naming the module when one of its routes takes a method and path already served.
    void buildRoutes() {
        table = coreRoutes();
        for (auto &r : table)
            r.segments = patternSegments(r.pattern.c_str());
        for (const ModuleRoute &m : proxy.moduleRoutes()) {
            Route r;
            r.method = m.method;
            r.pattern = m.path;
            r.module = m.module;
            r.command = m.command;
            r.args = m.args;
            r.query = m.query;
            r.flags = m.flags;
            r.segments = patternSegments(r.pattern.c_str());
            for (const Route &o : table)
                if (overlap(o, r))
                    throw std::runtime_error(fmt::format(
                        "admin: module {} declares route {} {} ({}), which {} already serves", m.module, m.method,
                        m.path, m.command, o.core ? "the core" : fmt::format("module {} ({})", o.module, o.command)));
            table.push_back(std::move(r));
        }
    }
    const std::vector<Route> &routes() const { return table; }
    static bool matches(const Route &r, const std::vector<std::string> &seg,
                        std::vector<std::pair<std::string, std::string>> *params = nullptr) {
        if (r.segments.size() != seg.size())
            return false;
        for (size_t i = 0; i < seg.size(); ++i) {
            const std::string &p = r.segments[i];
            bool param = p.size() > 2 && p.front() == '{' && p.back() == '}';
            if (!param && p != seg[i])
                return false;
            if (param && params)
                params->emplace_back(p.substr(1, p.size() - 2), seg[i]);
        }
        return true;
    }
    // Unknown paths need the token too: a stranger learns nothing about what exists. The console's static files
    // (/ui/...) are the exception: they hold no data, and the page must load to ask for the token.
    bool needsToken(const std::vector<std::string> &seg) const {
        if (isConsolePath(seg))
            return false;
        for (const auto &r : routes())
            if (matches(r, seg))
                return r.auth == Auth::Token || (r.auth == Auth::MetricsToken && cfg.metricsRequireToken);
        return true;
    }

    // ---- replies (admin thread) ----
    void countRefused(const std::string &why) {
        metrics.counterAdd("parkway_admin_refused_total", Metrics::label("reason", why), 1);
    }
    void countRequest(const std::string &method, const std::string &route, int code) {
        metrics.counterAdd("parkway_admin_requests_total",
                           Metrics::labels({Metrics::label("method", method), Metrics::label("route", route),
                                            Metrics::label("code", std::to_string(code))}),
                           1);
    }
    void reply(evhttp_request *req, int code, const std::string &body, const char *contentType,
               const std::string &method = "", const std::string &route = "") {
        evkeyvalq *out = evhttp_request_get_output_headers(req);
        evhttp_add_header(out, "Content-Type", contentType);
        evhttp_add_header(out, "Cache-Control", "no-store");
        if (code == 401 && !evhttp_find_header(out, "WWW-Authenticate"))
            evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"parkway\"");
        if (Conn *c = connOf(req)) { // the connection owes nothing from now on: its idle time starts
            c->busy = false;
            c->idleSince = Clock::now();
        }
        if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) { // GET's headers, no body (RFC 9110 §9.3.2)
            evhttp_add_header(out, "Content-Length", std::to_string(body.size()).c_str());
            evhttp_send_reply(req, code, reason(code), nullptr);
        } else {
            evbuffer *buf = evbuffer_new();
            evbuffer_add(buf, body.data(), body.size());
            evhttp_send_reply(req, code, reason(code), buf);
            evbuffer_free(buf);
        }
        if (!method.empty())
            countRequest(method, route, code);
    }
    // Module answers are sent as they came, repaired when they are not valid UTF-8 (a module bug must not make
    // the answer unreadable to a JSON client).
    void replyJson(evhttp_request *req, int code, const std::string &body, const std::string &method,
                   const std::string &route) {
        std::string b = body.empty() ? "null" : isValidUtf8(body) ? body : toValidUtf8(body);
        b += '\n';
        reply(req, code, b, "application/json", method, route);
    }
    void replyError(evhttp_request *req, int code, const std::string &message, const std::string &method,
                    const std::string &route) {
        replyJson(req, code, errorJson(message), method, route);
    }

    bool authorized(evhttp_request *req) const {
        if (!cfg.requireToken)
            return true;
        const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
        std::string v = h ? h : "";
        return bearerMatches(h ? &v : nullptr, cfg.token);
    }

    // ---- SIP-thread work ----
    // Runs job on the SIP thread; its result is sent back to req on the admin thread.
    void dispatch(evhttp_request *req, std::function<CommandResult()> job, const std::string &method,
                  const std::string &route) {
        dispatchLater(
            req, [job = std::move(job)](const std::function<void(CommandResult)> &) { return job(); }, method, route);
    }

    // The same for a job that may answer later: it gets `finish` (SIP thread; at most once) and returns a result
    // marked deferred instead of the answer (a module command that took writer_defer, ABI 1.8). The request's
    // deadline holds meanwhile: no answer by then is a 504, and a later one is dropped.
    using Finish = std::function<void(CommandResult)>;
    void dispatchLater(evhttp_request *req, std::function<CommandResult(const Finish &)> job, const std::string &method,
                       const std::string &route) {
        uint64_t id = nextPending++;
        Pending p;
        p.req = req;
        p.conn = evhttp_request_get_connection(req);
        p.deadline = Clock::now() + std::chrono::milliseconds(cfg.requestTimeoutMs);
        p.method = method;
        p.path = route;
        pending.emplace(id, p);
        std::shared_ptr<Shared> sh = shared;
        bool posted = proxy.post([sh, id, job = std::move(job)] {
            Finish finish = [sh, id](CommandResult r) {
                std::lock_guard<std::mutex> lock(sh->mu);
                sh->done.emplace_back(id, std::move(r));
                if (sh->doneEv)
                    event_active(sh->doneEv, EV_READ, 0);
            };
            CommandResult r;
            try {
                r = job(finish);
            } catch (const std::exception &e) {
                r.httpStatus = 500;
                r.json = errorJson(std::string("internal error: ") + e.what());
            }
            if (!r.deferred)
                finish(std::move(r));
        });
        if (!posted) {
            pending.erase(id);
            replyError(req, 503, "parkway is shutting down", method, route);
        }
    }

    // A module admin command; 503 naming the module when it is not loaded, 404 for an unknown command.
    void command(evhttp_request *req, const std::string &module, const std::string &name, const json &args,
                 const std::string &method, const std::string &route) {
        Proxy *px = &proxy;
        std::string argsText = dumpJson(args);
        dispatchLater(
            req,
            [px, module, name, argsText](const Finish &finish) -> CommandResult {
                bool haveModule = false, haveCommand = false;
                for (const auto &c : px->commands()) {
                    if (c.module != module)
                        continue;
                    haveModule = true;
                    if (c.name == name)
                        haveCommand = true;
                }
                if (!haveModule)
                    return {503, errorJson("module " + module + " is not loaded (or has no admin commands)")};
                if (!haveCommand)
                    return {404, errorJson("module " + module + " has no admin command " + name)};
                return px->runCommand(module, name, argsText, finish);
            },
            method, route);
    }

    void onDone() {
        std::deque<std::pair<uint64_t, CommandResult>> batch;
        {
            std::lock_guard<std::mutex> lock(shared->mu);
            batch.swap(shared->done);
        }
        for (auto &[id, result] : batch) {
            auto it = pending.find(id);
            if (it == pending.end())
                continue; // timed out already
            Pending p = it->second;
            pending.erase(it);
            // A request whose connection was freed by libevent is gone; a detached one is freed by the reply.
            if (!p.conn && evhttp_request_get_connection(p.req))
                continue;
            replyJson(p.req, result.httpStatus, result.json, p.method, p.path);
        }
    }

    // Connection closed (client went away, or the server is being freed).
    void onClose(evhttp_connection *conn) {
        release(evhttp_connection_get_bufferevent(conn));
        for (auto &[id, p] : pending)
            if (p.conn == conn) {
                p.conn = nullptr;
                // Attached: libevent frees the request with the connection; forget it.
                if (evhttp_request_get_connection(p.req))
                    p.req = nullptr;
            }
        for (auto it = pending.begin(); it != pending.end();) {
            if (!it->second.req)
                it = pending.erase(it);
            else
                ++it;
        }
        auto s = streams.find(conn);
        if (s == streams.end())
            return;
        events.unsubscribe(s->second.sub);
        evhttp_request *req = s->second.req;
        streams.erase(s);
        streamCount = streams.size();
        // Detached from its connection (EOF while streaming): it is ours to free.
        if (!evhttp_request_get_connection(req))
            evhttp_send_reply_end(req);
    }

    static void closeCb(evhttp_connection *conn, void *arg) { static_cast<Impl *>(arg)->onClose(conn); }

    // ---- the gate: connections and request heads (admin thread) ----
    Conn *connOf(evhttp_request *req) {
        evhttp_connection *ec = req ? evhttp_request_get_connection(req) : nullptr;
        if (!ec)
            return nullptr;
        auto it = conns.find(evhttp_connection_get_bufferevent(ec));
        return it == conns.end() ? nullptr : it->second.get();
    }
    static bool handshakeDone(const Conn &c) {
        SSL *ssl = c.tls ? bufferevent_openssl_get_ssl(c.bev) : nullptr;
        return !ssl || SSL_is_init_finished(ssl);
    }
    // evhttp sets its callbacks on the bufferevent at once and clears them when it frees the connection.
    static bool alive(const Conn &c) {
        bufferevent_event_cb eventCb = nullptr;
        bufferevent_getcb(c.bev, nullptr, nullptr, &eventCb, nullptr);
        return eventCb != nullptr;
    }
    size_t liveConnections() const {
        size_t n = 0;
        for (const auto &[bev, c] : conns)
            n += alive(*c) && !c->overCap;
        return n;
    }
    void updateConnectionGauge() {
        connectionCount = liveConnections();
        metrics.gaugeSet("parkway_admin_connections", "", static_cast<double>(connectionCount.load()));
    }

    // evhttp_set_bevcb: a new connection's bufferevent, watched by the gate.
    // With TLS, what is returned is never a plain socket bufferevent that serves: evhttp would make one itself
    // from a nullptr (plain HTTP on the TLS port), so a failed TLS setup gives a socket bufferevent marked broken.
    static bufferevent *newConnection(event_base *b, void *arg) {
        auto *self = static_cast<Impl *>(arg);
        bufferevent *bev = nullptr;
        bool broken = false;
        if (self->sslCtx) {
            if (SSL *ssl = SSL_new(self->sslCtx)) {
                bev = bufferevent_openssl_socket_new(b, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
                if (bev)
                    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1); // a client may close without close_notify
                else
                    SSL_free(ssl);
            }
            broken = !bev;
        }
        if (!bev)
            bev = bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
            return nullptr;
        auto c = std::make_unique<Conn>();
        c->impl = self;
        c->bev = bev;
        c->tls = self->sslCtx && !broken;
        c->broken = broken;
        if (broken)
            c->phase = Conn::Phase::Refused; // its bytes are dropped
        c->stash = evbuffer_new();
        c->watch = c->stash ? evbuffer_add_cb(bufferevent_get_input(bev), &Impl::inputAdded, c.get()) : nullptr;
        if (!c->watch) { // out of memory: served unwatched (the handler still checks the token), never plain on TLS
            if (c->stash)
                evbuffer_free(c->stash);
            if (c->tls)
                return bev;
            bufferevent_free(bev);
            return nullptr;
        }
        c->opened = c->idleSince = Clock::now();
        size_t live = self->liveConnections();
        c->overCap = live >= self->cfg.maxConnections;
        bufferevent_incref(bev);
        // Counted by hand: evhttp sets its callbacks (what alive() looks at) only once we return.
        self->connectionCount = live + (c->overCap ? 0 : 1);
        self->metrics.gaugeSet("parkway_admin_connections", "", static_cast<double>(self->connectionCount.load()));
        self->conns.emplace(bev, std::move(c));
        return bev;
    }
    // Our part of a connection evhttp has freed (or is freeing).
    void release(bufferevent *bev) {
        auto it = conns.find(bev);
        if (it == conns.end())
            return;
        std::unique_ptr<Conn> c = std::move(it->second);
        conns.erase(it);
        // A TLS connection that ends before its handshake did, not cut by a limit: plain HTTP on the TLS port,
        // a client that does not trust our certificate, no common protocol version.
        if (c->tls && !c->cut && !handshakeDone(*c))
            countRefused("tls_handshake_failed");
        evbuffer_remove_cb_entry(bufferevent_get_input(bev), c->watch);
        evbuffer_free(c->stash);
        bufferevent_decref(bev); // the last reference: libevent finalizes it (and closes the socket)
        updateConnectionGauge();
    }
    void releaseDead() {
        std::vector<bufferevent *> dead;
        for (const auto &[bev, c] : conns)
            if (!alive(*c))
                dead.push_back(bev);
        for (bufferevent *b : dead)
            release(b);
    }

    static void inputAdded(evbuffer *in, const evbuffer_cb_info *info, void *arg) {
        auto *c = static_cast<Conn *>(arg);
        if (info->n_added == 0 || c->inCallback)
            return; // evhttp consuming, or our own moves below
        c->inCallback = true;
        c->impl->gateInput(*c, in, info->n_added);
        c->inCallback = false;
    }

    // Runs inside the socket read, before evhttp looks at its input. The new bytes are the last `added` ones;
    // what is before them was let through earlier and is evhttp's. Afterwards evhttp's input holds only whole
    // accepted requests (head + Content-Length body bytes) or the stand-in for a refused one.
    void gateInput(Conn &c, evbuffer *in, size_t added) {
        size_t total = evbuffer_get_length(in);
        size_t earlier = total > added ? total - added : 0;
        if (earlier == 0) {
            evbuffer_add_buffer(c.stash, in);
        } else {
            evbuffer *keep = evbuffer_new();
            evbuffer_remove_buffer(in, keep, earlier);
            evbuffer_add_buffer(c.stash, in);
            evbuffer_add_buffer(in, keep);
            evbuffer_free(keep);
        }
        if (c.phase == Conn::Phase::Refused || !alive(c)) {
            evbuffer_drain(c.stash, evbuffer_get_length(c.stash));
            return;
        }
        while (evbuffer_get_length(c.stash) > 0) {
            if (c.phase == Conn::Phase::Head) {
                if (std::optional<Refusal> r = judgeHead(c, c.stash))
                    return refuse(c, in, std::move(*r));
                if (c.phase == Conn::Phase::Head)
                    return; // incomplete: held until more arrives
            }
            size_t n = std::min<uint64_t>(c.passLeft, evbuffer_get_length(c.stash));
            evbuffer_remove_buffer(c.stash, in, n);
            c.passLeft -= n;
            if (c.passLeft == 0)
                c.phase = Conn::Phase::Head;
        }
    }

    // A refusal, nothing (head incomplete: phase stays Head) or nothing with phase Pass (accepted).
    std::optional<Refusal> judgeHead(Conn &c, evbuffer *src) {
        if (!c.headStarted) { // RFC 7230 §3.5: empty lines before a request line are ignored
            unsigned char ch;
            while (evbuffer_copyout(src, &ch, 1) == 1 && (ch == '\r' || ch == '\n'))
                evbuffer_drain(src, 1);
        }
        size_t have = evbuffer_get_length(src);
        if (have == 0)
            return std::nullopt;
        if (!c.headStarted) {
            c.headStarted = true;
            c.headStart = Clock::now();
        }
        std::string bytes(std::min(have, cfg.maxHeaderBytes), '\0');
        evbuffer_copyout(src, bytes.data(), bytes.size());
        size_t len = headLength(bytes);
        c.refusedMethod = methodLabel(bytes.substr(0, bytes.find(' ')));
        if (len == 0) {
            if (have >= cfg.maxHeaderBytes)
                return headTooLarge(cfg.maxHeaderBytes);
            return std::nullopt;
        }
        if (c.overCap)
            return tooManyConnections(cfg.maxConnections);
        GateDecision d = inspectHead(std::string_view(bytes).substr(0, len), gate);
        if (d.refusal)
            return d.refusal;
        c.phase = Conn::Phase::Pass;
        c.passLeft = len + d.bodyBytes;
        c.headStarted = false;
        return std::nullopt;
    }

    // Drops what the client sent and hands evhttp the stand-in request (answered by answerRefusal).
    void refuse(Conn &c, evbuffer *in, Refusal r) {
        evbuffer_drain(c.stash, evbuffer_get_length(c.stash));
        countRefused(r.reason);
        c.phase = Conn::Phase::Refused;
        c.refusal = std::move(r);
        evbuffer_add(in, kRefusedRequest, sizeof kRefusedRequest - 1);
    }

    void answerRefusal(evhttp_request *req, const Conn &c) {
        evkeyvalq *out = evhttp_request_get_output_headers(req);
        for (const auto &[name, value] : c.refusal->headers)
            evhttp_add_header(out, name.c_str(), value.c_str());
        evhttp_add_header(out, "Connection", "close");
        replyError(req, c.refusal->status, c.refusal->message, c.refusedMethod, "refused");
    }

    // Header and idle timeouts: the connection is closed the way libevent closes on its own timeouts.
    void expireConnections(Clock::time_point now) {
        const auto header = std::chrono::milliseconds(cfg.headerTimeoutMs);
        const auto idle = std::chrono::milliseconds(cfg.idleTimeoutMs);
        std::vector<std::pair<bufferevent *, const char *>> expired;
        for (auto &[bev, c] : conns) {
            if (!alive(*c))
                continue;
            if (c->broken)
                expired.emplace_back(bev, "tls_setup_failed");
            else if (c->tls && now - c->opened > header && !handshakeDone(*c))
                expired.emplace_back(bev, "tls_handshake_timeout");
            else if (c->overCap && now - c->opened > header)
                expired.emplace_back(bev, "header_timeout");
            else if (!c->busy && c->phase == Conn::Phase::Head && c->headStarted && now - c->headStart > header)
                expired.emplace_back(bev, "header_timeout");
            else if (!c->busy && now - c->idleSince > idle)
                expired.emplace_back(bev, "idle_timeout");
        }
        for (auto &[bev, why] : expired)
            closeConnection(bev, why, BEV_EVENT_READING);
    }
    void closeConnection(bufferevent *bev, const char *why, short direction) {
        auto it = conns.find(bev);
        if (it == conns.end() || !alive(*it->second))
            return;
        countRefused(why);
        it->second->cut = true;
        // evhttp_error_cb: evhttp frees the connection (and answers nothing), as on its own timeouts.
        bufferevent_trigger_event(bev, static_cast<short>(direction | BEV_EVENT_TIMEOUT), 0);
        it = conns.find(bev);
        if (it != conns.end() && !alive(*it->second))
            release(bev);
    }

    // ---- event stream ----
    void writeChunk(Stream &s, const std::string &text) {
        if (s.drop)
            return;
        // What the client has not read yet.
        size_t backlog = evbuffer_get_length(bufferevent_get_output(evhttp_connection_get_bufferevent(s.conn)));
        if (backlog > cfg.maxStreamBacklogBytes) {
            s.drop = true;
            return;
        }
        evbuffer *buf = evbuffer_new();
        evbuffer_add(buf, text.data(), text.size());
        evhttp_send_reply_chunk(s.req, buf);
        evbuffer_free(buf);
        s.lastWrite = Clock::now();
    }
    void dropSlowStreams() {
        std::vector<bufferevent *> slow;
        for (auto &[conn, s] : streams)
            if (s.drop)
                slow.push_back(evhttp_connection_get_bufferevent(conn));
        for (bufferevent *b : slow)
            closeConnection(b, "slow_event_reader", BEV_EVENT_WRITING);
    }

    void onEvents() {
        for (auto &[conn, s] : streams) {
            std::string out;
            for (const Event &ev : events.drain(s.sub)) {
                if (!s.types.empty() && !s.types.count(ev.type))
                    continue;
                out += fmt::format("id: {}\nevent: {}\n", ev.seq, ev.type);
                // SSE: every line of the payload is its own "data:" line.
                std::istringstream lines(ev.json.empty() ? std::string("{}") : toValidUtf8(ev.json));
                std::string line;
                while (std::getline(lines, line))
                    out += "data: " + line + "\n";
                out += "\n";
            }
            if (!out.empty())
                writeChunk(s, out);
        }
        dropSlowStreams();
    }

    void startStream(evhttp_request *req, const std::string &typesCsv) {
        evhttp_connection *conn = evhttp_request_get_connection(req);
        if (!conn || streams.count(conn)) {
            replyError(req, 400, "event stream already open on this connection", "GET", "/api/events");
            return;
        }
        Stream s;
        s.req = req;
        s.conn = conn;
        std::stringstream ss(typesCsv);
        std::string t;
        while (std::getline(ss, t, ','))
            if (!t.empty())
                s.types.insert(t);
        std::shared_ptr<Shared> sh = shared;
        s.sub = events.subscribe([sh] {
            std::lock_guard<std::mutex> lock(sh->mu);
            if (sh->eventsEv)
                event_active(sh->eventsEv, EV_READ, 0);
        });
        evkeyvalq *out = evhttp_request_get_output_headers(req);
        evhttp_add_header(out, "Content-Type", "text/event-stream");
        evhttp_add_header(out, "Cache-Control", "no-cache");
        evhttp_add_header(out, "X-Accel-Buffering", "no");
        evhttp_send_reply_start(req, 200, "OK");
        auto &stored = streams.emplace(conn, std::move(s)).first->second;
        streamCount = streams.size();
        countRequest("GET", "/api/events", 200);
        writeChunk(stored, "retry: 3000\n: parkway event stream\n\n");
    }

    // Keep-alives for idle streams, 504 for requests the SIP thread did not answer in time, timeouts.
    void onTick() {
        auto now = Clock::now();
        for (auto &[conn, s] : streams)
            if (now - s.lastWrite >= std::chrono::milliseconds(cfg.sseKeepaliveMs))
                writeChunk(s, ": keep-alive\n\n");
        dropSlowStreams();
        for (auto it = pending.begin(); it != pending.end();) {
            if (now < it->second.deadline) {
                ++it;
                continue;
            }
            Pending p = it->second;
            it = pending.erase(it);
            replyError(p.req, 504, "the SIP thread did not answer in time", p.method, p.path);
        }
        expireConnections(now);
        releaseDead(); // connections evhttp freed without a close callback (none of their requests reached us)
        updateConnectionGauge();
    }

    // ---- HTTP entry ----
    static void requestCb(evhttp_request *req, void *arg) {
        auto *self = static_cast<Impl *>(arg);
        try {
            self->handle(req);
        } catch (const std::exception &e) {
            self->replyError(req, 500, std::string("internal error: ") + e.what(), "", "");
        }
    }

    void refreshProcessMetrics() {
        double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        metrics.gaugeSet("parkway_uptime_seconds", "", startEpoch > 0 ? now - startEpoch : 0);
    }

    // Path segments and query parameters must be UTF-8 (they end up in JSON): the message names the part.
    static std::string utf8Problem(const Call &call) {
        for (size_t i = 0; i < call.seg.size(); ++i)
            if (!isValidUtf8(call.seg[i]))
                return fmt::format("path segment {} is not valid UTF-8", i + 1);
        for (const auto &[k, v] : call.query)
            if (!isValidUtf8(k) || !isValidUtf8(v))
                return isValidUtf8(k) ? "query parameter " + k + " is not valid UTF-8"
                                      : std::string("a query parameter name is not valid UTF-8");
        return "";
    }

    void handle(evhttp_request *req) {
        Call call;
        call.req = req;
        call.cmd = evhttp_request_get_command(req);
        call.method = methodName(call.cmd);
        const evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *rawPath = uri ? evhttp_uri_get_path(uri) : nullptr;
        const char *rawQuery = uri ? evhttp_uri_get_query(uri) : nullptr;
        call.path = rawPath && *rawPath ? rawPath : "/";

        if (evhttp_connection *conn = evhttp_request_get_connection(req))
            evhttp_connection_set_closecb(conn, &Impl::closeCb, this);
        Conn *conn = connOf(req);
        if (conn)
            conn->busy = true;
        if (conn && conn->refusal && call.path == kRefusedPath)
            return answerRefusal(req, *conn);

        call.seg = pathSegments(call.path);
        if (rawQuery) {
            evkeyvalq q;
            q.tqh_first = nullptr; // TAILQ_INIT
            q.tqh_last = &q.tqh_first;
            if (evhttp_parse_query_str(rawQuery, &q) == 0)
                for (evkeyval *kv = q.tqh_first; kv; kv = kv->next.tqe_next)
                    call.query[kv->key] = kv->value;
            evhttp_clear_headers(&q);
        }
        if (std::string bad = utf8Problem(call); !bad.empty()) {
            countRefused("invalid_utf8");
            return replyError(req, 400, bad, call.method, "other");
        }

        // The gate checked the token already; this is the same rule, kept where the routes are served.
        if (needsToken(call.seg) && !authorized(req))
            return replyError(req, 401, "missing or wrong bearer token (Authorization: Bearer <admin.token>)",
                              call.method, "refused");
        if (isConsolePath(call.seg))
            return serveConsole(call);
        const Route *found = nullptr;
        std::string allow;
        for (const auto &r : routes()) {
            if (!matches(r, call.seg))
                continue;
            if (allow.find(r.method) == std::string::npos)
                allow += (allow.empty() ? "" : ", ") + r.method;
            if (!found && call.method == r.method)
                found = &r;
        }
        if (allow.empty())
            return replyError(req, 404, "no such endpoint: " + call.path, call.method, "other");
        if (!found) {
            std::string route;
            for (const auto &r : routes())
                if (matches(r, call.seg))
                    route = r.pattern;
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow.c_str());
            return replyError(req, 405, fmt::format("{} is not allowed on {} (allowed: {})", call.method, route, allow),
                              call.method, route);
        }
        call.route = found->pattern;
        matches(*found, call.seg, &call.params);
        if (found->core)
            return (this->*(found->core))(call);
        moduleRoute(*found, call);
    }

    // The request body as a JSON object; on refusal the answer is sent and nullopt returned. A secret body (it
    // holds a password) is wiped from memory once parsed, and a refusal says where but quotes none of it.
    std::optional<json> body(Call &call, bool secret = false) {
        evbuffer *in = evhttp_request_get_input_buffer(call.req);
        size_t len = evbuffer_get_length(in);
        std::string text(len, '\0');
        if (len)
            evbuffer_copyout(in, text.data(), len);
        std::string error;
        BodyError why = BodyError::None;
        std::optional<json> v = parseRequestBody(text, error, BodyLimits{cfg.maxBodyBytes, cfg.maxJsonDepth}, &why);
        if (secret) {
            OPENSSL_cleanse(text.data(), text.size());
            if (len)
                if (unsigned char *raw = evbuffer_pullup(in, -1))
                    OPENSSL_cleanse(raw, len);
            if (why == BodyError::InvalidJson)
                error = error.substr(0, error.find(": ")); // "invalid JSON in request body at byte N"
            else if (why == BodyError::InvalidUtf8)
                error = "request body is not valid UTF-8";
        }
        if (!v) {
            countRefused(bodyErrorReason(why));
            replyError(call.req, why == BodyError::TooLarge ? 413 : 400, error, call.method, call.route);
        }
        return v;
    }

    // A module's route (module.h pw_route_def): the command's JSON object arguments from the query, the body and
    // the path, as the route declares.
    void moduleRoute(const Route &r, Call &call) {
        json args = json::object();
        if (r.args == PW_ROUTE_ARGS_BODY) {
            std::optional<json> b = body(call);
            if (!b)
                return;
            args = std::move(*b);
        } else if (r.args == PW_ROUTE_ARGS_ALL_QUERY) {
            for (const auto &[k, v] : call.query)
                args[k] = v;
        } else if (r.args == PW_ROUTE_ARGS_QUERY) {
            for (const std::string &k : r.query)
                if (auto it = call.query.find(k); it != call.query.end() && !it->second.empty())
                    args[k] = it->second;
            if (r.flags & PW_ROUTE_QUERY_REQUIRED)
                for (const std::string &k : r.query)
                    if (!args.contains(k)) {
                        std::string example;
                        for (const std::string &q : r.query)
                            example += fmt::format("{}{}=...", example.empty() ? "?" : "&", q);
                        return replyError(
                            call.req, 400,
                            fmt::format("missing query parameter: {} ({} {}{})", k, r.method, r.pattern, example),
                            call.method, call.route);
                    }
        }
        for (const auto &[name, value] : call.params) // the path wins
            args[name] = (r.flags & PW_ROUTE_NUMERIC_PARAMS) ? numericValue(value) : json(value);
        command(call.req, r.module, r.command, args, call.method, call.route);
    }

    // ---- the operator console (docs/console.md) ----
    bool isConsolePath(const std::vector<std::string> &seg) const {
        return cfg.console && !seg.empty() && seg[0] == "ui";
    }
    // Static files only, from the table built into the binary: no file system, no data, no token. Every data
    // request the page makes goes to /api/... with the token like any other client's.
    void serveConsole(Call &call) {
        static const std::string route = "/ui/";
        evkeyvalq *out = evhttp_request_get_output_headers(call.req);
        if (call.cmd != EVHTTP_REQ_GET && call.cmd != EVHTTP_REQ_HEAD) {
            evhttp_add_header(out, "Allow", "GET, HEAD");
            return replyError(call.req, 405,
                              fmt::format("{} is not allowed on {} (allowed: GET, HEAD)", call.method, route),
                              call.method, route);
        }
        if (call.path == "/ui") { // relative URLs in the page resolve against /ui/
            evhttp_add_header(out, "Location", "/ui/");
            return reply(call.req, 301, "", "text/plain; charset=utf-8", call.method, route);
        }
        std::string rel;
        for (size_t i = 1; i < call.seg.size(); ++i) {
            const std::string &s = call.seg[i];
            // Segments are percent-decoded: "%2e%2e" and "a%2fb" arrive here as ".." and "a/b".
            if (s == "." || s == ".." || s.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
                return replyError(call.req, 400,
                                  "bad console path: '.', '..', '/' and '\\' are not allowed in a segment", call.method,
                                  route);
            rel += (rel.empty() ? "" : "/") + s;
        }
        if (rel.empty())
            rel = "index.html";
        const UiAsset *a = findUiAsset(rel);
        if (!a)
            return replyError(call.req, 404, "no such console file: /ui/" + rel, call.method, route);
        // Vite names what is under assets/ after its content: cached for good. index.html is checked every time.
        bool hashed = rel.rfind("assets/", 0) == 0;
        evhttp_add_header(out, "Content-Type", std::string(a->contentType).c_str());
        evhttp_add_header(out, "Cache-Control", hashed ? "public, max-age=31536000, immutable" : "no-cache");
        evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
        evhttp_add_header(out, "Referrer-Policy", "no-referrer");
        evhttp_add_header(out, "X-Frame-Options", "DENY");
        evhttp_add_header(out, "Content-Security-Policy",
                          "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
                          "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
        if (Conn *c = connOf(call.req)) {
            c->busy = false;
            c->idleSince = Clock::now();
        }
        if (call.cmd == EVHTTP_REQ_HEAD) { // the headers GET would send, no body (RFC 9110 §9.3.2)
            evhttp_add_header(out, "Content-Length", std::to_string(a->body.size()).c_str());
            evhttp_send_reply(call.req, 200, "OK", nullptr);
        } else {
            evbuffer *buf = evbuffer_new();
            evbuffer_add_reference(buf, a->body.data(), a->body.size(), nullptr, nullptr);
            evhttp_send_reply(call.req, 200, "OK", buf);
            evbuffer_free(buf);
        }
        countRequest(call.method, route, 200);
    }

    // ---- core handlers ----
    // Unauthenticated liveness probe: says nothing but "up".
    void health(Call &call) {
        replyJson(call.req, 200, dumpJson(json{{"status", "ok"}, {"version", PARKWAY_VERSION}}), call.method,
                  call.route);
    }
    void metricsText(Call &call) {
        refreshProcessMetrics();
        reply(call.req, 200, metrics.renderPrometheus(), "text/plain; version=0.0.4; charset=utf-8", call.method,
              call.route);
    }
    void stats(Call &call) {
        Proxy *px = &proxy;
        dispatch(
            call.req,
            [px]() -> CommandResult {
                json out;
                out["core"] = json::parse(toValidUtf8(px->statsJson()), nullptr, false);
                json mods = json::object();
                for (const auto &c : px->commands()) {
                    if (c.name != "stats")
                        continue;
                    CommandResult r = px->runCommand(c.module, "stats", "{}");
                    json v = json::parse(toValidUtf8(r.json), nullptr, false);
                    mods[c.module] = r.httpStatus == 200 && !v.is_discarded() ? v : json{{"error", r.json}};
                }
                out["modules"] = mods;
                return {200, dumpJson(out)};
            },
            call.method, call.route);
    }
    void commandList(Call &call) {
        Proxy *px = &proxy;
        dispatch(
            call.req,
            [px]() -> CommandResult {
                json list = json::array();
                for (const auto &c : px->commands())
                    list.push_back({{"module", c.module}, {"name", c.name}, {"help", c.help}});
                return {200, dumpJson(json{{"commands", list}})};
            },
            call.method, call.route);
    }
    void anyCommand(Call &call) {
        std::optional<json> b = body(call);
        if (!b)
            return;
        command(call.req, call.seg[2], call.seg[3], *b, call.method, call.route);
    }
    void reloadAll(Call &call) {
        Proxy *px = &proxy;
        if (reloadHandler) {
            dispatch(call.req, reloadHandler, call.method, call.route);
            return;
        }
        dispatch(
            call.req,
            [px]() -> CommandResult {
                int failed = px->reload();
                json out{{"reloaded", failed == 0}, {"failed", failed}};
                if (failed)
                    out["error"] = fmt::format("{} module(s) failed to reload; see the log", failed);
                return {failed ? 500 : 200, dumpJson(out)};
            },
            call.method, call.route);
    }
    // SIP credentials: Proxy::setUser/deleteUser/listUsers on the SIP thread. The password is never logged,
    // echoed or kept: our copies are wiped once the core has hashed it.
    static std::string param(const Call &call, const char *name) {
        for (const auto &[k, v] : call.params)
            if (k == name)
                return v;
        return "";
    }
    void userSet(Call &call) {
        std::optional<json> b = body(call, /*secret=*/true);
        if (!b)
            return;
        struct Wiped { // the password, wiped when the last closure holding it is gone
            std::string text;
            ~Wiped() { OPENSSL_cleanse(text.data(), text.size()); }
        };
        auto password = std::make_shared<Wiped>();
        std::vector<std::string> registerFor;
        const char *problem = nullptr;
        for (auto &[k, v] : b->items()) {
            if (k == "password") {
                if (v.is_string() && !v.get_ref<const std::string &>().empty())
                    password->text.swap(v.get_ref<std::string &>());
                else
                    problem = "password: expected a non-empty string";
            } else if (k == "register_for") {
                bool ok = v.is_array();
                for (const auto &x : ok ? v : json::array()) {
                    ok = ok && x.is_string() && !x.get_ref<const std::string &>().empty();
                    if (ok)
                        registerFor.push_back(x.get<std::string>());
                }
                if (!ok)
                    problem = "register_for: expected an array of user names (strings)";
            } else {
                problem = "unknown member in the request body (expected password and register_for)";
            }
            if (problem)
                break;
        }
        if (!problem && password->text.empty())
            problem = "password: missing (the body is {\"password\":\"...\",\"register_for\":[...]})";
        if (problem)
            return replyError(call.req, 400, problem, call.method, call.route);
        Proxy *px = &proxy;
        dispatch(
            call.req,
            [px, domain = param(call, "domain"), user = param(call, "user"), password, registerFor]() {
                return px->setUser(domain, user, password->text, registerFor);
            },
            call.method, call.route);
    }
    void userDelete(Call &call) {
        Proxy *px = &proxy;
        dispatch(
            call.req,
            [px, domain = param(call, "domain"), user = param(call, "user")]() { return px->deleteUser(domain, user); },
            call.method, call.route);
    }
    void userList(Call &call) {
        Proxy *px = &proxy;
        dispatch(
            call.req, [px, domain = param(call, "domain")]() { return px->listUsers(domain); }, call.method,
            call.route);
    }
    // SIP trace (proxy/core/sip_trace.hh): the trace belongs to the SIP thread; the body is checked here.
    void traceGet(Call &call) {
        dispatch(
            call.req,
            [] {
                return CommandResult{200, traceStatusJson()};
            },
            call.method, call.route);
    }
    static std::string traceProblem(const json &b, TraceSettings &s, bool &haveMax, bool &haveFiles) {
        if (!b.is_object())
            return "expected a JSON object {\"target\":\"pcap:/path\"}";
        for (auto &[k, v] : b.items()) {
            if (k == "target") {
                if (!v.is_string())
                    return "target: expected a string (\"pcap:FILE\" or \"text:FILE\")";
                s.target = v.get<std::string>();
            } else if (k == "max_bytes") {
                if (!v.is_number_unsigned() || v.get<uint64_t>() < kTraceMinBytes || v.get<uint64_t>() > kTraceMaxBytes)
                    return fmt::format("max_bytes: expected an integer in [{}, {}]", kTraceMinBytes, kTraceMaxBytes);
                s.maxBytes = v.get<uint64_t>(), haveMax = true;
            } else if (k == "files") {
                if (!v.is_number_unsigned() || v.get<uint64_t>() > kTraceMaxFiles)
                    return fmt::format("files: expected an integer in [0, {}]", kTraceMaxFiles);
                s.files = static_cast<uint32_t>(v.get<uint64_t>()), haveFiles = true;
            } else {
                return "unknown member " + k + " (expected target, max_bytes, files)";
            }
        }
        if (s.target.empty())
            return "target: missing (the body is {\"target\":\"pcap:/path\"}; DELETE stops)";
        std::string why = checkTraceTarget(s.target);
        return why.empty() ? "" : "target: " + why;
    }
    void tracePut(Call &call) {
        std::optional<json> b = body(call);
        if (!b)
            return;
        TraceSettings s;
        bool haveMax = false, haveFiles = false;
        if (std::string problem = traceProblem(*b, s, haveMax, haveFiles); !problem.empty())
            return replyError(call.req, 400, problem, call.method, call.route);
        Proxy *px = &proxy;
        dispatch(
            call.req,
            [px, s, haveMax, haveFiles]() mutable {
                // Unless given, the size limits are those in effect (else the config's).
                TraceSettings now = traceSettings();
                bool on = !now.target.empty();
                if (!haveMax)
                    s.maxBytes = on ? now.maxBytes : px->config().sipTraceMaxBytes;
                if (!haveFiles)
                    s.files = on ? now.files : px->config().sipTraceFiles;
                if (std::string why = traceApply(s); !why.empty())
                    return CommandResult{500, errorJson("cannot start the trace: " + why)};
                return CommandResult{200, traceStatusJson()};
            },
            call.method, call.route);
    }
    void traceDelete(Call &call) {
        dispatch(
            call.req,
            [] {
                traceApply({});
                return CommandResult{200, traceStatusJson()};
            },
            call.method, call.route);
    }
    void eventStream(Call &call) {
        auto it = call.query.find("types");
        startStream(call.req, it == call.query.end() ? std::string() : it->second);
    }

    // ---- lifecycle ----
    void bindAndListen() {
        HostPort hp = splitListen(cfg.listen);
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        addrinfo *res = nullptr;
        int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &res);
        if (rc != 0)
            throw std::runtime_error("admin.listen \"" + cfg.listen + "\": cannot resolve " + hp.host + ": " +
                                     gai_strerror(rc));
        std::string lastErr = "no address";
        int fd = -1;
        for (addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) {
                lastErr = std::strerror(errno);
                continue;
            }
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
                lastErr = std::strerror(errno);
                close(fd);
                fd = -1;
            }
        }
        freeaddrinfo(res);
        if (fd < 0)
            throw std::runtime_error("admin.listen \"" + cfg.listen + "\": cannot listen: " + lastErr);
        evutil_make_socket_nonblocking(fd);
        sockaddr_storage ss{};
        socklen_t sl = sizeof ss;
        getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &sl);
        boundPort = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port
                                                   : reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
        if (!evhttp_accept_socket_with_handle(http, fd)) {
            close(fd);
            throw std::runtime_error("admin.listen \"" + cfg.listen + "\": evhttp refused the socket");
        }
    }

    void configureHttp() {
        evhttp_set_gencb(http, &Impl::requestCb, this);
        evhttp_set_bevcb(http, &Impl::newConnection, this);
        // Backstops behind the gate (which refuses first, with a JSON answer).
        evhttp_set_max_body_size(http, static_cast<ev_ssize_t>(cfg.maxBodyBytes));
        evhttp_set_max_headers_size(http, static_cast<ev_ssize_t>(cfg.maxHeaderBytes) + 64);
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_HEAD);
        gate.maxBodyBytes = cfg.maxBodyBytes;
        gate.requireToken = cfg.requireToken;
        gate.token = cfg.token;
        gate.needsToken = [this](const std::vector<std::string> &seg) { return needsToken(seg); };
    }

    void start() {
        if (running)
            return;
        AdminServer::validate(cfg);
        buildRoutes(); // before binding: a module route that collides is an error naming the module
        if (cfg.tls() && !sslCtx)
            sslCtx = makeTlsContext(cfg);  // before binding: a bad file is an error naming its key
        static std::once_flag threadsOnce; // libevent's locking setup is process-wide by design
        std::call_once(threadsOnce, [] { evthread_use_pthreads(); });
        base = event_base_new();
        if (!base)
            throw std::runtime_error("admin: event_base_new failed");
        http = evhttp_new(base);
        configureHttp();
        try {
            bindAndListen();
        } catch (...) {
            evhttp_free(http);
            event_base_free(base);
            http = nullptr;
            base = nullptr;
            throw;
        }
        doneEv = event_new(
            base, -1, 0, [](evutil_socket_t, short, void *a) { static_cast<Impl *>(a)->onDone(); }, this);
        eventsEv = event_new(
            base, -1, 0, [](evutil_socket_t, short, void *a) { static_cast<Impl *>(a)->onEvents(); }, this);
        stopEv = event_new(
            base, -1, 0,
            [](evutil_socket_t, short, void *a) {
                auto *self = static_cast<Impl *>(a);
                self->shutdownOnLoop();
                event_base_loopbreak(self->base);
            },
            this);
        tickEv = event_new(
            base, -1, EV_PERSIST, [](evutil_socket_t, short, void *a) { static_cast<Impl *>(a)->onTick(); }, this);
        // Often enough for the shortest deadline it serves (keep-alives, 504s, header and idle timeouts).
        uint32_t shortest = std::min<uint32_t>(
            {cfg.sseKeepaliveMs, cfg.requestTimeoutMs, cfg.headerTimeoutMs, cfg.idleTimeoutMs, 2000});
        uint32_t tickMs = std::max<uint32_t>(10, shortest / 2);
        timeval tv{static_cast<time_t>(tickMs / 1000), static_cast<suseconds_t>((tickMs % 1000) * 1000)};
        event_add(tickEv, &tv);
        {
            std::lock_guard<std::mutex> lock(shared->mu);
            shared->doneEv = doneEv;
            shared->eventsEv = eventsEv;
        }
        startEpoch = processStartEpochSeconds();
        metrics.setHelp("parkway_build_info", "Parkway build; the value is always 1");
        metrics.gaugeSet("parkway_build_info", Metrics::label("version", PARKWAY_VERSION), 1);
        metrics.setHelp("parkway_uptime_seconds", "Seconds since the parkway process started");
        metrics.setHelp("parkway_admin_requests_total", "Admin API requests by method, route and status code");
        metrics.setHelp("parkway_admin_refused_total",
                        "Admin API requests and connections refused or closed by a limit, by reason");
        metrics.setHelp("parkway_admin_connections", "Open admin API connections (event streams included)");
        metrics.gaugeSet("parkway_admin_connections", "", 0);
        refreshProcessMetrics();
        running = true;
        thread = std::thread([this] { event_base_dispatch(base); });
    }

    // On the admin thread: answer what is outstanding, close streams.
    void shutdownOnLoop() {
        for (auto &[id, p] : pending)
            if (p.req && (p.conn || !evhttp_request_get_connection(p.req)))
                replyError(p.req, 503, "parkway admin is stopping", p.method, p.path);
        pending.clear();
        for (auto &[conn, s] : streams) {
            events.unsubscribe(s.sub);
            evhttp_connection_set_closecb(conn, nullptr, nullptr);
            evhttp_send_reply_end(s.req);
        }
        streams.clear();
        streamCount = 0;
    }

    void stop() {
        if (!running)
            return;
        event_active(stopEv, EV_READ, 0);
        thread.join();
        {
            std::lock_guard<std::mutex> lock(shared->mu);
            shared->doneEv = nullptr;
            shared->eventsEv = nullptr;
            shared->done.clear();
        }
        evhttp_free(http); // frees the remaining connections (their close callbacks release our part)
        releaseDead();
        for (event *e : {doneEv, eventsEv, tickEv, stopEv})
            event_free(e);
        event_base_free(base);
        http = nullptr;
        base = nullptr;
        doneEv = eventsEv = tickEv = stopEv = nullptr;
        running = false;
    }
};

// ------------------------------------------------------------------------------------------------ API

bool AdminServer::isLoopbackHost(const std::string &host) {
    if (host == "localhost")
        return true;
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127; // 127.0.0.0/8
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

void AdminServer::validate(const AdminConfig &cfg) {
    HostPort hp = splitListen(cfg.listen);
    bool loopback = isLoopbackHost(hp.host);
    if (!cfg.requireToken && !loopback)
        throw std::runtime_error("admin.require_token = false is only allowed on a loopback admin.listen address, "
                                 "not \"" +
                                 cfg.listen + "\"; set admin.token or listen on 127.0.0.1");
    if (cfg.requireToken && cfg.token.empty())
        throw std::runtime_error("admin.token is empty: set a bearer token (or admin.require_token = false on a "
                                 "loopback admin.listen)");
    if (cfg.requireToken && !loopback && cfg.token.size() < kMinRemoteTokenLength)
        throw std::runtime_error(fmt::format("admin.token has {} characters; at least {} are needed when admin.listen "
                                             "(\"{}\") is not a loopback address",
                                             cfg.token.size(), kMinRemoteTokenLength, cfg.listen));
    if (cfg.maxConnections == 0)
        throw std::runtime_error("admin.max_connections must be at least 1");
    if (cfg.maxJsonDepth == 0)
        throw std::runtime_error("admin.max_json_depth must be at least 1");
    if (cfg.maxHeaderBytes < 256)
        throw std::runtime_error("admin.max_header_bytes must be at least 256");
    if (cfg.headerTimeoutMs == 0 || cfg.idleTimeoutMs == 0)
        throw std::runtime_error("admin.header_timeout_ms and admin.idle_timeout_ms must be above 0");
    if (cfg.tlsCertificate.empty() != cfg.tlsPrivateKey.empty())
        throw std::runtime_error(cfg.tlsCertificate.empty()
                                     ? "admin.tls_certificate is not set: admin.tls_private_key needs it"
                                     : "admin.tls_private_key is not set: admin.tls_certificate needs it");
    if (!cfg.tlsCaFile.empty() && !cfg.tls())
        throw std::runtime_error("admin.tls_ca_file needs admin.tls_certificate and admin.tls_private_key");
    // The token (and SIP passwords) would cross the network in the clear.
    if (!loopback && !cfg.tls() && !cfg.allowPlaintext)
        throw std::runtime_error("admin.listen \"" + cfg.listen +
                                 "\" is not a loopback address: serve it over TLS (admin.tls_certificate and "
                                 "admin.tls_private_key) or set admin.allow_plaintext = true");
}

AdminServer::AdminServer(AdminConfig cfg, Proxy &proxy, Metrics &metrics, EventBus &events)
    : impl_(std::make_unique<Impl>(std::move(cfg), proxy, metrics, events)) {}

AdminServer::~AdminServer() {
    stop();
}

void AdminServer::start() {
    impl_->start();
}

void AdminServer::setReloadHandler(std::function<CommandResult()> handler) {
    impl_->reloadHandler = std::move(handler);
}

void AdminServer::stop() {
    if (impl_)
        impl_->stop();
}

uint16_t AdminServer::port() const {
    return impl_->boundPort;
}

size_t AdminServer::streamCount() const {
    return impl_->streamCount;
}

size_t AdminServer::connectionCount() const {
    return impl_->connectionCount;
}

} // namespace parkway::proxy
