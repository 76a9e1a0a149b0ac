// Graceful overload (overload.hh, docs/limits.md "Overload"): the moving average, the 503 gate at the top of
// Proxy::Impl::onRequest, and RFC 7339 overload control parameters in the Via of our responses.
#include "overload.hh"

#include <cstddef>

#include "core_impl.hh"
#include "sofia_fixes.hh"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>

#ifdef PARKWAY_HAVE_METRICS
#include "../admin/metrics.hh"
#endif

namespace parkway::proxy {

namespace {

constexpr uint64_t kTickMs = 20; // loop-lag probe period

int64_t steadyUs() {
    using namespace std::chrono;
    return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

int64_t wallMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

int64_t queueDelayUs(int64_t kernelRealtimeNs) {
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t d = (int64_t(now.tv_sec) * 1000000000 + now.tv_nsec - kernelRealtimeNs) / 1000;
    if (d < -1000000 || d > 60000000) // the clock was stepped: no measurement
        return -1;
    return std::max<int64_t>(d, 0);
}

void OverloadGate::configure(const OverloadSettings &s) {
    s_ = s;
    if (!enabled()) {
        reduction_ = 0;
        avgMs_ = lastMs_ = 0;
    }
    update();
}

void OverloadGate::sample(int64_t nowUs, double lateMs, double spanMs) {
    lastMs_ = lateMs;
    double w = 1;
    if (lastUs_) {
        double dtMs = spanMs >= 0 ? spanMs : double(nowUs - lastUs_) / 1000;
        w = std::max(kMinWeight, 1 - std::exp(-std::max(dtMs, 0.0) / kTauMs));
    }
    lastUs_ = nowUs;
    avgMs_ += w * (lateMs - avgMs_);
    update();
}

void OverloadGate::update() {
    if (!enabled())
        return;
    // the share of new requests to refuse, 0 under the soft threshold, 1 from the hard one, linear between
    double share = (avgMs_ - s_.softMs) / double(s_.hardMs - s_.softMs);
    double pct = std::clamp(share, 0.0, 1.0) * 100;
    // hysteresis: keep the current value until the share is 3/4 of a step (5) away from it, half a step past where
    // plain rounding would move it, so that jitter at a rounding boundary does not flap; the ends are exact
    if (std::abs(pct - reduction_) < 3.75 && pct > 0 && pct < 100)
        return;
    unsigned r = static_cast<unsigned>(std::lround(pct / 5)) * 5;
    if (r == reduction_)
        return;
    reduction_ = r;
    seqMs_ = std::max(wallMs(), seqMs_ + 1); // RFC 7339 §5.2: a new value, a larger oc-seq
    seq_ = fmt::format("{}.{:03}", seqMs_ / 1000, seqMs_ % 1000);
}

bool OverloadGate::admit() {
    // RFC 7339 §6 (loss algorithm): refuse reduction() % of new requests. Error diffusion: owe reduction_
    // hundredths per request, refuse one whenever a whole one is owed (50 -> every other one, 5 -> 1 in 20).
    shedAcc_ += reduction_;
    if (shedAcc_ < 100)
        return true;
    shedAcc_ -= 100;
    return false;
}

std::string OverloadGate::ocParams() const {
    // RFC 7339 §5.2 (oc, oc-seq), §5.1 (oc-algo: the one we apply), §5.5 (oc-validity, milliseconds)
    return fmt::format("oc={};oc-algo=\"loss\";oc-validity={};oc-seq={}", reduction_, s_.validityMs, seq_);
}

// ---------------------------------------------------------------- in the SIP core

namespace {

Proxy::Impl *gAdvertiser = nullptr; // the core whose state goes into responses (one SIP core per process)

// Every response of a server transaction passes here (sofia_fixes.cc, nta_incoming_mreply). RFC 7339 §4/§5.2:
// a client says it supports overload control with "oc" in its Via; the response it gets carries our state there.
// RFC 7339 §5.2: our state in the client's topmost Via (of a response, or of a request about to be answered
// statelessly, whose Via the response copies), when that Via asked for it with "oc".
void putOcParams(Proxy::Impl *impl, su_home_t *home, sip_via_t *via) {
    if (!impl || !via || !msg_params_find(via->v_params, "oc"))
        return;
    const OverloadGate &g = impl->overload;
    auto *h = reinterpret_cast<msg_common_t *>(via);
    msg_header_replace_param(home, h, su_sprintf(home, "oc=%u", g.reduction()));
    msg_header_replace_param(home, h, "oc-algo=\"loss\"");
    msg_header_replace_param(home, h, su_sprintf(home, "oc-validity=%u", g.settings().validityMs));
    msg_header_replace_param(home, h, su_sprintf(home, "oc-seq=%s", g.seq().c_str()));
}

// Every response of a server transaction passes here (sofia_fixes.cc, nta_incoming_mreply). RFC 7339 §4/§5.2:
// a client says it supports overload control with "oc" in its Via; the response it gets carries our state there.
void addOcParams(msg_t *msg) {
    sip_t *sip = msg ? sip_object(msg) : nullptr;
    if (sip && sip->sip_status)
        putOcParams(gAdvertiser, msg_home(msg), sip->sip_via);
}

} // namespace

void Proxy::Impl::setUpOverload() {
    OverloadSettings s;
    s.hardMs = cfg.overloadQueueMs;
    s.softMs = cfg.overloadSoftMs;
    s.retryAfterS = cfg.overloadRetryAfterS;
    s.control = cfg.overloadControl;
    overload.configure(s);
    bool advertise = overload.enabled() && s.control;
    if (advertise)
        gAdvertiser = this;
    else if (gAdvertiser == this)
        gAdvertiser = nullptr;
    setResponseHook(gAdvertiser ? &addOcParams : nullptr);
    if (!overload.enabled()) {
        overloadTimer.reset();
        return;
    }
    if (!overloadTimer) {
        overloadTimer = std::make_unique<sofia::Timer>(root);
        overloadTick();
    }
}

void Proxy::Impl::tearDownOverload() {
    overloadTimer.reset();
    if (statelessIntake && agent) {
        statelessIntake = false;
        nta_agent_set_params(agent, NTATAG_STATELESS(0), TAG_END());
    }
    if (gAdvertiser == this) {
        gAdvertiser = nullptr;
        setResponseHook(nullptr);
    }
}

// The loop-lag probe: a timer due kTickMs from now that fires late by as much as the loop is behind. The first
// one is armed before the loop runs (start-up: modules start, databases open): its lateness is not measured.
void Proxy::Impl::overloadTick() {
    int64_t now = steadyUs();
    if (overloadDueUs)
        noteLateness(now, double(now - overloadDueUs) / 1000, double(kTickMs));
    overloadDueUs = overloadArmed ? now + int64_t(kTickMs) * 1000 : 0;
    overloadArmed = true;
    overloadTimer->start(kTickMs, [this] { overloadTick(); });
}

void Proxy::Impl::noteLateness(int64_t nowUs, double lateMs, double spanMs) {
    bool was = overload.shedding();
    overload.sample(nowUs, std::max(lateMs, 0.0), spanMs);
    if (was == overload.shedding())
        return;
    followGate();
    // The gate may start and stop shedding several times a second near the soft threshold: one line per 10 s.
    int64_t now = nowMs();
    if (now - lastOverloadStateLogMs < 10000)
        return;
    lastOverloadStateLogMs = now;
    log(nullptr, was ? PW_LOG_INFO : PW_LOG_WARN,
        was ? fmt::format("overload ended: SIP delay {:.0f} ms, new requests are served again", overload.delayMs())
            : fmt::format("overload: SIP delay {:.0f} ms (overload_soft_ms {}), {} % of new requests get 503",
                          overload.delayMs(), cfg.overloadSoftMs, overload.reduction()));
}

void Proxy::Impl::noteQueueDelay(int64_t delayUs) {
    noteLateness(steadyUs(), double(delayUs) / 1000);
}

// A request that starts something new: no To tag (RFC 3261 §12.1) and not one that ends or completes a call.
static bool startsSomething(const sip_t *sip) {
    sip_method_t m = sip->sip_request->rq_method;
    if (m == sip_method_ack || m == sip_method_cancel || m == sip_method_bye)
        return false;
    return !(sip->sip_to && sip->sip_to->a_tag);
}

bool Proxy::Impl::shedsNow(msg_t *msg, const sip_t *sip) {
    if (!overload.shedding() || !startsSomething(sip))
        return false;
    if (finishesWork(msg)) {
        bool admit = overload.admitPriority();
        overloadFirst += admit;
        return !admit;
    }
    return !overload.admit();
}

// Whether a module says serving this request finishes work under way (pw_module.overload_priority, ABI 1.6).
bool Proxy::Impl::finishesWork(msg_t *msg) {
    pw_msg view;
    bool viewed = false;
    for (auto &m : modules) {
        const pw_module *d = m->lm.desc;
        if (!m->started || d->struct_size < offsetof(pw_module, overload_priority) + sizeof(d->overload_priority) ||
            !d->overload_priority)
            continue;
        if (!viewed) {
            initView(view, msg);
            viewed = true;
        }
        try {
            if (d->overload_priority(m->ctx, &view) == 1)
                return true;
        } catch (...) {
            log(m.get(), PW_LOG_ERROR, "overload_priority threw an exception");
        }
    }
    return false;
}

bool Proxy::Impl::refuseOverloaded(nta_incoming_t *irq, msg_t *msg, const sip_t *sip) {
    if (!shedsNow(msg, sip))
        return false;
    // RFC 3261 §21.5.4: 503 + Retry-After; RFC 7339 §5.10: a client that asked gets the oc parameters with it
    // (added to the Via on the way out, addOcParams). Nothing is kept: nta owns the transaction from here.
    char retry[16];
    snprintf(retry, sizeof retry, "%u", cfg.overloadRetryAfterS);
    nta_incoming_treply(irq, SIP_503_SERVICE_UNAVAILABLE, SIPTAG_RETRY_AFTER_STR(retry), TAG_END());
    nta_incoming_destroy(irq);
    countOverloadRefusal();
    return true;
}

void Proxy::Impl::countOverloadRefusal() {
    ++overloadRefused;
    countResponse(503);
    int64_t now = nowMs();
    if (now - lastOverloadLogMs >= 10000) { // one line per ten seconds at most, with the count since the last
        lastOverloadLogMs = now;
        log(nullptr, PW_LOG_WARN,
            fmt::format("overload: {} new request(s) refused with 503 (SIP delay {:.0f} ms)",
                        overloadRefused - overloadLogged, overload.delayMs()));
        overloadLogged = overloadRefused;
    }
}

// ---------------------------------------------------------------- stateless intake while shedding
//
// A server transaction costs more than the 503 it sends: nta keeps it for Timer G/H/I (RFC 3261 §17.2.1), puts it
// on a retransmission list kept in time order, and matches the ACK to it. Refusing statelessly costs none of
// that (RFC 3261 §8.2.7, stateless UAS behaviour): the 503 is sent once (a retransmitted INVITE is refused again,
// with the same To tag), and the ACK that follows is recognised by that tag and dropped. nta only hands over
// bare messages while the agent is "stateless", so the gate switches that mode on while it sheds and off after;
// requests that dialog legs take (module-owned dialogs) never come here, and every admitted request gets its
// transaction here, exactly as the default leg would have made it.

namespace {

constexpr char kRefusalTagPrefix[] = "pw503-";

// RFC 3261 §8.2.7: a stateless UAS gives a retransmission the same To tag: a hash of what identifies the request.
std::string refusalTag(const sip_t *sip) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    auto mix = [&h](const char *s) {
        for (; s && *s; ++s)
            h = (h ^ static_cast<unsigned char>(*s)) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    };
    mix(sip->sip_call_id ? sip->sip_call_id->i_id : nullptr);
    mix(sip->sip_from ? sip->sip_from->a_tag : nullptr);
    mix(sip->sip_via ? sip->sip_via->v_branch : nullptr);
    char buf[40];
    snprintf(buf, sizeof buf, "%s%016llx%u", kRefusalTagPrefix, static_cast<unsigned long long>(h),
             sip->sip_cseq ? unsigned(sip->sip_cseq->cs_seq) : 0u);
    return buf;
}

} // namespace

bool isOverloadRefusalAck(const sip_t *sip) {
    return sip->sip_request->rq_method == sip_method_ack && sip->sip_to && sip->sip_to->a_tag &&
           strncmp(sip->sip_to->a_tag, kRefusalTagPrefix, sizeof kRefusalTagPrefix - 1) == 0;
}

void Proxy::Impl::followGate() {
    bool shed = overload.shedding();
    if (shed == statelessIntake || !agent)
        return;
    statelessIntake = shed;
    nta_agent_set_params(agent, NTATAG_STATELESS(shed ? 1 : 0), TAG_END());
}

void Proxy::Impl::onStatelessRequest(msg_t *msg, sip_t *sip) {
    try {
        if (isOverloadRefusalAck(sip)) { // RFC 3261 §8.2.7: a stateless UAS ignores the ACK of its final answer
            nta_msg_discard(agent, msg);
            return;
        }
        noteReceived(msg);
        IpKey ip;
        RateLimiter::Verdict v = chargeSource(msg, ip);
        if (v == RateLimiter::Verdict::Pass && shedsNow(msg, sip)) {
            countRequest(sip->sip_request->rq_method_name);
            refuseStateless(msg, sip);
            return;
        }
        nta_incoming_t *irq = nta_incoming_create(agent, nullptr, msg, sip, TAG_END());
        if (!irq)
            return; // (nta freed the message)
        if (v != RateLimiter::Verdict::Pass) {
            countRequest(sip->sip_request->rq_method_name);
            refuseLimited(irq, msg, ip, v);
            return;
        }
        // As nta's default leg does with what its callback returns (a status it should send, or 0: handled).
        int status = onRequest(irq, sip, true);
        if (status >= 100 && status <= 699) {
            nta_incoming_treply(irq, status, nullptr, TAG_END());
            if (status >= 200)
                nta_incoming_destroy(irq);
        }
    } catch (...) {
        log(nullptr, PW_LOG_ERROR, "overload: a request could not be taken in");
    }
}

void Proxy::Impl::refuseStateless(msg_t *msg, sip_t *sip) {
    su_home_t *home = msg_home(msg);
    // the response copies the request's To and Via: the tag and RFC 7339 state go there first
    sip_to_tag(home, sip->sip_to, su_strdup(home, refusalTag(sip).c_str()));
    if (cfg.overloadControl)
        putOcParams(this, home, sip->sip_via);
    char retry[16];
    snprintf(retry, sizeof retry, "%u", cfg.overloadRetryAfterS);
    nta_msg_treply(agent, msg, SIP_503_SERVICE_UNAVAILABLE, SIPTAG_RETRY_AFTER_STR(retry), TAG_END());
    countOverloadRefusal();
}

void Proxy::Impl::overloadGauges() {
#ifdef PARKWAY_HAVE_METRICS
    if (!metrics)
        return;
    metrics->gaugeSet("parkway_sip_delay_ms", "", overload.delayMs());
    metrics->gaugeSet("parkway_overload_reduction", "", overload.reduction());
    metrics->gaugeSet("parkway_overload_active", "", overload.shedding() ? 1 : 0);
    if (overloadFirst > overloadFirstCounted) {
        metrics->counterAdd("parkway_overload_priority_total", "", double(overloadFirst - overloadFirstCounted));
        overloadFirstCounted = overloadFirst;
    }
    if (overloadRefused > overloadCounted) {
        metrics->counterAdd("parkway_overload_refusals_total", "", double(overloadRefused - overloadCounted));
        overloadCounted = overloadRefused;
    }
#endif
}

} // namespace parkway::proxy
