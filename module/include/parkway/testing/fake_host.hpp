// A fake Parkway host for unit-testing a module in-process, without a proxy or SIP (docs/modules.md "Testing").
// Header-only C++17 over <parkway/module.h>; link nothing but the module (or dlopen it with FakeHost::open).
//
//   parkway::testing::FakeHost h;
//   REQUIRE(h.start(pw_module_entry(PW_ABI_MAJOR), {{"header", "X-Test"}}) == PW_OK);
//   parkway::testing::Request r("INVITE", "sip:alice@pbx.example.com");
//   r.header("From", "<sip:bob@pbx.example.com>;tag=1");
//   CHECK(h.send(r) == PW_CONTINUE);
//   CHECK(r.added.at(0).first == "X-Test");
//
// What it does: requests are built from header lists; replies, targets, added headers, logs, metrics and events
// are recorded; the clock and timers belong to the test (advance()); admin commands run with command(); a
// location provider registered by the module is reachable with lookup(). dialog_accept / dialog_accept_commit
// make dialogs from the request's headers (no wire). URIs (ABI 1.4 uri_*) are parsed by a small parser here, not
// by the real host's SIP stack: enough for sip:/sips:/tel: test URIs, not a conformance reference.
// Lifetimes are those of module.h: strings "valid until the turn ends" are freed when the next send(),
// advance() or command() starts (endTurn()), so a module keeping such a view past its callback reads freed
// memory under AddressSanitizer. limitTo(size) makes the table look like an older host's (e.g. v1.0).
// Functions a test does not need (sending requests, dialogs on the wire, posting) return PW_EUNSUPPORTED/NULL.
#pragma once
#include <parkway/module.h>
#include <parkway/module.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parkway::testing {

