// Which of our addresses a peer must use to come back to us when TLS is involved: Contact and Record-Route
// (RFC 3261 §16.6 step 4, §8.1.1.8, §26.2; RFC 5630; RFC 5658).
#include "core_impl.hh"

#include <strings.h>

namespace parkway::proxy {
namespace {

// A URI that is reached over TLS: sips: (RFC 3261 §26.2.2) or sip:...;transport=tls.
bool urlIsTls(const url_t *u) {
    if (!u)
        return false;
    if (u->url_type == url_sips)
        return true;
    char tp[8] = "";
    return u->url_params && url_param(u->url_params, "transport", tp, sizeof tp) > 0 && strcasecmp(tp, "tls") == 0;
}

// The request came to us over TLS: its topmost Via names the transport it was sent on (RFC 3261 §18.1.1).
bool cameOverTls(const sip_t *sip) {
    return sip && sip->sip_via && sip->sip_via->v_protocol && strcasecmp(sip->sip_via->v_protocol, "SIP/2.0/TLS") == 0;
}

bool cameOverTcp(const sip_t *sip) {
    return sip && sip->sip_via && sip->sip_via->v_protocol && strcasecmp(sip->sip_via->v_protocol, "SIP/2.0/TCP") == 0;
}

bool urlIsTcp(const url_t *u) {
    char tp[8] = "";
    return u && u->url_params && url_param(u->url_params, "transport", tp, sizeof tp) > 0 && strcasecmp(tp, "tcp") == 0;
}

bool isSips(const url_t *u) {
    return u && u->url_type == url_sips;
}

} // namespace

std::string Proxy::Impl::tlsUri(bool sips) const {
    return sips ? "sips:" + tlsHostPort : "sip:" + tlsHostPort + ";transport=tls";
}

std::string Proxy::Impl::plainUri(bool tcp) const {
    return tcp && !sharedHostPort.empty() ? "sip:" + sharedHostPort + ";transport=tcp" : primary;
}

std::string Proxy::Impl::contactForRequest(const sip_t *req) const {
    if (tlsHostPort.empty() || !cameOverTls(req))
        return "<" + plainUri(cameOverTcp(req)) + ">"; // a TCP peer keeps TCP for its in-dialog requests
    // §8.1.1.8 (for the UAS by symmetry, §12.1.1): a sips Request-URI asks for a sips Contact
    return "<" + tlsUri(req->sip_request && isSips(req->sip_request->rq_url)) + ">";
}

std::string Proxy::Impl::contactForTarget(const std::string &ruri, const std::string &hop) const {
    sofia::Home home;
    url_t *r = url_make(home.get(), ruri.c_str());
    url_t *h = hop.empty() ? nullptr : url_make(home.get(), hop.c_str());
    if (tlsHostPort.empty())
        return "<" + plainUri(urlIsTcp(h ? h : r)) + ">";
    bool sips = isSips(r) || isSips(h); // §8.1.1.8: a sips Request-URI or first Route, a sips Contact
    if (!sips && !urlIsTls(h ? h : r))
        return "<" + plainUri(urlIsTcp(h ? h : r)) + ">";
    return "<" + tlsUri(sips) + ">";
}

std::string Proxy::Impl::recordRouteFor(const sip_t *in, const sip_t *out, const std::string &hop) const {
    if (tlsHostPort.empty() && sharedHostPort.empty())
        return recordRoute;
    // Where the copy goes: its next hop when there is one, else its Request-URI (§16.6 steps 6-7, RFC 3263).
    sofia::Home home;
    const url_t *outUrl = !hop.empty()              ? url_make(home.get(), hop.c_str())
                          : out && out->sip_request ? out->sip_request->rq_url
                                                    : nullptr;
    bool inTls = cameOverTls(in), outTls = !tlsHostPort.empty() && urlIsTls(outUrl);
    bool inTcp = cameOverTcp(in), outTcp = urlIsTcp(outUrl);
    // §16.6 step 4 with RFC 5658: each side must come back over the transport it speaks. Where UDP and TCP share
    // our address, a URI without ;transport would turn a TCP phone's in-dialog requests into UDP (RFC 3263
    // §4.1), so a TCP side gets ;transport=tcp, and a TCP side facing a UDP side gets two entries.
    auto plainRr = [this](bool tcp) { return "<" + plainUri(tcp) + ";lr>"; };
    if (!inTls && !outTls)
        return inTcp == outTcp || sharedHostPort.empty() ? plainRr(inTcp) : plainRr(outTcp) + ", " + plainRr(inTcp);
    // §16.6 step 4: "If the Request-URI contains a SIPS URI, or the topmost Route header field value (after the
    // post processing of bullet 6) contains a SIPS URI, the URI placed into the Record-Route header field MUST
    // be a SIPS URI."
    bool sips = (in && in->sip_request && isSips(in->sip_request->rq_url)) ||
                (out && out->sip_request && isSips(out->sip_request->rq_url)) ||
                (out && out->sip_route && isSips(out->sip_route->r_url));
    std::string tlsRr = "<" + tlsUri(sips) + ";lr>";
    if (inTls && outTls)
        return tlsRr;
    // RFC 5658 (double Record-Route): one side TLS, the other UDP/TCP: two entries. The top one is the address the next
    // hop (callee side) uses, the second the one the sender (caller side) uses — the caller's route set is the reverse
    // of the list (RFC 3261 §12.1.2).
    return outTls ? tlsRr + ", " + plainRr(inTcp) : plainRr(outTcp) + ", " + tlsRr;
}

} // namespace parkway::proxy
