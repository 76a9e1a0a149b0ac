// RFC 3261 §16 stateful forwarding on nta: default leg, pipeline, branches, best response, CANCEL, late 2xx.
#include "core_impl.hh"
#include "message_checks.hh"
#include "sip_trace.hh"
#include "sofia_fixes.hh"
#include "tls.hh"

#include <sofia-sip/hostdomain.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sresolv.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>

#include <fmt/format.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <functional>

#ifdef PARKWAY_HAVE_METRICS
#include "../admin/metrics.hh"
#endif

namespace parkway::proxy {

namespace {

// Replace the CSeq number of msg (method kept): a new header, so no cached encoding of the old one is sent.
void setCseq(msg_t *msg, uint32_t seq) {
    sip_t *sip = sip_object(msg);
    if (!sip || !sip->sip_cseq)
        return;
    sip_cseq_t *cs = sip_cseq_create(msg_home(msg), seq, sip->sip_cseq->cs_method, sip->sip_cseq->cs_method_name);
    if (cs)
        msg_header_replace(msg, reinterpret_cast<msg_pub_t *>(sip), reinterpret_cast<msg_header_t *>(sip->sip_cseq),
                           reinterpret_cast<msg_header_t *>(cs));
}

int legTrampoline(nta_leg_magic_t *magic, nta_leg_t *, nta_incoming_t *irq, const sip_t *sip) noexcept {
    return reinterpret_cast<Proxy::Impl *>(magic)->onRequest(irq, sip);
}

int ackCancelTrampoline(nta_incoming_magic_t *magic, nta_incoming_t *irq, const sip_t *sip) noexcept {
    auto *tx = reinterpret_cast<pw_request *>(magic);
    return tx->impl->onAckCancel(tx, irq, sip);
}

int branchTrampoline(nta_outgoing_magic_t *magic, nta_outgoing_t *orq, const sip_t *sip) noexcept {
    auto *b = reinterpret_cast<Branch *>(magic);
    return b->tx->impl->onBranchResponse(b, orq, sip);
}

// Messages nta could not match: stray responses (e.g. a 2xx after the transaction is gone).
int agentTrampoline(nta_agent_magic_t *magic, nta_agent_t *agent, msg_t *msg, sip_t *sip) noexcept {
    auto *impl = reinterpret_cast<Proxy::Impl *>(magic);
    impl->noteWork();
    if (sip && sip->sip_request) { // only while the overload gate sheds (overload.cc, followGate)
        impl->onStatelessRequest(msg, sip);
        return 0;
    }
    try {
        impl->noteReceived(msg);
        if (bodyTruncated(msg)) { // RFC 3261 §18.3: a response whose body is cut short is discarded
            nta_msg_discard(agent, msg);
            return 0;
        }
        stripDuplicateSingleHeaders(msg);
        if (sip && sip->sip_status && sip->sip_cseq && sip->sip_cseq->cs_method == sip_method_invite &&
            sip->sip_status->st_status >= 200 && sip->sip_status->st_status < 300 && sip->sip_via &&
            sip->sip_via->v_next) {
            // RFC 3261 §16.7 / §16.11: a 2xx without a transaction is forwarded statelessly upstream.
            sip_via_remove(msg, sip);
            impl->unshiftStray2xx(msg, sip);
            impl->countResponse(sip->sip_status->st_status);
            nta_msg_tsend(agent, msg, nullptr, TAG_END());
            return 0;
        }
        if (sip && sip->sip_status && sip->sip_cseq && sip->sip_cseq->cs_method == sip_method_invite &&
            sip->sip_status->st_status >= 200 && sip->sip_status->st_status < 300 && sip->sip_via &&
            !sip->sip_via->v_next) {
            // A 2xx to an INVITE we sent ourselves that no transaction takes. A retransmission of the 2xx in
            // one of our dialogs gets our ACK again; anything else (a second fork after the client transaction
            // ended) is ACKed and BYEd (RFC 3261 §13.2.2.4).
            if (impl->ackRetransmitted2xx(sip))
                nta_msg_discard(agent, msg);
            else
                sofia::ackAndBye(agent, sofia::Msg::adopt(msg));
            return 0;
        }
    } catch (...) {
    }
    nta_msg_discard(agent, msg);
    return 0;
}

// Whether sending to this URI (or to the hop URI text when given) resolves a name: a host that is not an IP
// literal. sofia-sip then asks DNS (NAPTR, SRV, A/AAAA per RFC 3263).
bool needsDns(const url_t *target, const std::string &hop) {
    if (hop.empty())
        return target && target->url_host && !host_is_ip_address(target->url_host);
    // Once per forwarded request: url_d() parses a copy in place, on the stack when it fits (no su_home).
    char stack[256];
    std::string heap;
    char *text = stack;
    if (hop.size() < sizeof stack) {
        memcpy(stack, hop.c_str(), hop.size() + 1);
    } else {
        heap = hop;
        text = heap.data();
    }
    url_t u{}; // (as url_make() does before url_d())
    if (url_d(&u, text) < 0)
        return false;
    return u.url_host && !host_is_ip_address(u.url_host);
}

std::string hostPortKey(const char *host, const char *port, bool tls) {
    std::string h = host ? host : "";
    if (h.size() > 2 && h.front() == '[' && h.back() == ']')
        h = h.substr(1, h.size() - 2);
    for (auto &c : h)
        c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    std::string p = port && *port ? port : (tls ? "5061" : "5060");
    return h + ":" + p;
}

} // namespace

pw_str keep(const pw_msg *m, std::string s) {
    m->scratch.push_back(std::move(s));
    return view(m->scratch.back());
}

std::string headersToString(const pw_header *headers, size_t n) {
    std::string out;
    for (size_t i = 0; headers && i < n; ++i) {
        std::string name = str(headers[i].name), value = str(headers[i].value);
        if (name.empty())
            continue;
        out += name + ": " + value + "\r\n";
    }
    return out;
}

void Proxy::Impl::initView(pw_msg &v, msg_t *m) {
    v.msg = m;
    v.sip = m ? sip_object(m) : nullptr;
    v.source.clear(); // computed on first msg_source() (hot path: most modules never ask)
    v.scratch.clear();
}

std::string messageSource(const pw_msg &v) {
    if (!v.msg)
        return {};
    su_sockaddr_t su;
    socklen_t len = sizeof su;
    if (msg_get_address(v.msg, &su, &len) != 0)
        return {};
    char buf[64] = "";
    su_inet_ntop(su.su_family, SU_ADDR(&su), buf, sizeof buf);
    const char *proto = "udp";
    if (v.sip && v.sip->sip_via && v.sip->sip_request && v.sip->sip_via->v_protocol &&
        strcasecmp(v.sip->sip_via->v_protocol, "SIP/2.0/TCP") == 0)
        proto = "tcp";
    return fmt::format("{}:{}:{}", proto, su.su_family == AF_INET6 ? "[" + std::string(buf) + "]" : buf,
                       ntohs(su.su_port));
}

void Proxy::Impl::createAgent() {
    if (cfg.listen.empty())
        throw std::runtime_error("proxy: no listen URL configured ([proxy] listen)");
    // A response that cannot be sent would free a listening transport in use (sofia_fixes.cc)
    if (!sofiaFixesActive())
        throw std::runtime_error("proxy: the sofia-sip work-arounds are not in effect (tport_tsend is not ours: is "
                                 "the program linked with -rdynamic / ENABLE_EXPORTS?)");
    t1x64 = 64 * cfg.t1Ms;
    // Bound DNS work. sofia-sip's resolver only ever asks the stub inside the process (dns_stub.hh says why),
    // which asks the real servers with the configured timeout and tries. sofia-sip reads its own per-try
    // timeout towards the stub from SRES_OPTIONS (an operator's own setting wins).
    DnsStub::Settings ds;
    ds.resolvConf = cfg.resolvConf.empty() ? "/etc/resolv.conf" : cfg.resolvConf;
    ds.timeoutMs = cfg.dnsTimeoutS * 1000;
    ds.tries = cfg.dnsAttempts;
    ds.maxInFlight = std::max<uint32_t>(64, 4 * cfg.maxDnsPending);
    dns = std::make_unique<DnsStub>(root, ds, [this](const std::string &t) { log(nullptr, PW_LOG_WARN, t); });
    if (!getenv("SRES_OPTIONS")) {
        std::string opts = fmt::format("timeout:{} attempts:{}", cfg.dnsTimeoutS, cfg.dnsAttempts);
        setenv("SRES_OPTIONS", opts.c_str(), 0);
    }
    const char *resolv = dns->sofiaResolvConf().c_str();
    // TLS listeners (RFC 3261 §26.2): sofia-sip reads its certificate folder while the transports are created;
    // it is removed once they are. TLS 1.1 and older are refused process-wide (tls.hh, RFC 8996).
    std::unique_ptr<TlsMaterial> tls;
    for (const auto &l : cfg.listen)
        if (isTlsListenUrl(l) && !tls) {
            enforceTlsFloor();
            tls = std::make_unique<TlsMaterial>(cfg);
        }
    const char *tlsDir = tls ? tls->dir().c_str() : nullptr;
    unsigned tlsPolicy = tls ? tls->verifyPolicy() : 0;
    // Transport limits apply to every listener: the biggest message we take (RFC 3261 §18.3 leaves it to us;
    // sofia answers 413 over UDP and drops the connection over TCP), and how long an incomplete message may
    // wait for its next byte.
    agent = nta_agent_create(
        root, URL_STRING_MAKE(cfg.listen[0].c_str()), agentTrampoline, reinterpret_cast<nta_agent_magic_t *>(this),
        NTATAG_UA(0), NTATAG_CANCEL_487(0), NTATAG_SERVER_RPORT(1), NTATAG_CLIENT_RPORT(1), NTATAG_SIP_T1(cfg.t1Ms),
        NTATAG_SIP_T2(cfg.t2Ms), NTATAG_SIP_T4(cfg.t4Ms), NTATAG_SIP_T1X64(t1x64), NTATAG_MAX_FORWARDS(cfg.maxForwards),
        NTATAG_PASS_100(0), NTATAG_MAXSIZE(cfg.maxMessageBytes), TPTAG_TIMEOUT(cfg.tcpMessageMs),
        SRESTAG_RESOLV_CONF(resolv), TAG_IF(tls, TPTAG_CERTIFICATE(tlsDir)),
        TAG_IF(tls, TPTAG_TLS_VERIFY_POLICY(tlsPolicy)), TAG_END());
    if (!agent)
        throw std::runtime_error(fmt::format("proxy: cannot listen on {}: {}", cfg.listen[0], strerror(errno)));
    for (size_t i = 1; i < cfg.listen.size(); ++i)
        if (nta_agent_add_tport(agent, URL_STRING_MAKE(cfg.listen[i].c_str()), TPTAG_TIMEOUT(cfg.tcpMessageMs),
                                TAG_IF(tls, TPTAG_CERTIFICATE(tlsDir)), TAG_IF(tls, TPTAG_TLS_VERIFY_POLICY(tlsPolicy)),
                                TAG_END()) < 0)
            throw std::runtime_error(fmt::format("proxy: cannot listen on {}: {}", cfg.listen[i], strerror(errno)));
    if (tls)
        tls->remove();
    startTrace();
    defaultLeg = nta_leg_tcreate(agent, legTrampoline, reinterpret_cast<nta_leg_magic_t *>(this), NTATAG_NO_DIALOG(1),
                                 TAG_END());
    if (!defaultLeg)
        throw std::runtime_error("proxy: cannot create the default leg");

    bound.clear();
    localHostPorts.clear();
    tlsHostPort.clear();
    bool onlyTls = true;
    for (sip_via_t *v = nta_agent_via(agent); v; v = v->v_next)
        if (!v->v_protocol || strcasecmp(v->v_protocol, "SIP/2.0/TLS") != 0)
            onlyTls = false;
    std::string firstHostPort, firstProto;
    bool udpAndTcpShare = false;
    std::vector<uint16_t> tcpPorts, udpPorts;
    for (sip_via_t *v = nta_agent_via(agent); v; v = v->v_next) {
        std::string proto = v->v_protocol ? v->v_protocol : "SIP/2.0/UDP";
        std::string transport = proto.substr(proto.rfind('/') + 1);
        for (auto &c : transport)
            c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
        std::string hp = fmt::format("{}:{}", v->v_host, v->v_port ? v->v_port : "5060");
        std::string url = "sip:" + hp + (transport == "udp" ? "" : ";transport=" + transport);
        bound.push_back(url);
        localHostPorts.emplace_back(v->v_host ? v->v_host : "", v->v_port ? v->v_port : "5060");
        auto port = static_cast<uint16_t>(std::stoi(v->v_port ? v->v_port : "5060"));
        (transport == "udp" ? udpPorts : tcpPorts).push_back(port);
        if (transport == "tls" && tlsHostPort.empty())
            tlsHostPort = hp;
        if (transport == "tls" && !onlyTls)
            continue; // Record-Route/Contact over UDP/TCP stay on those
        if (firstHostPort.empty()) {
            firstHostPort = hp;
            firstProto = transport;
        } else if (hp == firstHostPort) {
            udpAndTcpShare = true;
        }
    }
    primary = "sip:" + firstHostPort + ((firstProto == "udp" || udpAndTcpShare) ? "" : ";transport=" + firstProto);
    sharedHostPort = udpAndTcpShare ? firstHostPort : std::string();
    recordRoute = "<" + primary + ";lr>";
    setUpLimits(tcpPorts, udpPorts);
}

// [proxy] sip_trace (sip_trace.hh): sofia-sip hands every byte its transports write or read to the dump hook once
// a dump file is set; /dev/null, as the hook does the writing (TPORT_DUMP in the environment still wins).
void Proxy::Impl::startTrace() {
    tport_set_params(nta_agent_tports(agent), TPTAG_DUMP("/dev/null"), TAG_END());
    TraceSettings s{cfg.sipTrace, cfg.sipTraceMaxBytes, cfg.sipTraceFiles};
    if (std::string why = traceApply(s); !why.empty())
        throw std::runtime_error(fmt::format("proxy: sip_trace: {}", why));
}

bool Proxy::Impl::isOurs(const url_t *url) const {
    if (!url || !url->url_host)
        return false;
    char tp[8] = ""; // RFC 3263 §4.2: sips: and transport=tls default to port 5061
    bool tls =
        url->url_type == url_sips ||
        (url->url_params && url_param(url->url_params, "transport", tp, sizeof tp) > 0 && strcasecmp(tp, "tls") == 0);
    std::string key = hostPortKey(url->url_host, url->url_port, tls);
    for (auto &[h, p] : localHostPorts)
        if (hostPortKey(h.c_str(), p.c_str(), tls) == key)
            return true;
    if (servesDomain(url->url_host)) {
        if (!url->url_port)
            return true;
        for (auto &hp : localHostPorts)
            if (hp.second == url->url_port)
                return true;
    }
    return false;
}

// RFC 3261 §16.6 step 8 / §16.3 item 4: a key over the parts of the request that a loop leaves unchanged
// (the topmost Via is left out: a looping request comes back with another proxy's Via on top).
std::string Proxy::Impl::loopKey(const sip_t *sip) const {
    std::string s;
    s += urlString(sip->sip_request->rq_url);
    s += '|';
    s += sip->sip_from && sip->sip_from->a_tag ? sip->sip_from->a_tag : "";
    s += '|';
    s += sip->sip_to && sip->sip_to->a_tag ? sip->sip_to->a_tag : "";
    s += '|';
    s += sip->sip_call_id ? sip->sip_call_id->i_id : "";
    s += '|';
    s += std::to_string(sip->sip_cseq ? sip->sip_cseq->cs_seq : 0);
    for (sip_route_t *r = sip->sip_route; r; r = r->r_next)
        s += "|" + urlString(r->r_url);
    uint64_t h = std::hash<std::string>{}(s) ^ loopSalt;
    return fmt::format("{:016x}", h);
}

bool Proxy::Impl::isLoop(const sip_t *sip) const {
    std::string prefix;
    for (sip_via_t *v = sip->sip_via; v; v = v->v_next) {
        if (!v->v_branch || !v->v_host)
            continue;
        bool ours = false;
        std::string key = hostPortKey(v->v_host, v->v_port, false);
        for (auto &[h, p] : localHostPorts)
            if (hostPortKey(h.c_str(), p.c_str(), false) == key)
                ours = true;
        if (!ours)
            continue;
        if (prefix.empty())
            prefix = "z9hG4bKpw" + loopKey(sip) + ".";
        if (strncasecmp(v->v_branch, prefix.c_str(), prefix.size()) == 0)
            return true;
    }
    return false;
}

void Proxy::Impl::countRequest(const char *method) {
    ++requestCounts[method ? method : "?"];
#ifdef PARKWAY_HAVE_METRICS
    if (metrics)
        metrics->counterAdd("parkway_sip_requests_total", fmt::format("method=\"{}\"", method), 1);
#endif
}

void Proxy::Impl::countResponse(int status) {
#ifdef PARKWAY_HAVE_METRICS
    if (metrics)
        metrics->counterAdd("parkway_sip_responses_total", fmt::format("code=\"{}\"", status), 1);
#else
    (void)status;
#endif
}

// Per transaction: O(1). The dialog gauge (a scan over dialogs) is only recomputed when a dialog changes.
void Proxy::Impl::updateTxGauge() {
#ifdef PARKWAY_HAVE_METRICS
    if (metrics)
        metrics->gaugeSet("parkway_sip_transactions", "", static_cast<double>(txns.size()));
#endif
}

void Proxy::Impl::updateGauges() {
#ifdef PARKWAY_HAVE_METRICS
    if (!metrics)
        return;
    metrics->gaugeSet("parkway_sip_transactions", "", static_cast<double>(txns.size()));
    size_t open = dialogs.size() - std::min(terminatedDialogs, dialogs.size());
    metrics->gaugeSet("parkway_dialogs", "", static_cast<double>(open));
#endif
}

void Proxy::Impl::callOnResponse(msg_t *resp) {
    pw_msg v;
    initView(v, resp);
    for (auto &m : modules) {
        if (!m->started || !m->lm.desc->on_response)
            continue;
        try {
            m->lm.desc->on_response(m->ctx, &v);
        } catch (...) {
            log(m.get(), PW_LOG_ERROR, "on_response threw an exception");
        }
    }
}

// ---------------------------------------------------------------- request entry

int Proxy::Impl::onRequest(nta_incoming_t *irq, const sip_t *sip, bool admitted) noexcept {
    noteWork();
    try {
        sip_method_t method = sip->sip_request->rq_method;
        const char *methodName = sip->sip_request->rq_method_name;
        countRequest(methodName);
        sofia::Msg req = sofia::Msg::adopt(nta_incoming_getrequest(irq)); // (a reference, not a copy)
        if (!req)
            return 500;
        if (!admitted && !admitRequest(irq, req.get()))
            return 0;
        if (!admitted && refuseOverloaded(irq, req.get(), sip))
            return 0; // before anything is made for it (docs/limits.md "Overload")

        if (method == sip_method_ack && isOverloadRefusalAck(sip)) {
            nta_incoming_destroy(irq); // RFC 3261 §8.2.7 (overload.cc): the gate reopened before it came
            return 0;
        }
        if (method == sip_method_ack) {
            // ACK for a 2xx (end-to-end, RFC 3261 §13.2.2.4): forwarded statelessly along the route, as a copy
            // that must serialise (no duplicated single headers) and be whole (RFC 3261 §18.3).
            nta_incoming_destroy(irq);
            if (sip_sanity_check(req.sip()) == 0 && !stopping && !bodyTruncated(req.get())) {
                stripDuplicateSingleHeaders(req.get());
                forwardAck(req.get(), req.sip());
            }
            return 0;
        }
        if (method == sip_method_cancel) {
            countResponse(481);
            return 481; // RFC 3261 §16.10: no matching transaction
        }
        if (stopping) {
            countResponse(503);
            return 503;
        }
        if (sip_sanity_check(sip) < 0) {
            countResponse(400);
            return 400;
        }
        if (refuseEarly(irq, req.get(), sip))
            return 0;
        if (handleSubscriptionRefresh(irq, sip))
            return 0;

        auto *tx = new pw_request();
        tx->impl = this;
        tx->irq = irq;
        tx->req = std::move(req);
        tx->method = method;
        tx->methodName = methodName;
        txns.insert(tx);
        updateTxGauge();
        nta_incoming_bind(irq, ackCancelTrampoline, reinterpret_cast<nta_incoming_magic_t *>(tx));
        msg_t *msg = tx->req.get();
        sip_t *s = sip_object(msg);
        initView(tx->view, msg);

        // RFC 3261 §16.3 step 3: Max-Forwards
        if (s->sip_max_forwards && s->sip_max_forwards->mf_count == 0) {
            replyLocal(tx, 483);
            maybeFinish(tx);
            return 0;
        }
        // RFC 3261 §16.3 step 4: loop detection
        if (isLoop(s)) {
            replyLocal(tx, 482);
            maybeFinish(tx);
            return 0;
        }
        // RFC 3261 §16.3 step 5: we support no proxy extensions
        if (s->sip_proxy_require) {
            std::string unsupported;
            for (msg_param_t const *p = s->sip_proxy_require->k_items; p && *p; ++p)
                unsupported += (unsupported.empty() ? "" : ", ") + std::string(*p);
            if (!tx->finalSent) {
                nta_incoming_tag(irq, nullptr);
                tx->finalSent = true;
                countResponse(420);
                nta_incoming_treply(irq, SIP_420_BAD_EXTENSION, SIPTAG_UNSUPPORTED_STR(unsupported.c_str()), TAG_END());
            }
            maybeFinish(tx);
            return 0;
        }
        // RFC 3261 §16.4: strict-route compatibility, then drop our own topmost Route(s)
        if (s->sip_route && isOurs(s->sip_request->rq_url) && !s->sip_request->rq_url->url_user) {
            sip_route_t *last = s->sip_route;
            while (last->r_next)
                last = last->r_next;
            if (!isOurs(last->r_url)) {
                sip_request_t *rq = sip_request_create(msg_home(msg), method, methodName,
                                                       reinterpret_cast<url_string_t *>(last->r_url), nullptr);
                msg_header_remove(msg, reinterpret_cast<msg_pub_t *>(s), reinterpret_cast<msg_header_t *>(last));
                if (rq)
                    msg_header_insert(msg, reinterpret_cast<msg_pub_t *>(s), reinterpret_cast<msg_header_t *>(rq));
            }
        }
        while (s->sip_route && isOurs(s->sip_route->r_url)) {
            sip_route_remove(msg, s);
            tx->viaOurRoute = true;
        }
        if (!establishIdentity(tx)) { // challenged or refused (docs/auth.md)
            maybeFinish(tx);
            return 0;
        }
        initView(tx->view, msg);

        if (method == sip_method_invite)
            nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());

        runPipeline(tx, 0);
        return 0;
    } catch (const std::exception &e) {
        log(nullptr, PW_LOG_ERROR, fmt::format("request handling failed: {}", e.what()));
    } catch (...) {
        log(nullptr, PW_LOG_ERROR, "request handling failed");
    }
    countResponse(500);
    return 500;
}