inline std::string lowerCase(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

struct Reply {
    int status = 0;
    std::string reason;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string contentType, body;
    std::vector<std::string> all(const std::string &name) const {
        std::vector<std::string> out;
        for (const auto &[n, v] : headers)
            if (lowerCase(n) == lowerCase(name))
                out.push_back(v);
        return out;
    }
};

// A dialog made by dialog_accept(_commit): its identity comes from the request's headers (no SIP).
struct Dialog {
    std::string callId, localTag, remoteTag, localUri, remoteUri, remoteTarget, remoteDisplay;
    const pw_dialog_callbacks *cbs = nullptr;
    void *arg = nullptr;
    bool answered = false; // the 2xx "left"
    bool ended = false;
};

// An incoming request and everything the module did with it.
struct Request {
    Request() = default;
    Request(std::string m, std::string uri) : method(std::move(m)), ruri(std::move(uri)) {}
    Request &header(std::string name, std::string value) {
        headers.emplace_back(std::move(name), std::move(value));
        return *this;
    }

    std::string method, ruri, body, source = "udp:127.0.0.1:5062";
    std::vector<std::pair<std::string, std::string>> headers; // one entry per value (already split)
    // request_identity: unset = its From URI as in a domain without authentication; set = this (empty: nobody)
    std::optional<std::string> identity;
    int identitySource = PW_IDENTITY_UNAUTHENTICATED;

    std::vector<Reply> replies;
    std::vector<std::pair<std::string, std::string>> targets; // (uri, next hop)
    std::vector<std::pair<std::string, std::string>> added;
    std::vector<std::string> removed;
    std::vector<std::shared_ptr<Dialog>> dialogs;
    int retains = 0, releases = 0;
    std::optional<pw_verdict> resumed;
    mutable std::deque<std::string> scratch; // keeps returned views alive as long as the request

    bool final() const {
        for (const Reply &r : replies)
            if (r.status >= 200)
                return true;
        return false;
    }
    const Reply *finalReply() const {
        for (const Reply &r : replies)
            if (r.status >= 200)
                return &r;
        return nullptr;
    }
};

struct Timer {
    uint64_t id;
    int64_t dueMs;
    pw_timer_fn fn;
    void *arg;
};

// The parts of a URI, read the way module.h uri_part describes (a small parser, see the top of this file).
struct UriParts {
    bool ok = false;
    std::string scheme, user, host, port, params, headers; // raw (escaped) user, params and headers
};

inline UriParts parseUri(std::string t) {
    UriParts u;
    if (auto lt = t.find('<'); lt != std::string::npos)
        t = t.substr(lt + 1, t.find('>', lt) == std::string::npos ? std::string::npos : t.find('>', lt) - lt - 1);
    auto colon = t.find(':');
    if (colon == std::string::npos || colon == 0)
        return u;
    u.scheme = lowerCase(t.substr(0, colon));
    std::string rest = t.substr(colon + 1);
    if (auto q = rest.find('?'); q != std::string::npos) {
        u.headers = rest.substr(q + 1);
        rest.resize(q);
    }
    if (u.scheme == "tel") {
        auto semi = rest.find(';');
        u.user = rest.substr(0, semi);
        u.params = semi == std::string::npos ? "" : rest.substr(semi + 1);
        u.ok = !u.user.empty();
        return u;
    }
    if (auto at = rest.rfind('@'); at != std::string::npos) {
        u.user = rest.substr(0, rest.find_first_of(":@"));
        rest = rest.substr(at + 1);
    }
    if (auto semi = rest.find(';'); semi != std::string::npos) {
        u.params = rest.substr(semi + 1);
        rest.resize(semi);
    }
    if (rest.empty())
        return u;
    size_t close = rest[0] == '[' ? rest.find(']') : 0;
    auto pc = rest.find(':', close == std::string::npos ? 0 : close);
    u.host = lowerCase(rest.substr(0, pc));
    u.port = pc == std::string::npos ? "" : rest.substr(pc + 1);
    u.ok = !u.host.empty() || u.scheme != "sip";
    return u;
}

inline std::optional<std::string> uriListValue(const std::string &list, char sep, const std::string &name) {
    size_t pos = 0;
    while (pos <= list.size() && !list.empty()) {
        size_t end = list.find(sep, pos);
        std::string item = list.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
        auto eq = item.find('=');
        if (lowerCase(sdk::uriUnescape(item.substr(0, eq))) == lowerCase(name))
            return eq == std::string::npos ? std::string() : sdk::uriUnescape(item.substr(eq + 1));
        if (end == std::string::npos)
            break;
        pos = end + 1;
    }
    return std::nullopt;
}

class FakeHost {
public:
    FakeHost() : api_(makeApi()) {}
    FakeHost(const FakeHost &) = delete;
    FakeHost &operator=(const FakeHost &) = delete;
    ~FakeHost() {
        stop();
        if (dl_)
            dlclose(dl_);
    }

    // ---- what the test sets
    std::map<std::string, std::string> core;                          // core_setting()
    std::vector<std::string> domains{"127.0.0.1", "pbx.example.com"}; // is_local_domain()
    int64_t nowMs = 1'700'000'000'000;

    // ---- what the module did
    std::vector<std::string> logs;
    std::map<std::string, double> counters; // "name{labels}" -> value (counters, gauges)
    std::vector<std::pair<std::string, std::string>> events;
    bool eventListening = true;           // event_listening(): the fake records every event, as if a client listened
    pw_log_level logLevel = PW_LOG_DEBUG; // log_enabled() and log(): lines above it are neither wanted nor kept
    uint64_t logEnabledCalls = 0;         // how often the module asked log_enabled()
    std::vector<Timer> timers;
    pw_location_fn provider = nullptr; // what the module registered (a test may set or share one)
    void *providerCtx = nullptr;

    const pw_host_api *api() const { return &api_; }
    pw_host *raw() { return reinterpret_cast<pw_host *>(this); }
    const pw_module *module() const { return desc_; }
    void *ctx() const { return ctx_; }

    // Look like an older host: the table ends at `structSize` (e.g. offsetof(pw_host_api, dialog_accept_commit)
    // for v1.0) and every member past it is NULL, so PW_HOST_HAS() is false for them.
    void limitTo(uint32_t structSize) {
        structSize = std::min<uint32_t>(structSize, sizeof(pw_host_api));
        std::memset(reinterpret_cast<char *>(&api_) + structSize, 0, sizeof(pw_host_api) - structSize);
        api_.struct_size = structSize;
        api_.abi_minor = 0;
    }

    // dlopen a module file and return its descriptor (nullptr and `error` set when that fails).
    const pw_module *open(const std::string &path, std::string *error = nullptr) {
        dl_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!dl_) {
            if (error)
                *error = dlerror();
            return nullptr;
        }
        auto entry = reinterpret_cast<pw_module_entry_fn>(dlsym(dl_, PW_MODULE_ENTRY_SYMBOL));
        const pw_module *d = entry ? entry(PW_ABI_MAJOR) : nullptr;
        if (!d && error)
            *error = entry ? "pw_module_entry returned NULL" : "no pw_module_entry";
        return d;
    }

    // init() then start() the module with these parameters (declared defaults applied; durations such as "30s"
    // and booleans normalised as the real loader does). Returns the first non-PW_OK code.
    int start(const pw_module *desc, const std::map<std::string, std::string> &params = {}) {
        if (!desc || !desc->init || !desc->destroy || !desc->on_request)
            return PW_EINVAL;
        desc_ = desc;
        params_.clear();
        for (const pw_param_def *p = desc->params; p && p->name;
             p = reinterpret_cast<const pw_param_def *>(reinterpret_cast<const char *>(p) + p->struct_size)) {
            auto it = params.find(p->name);
            std::string v = it != params.end() ? it->second : p->default_value ? p->default_value : "";
            params_[p->name] = normalise(p->type, v);
        }
        for (const auto &[k, v] : params)
            params_.emplace(k, v); // undeclared ones too: the real loader refuses them, a test may want to try
        endTurn();
        int rc = desc->init(&api_, raw(), &ctx_);
        if (rc != PW_OK) {
            desc_ = nullptr;
            return rc;
        }
        started_ = true;
        return desc->start ? desc->start(ctx_) : PW_OK;
    }
    // stop() and destroy() the module (also done by the destructor).
    void stop() {
        if (!started_)
            return;
        started_ = false;
        endTurn();
        if (desc_->stop)
            desc_->stop(ctx_);
        desc_->destroy(ctx_);
        provider = nullptr;
        timers.clear();
    }

    // One incoming request through the module's on_request.
    pw_verdict send(Request &req) {
        endTurn();
        return desc_->on_request(ctx_, reinterpret_cast<pw_request *>(&req));
    }
    // Move the clock and fire due timers, in order.
    void advance(int64_t ms) {
        int64_t until = nowMs + ms;
        for (;;) {
            auto it = std::min_element(timers.begin(), timers.end(),
                                       [](const Timer &a, const Timer &b) { return a.dueMs < b.dueMs; });
            if (it == timers.end() || it->dueMs > until)
                break;
            Timer t = *it;
            timers.erase(it);
            nowMs = std::max(nowMs, t.dueMs);
            endTurn();
            t.fn(t.arg);
        }
        nowMs = until;
    }
    // An admin command: (HTTP status, JSON text). 404 when the module has no such command.
    std::pair<int, std::string> command(const std::string &name, const std::string &args = "{}") {
        endTurn();
        std::pair<int, std::string> out{404, "{\"error\":\"no such command\"}"};
        for (const pw_command_def *c = desc_->commands; c && c->name;
             c = reinterpret_cast<const pw_command_def *>(reinterpret_cast<const char *>(c) + c->struct_size))
            if (name == c->name) {
                out = {0, ""};
                c->run(ctx_, pw_str{args.data(), args.size()}, reinterpret_cast<pw_writer *>(&out));
            }
        return out;
    }
    // location_lookup through the provider the module registered: the contact URIs, or nullopt on an error code.
    std::optional<std::vector<std::string>> lookup(const std::string &aor) {
        std::vector<std::string> out;
        int rc = api_.location_lookup(raw(), pw_str{aor.data(), aor.size()}, collectContact, &out);
        if (rc < 0)
            return std::nullopt;
        return out;
    }
    // Strings "valid until the turn ends" are freed (module.h); done before each send/advance/command.
    void endTurn() {
        turn_.clear();
        turnOf().clear();
    }

    std::string param(const std::string &name) const {
        auto it = params_.find(name);
        return it == params_.end() ? std::string() : it->second;
    }

private:
    static FakeHost *H(pw_host *h) { return reinterpret_cast<FakeHost *>(h); }
    static Request *R(pw_request *r) { return reinterpret_cast<Request *>(r); }
    static const Request *M(const pw_msg *m) { return reinterpret_cast<const Request *>(m); }
    static Dialog *D(pw_dialog *d) { return reinterpret_cast<Dialog *>(d); }
    static std::string S(pw_str s) { return s.ptr && s.len ? std::string(s.ptr, s.len) : std::string(); }
    static pw_str keep(std::deque<std::string> &store, std::string s) {
        store.push_back(std::move(s));
        return pw_str{store.back().data(), store.back().size()};
    }
    static pw_str none() { return pw_str{nullptr, 0}; }

    static std::string normalise(pw_param_type type, const std::string &v) {
        if (type == PW_PARAM_BOOL) {
            std::string l = lowerCase(v);
            return l == "true" || l == "yes" || l == "on" || l == "1" ? "true" : "false";
        }
        if (type == PW_PARAM_DURATION && !v.empty()) {
            size_t pos = 0;
            long long n = std::stoll(v, &pos);
            std::string unit = lowerCase(v.substr(pos));
            long long mul = unit == "s" ? 1000 : unit == "m" || unit == "min" ? 60000 : unit == "h" ? 3600000 : 1;
            return std::to_string(n * mul);
        }
        return v;
    }

    static std::string fullName(const std::string &n) {
        static const std::map<std::string, std::string> compact{
            {"m", "contact"},  {"t", "to"},          {"f", "from"}, {"i", "call-id"},
            {"r", "refer-to"}, {"b", "referred-by"}, {"v", "via"},  {"c", "content-type"}};
        std::string l = lowerCase(n);
        auto it = compact.find(l);
        return it == compact.end() ? l : it->second;
    }
    static std::optional<std::string> headerText(const Request *r, const std::string &name, unsigned idx = 0) {
        unsigned seen = 0;
        for (const auto &[n, v] : r->headers)
            if (fullName(n) == fullName(name) && seen++ == idx)
                return v;
        return std::nullopt;
    }
    static std::string addrUri(const std::string &v) {
        auto lt = v.find('<');
        if (lt != std::string::npos)
            return v.substr(lt + 1, v.find('>', lt) - lt - 1);
        return v.substr(0, v.find(';'));
    }
    static std::string addrTag(const std::string &v) {
        auto gt = v.find('>');
        auto t = v.find(";tag=", gt == std::string::npos ? 0 : gt);
        return t == std::string::npos ? std::string() : v.substr(t + 5, v.find(';', t + 5) - t - 5);
    }
    static std::string addrDisplay(const std::string &v) {
        auto lt = v.find('<');
        if (lt == std::string::npos)
            return {};
        std::string d = v.substr(0, lt);
        d.erase(d.find_last_not_of(" \t") + 1);
        d.erase(0, d.find_first_not_of(" \t") == std::string::npos ? d.size() : d.find_first_not_of(" \t"));
        if (d.size() >= 2 && d.front() == '"' && d.back() == '"')
            d = d.substr(1, d.size() - 2);
        return d;
    }

    static void collectContact(void *arg, const pw_contact *c) {
        static_cast<std::vector<std::string> *>(arg)->push_back(S(c->uri));
    }

    static pw_dialog *makeDialog(pw_request *req, int status, const pw_header *hs, size_t n,
                                 const pw_dialog_callbacks *cbs, void *arg, int (*commit)(void *, pw_dialog *),
                                 void *carg) {
        Request *r = R(req);
        if (!r || r->final() || status < 200 || status > 299)
            return nullptr;
        auto d = std::make_shared<Dialog>();
        d->callId = headerText(r, "Call-ID").value_or("");
        d->localTag = "fake" + std::to_string(r->dialogs.size() + 1);
        std::string from = headerText(r, "From").value_or(""), to = headerText(r, "To").value_or("");
        d->remoteTag = addrTag(from);
        d->localUri = addrUri(to);
        d->remoteUri = addrUri(from);
        d->remoteDisplay = addrDisplay(from);
        d->remoteTarget = addrUri(headerText(r, "Contact").value_or(from));
        d->cbs = cbs;
        d->arg = arg;
        Dialog *dp = d.get();
        r->dialogs.push_back(std::move(d));
        int rc = commit ? commit(carg, reinterpret_cast<pw_dialog *>(dp)) : 0;
        if (rc != 0 || r->final()) {
            if (!r->final())
                r->replies.push_back(Reply{rc >= 300 && rc <= 699 ? rc : 500, "", {}, "", ""});
            return nullptr;
        }
        Reply ok{status, "OK", {}, "", ""};
        for (size_t i = 0; i < n; ++i)
            ok.headers.emplace_back(S(hs[i].name), S(hs[i].value));
        r->replies.push_back(ok);
        dp->answered = true;
        return reinterpret_cast<pw_dialog *>(dp);
    }

    static pw_str dialogGet(pw_dialog *dlg, pw_dialog_field f) {
        Dialog *d = D(dlg);
        if (!d)
            return none();
        switch (f) {
        case PW_DLG_CALL_ID:
            return keep(turnOf(), d->callId);
        case PW_DLG_LOCAL_TAG:
            return keep(turnOf(), d->localTag);
        case PW_DLG_REMOTE_TAG:
            return keep(turnOf(), d->remoteTag);
        case PW_DLG_LOCAL_URI:
            return keep(turnOf(), d->localUri);
        case PW_DLG_REMOTE_URI:
            return keep(turnOf(), d->remoteUri);
        case PW_DLG_REMOTE_TARGET:
            return keep(turnOf(), d->remoteTarget);
        case PW_DLG_REMOTE_DISPLAY:
            return keep(turnOf(), d->remoteDisplay);
        case PW_DLG_STATE:
            return keep(turnOf(), d->ended ? "terminated" : "confirmed");
        }
        return none(); // unknown field (module.h)
    }
    // dialog_get has no pw_host: one arena per thread for the fake (tests run a host per thread at most).
    static std::deque<std::string> &turnOf() {
        static thread_local std::deque<std::string> arena;
        return arena;
    }

    static pw_str uriPart(pw_host *h, pw_str uri, pw_uri_part part) {
        UriParts u = parseUri(S(uri));
        if (!u.ok)
            return none();
        std::string v;
        switch (part) {
        case PW_URI_SCHEME:
            v = u.scheme;
            break;
        case PW_URI_USER:
            v = sdk::uriUnescape(u.user);
            break;
        case PW_URI_HOST:
            v = u.host;
            break;
        case PW_URI_PORT:
            v = u.port;
            break;
        case PW_URI_AOR:
            v = u.scheme == "tel"
                    ? u.scheme + ":" + u.user
                    : u.scheme + ":" + (u.user.empty() ? "" : sdk::uriEscapeUser(sdk::uriUnescape(u.user)) + "@") +
                          u.host;
            break;
        default:
            return none();
        }
        return v.empty() ? none() : keep(H(h)->turn_, v);
    }
    static pw_str present(pw_host *h, std::optional<std::string> v) {
        if (!v)
            return none();
        pw_str s = keep(H(h)->turn_, *v);
        if (!s.ptr)
            s.ptr = "";
        return s;
    }

    static pw_host_api makeApi() {
        pw_host_api a{};
        a.struct_size = sizeof a;
        a.abi_major = PW_ABI_MAJOR;
        a.abi_minor = PW_ABI_MINOR;
        a.log = [](pw_host *h, pw_log_level l, pw_str t) {
            if (l <= H(h)->logLevel)
                H(h)->logs.push_back(S(t));
        };
        a.param_str = [](pw_host *h, const char *n) {
            auto &p = H(h)->params_;
            auto it = p.find(n);
            return it == p.end() ? none() : pw_str{it->second.data(), it->second.size()};
        };
        a.param_int = [](pw_host *h, const char *n) -> int64_t {
            std::string v = H(h)->param(n);
            if (v == "true")
                return 1;
            if (v == "false" || v.empty())
                return 0;
            return std::stoll(v);
        };
        a.core_setting = [](pw_host *h, const char *n) {
            auto it = H(h)->core.find(n);
            return it == H(h)->core.end() ? none() : keep(H(h)->keep_, it->second);
        };
        a.is_local_domain = [](pw_host *h, pw_str d) {
            auto &ds = H(h)->domains;
            return std::find(ds.begin(), ds.end(), lowerCase(S(d))) != ds.end() ? 1 : 0;
        };
        a.request_msg = [](pw_request *r) { return reinterpret_cast<const pw_msg *>(r); };
        a.msg_method = [](const pw_msg *m) { return keep(M(m)->scratch, M(m)->method); };
        a.msg_status = [](const pw_msg *) { return 0; };
        a.msg_request_uri = [](const pw_msg *m) { return keep(M(m)->scratch, M(m)->ruri); };
        a.msg_header = [](const pw_msg *m, pw_str name, unsigned idx) {
            auto v = headerText(M(m), S(name), idx);
            return v ? keep(M(m)->scratch, *v) : none();
        };
        a.msg_body = [](const pw_msg *m) { return keep(M(m)->scratch, M(m)->body); };
        a.msg_uri = [](const pw_msg *m, pw_str name) {
            auto v = headerText(M(m), S(name));
            return v ? keep(M(m)->scratch, addrUri(*v)) : none();
        };
        a.msg_tag = [](const pw_msg *m, pw_str name) {
            auto v = headerText(M(m), S(name));
            return v && !addrTag(*v).empty() ? keep(M(m)->scratch, addrTag(*v)) : none();
        };
        a.msg_display = [](const pw_msg *m, pw_str name) {
            auto v = headerText(M(m), S(name));
            return v ? keep(M(m)->scratch, addrDisplay(*v)) : none();
        };
        a.msg_source = [](const pw_msg *m) { return keep(M(m)->scratch, M(m)->source); };
        a.request_reply = [](pw_request *r, int status, pw_str reason, const pw_header *hs, size_t n, pw_str ct,
                             pw_str body) {
            if (R(r)->final())
                return static_cast<int>(PW_ESTATE);
            Reply rep{status, S(reason), {}, S(ct), S(body)};
            for (size_t i = 0; i < n; ++i)
                rep.headers.emplace_back(S(hs[i].name), S(hs[i].value));
            R(r)->replies.push_back(rep);
            return static_cast<int>(PW_OK);
        };
        a.request_add_header = [](pw_request *r, pw_str n, pw_str v) {
            R(r)->added.emplace_back(S(n), S(v));
            return static_cast<int>(PW_OK);
        };
        a.request_remove_header = [](pw_request *r, pw_str n) {
            R(r)->removed.push_back(S(n));
            return static_cast<int>(PW_OK);
        };
        a.request_add_target = [](pw_request *r, pw_str uri, pw_str hop) {
            R(r)->targets.emplace_back(S(uri), S(hop));
            return static_cast<int>(PW_OK);
        };
        a.request_retain = [](pw_request *r) {
            ++R(r)->retains;
            return r;
        };
        a.request_resume = [](pw_request *r, pw_verdict v) {
            R(r)->resumed = v;
            return static_cast<int>(PW_OK);
        };
        a.request_release = [](pw_request *r) { ++R(r)->releases; };
        a.dialog_accept = [](pw_request *req, int status, const pw_header *hs, size_t n, pw_str, pw_str,
                             const pw_dialog_callbacks *cbs,
                             void *arg) { return makeDialog(req, status, hs, n, cbs, arg, nullptr, nullptr); };
        a.dialog_accept_commit = [](pw_request *req, int status, const pw_header *hs, size_t n, pw_str, pw_str,
                                    const pw_dialog_callbacks *cbs, void *arg, int (*commit)(void *, pw_dialog *),
                                    void *carg) { return makeDialog(req, status, hs, n, cbs, arg, commit, carg); };
        a.dialog_get = dialogGet;
        a.dialog_end = [](pw_dialog *d) {
            if (!d || D(d)->ended)
                return static_cast<int>(PW_ESTATE);
            D(d)->ended = true;
            if (D(d)->cbs && D(d)->cbs->on_terminated)
                D(d)->cbs->on_terminated(D(d)->arg, d, PW_END_LOCAL);
            return static_cast<int>(PW_OK);
        };
        a.dialog_rebind = [](pw_dialog *d, const pw_dialog_callbacks *cbs, void *arg) {
            D(d)->cbs = cbs;
            D(d)->arg = arg;
            return static_cast<int>(PW_OK);
        };
        a.dialog_export = [](pw_dialog *dlg, char *buf, size_t cap) -> int64_t {
            Dialog *d = D(dlg);
            std::string s = "{\"v\":1,\"callId\":\"" + d->callId + "\",\"localTag\":\"" + d->localTag +
                            "\",\"remoteTag\":\"" + d->remoteTag + "\"}";
            if (buf && cap) {
                size_t k = std::min(cap, s.size());
                std::memcpy(buf, s.data(), k);
                if (k < cap)
                    buf[k] = '\0';
            }
            return static_cast<int64_t>(s.size());
        };
        a.location_register_provider = [](pw_host *h, pw_location_fn fn, void *ctx) {
            H(h)->provider = fn;
            H(h)->providerCtx = ctx;
            return static_cast<int>(PW_OK);
        };
        a.location_lookup = [](pw_host *h, pw_str aor, pw_contact_cb each, void *arg) {
            if (!H(h)->provider)
                return static_cast<int>(PW_ENOTFOUND);
            return H(h)->provider(H(h)->providerCtx, aor, each, arg);
        };
        a.timer_start = [](pw_host *h, uint64_t ms, pw_timer_fn fn, void *arg) -> pw_timer_id {
            FakeHost *host = H(h);
            host->timers.push_back(Timer{host->nextTimer_, host->nowMs + static_cast<int64_t>(ms), fn, arg});
            return host->nextTimer_++;
        };
        a.timer_cancel = [](pw_host *h, pw_timer_id id) {
            auto &ts = H(h)->timers;
            auto it = std::find_if(ts.begin(), ts.end(), [&](const Timer &t) { return t.id == id; });
            if (it == ts.end())
                return static_cast<int>(PW_ENOTFOUND);
            ts.erase(it);
            return static_cast<int>(PW_OK);
        };
        a.now_ms = [](pw_host *h) { return H(h)->nowMs; };
        a.counter_add = [](pw_host *h, pw_str n, pw_str l, double d) { H(h)->counters[S(n) + "{" + S(l) + "}"] += d; };
        a.gauge_set = [](pw_host *h, pw_str n, pw_str l, double v) { H(h)->counters[S(n) + "{" + S(l) + "}"] = v; };
        a.histogram_observe = [](pw_host *, pw_str, pw_str, double) {};
        a.event_publish = [](pw_host *h, pw_str t, pw_str j) { H(h)->events.emplace_back(S(t), S(j)); };
        a.event_listening = [](pw_host *h) { return H(h)->eventListening ? 1 : 0; };
        a.log_enabled = [](pw_host *h, pw_log_level l) {
            ++H(h)->logEnabledCalls;
            return l <= H(h)->logLevel ? 1 : 0;
        };
        a.writer_json = [](pw_writer *w, pw_str j) {
            *reinterpret_cast<std::pair<int, std::string> *>(w) = {200, S(j)};
            return static_cast<int>(PW_OK);
        };
        a.writer_error = [](pw_writer *w, int status, pw_str msg) {
            *reinterpret_cast<std::pair<int, std::string> *>(w) = {status, S(msg)};
            return static_cast<int>(PW_OK);
        };
        a.request_identity = [](pw_request *r, int *source) {
            const Request *q = R(r);
            if (source)
                *source = q->identity && q->identity->empty() ? PW_IDENTITY_NONE : q->identitySource;
            if (q->identity)
                return keep(q->scratch, *q->identity);
            return keep(q->scratch, addrUri(headerText(q, "From").value_or("")));
        };
        a.request_challenge = [](pw_request *) { return static_cast<int>(PW_EUNSUPPORTED); };
        a.uri_part = uriPart;
        a.uri_param = [](pw_host *h, pw_str uri, pw_str name) {
            UriParts u = parseUri(S(uri));
            return u.ok ? present(h, uriListValue(u.params, ';', S(name))) : none();
        };
        a.uri_header = [](pw_host *h, pw_str uri, pw_str name) {
            UriParts u = parseUri(S(uri));
            return u.ok ? present(h, uriListValue(u.headers, '&', S(name))) : none();
        };
        return a;
    }

    pw_host_api api_;
    const pw_module *desc_ = nullptr;
    void *ctx_ = nullptr;
    bool started_ = false;
    void *dl_ = nullptr;
    std::map<std::string, std::string> params_;
    uint64_t nextTimer_ = 1;
    std::deque<std::string> keep_; // core_setting values (the fake keeps them for the host's life)
    std::deque<std::string> turn_; // "until the turn ends"
};

} // namespace parkway::testing
