// router: picks targets for initial requests. Local domain -> the location service (parallel fork to every
// live contact); else static routes (prefix or regex on the user part -> trunk URI); else 480/404 for local
// users. Requests for other domains are left to the core (forwarded to the Request-URI).
#include "../registrar/sip_uri.hh"

#include <parkway/module.h>
#include <parkway/module.hpp>
#include <re2/re2.h>

#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace parkway::modutil;

namespace {

// The longest Request-URI user part the router interprets (location lookup, routes, {user}). Longer ones
// get 414: a dial string or user name never comes near it, and it bounds what one request costs.
constexpr size_t kMaxUserLength = 256;

struct Route {
    std::string text; // as configured, for logs
    bool isRegex = false;
    std::string prefix;
    std::unique_ptr<re2::RE2> re; // RE2: linear time in the user part, which comes from the network
    std::string target;           // trunk URI; "{user}" is replaced by the dialled user part
    std::string via;              // next hop the request is sent to (Request-URI kept); "" = resolve the target
};

struct Router {
    const pw_host_api *api = nullptr;
    pw_host *host = nullptr;
    std::vector<Route> routes;
    bool useReceived = false;
    bool routesForeign = false;
    bool routesForStrangers = false; // static routes also for senders without an identity
    bool answerOptions = true;
    void log(pw_log_level level, const std::string &text) { api->log(host, level, view(text)); }
    // Whether a line at `level` would be written (v1.6 log_enabled; an older host: yes): build it only then.
    bool logs(pw_log_level level) const { return !PW_HOST_HAS(api, log_enabled) || api->log_enabled(host, level) != 0; }
};

// "prefix:9 => sip:gw.example.com" or "regex:^\+44[0-9]+$ => sip:{user}@uk-trunk.example.com", optionally followed
// by "via <sip URI>": the next hop (RFC 3261 §16.6 step 7), the Request-URI stays the target.
// Entries are separated by newlines (a TOML array of strings arrives that way) or ';;'.
// "<uri>" or "<uri> via <uri>" (a URI holds no blank) into r.target and r.via.
bool splitVia(const std::string &line, const std::string &rhs, Route &r, std::string &err) {
    std::istringstream in(rhs);
    std::vector<std::string> words;
    for (std::string w; in >> w;)
        words.push_back(w);
    if (words.size() == 1) {
        r.target = words[0];
        return true;
    }
    if (words.size() != 3 || words[1] != "via") {
        err = "route '" + line + "': expected '<uri>' or '<uri> via <next hop uri>' after '=>'";
        return false;
    }
    r.target = words[0];
    r.via = words[2];
    if (r.via.find("{user}") != std::string::npos || !parseSipUri(r.via).ok) {
        err = "route '" + line + "': via '" + r.via + "' is not a sip: URI";
        return false;
    }
    return true;
}

bool parseRoutes(const std::string &text, std::vector<Route> &out, std::string &err) {
    std::vector<std::string> lines;
    std::string cur;
    std::istringstream in(text);
    while (std::getline(in, cur)) {
        size_t pos;
        while ((pos = cur.find(";;")) != std::string::npos) {
            lines.push_back(cur.substr(0, pos));
            cur = cur.substr(pos + 2);
        }
        lines.push_back(cur);
    }
    for (const auto &raw : lines) {
        std::string line = trim(raw);
        if (line.empty() || line[0] == '#')
            continue;
        auto arrow = line.find("=>");
        if (arrow == std::string::npos) {
            err = "route '" + line + "': expected 'prefix:<digits> => <uri>' or 'regex:<re> => <uri>'";
            return false;
        }
        Route r;
        r.text = line;
        std::string match = trim(line.substr(0, arrow));
        if (!splitVia(line, trim(line.substr(arrow + 2)), r, err))
            return false;
        std::string probe = r.target;
        auto u = probe.find("{user}");
        if (u != std::string::npos)
            probe.replace(u, 6, "x");
        if (!parseSipUri(probe).ok) {
            err = "route '" + line + "': target '" + r.target + "' is not a sip: URI";
            return false;
        }
        if (match.rfind("prefix:", 0) == 0) {
            r.prefix = trim(match.substr(7));
        } else if (match.rfind("regex:", 0) == 0) {
            r.isRegex = true;
            RE2::Options o;
            o.set_encoding(RE2::Options::EncodingLatin1); // bytes, as the user part arrives
            o.set_log_errors(false);
            o.set_max_mem(1 << 20); // per expression, as the dialplan rules (docs/limits.md)
            r.re = std::make_unique<re2::RE2>(trim(match.substr(6)), o);
            if (!r.re->ok()) {
                err = "route '" + line + "': bad regular expression: " + r.re->error() +
                      " (RE2 syntax: no back-references or look-around)";
                return false;
            }
        } else {
            err = "route '" + line + "': the match must start with 'prefix:' or 'regex:'";
            return false;
        }
        out.push_back(std::move(r));
    }
    return true;
}

// New Request-URI for a trunk: "{user}" replaced; a target without user part gets the dialled user.
std::string trunkUri(const Route &r, const std::string &user) {
    std::string t = r.target;
    auto u = t.find("{user}");
    if (u != std::string::npos)
        return t.replace(u, 6, user);
    SipUri parsed = parseSipUri(t);
    if (!parsed.user.empty() || user.empty())
        return t;
    auto colon = t.find(':');
    return t.substr(0, colon + 1) + user + "@" + t.substr(colon + 1);
}

struct Collect {
    Router *r;
    pw_request *req;
    int added = 0;
};

void addContact(void *arg, const pw_contact *c) {
    auto *col = static_cast<Collect *>(arg);
    pw_str nextHop{nullptr, 0};
    if (col->r->useReceived && c->received.len)
        nextHop = c->received;
    // RFC 3327 §5.2: a contact registered through proxies is reached through them: its Path (name-addrs) is
    // the branch's route set (module.h request_add_target), whatever use_received says.
    if (c->path.len)
        nextHop = c->path;
    if (col->r->api->request_add_target(col->req, c->uri, nextHop) == PW_OK)
        ++col->added;
}

pw_verdict reply(Router &r, pw_request *req, int status, const char *reason) {
    r.api->request_reply(req, status, pw_str{reason, std::strlen(reason)}, nullptr, 0, pw_str{nullptr, 0},
                         pw_str{nullptr, 0});
    return PW_STOP;
}

const Route *matchRoute(Router &r, const std::string &user) {
    for (const auto &route : r.routes) {
        if (route.isRegex ? RE2::PartialMatch(user, *route.re) : user.rfind(route.prefix, 0) == 0)
            return &route;
    }
    return nullptr;
}

pw_verdict routeRequest(Router *r, pw_request *req) {
    const pw_host_api *api = r->api;
    const pw_msg *msg = api->request_msg(req);
    std::string method = str(api->msg_method(msg));
    // ACK and CANCEL follow their transaction; REGISTER belongs to the registrar (or is proxied).
    if (method == "ACK" || method == "CANCEL" || method == "REGISTER")
        return PW_CONTINUE;
    // Only initial requests: in-dialog ones (To-tag) and loose-routed ones (Route left) follow their route.
    if (api->msg_tag(msg, PW_STR_LIT("To")).len)
        return PW_CONTINUE;
    if (api->msg_header(msg, PW_STR_LIT("Route"), 0).len)
        return PW_CONTINUE;

    std::string ruriText = str(api->msg_request_uri(msg));
    SipUri ruri = parseSipUri(ruriText);
    if (!ruri.ok)
        return PW_CONTINUE; // tel: and others: the core decides
    bool local = api->is_local_domain(r->host, view(ruri.host)) != 0;

    if ((local || r->routesForeign) && ruri.user.size() > kMaxUserLength) {
        // RFC 3261 §21.4.12: longer than the server is willing to interpret.
        api->counter_add(r->host, PW_STR_LIT("parkway_router_refused_total"), PW_STR_LIT("reason=\"uri_too_long\""), 1);
        return reply(*r, req, 414, "Request-URI Too Long");
    }
    if (local && ruri.user.empty()) {
        // A request for the proxy itself (e.g. an OPTIONS keep-alive).
        if (method == "OPTIONS" && r->answerOptions)
            return reply(*r, req, 200, "OK");
        return reply(*r, req, 404, "Not Found");
    }
    int found = PW_ENOTFOUND;
    if (local) {
        Collect col{r, req};
        std::string aor = canonicalAor(ruriText);
        found = api->location_lookup(r->host, view(aor), addContact, &col);
        if (col.added > 0) {
            api->counter_add(r->host, PW_STR_LIT("parkway_router_routed_total"), PW_STR_LIT("via=\"location\""), 1);
            return PW_CONTINUE; // the core forks to every target in parallel
        }
    }
    // Static routes lead to gateways and trunks (they cost money): only for senders with an identity unless the
    // operator opens them to everybody (docs/auth.md "No open relay"). A v1.0/1.1 host knows no identity.
    bool identified = !PW_HOST_HAS(api, request_identity) || api->request_identity(req, nullptr).len > 0;
    if ((local || r->routesForeign) && (identified || r->routesForStrangers)) {
        if (const Route *route = matchRoute(*r, ruri.user)) {
            std::string target = trunkUri(*route, ruri.user);
            if (api->request_add_target(req, view(target), view(route->via)) != PW_OK)
                return reply(*r, req, 500, "Cannot add route target");
            if (r->logs(PW_LOG_DEBUG))
                r->log(PW_LOG_DEBUG, "router: " + ruriText + " -> " + target +
                                         (route->via.empty() ? "" : " via " + route->via) + " (" + route->text + ")");
            api->counter_add(r->host, PW_STR_LIT("parkway_router_routed_total"), PW_STR_LIT("via=\"static\""), 1);
            return PW_CONTINUE;
        }
    }
    if (!local)
        return PW_CONTINUE; // the core forwards to the Request-URI
    api->counter_add(r->host, PW_STR_LIT("parkway_router_unroutable_total"), PW_STR_LIT(""), 1);
    // Known user without a live contact: 480 (RFC 3261 §21.4.18); never registered: 404.
    if (found >= 0)
        return reply(*r, req, 480, "Temporarily Unavailable");
    return reply(*r, req, 404, "Not Found");
}

int initRouter(const pw_host_api *api, pw_host *host, void **ctx) {
    auto r = std::make_unique<Router>();
    r->api = api;
    r->host = host;
    r->useReceived = api->param_int(host, "use_received") != 0;
    r->routesForeign = api->param_int(host, "routes_for_foreign_domains") != 0;
    r->routesForStrangers = api->param_int(host, "routes_for_strangers") != 0;
    r->answerOptions = api->param_int(host, "answer_options") != 0;
    std::string err;
    if (!parseRoutes(str(api->param_str(host, "routes")), r->routes, err)) {
        r->log(PW_LOG_ERROR, "router: parameter 'routes': " + err);
        return PW_EINVAL;
    }
    *ctx = r.release();
    return PW_OK;
}

// The trampolines between the C ABI and the module's C++ (parkway/module.hpp): no exception may cross them (the
// host may be C, or built with another C++ runtime, and unwinding through it is undefined). A failed entry is
// logged; a failed request is answered 500 (RFC 3261 §21.5.1).
int routerInit(const pw_host_api *api, pw_host *host, void **ctx) noexcept {
    return parkway::sdk::guardInt(api, host, "router", "init", [&] { return initRouter(api, host, ctx); });
}

void routerDestroy(void *ctx) noexcept {
    delete static_cast<Router *>(ctx);
}

pw_verdict routeOnRequest(void *ctx, pw_request *req) noexcept {
    auto *r = static_cast<Router *>(ctx);
    return parkway::sdk::guardRequest(r->api, r->host, "router", req, [&] { return routeRequest(r, req); });
}

const pw_param_def kParams[] = {
    {sizeof(pw_param_def), "routes", PW_PARAM_STRING, "",
     "static routes, first match wins, tried for local users without a live contact: a TOML array of "
     "\"prefix:<digits> => <uri>\" or \"regex:<RE2 regex> => <uri>\" on the Request-URI user part (user parts "
     "over 256 bytes get 414); {user} in the URI is the dialled user, a URI without user part gets it; "
     "\"... => <uri> via <sip uri>\" sends to that next hop with the Request-URI <uri>"},
    {sizeof(pw_param_def), "routes_for_foreign_domains", PW_PARAM_BOOL, "false",
     "also apply static routes to requests for non-local domains"},
    {sizeof(pw_param_def), "routes_for_strangers", PW_PARAM_BOOL, "false",
     "also apply static routes to senders without an identity (not authenticated, not a trusted peer, not in a "
     "domain without authentication): docs/auth.md"},
    {sizeof(pw_param_def), "use_received", PW_PARAM_BOOL, "false",
     "send to the address a REGISTER came from instead of the Contact (NAT)"},
    {sizeof(pw_param_def), "answer_options", PW_PARAM_BOOL, "true",
     "answer OPTIONS to a local domain without user part with 200 (keep-alive, monitoring)"},
    {sizeof(pw_param_def), nullptr, PW_PARAM_STRING, nullptr, nullptr},
};

const pw_module kModule = {
    sizeof(pw_module), PW_ABI_MAJOR,
    PW_ABI_MINOR,      "router",
    "1.0.0",           "routes initial requests: location (parallel fork), static prefix/regex routes, 404/480",
    kParams,           nullptr,
    routerInit,        nullptr,
    nullptr,           routerDestroy,
    routeOnRequest,    nullptr,
    nullptr,           nullptr,
    nullptr, // domain_release (v1.4)
    nullptr, // overload_priority (v1.6)
};

} // namespace

extern "C" PW_EXPORT const pw_module *pw_module_entry(uint32_t host_abi_major) {
    return host_abi_major == PW_ABI_MAJOR ? &kModule : nullptr;
}