int Proxy::Impl::onAckCancel(pw_request *tx, nta_incoming_t *irq, const sip_t *sip) noexcept {
    noteWork();
    try {
        if (sip) {
            sofia::Msg m = sofia::Msg::adopt(nta_incoming_getrequest_ackcancel(irq));
            noteReceived(m.get());
        }
        if (!sip) { // the server transaction is gone (timeout)
            if (tx->irq == irq) {
                nta_incoming_bind(irq, nullptr, nullptr);
                if (!tx->finalSent)
                    tx->finalSent = true; // nothing can be sent any more
                maybeFinish(tx);
            }
            return 0;
        }
        if (sip->sip_request->rq_method == sip_method_cancel) {
            // RFC 3261 §16.10: 200 to the CANCEL, CANCEL every pending branch, the 487 comes back
            tx->cancelled = true;
            bool pending = false;
            for (auto &b : tx->branches)
                if (!b->final && b->orq) {
                    pending = true;
                    nta_outgoing_tcancel(b->orq, nullptr, nullptr, TAG_END());
                }
            if (!pending && !tx->finalSent)
                replyLocal(tx, 487);
            countResponse(200);
            maybeFinish(tx);
            return 200;
        }
        if (sip->sip_request->rq_method == sip_method_ack && tx->dialog) {
            // ACK of our own 2xx matched to the INVITE transaction
            msg_t *ack = nta_incoming_getrequest_ackcancel(irq);
            Dialog *d = tx->dialog;
            if (d->pending2xx) {
                stopRetransmit(static_cast<pw_dialog *>(d));
                if (d->cbs.on_ack) {
                    pw_msg v;
                    initView(v, ack);
                    d->cbs.on_ack(d->arg, static_cast<pw_dialog *>(d), &v);
                }
            }
            if (ack)
                msg_destroy(ack);
        }
    } catch (...) {
    }
    return 0;
}

