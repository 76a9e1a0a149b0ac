// The core's limits (docs/limits.md): per-source rate limiting and bans, TCP connection caps and deadlines,
// and the requests refused before any module sees them (malformed in ways sofia-sip lets through, or over
// capacity).
#include "core_impl.hh"
#include "message_checks.hh"

#include <fmt/format.h>

#ifdef PARKWAY_HAVE_METRICS
#include "../admin/metrics.hh"
#endif

namespace parkway::proxy {

namespace {

bool sourceOf(msg_t *msg, IpKey &ip, su_sockaddr_t &su) {
    socklen_t len = sizeof su;
    return msg && msg_get_address(msg, &su, &len) == 0 && ipKeyOf(&su.su_sa, ip);
}

// Answer with a reason phrase that names the problem, then let nta own the transaction.
void replyAndForget(nta_incoming_t *irq, int status, const std::string &phrase, const char *retryAfter = nullptr) {
    nta_incoming_treply(irq, status, phrase.c_str(), SIPTAG_RETRY_AFTER_STR(retryAfter), TAG_END());
    nta_incoming_destroy(irq);
}

} // namespace

void Proxy::Impl::setUpLimits(const std::vector<uint16_t> &tcpPorts, const std::vector<uint16_t> &udpPorts) {
    trusted = AddressSet{};
    for (const auto &t : cfg.trustedPeers)
        trusted.add(t); // validated by the config loader
    limiter = RateLimiter({cfg.rateLimit, cfg.rateBurst, cfg.banMs, 65536});
    SocketGuard::Settings gs;
    gs.maxConnections = cfg.tcpMaxConnections;
    gs.maxPerSource = cfg.tcpMaxPerSource;
    gs.firstMessageTimeoutMs = cfg.tcpFirstMessageMs;
    gs.idleTimeoutMs = cfg.tcpIdleMs;
    gs.trusted = trusted;
    gs.banned = [this](const IpKey &ip) { return limiter.banned(ip, nowMs()); };
    gs.charge = [this](const IpKey &ip) {
        return trusted.contains(ip) || limiter.check(ip, nowMs()) == RateLimiter::Verdict::Pass;
    };
    // Every datagram read is work for the loop pacer (sofia.hh), also one that nta absorbs (an ACK, a
    // retransmission) without calling us: the pacer must never sleep while datagrams are queued.
    gs.queueDelay = [this](int64_t us) {
        noteWork();
        if (cfg.overloadQueueMs)
            noteQueueDelay(us);
    };
    sockets = std::make_unique<SocketGuard>(std::move(gs), [this](const char *reason, const std::string &peer) {
        reportLimit(fmt::format("tcp_{}", reason).c_str(), peer);
    });
    sockets->guardSockets(tcpPorts, udpPorts);
    setUpOverload();
    housekeeping = std::make_unique<sofia::Timer>(root);
    housekeeping->start(1000, [this] { housekeep(); });
}

void Proxy::Impl::housekeep() {
    sockets->sweep();
    limiter.sweep(nowMs());
    if (++housekeepTurns % 10 == 0) {
        authHousekeep(nowMs() / 1000);
        cseqShifts.sweep(nowMs());
    }
#ifdef PARKWAY_HAVE_METRICS
    if (metrics) {
        metrics->gaugeSet("parkway_tcp_connections", "", static_cast<double>(sockets->connections()));
        metrics->gaugeSet("parkway_sip_banned_sources", "", static_cast<double>(limiter.bans(nowMs()).size()));
        overloadGauges();
        uint64_t dropped = sockets->takeDroppedDatagrams();
        if (dropped)
            metrics->counterAdd("parkway_sip_dropped_datagrams_total", "reason=\"banned\"", double(dropped));
    }
#endif
    housekeeping->start(1000, [this] { housekeep(); });
}

void Proxy::Impl::reportLimit(const char *what, const std::string &detail) {
#ifdef PARKWAY_HAVE_METRICS
    if (metrics)
        metrics->counterAdd("parkway_limit_refusals_total", fmt::format("limit=\"{}\"", what), 1);
#endif
    // One line per limit and second at most: a flood must not become a flood of log lines.
    int64_t now = nowMs();
    if (now - lastLimitLogMs < 1000)
        return;
    lastLimitLogMs = now;
    log(nullptr, PW_LOG_WARN, fmt::format("limit {} reached{}{}", what, detail.empty() ? "" : ": ", detail));
}

void Proxy::Impl::noteReceived(msg_t *msg) {
    if (!sockets || !sockets->connections())
        return;
    su_sockaddr_t su;
    socklen_t len = sizeof su;
    if (msg && msg_get_address(msg, &su, &len) == 0)
        sockets->noteMessage(&su.su_sa);
}

RateLimiter::Verdict Proxy::Impl::chargeSource(msg_t *msg, IpKey &ip) {
    su_sockaddr_t su;
    if (!limiter.enabled() || !sourceOf(msg, ip, su) || trusted.contains(ip))
        return RateLimiter::Verdict::Pass;
    return limiter.check(ip, nowMs());
}

bool Proxy::Impl::admitRequest(nta_incoming_t *irq, msg_t *msg) {
    noteReceived(msg);
    IpKey ip;
    RateLimiter::Verdict v = chargeSource(msg, ip);
    if (v == RateLimiter::Verdict::Pass)
        return true;
    refuseLimited(irq, msg, ip, v);
    return false;
}

void Proxy::Impl::refuseLimited(nta_incoming_t *irq, msg_t *msg, const IpKey &ip, RateLimiter::Verdict v) {
    std::string retry = std::to_string((cfg.banMs + 999) / 1000);
    if (v == RateLimiter::Verdict::Ban) {
        reportLimit("rate_ban", ip.text());
#ifdef PARKWAY_HAVE_METRICS
        if (metrics)
            metrics->counterAdd("parkway_sip_bans_total", "", 1);
#endif
        sockets->closeFrom(ip); // its TCP connections too
    }
    // The request that started the ban, or one already read when it began: one answer, then the source is
    // not heard any more (its datagrams are dropped unread, its connections refused) until the ban ends.
    if (sip_object(msg)->sip_request->rq_method == sip_method_ack)
        nta_incoming_destroy(irq);
    else
        replyAndForget(irq, 503, "Rate Limit Exceeded", retry.c_str());
}

bool Proxy::Impl::refuseEarly(nta_incoming_t *irq, msg_t *msg, const sip_t *sip) {
    std::string dup = stripDuplicateSingleHeaders(msg);
    if (!dup.empty()) { // RFC 3261 §7.3.1: these headers appear once
        countResponse(400);
        replyAndForget(irq, 400, fmt::format("Duplicate {} Header", dup));
        return true;
    }
    if (bodyTruncated(msg)) { // RFC 3261 §18.3
        countResponse(400);
        replyAndForget(irq, 400, "Content-Length Exceeds Datagram");
        return true;
    }
    if (!routableScheme(sip->sip_request->rq_url)) { // RFC 3261 §8.2.2.1, §16.3 item 1
        countResponse(416);
        nta_incoming_treply(irq, SIP_416_UNSUPPORTED_URI, TAG_END());
        nta_incoming_destroy(irq);
        return true;
    }
    bool initial = !(sip->sip_to && sip->sip_to->a_tag);
    if (initial && txns.size() >= cfg.maxTransactions) {
        reportLimit("transactions", "");
        countResponse(503);
        replyAndForget(irq, 503, "Server Busy", std::to_string(cfg.retryAfterS).c_str());
        return true;
    }
    return false;
}

} // namespace parkway::proxy
