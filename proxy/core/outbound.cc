// Where the host sends what modules originate (docs/routing.md): the outbound proxy ([proxy] outbound_proxy and
// outbound_proxy_by_domain) and route sets given as a next hop (a Path, RFC 3327).
#include "core_impl.hh"

#include <sofia-sip/sip_header.h>

#include <algorithm>
#include <strings.h>

namespace parkway::proxy {

namespace {

std::string lowerHost(const char *h) {
    std::string s = h ? h : "";
    for (auto &c : s)
        c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return s;
}

// The outbound proxy of one domain: its own entry ("" = none), else the default.
const std::string *byDomain(const CoreConfig &cfg, const std::string &domain) {
    auto it = cfg.outboundProxyByDomain.find(domain);
    return it == cfg.outboundProxyByDomain.end() ? nullptr : &it->second;
}

} // namespace

bool isRouteSet(const std::string &hop) { return !hop.empty() && hop.front() == '<'; }

std::vector<std::string> routeSetUris(const std::string &set) {
    sofia::Home home;
    std::vector<std::string> out;
    for (sip_route_t *r = sip_route_make(home.get(), set.c_str()); r; r = r->r_next)
        out.push_back(urlString(r->r_url));
    return out;
}

bool nextHopValid(const std::string &hop) {
    if (!isRouteSet(hop))
        return uriParses(hop);
    auto uris = routeSetUris(hop);
    return !uris.empty() && std::all_of(uris.begin(), uris.end(), [](const std::string &u) { return uriParses(u); });
}

std::string outboundProxyFor(const CoreConfig &cfg, const std::string &ruri, const std::string &from) {
    if (!cfg.outboundProxyByDomain.empty()) {
        sofia::Home home;
        url_t *r = url_make(home.get(), ruri.c_str());
        if (const std::string *ob = r ? byDomain(cfg, lowerHost(r->url_host)) : nullptr)
            return *ob;
        sip_from_t *f = from.empty() ? nullptr : sip_from_make(home.get(), from.c_str());
        if (const std::string *ob = f ? byDomain(cfg, lowerHost(f->a_url->url_host)) : nullptr)
            return *ob;
    }
    return cfg.outboundProxy;
}

UacRoute planUacRoute(const CoreConfig &cfg, const UacRouteInput &in) {
    UacRoute out;
    if (isRouteSet(in.nextHop)) { // a route set (RFC 3327 §5.2): Route headers, sent to the first (§8.1.2)
        auto uris = routeSetUris(in.nextHop);
        out.route = in.nextHop;
        out.hop = uris.empty() ? std::string() : uris.front();
        return out;
    }
    out.hop = in.nextHop;
    out.moduleHop = !in.nextHop.empty();
    // The module routed it itself (a hop or Route headers), or it belongs to a dialog (a To tag): no change.
    if (out.moduleHop || in.hasRoute)
        return out;
    sofia::Home home;
    sip_to_t *to = in.to.empty() ? nullptr : sip_to_make(home.get(), in.to.c_str());
    if (to && to->a_tag)
        return out;
    std::string ob = outboundProxyFor(cfg, in.requestUri, in.from);
    if (ob.empty())
        return out;
    url_t *u = url_make(home.get(), ob.c_str());
    if (!u)
        return out;
    out.hop = ob;
    // RFC 3261 §8.1.2: a loose-routing outbound proxy is a preloaded Route; one without ;lr is only where the
    // request is sent (the Request-URI stays; no strict-routing rewrite).
    if (url_has_param(u, "lr"))
        out.route = "<" + ob + ">";
    return out;
}

} // namespace parkway::proxy