// ---------------------------------------------------------------- pipeline

void Proxy::Impl::runPipeline(pw_request *tx, size_t from) {
    tx->inPipeline = true;
    ++tx->refs; // the pipeline holds the transaction while modules run
    pw_verdict v = PW_CONTINUE;
    for (size_t i = from; i < modules.size(); ++i) {
        ModuleInstance *m = modules[i].get();
        if (!m->started && !m->inited)
            continue;
        tx->moduleIndex = i;
        try {
            v = m->lm.desc->on_request(m->ctx, tx);
        } catch (...) {
            // A module bug must not take the daemon down.
            log(m, PW_LOG_ERROR, "on_request threw an exception");
            if (!tx->finalSent)
                replyLocal(tx, 500);
            v = PW_STOP;
        }
        if (v != PW_CONTINUE && v != PW_STOP && v != PW_SUSPEND) { // module.h pw_verdict: unknown is STOP
            log(m, PW_LOG_ERROR, fmt::format("on_request returned unknown verdict {}: taken as STOP", int(v)));
            v = PW_STOP;
        }
        if (v == PW_SUSPEND) {
            if (tx->refs <= 2) { // not retained: nobody would resume it
                log(m, PW_LOG_ERROR, "returned SUSPEND without request_retain()");
                if (!tx->finalSent)
                    replyLocal(tx, 500);
                v = PW_STOP;
            } else {
                tx->suspended = true;
                tx->inPipeline = false;
                unref(tx);
                return;
            }
        }
        if (v != PW_CONTINUE || tx->finalSent)
            break;
    }
    tx->inPipeline = false;
    afterPipeline(tx, v);
    unref(tx);
}

