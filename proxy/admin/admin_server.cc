// The admin plane. Threads: everything libevent runs on the admin thread (its own event_base); SIP state is
// touched only inside closures handed to Proxy::post(), whose results come back through a locked queue and
// event_active() on a pre-created event, so evhttp_send_reply() is only ever called on the admin thread.
#include "admin_server.hh"

#include "core/proxy.hh"
#include "event_bus.hh"
#include "metrics.hh"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <event2/util.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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

bool isLoopback(const std::string &host) {
    if (host == "localhost") return true;
    in_addr a4{};
    if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127; // 127.0.0.0/8
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

// Compare without an early exit so the time taken does not reveal how much of the token matched.
bool constantTimeEqual(const std::string &a, const std::string &b) {
    size_t n = std::max(a.size(), b.size());
    unsigned char diff = a.size() == b.size() ? 0 : 1;
    for (size_t i = 0; i < n; ++i) {
        unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
        unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
        diff |= static_cast<unsigned char>(x ^ y);
    }
    return diff == 0;
}

std::string errorJson(const std::string &message) { return json{{"error", message}}.dump(); }

const char *reason(int code) {
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return code < 400 ? "OK" : "Error";
    }
}

const char *methodName(evhttp_cmd_type m) {
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_HEAD: return "HEAD";
    default: return "OTHER";
    }
}