void Proxy::Impl::afterPipeline(pw_request *tx, pw_verdict v) {
    if (v == PW_CONTINUE && !tx->finalSent && !tx->cancelled) {
        forward(tx);
    } else if (v == PW_STOP && !tx->finalSent && tx->refs <= 2 && tx->kind == TxKind::Proxied) {
        // STOP without an answer and nobody holds it: answer rather than leave the client hanging
        replyLocal(tx, 500, "Request Not Handled");
    }
    maybeFinish(tx);
}

void Proxy::Impl::forward(pw_request *tx) {
    sip_t *sip = tx->req.sip();
    if (!mayRelay(tx)) { // no open relay: strangers reach local users only (docs/auth.md)
        replyLocal(tx, 403, "Relaying Denied");
        return;
    }
    bool local = tx->targets.empty() && !sip->sip_route && isOurs(sip->sip_request->rq_url);
    if (!local)
        noteCseq(tx);
    if (!tx->targets.empty()) {
        for (auto &t : tx->targets)
            startBranch(tx, t.uri, t.nextHop);
    } else if (sip->sip_route) {
        startBranch(tx, "", "");
    } else if (local) {
        // Addressed to us and no module took it.
        if (sip->sip_to && sip->sip_to->a_tag)
            replyLocal(tx, 481);
        else if (tx->method == sip_method_options && !sip->sip_request->rq_url->url_user)
            replyLocal(tx, 200);
        else
            replyLocal(tx, 404);
    } else {
        startBranch(tx, "", "");
    }
    if (tx->branches.empty() && !tx->finalSent)
        replyLocal(tx, 500);
    else
        sendBest(tx); // every branch may have failed synchronously
}

bool Proxy::Impl::startBranch(pw_request *tx, const std::string &uri, const std::string &target) {
    // A target's next hop may be a route set (a contact's Path, RFC 3327 §5.2): it goes on top of this copy's
    // Route headers and the copy is sent to its first URI (RFC 3261 §16.6 steps 6-7).
    std::string nextHop = target, routeSet;
    if (isRouteSet(target)) {
        routeSet = target;
        auto uris = routeSetUris(target);
        nextHop = uris.empty() ? std::string() : uris.front();
    }
    auto b = std::make_unique<Branch>();
    b->tx = tx;
    Branch *bp = b.get();
    tx->branches.push_back(std::move(b));

    // sip_add_tl() on a parsed message appends the new header to the wire chain AFTER the body separator, and
    // msg_copy() keeps that chain; msg_dup() re-serialises headers in order. Pay for the deep copy only then.
    msg_t *copy = tx->headersEdited ? msg_dup(tx->req.get()) : msg_copy(tx->req.get());
    sip_t *sip = copy ? sip_object(copy) : nullptr;
    if (!sip) {
        bp->final = true;
        bp->status = 500;
        return false;
    }
    su_home_t *home = msg_home(copy);
    if (!uri.empty()) {
        sip_request_t *rq = uriParses(uri) ? sip_request_create(home, tx->method, tx->methodName.c_str(),
                                                                URL_STRING_MAKE(uri.c_str()), nullptr)
                                           : nullptr;
        if (!rq) {
            msg_destroy(copy);
            bp->final = true;
            bp->status = 400;
            log(nullptr, PW_LOG_WARN, fmt::format("bad target URI '{}'", uri));
            return false;
        }
        msg_header_insert(copy, reinterpret_cast<msg_pub_t *>(sip), reinterpret_cast<msg_header_t *>(rq));
    }
    if (!routeSet.empty()) {
        if (sip_route_t *rt = sip_route_make(home, routeSet.c_str()))
            msg_header_prepend(copy, reinterpret_cast<msg_pub_t *>(sip),
                               reinterpret_cast<msg_header_t **>(&sip->sip_route),
                               reinterpret_cast<msg_header_t *>(rt));
    }
    if (tx->cseqShift)
        setCseq(copy, CseqShifts::shifted(sip->sip_cseq->cs_seq, tx->cseqShift)); // (noteCseq)
    // RFC 3261 §16.6 step 3: Max-Forwards
    if (sip->sip_max_forwards) {
        sip_max_forwards_t *mf = sip_max_forwards_dup(home, sip->sip_max_forwards);
        mf->mf_count = mf->mf_count ? mf->mf_count - 1 : 0;
        msg_header_replace(copy, reinterpret_cast<msg_pub_t *>(sip),
                           reinterpret_cast<msg_header_t *>(sip->sip_max_forwards),
                           reinterpret_cast<msg_header_t *>(mf));
    } else {
        std::string mf = std::to_string(cfg.maxForwards);
        sip_add_tl(copy, sip, SIPTAG_MAX_FORWARDS_STR(mf.c_str()), TAG_END());
    }
    // RFC 3261 §16.6 step 4: Record-Route on dialog-creating requests so in-dialog requests come back
    bool dialogCreating = !(sip->sip_to && sip->sip_to->a_tag) &&
                          (tx->method == sip_method_invite || tx->method == sip_method_subscribe ||
                           tx->method == sip_method_refer || tx->method == sip_method_notify);
    if (cfg.recordRoute && dialogCreating) {
        std::string rrHop = nextHop.empty() && sip->sip_route ? urlString(sip->sip_route->r_url) : nextHop;
        std::string rr = recordRouteFor(tx->req.sip(), sip, rrHop);
        msg_header_add_make(copy, reinterpret_cast<msg_pub_t *>(sip), sip_record_route_class, rr.c_str());
    }

    // RFC 3261 §16.6 step 8: our branch carries the loop key
    static_assert(sizeof(uint64_t) == 8);
    bp->key = fmt::format("z9hG4bKpw{}.{:x}", loopKey(tx->req.sip()), reinterpret_cast<uintptr_t>(bp));

    url_string_t const *routeUrl = nullptr;
    std::string hop = nextHop;
    if (hop.empty() && sip->sip_route)
        hop = urlString(sip->sip_route->r_url);
    if (!hop.empty())
        routeUrl = URL_STRING_MAKE(hop.c_str());

    // A branch to a host name waits on DNS: their number is capped (a flood of requests naming hosts whose
    // name server never answers must not pile up resolver work).
    if (needsDns(hop.empty() ? sip->sip_request->rq_url : nullptr, hop)) {
        if (dnsPending >= cfg.maxDnsPending) {
            msg_destroy(copy);
            bp->final = true;
            bp->status = 503;
            reportLimit("dns_pending", "");
            return false;
        }
        bp->dnsPending = true;
        ++dnsPending;
    }

    bp->orq = nta_outgoing_mcreate(agent, branchTrampoline, reinterpret_cast<nta_outgoing_magic_t *>(bp), routeUrl,
                                   copy, NTATAG_BRANCH_KEY(bp->key.c_str()), TAG_END());
    if (!bp->orq) {
        msg_destroy(copy);
        bp->final = true;
        bp->status = 503;
        releaseDns(bp);
        return false;
    }
    ++tx->refs;
    return true;
}