// Seconds since this process started, from /proc (Linux); nullopt-like -1 when unavailable.
double processStartEpochSeconds() {
    std::ifstream stat("/proc/self/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto rp = text.rfind(')'); // comm may contain spaces; fields after it are fixed
    if (rp == std::string::npos) return -1;
    std::istringstream in(text.substr(rp + 2));
    std::string field;
    unsigned long long startTicks = 0;
    for (int i = 3; i <= 22 && in >> field; ++i)
        if (i == 22) startTicks = std::stoull(field);
    std::ifstream up("/proc/uptime");
    double uptime = 0;
    if (!(up >> uptime) || startTicks == 0) return -1;
    long hz = sysconf(_SC_CLK_TCK);
    double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    return now - uptime + static_cast<double>(startTicks) / static_cast<double>(hz > 0 ? hz : 100);
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
    };

    AdminConfig cfg;
    Proxy &proxy;
    Metrics &metrics;
    EventBus &events;
    std::shared_ptr<Shared> shared = std::make_shared<Shared>();

    event_base *base = nullptr;
    evhttp *http = nullptr;
    event *doneEv = nullptr, *eventsEv = nullptr, *tickEv = nullptr, *stopEv = nullptr;
    std::thread thread;
    uint16_t boundPort = 0;
    bool running = false;
    std::atomic<size_t> streamCount{0};

    uint64_t nextPending = 1;
    std::map<uint64_t, Pending> pending; // admin thread only
    std::map<evhttp_connection *, Stream> streams;
    double startEpoch = -1;

    Impl(AdminConfig c, Proxy &p, Metrics &m, EventBus &e) : cfg(std::move(c)), proxy(p), metrics(m), events(e) {}

    // ---- replies (admin thread) ----
    void reply(evhttp_request *req, int code, const std::string &body, const char *contentType,
               const std::string &method = "", const std::string &route = "") {
        evkeyvalq *out = evhttp_request_get_output_headers(req);
        evhttp_add_header(out, "Content-Type", contentType);
        evhttp_add_header(out, "Cache-Control", "no-store");
        if (code == 401) evhttp_add_header(out, "WWW-Authenticate", "Bearer realm=\"parkway\"");
        evbuffer *buf = evbuffer_new();
        evbuffer_add(buf, body.data(), body.size());
        evhttp_send_reply(req, code, reason(code), buf);
        evbuffer_free(buf);
        if (!method.empty())
            metrics.counterAdd("parkway_admin_requests_total",
                               Metrics::labels({Metrics::label("method", method), Metrics::label("route", route),
                                                Metrics::label("code", std::to_string(code))}),
                               1);
    }
    void replyJson(evhttp_request *req, int code, const std::string &body, const std::string &method,
                   const std::string &route) {
        std::string b = body.empty() ? "null" : body;
        b += '\n';
        reply(req, code, b, "application/json", method, route);
    }
    void replyError(evhttp_request *req, int code, const std::string &message, const std::string &method,
                    const std::string &route) {
        replyJson(req, code, errorJson(message), method, route);
    }

    // ---- auth ----
    bool authorized(evhttp_request *req) const {
        if (!cfg.requireToken) return true;
        const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
        if (!h) return false;
        std::string v(h);
        if (v.size() < 7 || evutil_ascii_strncasecmp(v.c_str(), "bearer ", 7) != 0) return false;
        std::string tok = v.substr(7);
        while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.erase(tok.begin());
        while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.pop_back();
        return constantTimeEqual(tok, cfg.token);
    }

    // ---- SIP-thread work ----
    // Runs job on the SIP thread; its result is sent back to req on the admin thread.
    void dispatch(evhttp_request *req, std::function<CommandResult()> job, const std::string &method,
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
            CommandResult r;
            try {
                r = job();
            } catch (const std::exception &e) {
                r.httpStatus = 500;
                r.json = errorJson(std::string("internal error: ") + e.what());
            }
            std::lock_guard<std::mutex> lock(sh->mu);
            sh->done.emplace_back(id, std::move(r));
            if (sh->doneEv) event_active(sh->doneEv, EV_READ, 0);
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
        std::string argsText = args.dump();
        dispatch(
            req,
            [px, module, name, argsText]() -> CommandResult {
                bool haveModule = false, haveCommand = false;
                for (const auto &c : px->commands()) {
                    if (c.module != module) continue;
                    haveModule = true;
                    if (c.name == name) haveCommand = true;
                }
                if (!haveModule)
                    return {503, errorJson("module " + module + " is not loaded (or has no admin commands)")};
                if (!haveCommand) return {404, errorJson("module " + module + " has no admin command " + name)};
                return px->runCommand(module, name, argsText);
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
            if (it == pending.end()) continue; // timed out already
            Pending p = it->second;
            pending.erase(it);
            // A request whose connection was freed by libevent is gone; a detached one is freed by the reply.
            if (!p.conn && evhttp_request_get_connection(p.req)) continue;
            replyJson(p.req, result.httpStatus, result.json, p.method, p.path);
        }
    }

    // Connection closed (client went away, or the server is being freed).
    void onClose(evhttp_connection *conn) {
        for (auto &[id, p] : pending)
            if (p.conn == conn) {
                p.conn = nullptr;
                // Attached: libevent frees the request with the connection; forget it.
                if (evhttp_request_get_connection(p.req)) p.req = nullptr;
            }
        for (auto it = pending.begin(); it != pending.end();) {
            if (!it->second.req) it = pending.erase(it);
            else ++it;
        }
        auto s = streams.find(conn);
        if (s == streams.end()) return;
        events.unsubscribe(s->second.sub);
        evhttp_request *req = s->second.req;
        streams.erase(s);
        streamCount = streams.size();
        // Detached from its connection (EOF while streaming): it is ours to free.
        if (!evhttp_request_get_connection(req)) evhttp_send_reply_end(req);
    }

    static void closeCb(evhttp_connection *conn, void *arg) { static_cast<Impl *>(arg)->onClose(conn); }

    // ---- event stream ----
    void writeChunk(Stream &s, const std::string &text) {
        evbuffer *buf = evbuffer_new();
        evbuffer_add(buf, text.data(), text.size());
        evhttp_send_reply_chunk(s.req, buf);
        evbuffer_free(buf);
        s.lastWrite = Clock::now();
    }

    void onEvents() {
        for (auto &[conn, s] : streams) {
            std::string out;
            for (const Event &ev : events.drain(s.sub)) {
                if (!s.types.empty() && !s.types.count(ev.type)) continue;
                out += fmt::format("id: {}\nevent: {}\n", ev.seq, ev.type);
                // SSE: every line of the payload is its own "data:" line.
                std::istringstream lines(ev.json.empty() ? std::string("{}") : ev.json);
                std::string line;
                while (std::getline(lines, line)) out += "data: " + line + "\n";
                out += "\n";
            }
            if (!out.empty()) writeChunk(s, out);
        }
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
            if (!t.empty()) s.types.insert(t);
        std::shared_ptr<Shared> sh = shared;
        s.sub = events.subscribe([sh] {
            std::lock_guard<std::mutex> lock(sh->mu);
            if (sh->eventsEv) event_active(sh->eventsEv, EV_READ, 0);
        });
        evkeyvalq *out = evhttp_request_get_output_headers(req);
        evhttp_add_header(out, "Content-Type", "text/event-stream");
        evhttp_add_header(out, "Cache-Control", "no-cache");
        evhttp_add_header(out, "X-Accel-Buffering", "no");
        evhttp_send_reply_start(req, 200, "OK");
        auto &stored = streams.emplace(conn, std::move(s)).first->second;
        streamCount = streams.size();
        metrics.counterAdd("parkway_admin_requests_total",
                           Metrics::labels({Metrics::label("method", "GET"), Metrics::label("route", "/api/events"),
                                            Metrics::label("code", "200")}),
                           1);
        writeChunk(stored, "retry: 3000\n: parkway event stream\n\n");
    }

    // Keep-alives for idle streams, 504 for requests the SIP thread did not answer in time.
    void onTick() {
        auto now = Clock::now();
        for (auto &[conn, s] : streams)
            if (now - s.lastWrite >= std::chrono::milliseconds(cfg.sseKeepaliveMs)) writeChunk(s, ": keep-alive\n\n");
        for (auto it = pending.begin(); it != pending.end();) {
            if (now < it->second.deadline) {
                ++it;
                continue;
            }
            Pending p = it->second;
            it = pending.erase(it);
            replyError(p.req, 504, "the SIP thread did not answer in time", p.method, p.path);
        }
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

    void handle(evhttp_request *req) {
        evhttp_cmd_type cmd = evhttp_request_get_command(req);
        std::string method = methodName(cmd);
        const evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *rawPath = uri ? evhttp_uri_get_path(uri) : nullptr;
        const char *rawQuery = uri ? evhttp_uri_get_query(uri) : nullptr;
        std::string path = rawPath && *rawPath ? rawPath : "/";

        if (evhttp_connection *conn = evhttp_request_get_connection(req))
            evhttp_connection_set_closecb(conn, &Impl::closeCb, this);

        // Path segments, percent-decoded one by one so an encoded '/' stays inside its segment.
        std::vector<std::string> seg;
        {
            std::stringstream ss(path);
            std::string s;
            while (std::getline(ss, s, '/')) {
                if (s.empty()) continue;
                size_t n = 0;
                char *d = evhttp_uridecode(s.c_str(), 0, &n);
                seg.emplace_back(d ? std::string(d, n) : s);
                free(d);
            }
        }
        // Query parameters (decoded).
        std::map<std::string, std::string> query;
        if (rawQuery) {
            evkeyvalq q;
            q.tqh_first = nullptr; // TAILQ_INIT
            q.tqh_last = &q.tqh_first;
            if (evhttp_parse_query_str(rawQuery, &q) == 0)
                for (evkeyval *kv = q.tqh_first; kv; kv = kv->next.tqe_next) query[kv->key] = kv->value;
            evhttp_clear_headers(&q);
        }

        auto is = [&](std::initializer_list<const char *> want) {
            if (seg.size() != want.size()) return false;
            size_t i = 0;
            for (const char *w : want) {
                if (std::strcmp(w, "*") != 0 && seg[i] != w) return false;
                ++i;
            }
            return true;
        };
        auto methodNotAllowed = [&](const char *allow, const std::string &route) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
            replyError(req, 405, method + " is not allowed on " + route + " (allowed: " + allow + ")", method, route);
        };

        // Unauthenticated liveness probe: says nothing but "up".
        if (is({"health"})) {
            if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) return methodNotAllowed("GET", "/health");
            return replyJson(req, 200, json{{"status", "ok"}, {"version", PARKWAY_VERSION}}.dump(), method, "/health");
        }
        if (is({"metrics"})) {
            if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) return methodNotAllowed("GET", "/metrics");
            if (cfg.metricsRequireToken && !authorized(req))
                return replyError(req, 401, "missing or wrong bearer token (Authorization: Bearer <admin.token>)",
                                  method, "/metrics");
            refreshProcessMetrics();
            return reply(req, 200, metrics.renderPrometheus(), "text/plain; version=0.0.4; charset=utf-8", method,
                         "/metrics");
        }
        if (seg.empty() || seg[0] != "api")
            return replyError(req, 404, "no such endpoint: " + path, method, "other");
        if (!authorized(req))
            return replyError(req, 401, "missing or wrong bearer token (Authorization: Bearer <admin.token>)",
                              method, "/api");

        // Request body: a JSON object (or nothing).
        json body = json::object();
        bool bodyOk = true;
        auto parseBody = [&]() {
            evbuffer *in = evhttp_request_get_input_buffer(req);
            size_t len = evbuffer_get_length(in);
            std::string text(len, '\0');
            if (len) evbuffer_copyout(in, text.data(), len);
            if (text.find_first_not_of(" \t\r\n") == std::string::npos) return;
            try {
                body = json::parse(text);
            } catch (const json::parse_error &e) {
                bodyOk = false;
                replyError(req, 400, fmt::format("invalid JSON in request body at byte {}: {}", e.byte, e.what()),
                           method, path);
                return;
            }
            if (!body.is_object()) {
                bodyOk = false;
                replyError(req, 400, "request body must be a JSON object", method, path);
            }
        };
        auto queryArgs = [&](std::initializer_list<const char *> keys) {
            json a = json::object();
            for (const char *k : keys)
                if (auto it = query.find(k); it != query.end() && !it->second.empty()) a[k] = it->second;
            return a;
        };
        const bool get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST, put = cmd == EVHTTP_REQ_PUT,
                   del = cmd == EVHTTP_REQ_DELETE;

        // ---- parked calls ----
        if (is({"api", "parked"})) {
            if (!get) return methodNotAllowed("GET", "/api/parked");
            return command(req, "callpark", "parked.list", queryArgs({"domain", "extension", "group", "lot"}),
                           method, "/api/parked");
        }
        // Parked-call ids are engine integers; a numeric segment is passed as a number, anything else as text
        // (the module then answers with its own error).
        auto idArg = [&](const std::string &text) {
            bool digits = !text.empty() && text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos;
            return digits ? json{{"id", std::stoll(text)}} : json{{"id", text}};
        };
        if (is({"api", "parked", "*"})) {
            const std::string route = "/api/parked/{id}";
            if (get) return command(req, "callpark", "parked.get", idArg(seg[2]), method, route);
            if (del) return command(req, "callpark", "parked.hangup", idArg(seg[2]), method, route);
            return methodNotAllowed("GET, DELETE", route);
        }
        if (is({"api", "parked", "*", "recall"})) {
            if (!post) return methodNotAllowed("POST", "/api/parked/{id}/recall");
            return command(req, "callpark", "parked.recall", idArg(seg[2]), method, "/api/parked/{id}/recall");
        }

        // ---- groups, lots, domains ----
        for (const char *kind : {"groups", "lots"}) {
            std::string k = kind;
            if (is({"api", kind})) {
                if (!get) return methodNotAllowed("GET", "/api/" + k);
                return command(req, "callpark", k + ".list", queryArgs({"domain"}), method, "/api/" + k);
            }
            if (is({"api", kind, "*", "*"})) {
                const std::string route = "/api/" + k + "/{domain}/{name}";
                if (del)
                    return command(req, "callpark", k + ".delete", json{{"domain", seg[2]}, {"name", seg[3]}}, method,
                                   route);
                if (!put) return methodNotAllowed("PUT, DELETE", route);
                parseBody();
                if (!bodyOk) return;
                if (k == "groups" && body.contains("members")) {
                    const json &m = body["members"];
                    bool ok = m.is_array();
                    if (ok)
                        for (const auto &x : m) ok = ok && (x.is_string() || x.is_number_integer());
                    if (!ok)
                        return replyError(req, 400, "members: expected an array of extensions (strings)", method,
                                          route);
                }
                body["domain"] = seg[2]; // the path wins over the body
                body["name"] = seg[3];
                return command(req, "callpark", k + ".set", body, method, route);
            }
        }
        if (is({"api", "domains"})) {
            if (!get) return methodNotAllowed("GET", "/api/domains");
            return command(req, "callpark", "domains.list", json::object(), method, "/api/domains");
        }
        if (is({"api", "domains", "*"})) {
            if (!put) return methodNotAllowed("PUT", "/api/domains/{domain}");
            parseBody();
            if (!bodyOk) return;
            body["domain"] = seg[2];
            return command(req, "callpark", "domains.set", body, method, "/api/domains/{domain}");
        }

        // ---- rules ----
        if (is({"api", "rules"})) {
            if (get) {
                json a = json::object();
                for (const auto &[key, v] : query) a[key] = v;
                return command(req, "callpark", "rules.list", a, method, "/api/rules");
            }
            if (!post) return methodNotAllowed("GET, POST", "/api/rules");
            parseBody();
            if (!bodyOk) return;
            if (!body.contains("text") || !body["text"].is_string())
                return replyError(req, 400, "text: expected the rules file content as a string", method, "/api/rules");
            if (body.contains("replace") && !body["replace"].is_boolean())
                return replyError(req, 400, "replace: expected true or false", method, "/api/rules");
            return command(req, "callpark", "rules.import", body, method, "/api/rules");
        }
        if (is({"api", "rules", "reload"})) {
            if (!post) return methodNotAllowed("POST", "/api/rules/reload");
            return command(req, "callpark", "rules.reload", json::object(), method, "/api/rules/reload");
        }
        if (is({"api", "explain"})) {
            if (!get) return methodNotAllowed("GET", "/api/explain");
            json a = queryArgs({"domain", "caller", "dial"});
            for (const char *k : {"domain", "caller", "dial"})
                if (!a.contains(k))
                    return replyError(req, 400, std::string("missing query parameter: ") + k +
                                                    " (GET /api/explain?domain=D&caller=EXT&dial=DIGITS)",
                                      method, "/api/explain");
            return command(req, "callpark", "rules.explain", a, method, "/api/explain");
        }

        // ---- registrations ----
        if (is({"api", "registrations"})) {
            if (!get) return methodNotAllowed("GET", "/api/registrations");
            return command(req, "registrar", "registrations.list", queryArgs({"aor"}), method, "/api/registrations");
        }

        // ---- core ----
        if (is({"api", "stats"})) {
            if (!get) return methodNotAllowed("GET", "/api/stats");
            Proxy *px = &proxy;
            return dispatch(
                req,
                [px]() -> CommandResult {
                    json out;
                    out["core"] = json::parse(px->statsJson(), nullptr, false);
                    json mods = json::object();
                    for (const auto &c : px->commands()) {
                        if (c.name != "stats") continue;
                        CommandResult r = px->runCommand(c.module, "stats", "{}");
                        json v = json::parse(r.json, nullptr, false);
                        mods[c.module] = r.httpStatus == 200 && !v.is_discarded() ? v : json{{"error", r.json}};
                    }
                    out["modules"] = mods;
                    return {200, out.dump()};
                },
                method, "/api/stats");
        }
        if (is({"api", "commands"})) {
            if (!get) return methodNotAllowed("GET", "/api/commands");
            Proxy *px = &proxy;
            return dispatch(
                req,
                [px]() -> CommandResult {
                    json list = json::array();
                    for (const auto &c : px->commands())
                        list.push_back({{"module", c.module}, {"name", c.name}, {"help", c.help}});
                    return {200, json{{"commands", list}}.dump()};
                },
                method, "/api/commands");
        }
        if (is({"api", "modules", "*", "*"})) {
            if (!post) return methodNotAllowed("POST", "/api/modules/{module}/{command}");
            parseBody();
            if (!bodyOk) return;
            return command(req, seg[2], seg[3], body, method, "/api/modules/{module}/{command}");
        }
        if (is({"api", "reload"})) {
            if (!post) return methodNotAllowed("POST", "/api/reload");
            Proxy *px = &proxy;
            return dispatch(
                req,
                [px]() -> CommandResult {
                    int failed = px->reload();
                    json out{{"reloaded", failed == 0}, {"failed", failed}};
                    if (failed) out["error"] = fmt::format("{} module(s) failed to reload; see the log", failed);
                    return {failed ? 500 : 200, out.dump()};
                },
                method, "/api/reload");
        }
        if (is({"api", "events"})) {
            if (!get) return methodNotAllowed("GET", "/api/events");
            return startStream(req, query.count("types") ? query["types"] : std::string());
        }
        replyError(req, 404, "no such endpoint: " + path, method, "other");
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
        if (fd < 0) throw std::runtime_error("admin.listen \"" + cfg.listen + "\": cannot listen: " + lastErr);
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

    void start() {
        if (running) return;
        AdminServer::validate(cfg);
        static std::once_flag threadsOnce; // libevent's locking setup is process-wide by design
        std::call_once(threadsOnce, [] { evthread_use_pthreads(); });
        base = event_base_new();
        if (!base) throw std::runtime_error("admin: event_base_new failed");
        http = evhttp_new(base);
        evhttp_set_gencb(http, &Impl::requestCb, this);
        evhttp_set_max_body_size(http, static_cast<ev_ssize_t>(cfg.maxBodyBytes));
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_HEAD);
        try {
            bindAndListen();
        } catch (...) {
            evhttp_free(http);
            event_base_free(base);
            http = nullptr;
            base = nullptr;
            throw;
        }
        doneEv = event_new(base, -1, 0, [](evutil_socket_t, short, void *a) { static_cast<Impl *>(a)->onDone(); },
                           this);
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
        uint32_t tickMs = std::max<uint32_t>(10, std::min<uint32_t>({cfg.sseKeepaliveMs, cfg.requestTimeoutMs, 1000}));
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
        if (!running) return;
        event_active(stopEv, EV_READ, 0);
        thread.join();
        {
            std::lock_guard<std::mutex> lock(shared->mu);
            shared->doneEv = nullptr;
            shared->eventsEv = nullptr;
            shared->done.clear();
        }
        evhttp_free(http); // frees the remaining connections; our close callback must not run any more
        for (event *e : {doneEv, eventsEv, tickEv, stopEv}) event_free(e);
        event_base_free(base);
        http = nullptr;
        base = nullptr;
        doneEv = eventsEv = tickEv = stopEv = nullptr;
        running = false;
    }
};

// ------------------------------------------------------------------------------------------------ API

void AdminServer::validate(const AdminConfig &cfg) {
    HostPort hp = splitListen(cfg.listen);
    if (!cfg.requireToken && !isLoopback(hp.host))
        throw std::runtime_error("admin.require_token = false is only allowed on a loopback admin.listen address, "
                                 "not \"" +
                                 cfg.listen + "\"; set admin.token or listen on 127.0.0.1");
    if (cfg.requireToken && cfg.token.empty())
        throw std::runtime_error("admin.token is empty: set a bearer token (or admin.require_token = false on a "
                                 "loopback admin.listen)");
}

AdminServer::AdminServer(AdminConfig cfg, Proxy &proxy, Metrics &metrics, EventBus &events)
    : impl_(std::make_unique<Impl>(std::move(cfg), proxy, metrics, events)) {}

AdminServer::~AdminServer() { stop(); }

void AdminServer::start() { impl_->start(); }

void AdminServer::stop() {
    if (impl_) impl_->stop();
}

uint16_t AdminServer::port() const { return impl_->boundPort; }

size_t AdminServer::streamCount() const { return impl_->streamCount; }

} // namespace parkway::proxy