void Proxy::Impl::forwardAck(msg_t *msg, sip_t *sip) {
    while (sip->sip_route && isOurs(sip->sip_route->r_url))
        sip_route_remove(msg, sip);
    if (!sip->sip_route && isOurs(sip->sip_request->rq_url))
        return; // an ACK for us that no dialog took
    msg_t *copy = msg_copy(msg);
    if (!copy)
        return;
    sip_t *cs = sip_object(copy);
    // the ACK of a 2xx carries the number its INVITE was forwarded with (RFC 3261 §13.2.2.4, cseq_shift.hh)
    if (cs->sip_call_id && cs->sip_from && cs->sip_from->a_tag && cs->sip_to && cs->sip_to->a_tag && cs->sip_cseq) {
        uint32_t shift =
            cseqShifts.ackShift(cs->sip_call_id->i_id, cs->sip_from->a_tag, cs->sip_to->a_tag, cs->sip_cseq->cs_seq);
        if (shift)
            setCseq(copy, CseqShifts::shifted(cs->sip_cseq->cs_seq, shift));
    }
    if (cs->sip_max_forwards) {
        if (cs->sip_max_forwards->mf_count == 0) {
            msg_destroy(copy);
            return;
        }
        sip_max_forwards_t *mf = sip_max_forwards_dup(msg_home(copy), cs->sip_max_forwards);
        mf->mf_count--;
        msg_header_replace(copy, reinterpret_cast<msg_pub_t *>(cs),
                           reinterpret_cast<msg_header_t *>(cs->sip_max_forwards),
                           reinterpret_cast<msg_header_t *>(mf));
    }
    std::string hop = cs->sip_route ? urlString(cs->sip_route->r_url) : std::string();
    nta_outgoing_t *o =
        nta_outgoing_mcreate(agent, nullptr, nullptr, hop.empty() ? nullptr : URL_STRING_MAKE(hop.c_str()), copy,
                             NTATAG_STATELESS(1), TAG_END());
    if (!o)
        msg_destroy(copy);
    else
        nta_outgoing_destroy(o);
}

// RFC 3261 §16.6 forbids a proxy to change CSeq, except the way SBCs must once a module spoke in the dialog
// as one of its parties (dialog_inject_cseq, cseq_shift.hh): that party's later requests are raised by the
// number of requests injected, so the other end still sees its CSeq increase (§12.2.1.1, §12.2.2), and the
// responses are lowered back so the party matches them to its own transactions.
void Proxy::Impl::noteCseq(pw_request *tx) {
    const sip_t *sip = tx->req.sip();
    if (tx->method == sip_method_ack || tx->method == sip_method_cancel || !sip->sip_call_id || !sip->sip_cseq ||
        !sip->sip_from || !sip->sip_from->a_tag)
        return;
    const char *toTag = sip->sip_to && sip->sip_to->a_tag ? sip->sip_to->a_tag : "";
    tx->cseqShift = cseqShifts.onRequest(sip->sip_call_id->i_id, sip->sip_from->a_tag, toTag, sip->sip_cseq->cs_seq,
                                         tx->method == sip_method_invite, nowMs());
    if (CseqShifts::shifted(sip->sip_cseq->cs_seq, tx->cseqShift) == sip->sip_cseq->cs_seq)
        tx->cseqShift = 0;
}

void Proxy::Impl::unshiftResponse(pw_request *tx, msg_t *resp) {
    sip_t *sip = sip_object(resp);
    if (tx->cseqShift && sip->sip_cseq)
        setCseq(resp, sip->sip_cseq->cs_seq - tx->cseqShift);
    const sip_t *rq = tx->req.sip();
    if (tx->method == sip_method_bye && sip->sip_status->st_status < 300 && rq->sip_call_id && rq->sip_from &&
        rq->sip_from->a_tag && rq->sip_to && rq->sip_to->a_tag) // the dialog is over
        cseqShifts.forgetDialog(rq->sip_call_id->i_id, rq->sip_from->a_tag, rq->sip_to->a_tag);
}

void Proxy::Impl::unshiftStray2xx(msg_t *resp, sip_t *sip) {
    if (!sip->sip_call_id || !sip->sip_from || !sip->sip_from->a_tag || !sip->sip_to || !sip->sip_to->a_tag ||
        !sip->sip_cseq)
        return;
    uint32_t shift = cseqShifts.inviteResponseShift(sip->sip_call_id->i_id, sip->sip_from->a_tag, sip->sip_to->a_tag,
                                                    sip->sip_cseq->cs_seq);
    if (shift)
        setCseq(resp, sip->sip_cseq->cs_seq - shift);
}

// ---------------------------------------------------------------- responses

// sofia-sip 1.12 re-opens a connection to a TCP client that has gone when it has something to send there, and a
// new connection named like a closed one that still exists corrupts its table of connections: the process
// crashes soon after (found by fuzz_sip_core_tcp). So nothing is sent back over a request's stream transport
// once it is closed. RFC 3261 §18.2.2 says a server SHOULD re-open it; a client's source port is ephemeral
// and not listening, so the attempt would fail anyway.
bool Proxy::Impl::streamClosed(nta_incoming_t *, msg_t *req) {
    const sip_t *sip = req ? sip_object(req) : nullptr;
    const char *proto = sip && sip->sip_via ? sip->sip_via->v_protocol : nullptr;
    if (!proto || strcasecmp(proto, "SIP/2.0/UDP") == 0)
        return false; // sofia checks it is the transport used
    su_sockaddr_t su;
    socklen_t len = sizeof su;
    if (msg_get_address(req, &su, &len) != 0)
        return false;
    char host[64] = "";
    su_inet_ntop(su.su_family, SU_ADDR(&su), host, sizeof host);
    std::string port = std::to_string(ntohs(su.su_port));
    std::string transport = proto + std::string(proto).rfind('/') + 1;
    for (auto &c : transport)
        c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    tp_name_t tpn = {transport.c_str(), host, host, port.c_str(), nullptr, nullptr};
    // an open connection from the client is found by its name; otherwise sofia answers with a primary transport
    tport_t *tp = tport_by_name(nta_agent_tports(agent), &tpn);
    return !tp || !tport_is_secondary(tp) || tport_is_closed(tp) || tport_is_shutdown(tp);
}

void Proxy::Impl::relay(pw_request *tx, msg_t *resp) {
    sip_t *sip = sip_object(resp);
    int status = sip->sip_status->st_status;
    unshiftResponse(tx, resp);
    callOnResponse(resp);
    if (streamClosed(tx->irq, tx->req.get())) { // (see streamClosed)
        msg_destroy(resp);
        return;
    }
    countResponse(status);
    if (tx->irq && nta_incoming_mreply(tx->irq, resp) == 0)
        return;
    // The server transaction is over (e.g. a late 2xx to INVITE): forward statelessly (RFC 3261 §16.7 step 5)
    if (status >= 200 && status < 300 && sip->sip_via)
        nta_msg_tsend(agent, resp, nullptr, TAG_END());
    else
        msg_destroy(resp);
}

int Proxy::Impl::onBranchResponse(Branch *b, nta_outgoing_t *orq, const sip_t *sip) noexcept {
    noteWork();
    pw_request *tx = static_cast<pw_request *>(b->tx);
    try {
        int status = sip ? sip->sip_status->st_status : nta_outgoing_status(orq);
        if (sip && nta_sip_is_internal(sip))
            sip = nullptr; // generated by nta (timeout, transport error)
        if (status < 100)
            status = 408;
        if (b->dnsPending) { // the name was resolved (or failed): the branch no longer waits on DNS
            b->dnsPending = false;
            --dnsPending;
        }
        if (sip) {
            // What we relay is re-serialised: remove the copies of single-instance headers sofia-sip keeps
            sofia::Msg r = sofia::Msg::adopt(nta_outgoing_getresponse(orq));
            noteReceived(r.get());
            stripDuplicateSingleHeaders(r.get());
            if (status < 200 && bodyTruncated(r.get()))
                return 0; // RFC 3261 §18.3: discarded
        }
        b->status = status;
        if (status < 200) {
            if (status > 100 && sip && !tx->finalSent) {
                msg_t *resp = nta_outgoing_getresponse(orq);
                sip_via_remove(resp, sip_object(resp));
                relay(tx, resp);
            }
            return 0;
        }
        bool wasFinal = b->final;
        b->final = true;
        if (status < 300) {
            // RFC 3261 §16.7 step 5: every 2xx is forwarded at once, late ones too
            if (sip) {
                msg_t *resp = nta_outgoing_getresponse(orq);
                sip_via_remove(resp, sip_object(resp));
                bool first = !tx->finalSent;
                tx->finalSent = true;
                relay(tx, resp);
                if (first && tx->method == sip_method_invite) {
                    // §16.7 step 10: CANCEL the other branches. Only they need to live on (for a late 2xx, or
                    // their 487), bounded by 64*T1; a single-branch call keeps nothing.
                    cancelBranches(tx, b);
                    bool othersPending = false;
                    for (auto &br : tx->branches)
                        if (br.get() != b && !br->final && br->orq)
                            othersPending = true;
                    if (othersPending && !tx->lateTimer) {
                        tx->lateTimer = std::make_unique<sofia::Timer>(root);
                        ++tx->refs;
                        tx->lateTimer->start(t1x64, [this, tx] {
                            for (auto &br : tx->branches)
                                if (br->orq) {
                                    nta_outgoing_destroy(br->orq);
                                    br->orq = nullptr;
                                    if (!br->final) {
                                        br->final = true;
                                        unref(tx);
                                    }
                                }
                            maybeFinish(tx);
                            unref(tx); // the timer's reference
                        });
                    }
                }
            }
            // The client transaction is done with once its 2xx is relayed: retransmissions of that 2xx and 2xx
            // from downstream forks arrive as stray responses and are forwarded statelessly (agentTrampoline,
            // RFC 3261 §16.7 step 5). Keeping INVITE client transactions for 64*T1 made nta's timer walk
            // thousands of them on every tick (CPU per call grew with the call rate).
            nta_outgoing_destroy(orq);
            b->orq = nullptr;
            if (!wasFinal)
                unref(tx);
            maybeFinish(tx);
            return 0;
        }
        // non-2xx final
        if (sip)
            b->finalResp = sofia::Msg::adopt(nta_outgoing_getresponse(orq));
        nta_outgoing_destroy(orq);
        b->orq = nullptr;
        if (status >= 600 && !tx->finalSent) {
            // §16.7 step 5: a 6xx ends the search; CANCEL the rest
            cancelBranches(tx, b);
        }
        if (!wasFinal)
            unref(tx); // may not destroy: the pipeline/self ref is still held until maybeFinish
        sendBest(tx);
    } catch (...) {
        log(nullptr, PW_LOG_ERROR, "response handling failed");
    }
    return 0;
}

void Proxy::Impl::cancelBranches(pw_request *tx, Branch *except) {
    for (auto &br : tx->branches)
        if (br.get() != except && !br->final && br->orq)
            nta_outgoing_tcancel(br->orq, nullptr, nullptr, TAG_END());
}

// §16.7 step 6: once every branch is final (or a 6xx came), send the best response upstream.
void Proxy::Impl::sendBest(pw_request *tx) {
    if (tx->finalSent) {
        maybeFinish(tx);
        return;
    }
    Branch *best = nullptr;
    bool allFinal = true;
    for (auto &b : tx->branches) {
        if (!b->final) {
            allFinal = false;
            continue;
        }
        if (b->status < 300)
            continue;
        if (b->status >= 600) {
            if (!best || best->status < 600)
                best = b.get();
            continue;
        }
        if (!best) {
            best = b.get();
            continue;
        }
        if (best->status >= 600)
            continue;
        int bc = best->status / 100, c = b->status / 100;
        if (c < bc)
            best = b.get();
        else if (c == bc && (b->status == 401 || b->status == 407) && best->status != 401 && best->status != 407)
            best = b.get(); // §16.7 step 6: prefer challenges within 4xx
    }
    bool sixxx = best && best->status >= 600;
    if (!best || (!allFinal && !sixxx)) {
        maybeFinish(tx);
        return;
    }
    tx->finalSent = true;
    if (best->status == 503 && best->finalResp) {
        replyLocal(tx, 500); // §16.7 step 6: a 503 becomes 500
    } else if (best->finalResp) {
        msg_t *resp = best->finalResp.release();
        sip_via_remove(resp, sip_object(resp));
        relay(tx, resp);
    } else {
        tx->finalSent = false;
        replyLocal(tx, best->status);
    }
    maybeFinish(tx);
}

void Proxy::Impl::releaseDns(Branch *b) {
    if (!b->dnsPending)
        return;
    b->dnsPending = false;
    --dnsPending;
}

bool Proxy::Impl::replyLocal(pw_request *tx, int status, const char *phrase, const std::string &extraHeaders) {
    if (!tx->irq || tx->finalSent)
        return false;
    if (streamClosed(tx->irq, tx->req.get())) { // the client is gone: the transaction ends unanswered
        if (status >= 200)
            tx->finalSent = true;
        return false;
    }
    if (!phrase)
        phrase = sip_status_phrase(status);
    if (!phrase)
        phrase = "Unknown";
    if (status >= 200)
        tx->finalSent = true;
    countResponse(status);
    const sip_t *rs = tx->req.sip();
    if (status > 100 && rs && rs->sip_to && !rs->sip_to->a_tag && !nta_incoming_gettag(tx->irq))
        nta_incoming_tag(tx->irq, nullptr); // RFC 3261 §8.2.6.2: a locally generated response carries our To-tag
    // RFC 3261 §21.5.4: our 503s say when to try again
    std::string retry = status == 503 ? std::to_string(cfg.retryAfterS) : std::string();
    if (status >= 200 && modules.size()) {
        // Modules see locally generated final responses too.
        msg_t *resp = nta_incoming_create_response(tx->irq, status, phrase);
        if (resp) {
            sip_t *rsip = sip_object(resp);
            const char *tag = nta_incoming_gettag(tx->irq);
            // nta_incoming_mreply does not add the To-tag nta_incoming_tag chose (treply does): RFC 3261 §8.2.6.2
            if (status > 100 && tag && rsip->sip_to && !rsip->sip_to->a_tag)
                sip_to_tag(msg_home(resp), rsip->sip_to, tag);
            if (!retry.empty())
                sip_add_tl(resp, sip_object(resp), SIPTAG_RETRY_AFTER_STR(retry.c_str()), TAG_END());
            if (!extraHeaders.empty())
                sip_add_tl(resp, sip_object(resp), SIPTAG_HEADER_STR(extraHeaders.c_str()), TAG_END());
            callOnResponse(resp);
            return nta_incoming_mreply(tx->irq, resp) == 0;
        }
    }
    return nta_incoming_treply(tx->irq, status, phrase, SIPTAG_RETRY_AFTER_STR(retry.empty() ? nullptr : retry.c_str()),
                               SIPTAG_HEADER_STR(extraHeaders.empty() ? nullptr : extraHeaders.c_str()),
                               TAG_END()) == 0;
}

void Proxy::Impl::maybeFinish(pw_request *tx) {
    if (tx->dead || tx->inPipeline || tx->suspended)
        return;
    bool pending = false;
    for (auto &b : tx->branches)
        if (!b->final)
            pending = true;
    if (pending || !tx->finalSent)
        return;
    if (tx->lateTimer && tx->lateTimer->armed()) {
        // every branch is final: no late 2xx can come any more, drop the timer and its reference now
        tx->lateTimer->cancel();
        --tx->refs; // the transaction's own reference is still held below
    }
    tx->dead = true;
    unref(tx); // the transaction's own reference
}

void Proxy::Impl::unref(pw_request *tx) {
    if (--tx->refs > 0)
        return;
    destroyTx(tx);
}

void Proxy::Impl::destroyTx(pw_request *tx) {
    txns.erase(tx);
    for (auto &b : tx->branches)
        releaseDns(b.get());
    for (auto &b : tx->branches)
        if (b->orq) {
            nta_outgoing_destroy(b->orq);
            b->orq = nullptr;
        }
    if (tx->irq) {
        nta_incoming_bind(tx->irq, nullptr, nullptr);
        nta_incoming_destroy(tx->irq);
        tx->irq = nullptr;
    }
    delete tx;
    updateTxGauge();
}

} // namespace parkway::proxy
