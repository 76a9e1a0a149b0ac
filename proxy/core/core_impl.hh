// Internal state of the SIP core (Proxy::Impl) and the opaque ABI handles. Not a public contract:
// only proxy/core/*.cc and the in-process tests include it.
#pragma once
#include "../sofia/sofia.hh"
#include "cseq_shift.hh"
#include "dns_stub.hh"
#include "heap_pages.hh"
#include "overload.hh"
#include "proxy.hh"
#include "rate_limiter.hh"
#include "socket_guard.hh"

#include <sofia-sip/nta_tport.h>

#include <parkway/module.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace parkway::proxy {
struct ModuleInstance;
} // namespace parkway::proxy

// ---- the opaque ABI handles (global names: module.h declares them as C structs)

struct pw_host {
    parkway::proxy::Proxy::Impl *impl = nullptr;
    parkway::proxy::ModuleInstance *mod = nullptr;
};

// A read-only view on a message, plus scratch space for strings handed to modules.
struct pw_msg {
    msg_t *msg = nullptr;
    sip_t *sip = nullptr;
    mutable std::string source;              // "udp:127.0.0.1:5062", filled on first use
    mutable std::deque<std::string> scratch; // backing store of returned pw_str (stable addresses)
};

struct pw_writer {
    bool written = false;
    int status = 200;
    std::string json;
    // ABI 1.8 (writer_defer). On a command's `out`: where an answer given later goes (unset: this run() must answer
    // at once). On a deferred writer: the same, and the proxy that holds it until writer_finish.
    std::function<void(int status, const std::string &json)> later;
    parkway::proxy::Proxy::Impl *owner = nullptr; // the proxy that answers (set where a later answer is possible)
    bool deferred = false;                        // `out` after writer_defer: nothing more is written to it
};

namespace parkway::proxy {

struct Branch;
struct Dialog;

enum class TxKind { Proxied, InDialog };

struct Target {
    std::string uri, nextHop;
};

// One incoming request with its server transaction; pw_request is this object.
struct ServerTxn {
    Proxy::Impl *impl = nullptr;
    TxKind kind = TxKind::Proxied;
    nta_incoming_t *irq = nullptr;
    sofia::Msg req;
    pw_msg view;
    sip_method_t method = sip_method_unknown;
    std::string methodName;
    int refs = 1;               // pipeline/owner + retains + live branches
    bool finalSent = false;     // a final response went upstream
    bool headersEdited = false; // a module added/removed headers: forward a re-serialised copy
    bool cancelled = false;
    bool inPipeline = false;
    bool suspended = false;
    size_t moduleIndex = 0; // module being run (pipeline)
    std::vector<Target> targets;
    std::vector<std::unique_ptr<Branch>> branches;
    std::unique_ptr<sofia::Timer> lateTimer;     // keeps INVITE branches alive for late 2xx (64*T1)
    std::unique_ptr<sofia::Timer> noAnswerTimer; // in-dialog requests a module never answered
    Dialog *dialog = nullptr;                    // InDialog: the dialog it arrived on
    bool dead = false;                           // removed from impl tables
    // Who sent it (request_identity, docs/auth.md): an addr-spec and a pw_identity_source.
    std::string identity;
    int identitySource = PW_IDENTITY_NONE;
    bool viaOurRoute = false; // it carried a Route naming us (a dialog we record-routed)
    uint32_t cseqShift = 0;   // added to its CSeq when forwarded, taken off the responses (cseq_shift.hh)
};

struct Branch {
    ServerTxn *tx = nullptr;
    nta_outgoing_t *orq = nullptr;
    int status = 0; // last status seen
    bool final = false;
    sofia::Msg finalResp;    // non-2xx final response candidate (nullptr when local)
    std::string key;         // our Via branch
    bool dnsPending = false; // counted in Impl::dnsPending: sent to a host name and not answered yet
};

enum class DialogRole { Uas, Uac };
enum class DialogState { Early, Confirmed, Terminated };

// A module-owned dialog; pw_dialog is this object.
struct Dialog {
    Proxy::Impl *impl = nullptr;
    ModuleInstance *mod = nullptr;
    nta_leg_t *leg = nullptr;
    DialogRole role = DialogRole::Uas;
    bool subscription = false;
    DialogState state = DialogState::Early;
    pw_dialog_callbacks cbs{};
    void *arg = nullptr;
    bool notified = false; // on_terminated called

    // identity (kept as text for dialog_get / export)
    std::string callId, localTag, remoteTag, localUri, remoteUri, localDisplay, remoteDisplay, localHeader,
        remoteHeader, remoteTarget, nextHop;
    std::vector<std::string> routeSet;
    uint32_t remoteCseq = 0;
    std::deque<std::string> scratch;

    // The peer (RFC 3261 §26.1.4): the IP addresses (not ports) its in-dialog requests may come from, learnt
    // from the message that made the dialog and kept in the export blob. Anyone else gets 403 (dialogs.cc
    // fromPeer, docs/limits.md "In-dialog requests").
    std::vector<IpKey> peerIps;
    bool learnOnFirst = false; // restored from an older blob with no learnt address and no IP to go by

    // dialog_accept_commit whose commit step answered PW_COMMIT_LATER (v1.9): the 2xx to send once the module
    // calls dialog_accept_finish (host_api.cc); `req` is referenced until then
    struct LaterAccept {
        pw_request *req = nullptr;
        int status = 200;
        std::string headers, ctype, body, contact;
    };
    std::unique_ptr<LaterAccept> laterAccept;

    // UAS INVITE: our 2xx retransmitted until ACK (RFC 3261 §13.3.1.4)
    sofia::Msg pending2xx;
    tport_t *requestTport = nullptr; // (a reference) the transport the INVITE came on: no retransmission once closed
    std::unique_ptr<sofia::Timer> retransmitTimer;
    uint64_t retransmitInterval = 0, retransmitElapsed = 0;

    // UAC INVITE
    nta_outgoing_t *inviteOrq = nullptr;
    pw_response_cb inviteCb = nullptr;
    void *inviteCbArg = nullptr;
    uint32_t inviteFlags = 0;
    uint32_t inviteCseq = 0;
    std::unique_ptr<sofia::Timer> forkTimer; // keeps the INVITE client transaction for forked 2xx
    // The ACK we sent to the 2xx of our latest INVITE/re-INVITE (ackCseq 0: none yet, e.g. the module's deferred
    // ACK is still to come), sent again as it was for each retransmission of that 2xx (RFC 3261 §13.2.2.4).
    uint32_t ackCseq = 0;
    std::string ackCtype, ackBody;

    // subscription (RFC 6665)
    uint32_t expires = 0;
    int64_t expiryBaseMs = 0; // wall clock when the current expiry period began (accept or last refresh)
    std::unique_ptr<sofia::Timer> expiryTimer;

    // linger after termination until the last request we sent is answered
    std::unique_ptr<sofia::Timer> lingerTimer;
    int pendingOrqs = 0;
};

// A request sent by a module (in or out of dialog).
struct UacRequest {
    Proxy::Impl *impl = nullptr;
    Dialog *dialog = nullptr;
    nta_outgoing_t *orq = nullptr;
    pw_response_cb cb = nullptr;
    void *arg = nullptr;
    uint32_t flags = 0;
    sip_method_t method = sip_method_unknown;
    bool isInvite = false;
};

struct ModuleInstance {
    LoadedModule lm;
    std::string name;
    pw_host host;
    void *ctx = nullptr;
    bool inited = false, started = false;
    std::map<std::string, std::string> paramCache;
    std::set<std::string> servedDomains; // declared with domain_serve (v1.4), lower case (domains.cc)
};

struct LocationProvider {
    ModuleInstance *mod;
    pw_location_fn fn;
    void *ctx;
};

const pw_host_api *hostApi();
std::string exportDialog(pw_dialog *d);

} // namespace parkway::proxy

struct pw_request : parkway::proxy::ServerTxn {};
struct pw_dialog : parkway::proxy::Dialog {};

namespace parkway::proxy {

// The ACK of a 503 the overload gate sent statelessly (overload.cc): it belongs to no transaction and is dropped.
bool isOverloadRefusalAck(const sip_t *sip);

struct Proxy::Impl {
    Proxy *self = nullptr;
    su_root_t *root = nullptr;
    std::unique_ptr<sofia::LoopPacer> pacer; // no busy polling in front of sub-millisecond timers
    std::unique_ptr<HeapPages> heapPages;    // [proxy] huge_page_heap: advised after each loop turn
    CoreConfig cfg;
    Metrics *metrics = nullptr;
    EventBus *events = nullptr;

    nta_agent_t *agent = nullptr;
    nta_leg_t *defaultLeg = nullptr;
    std::vector<std::string> bound; // resolved listener URLs
    std::string primary;            // "sip:127.0.0.1:5060" (+;transport=tcp when only TCP)
    std::string sharedHostPort;     // the primary's host:port when UDP and TCP both listen there, else ""
    std::string recordRoute;        // "<sip:...;lr>"
    std::vector<std::pair<std::string, std::string>> localHostPorts; // host, port
    std::string tlsHostPort; // "127.0.0.1:5061": the first TLS listener ("" = none); RFC 5630
    uint32_t t1x64 = 32000;

    std::vector<std::unique_ptr<ModuleInstance>> modules;
    bool stopping = false;

    std::set<pw_request *> txns;
    std::set<pw_dialog *> dialogs;
    // How many of `dialogs` are Terminated (kept until released): the open-dialog gauge is dialogs.size() minus
    // this, with no walk over every dialog on each change.
    size_t terminatedDialogs = 0;
    std::set<UacRequest *> uacs;
    std::vector<LocationProvider> locators;
    std::map<std::string, uint64_t> requestCounts;

    // module timers
    uint64_t nextTimerId = 1;
    std::map<uint64_t, std::unique_ptr<sofia::Timer>> timers;

    // limits (docs/limits.md)
    AddressSet trusted;
    RateLimiter limiter;
    std::unique_ptr<SocketGuard> sockets;
    std::unique_ptr<DnsStub> dns;               // the only name server sofia-sip's resolver sees
    std::unique_ptr<sofia::Timer> housekeeping; // once a second: socket deadlines, limiter sweep
    uint32_t dnsPending = 0;                    // branches to a host name that have no answer yet
    int64_t lastLimitLogMs = 0;
    uint64_t housekeepTurns = 0;
    // graceful overload (overload.cc, docs/limits.md "Overload")
    OverloadGate overload;
    std::unique_ptr<sofia::Timer> overloadTimer; // the loop-lag probe
    int64_t overloadDueUs = 0;                   // when the probe is due (steady clock; 0 = not measured)
    bool overloadArmed = false;                  // the probe has fired once (after start-up)
    uint64_t overloadRefused = 0, overloadLogged = 0, overloadCounted = 0;
    uint64_t overloadFirst = 0, overloadFirstCounted = 0; // admitted while shedding: a module marked them
    int64_t lastOverloadLogMs = 0, lastOverloadStateLogMs = 0;
    CseqShifts cseqShifts; // CSeqs injected into proxied dialogs (dialog_inject_cseq), docs/limits.md

    // cross-thread post()
    std::shared_ptr<std::atomic<bool>> alive = std::make_shared<std::atomic<bool>>(true);
    uint64_t loopSalt = 0;

    // ---- core (proxy_core.cc)
    void createAgent();
    void startTrace();
    void setUpLimits(const std::vector<uint16_t> &tcpPorts, const std::vector<uint16_t> &udpPorts);
    void housekeep();
    // ---- identity (auth.cc, docs/auth.md)
    // Answer 401/407 with fresh challenges when the request's sender can authenticate here; false otherwise.
    bool challenge(pw_request *tx);
    std::shared_ptr<struct AuthState> auth; // users, nonces, replay and failure tables
    void setUpAuth();                       // at bind: open the users table, apply the configured users
    // Before the modules: who sent this request (trusted peer, digest, or nobody). false: it was answered
    // (challenge or refusal) and must not go further.
    bool establishIdentity(pw_request *tx);
    // RFC 3261 §16 without an open relay: whether the core may forward this request to where it is going.
    bool mayRelay(pw_request *tx) const;
    bool isLocalDomain(const std::string &host) const;
    // ---- tenants (domains.cc): [proxy] domains, reloadable, plus the domains modules serve (domain_serve)
    bool servesDomain(const std::string &host) const;                  // listed or declared (not a listener address)
    const ModuleInstance *domainServer(const std::string &host) const; // the module declaring it, or nullptr
    int serveDomain(ModuleInstance *mod, const std::string &domain, bool serve);
    void applyUsers(const std::vector<UserEntry> &users); // auth.cc: users_file entries, added or replaced
    void authHousekeep(int64_t nowS);
    // Rate limiting and transport bookkeeping for every received request; false: it was dropped (no answer).
    bool admitRequest(nta_incoming_t *irq, msg_t *msg);
    RateLimiter::Verdict chargeSource(msg_t *msg, IpKey &ip); // the rate limiter's verdict on its source
    void refuseLimited(nta_incoming_t *irq, msg_t *msg, const IpKey &ip, RateLimiter::Verdict v);
    // Requests the core refuses before any module sees them (sends the answer; true when it did).
    bool refuseEarly(nta_incoming_t *irq, msg_t *msg, const sip_t *sip);
    void noteReceived(msg_t *msg); // a whole message arrived (TCP connection liveness)
    // ---- graceful overload (overload.cc)
    void setUpOverload();
    void tearDownOverload();
    void overloadTick();
    void noteLateness(int64_t nowUs, double lateMs, double spanMs = -1);
    void noteQueueDelay(int64_t delayUs); // a UDP datagram waited this long in the kernel
    // Refuses a new request with 503 + Retry-After while the SIP thread is too far behind (true when it did).
    bool refuseOverloaded(nta_incoming_t *irq, msg_t *msg, const sip_t *sip);
    bool shedsNow(msg_t *msg, const sip_t *sip); // the gate's decision for this request (asked once per request)
    bool finishesWork(msg_t *msg);               // a module marks it (pw_module.overload_priority)
    void countOverloadRefusal();
    // While the gate sheds, nta runs "stateless" (NTATAG_STATELESS): a request that no dialog leg takes comes to
    // the agent's message callback as a bare message, and a refused one is answered with no transaction at all.
    void followGate();
    void onStatelessRequest(msg_t *msg, sip_t *sip);
    void refuseStateless(msg_t *msg, sip_t *sip);
    bool statelessIntake = false;
    void overloadGauges();
    void reportLimit(const char *what, const std::string &detail);
    // admitted: the stateless intake (overload.cc) already charged the rate limiter and asked the gate.
    int onRequest(nta_incoming_t *irq, const sip_t *sip, bool admitted = false) noexcept;
    int onAckCancel(pw_request *tx, nta_incoming_t *irq, const sip_t *sip) noexcept;
    int onBranchResponse(Branch *b, nta_outgoing_t *orq, const sip_t *sip) noexcept;
    void runPipeline(pw_request *tx, size_t from);
    void afterPipeline(pw_request *tx, pw_verdict v);
    void forward(pw_request *tx);
    void forwardAck(msg_t *msg, sip_t *sip);
    void noteCseq(pw_request *tx); // records the CSeq of a request being forwarded, sets tx->cseqShift
    void unshiftResponse(pw_request *tx, msg_t *resp); // a response relayed upstream gets the sender's CSeq back
    void unshiftStray2xx(msg_t *resp, sip_t *sip);     // the same for a 2xx to INVITE without a transaction
    bool startBranch(pw_request *tx, const std::string &uri, const std::string &nextHop);
    void maybeFinish(pw_request *tx);
    void sendBest(pw_request *tx);
    void cancelBranches(pw_request *tx, Branch *except);
    // extraHeaders: whole header lines ("Name: value\r\n..."), e.g. the digest challenges
    bool replyLocal(pw_request *tx, int status, const char *phrase = nullptr, const std::string &extraHeaders = {});
    void releaseDns(Branch *b);
    // The request came over a stream (TCP) connection that is closed: nothing may be sent back to it.
    bool streamClosed(nta_incoming_t *irq, msg_t *req);
    void relay(pw_request *tx, msg_t *resp); // consumes resp
    void unref(pw_request *tx);
    void destroyTx(pw_request *tx);
    bool isOurs(const url_t *url) const;
    std::string loopKey(const sip_t *sip) const;
    bool isLoop(const sip_t *sip) const;
    void callOnResponse(msg_t *resp);
    void countRequest(const char *method);
    void countResponse(int status);
    void updateGauges();
    void updateTxGauge();
    void noteWork() {
        if (pacer)
            pacer->noteWork();
    }
    void initView(pw_msg &v, msg_t *m);

    // ---- dialogs (dialogs.cc)
    int onLegRequest(pw_dialog *d, nta_leg_t *leg, nta_incoming_t *irq, const sip_t *sip) noexcept;
    void learnPeer(pw_dialog *d, msg_t *from); // the dialog's peer sent `from` (its creating request or response)
    // The request came from the dialog's peer or a trusted peer; otherwise it is counted and logged (false).
    bool fromPeer(pw_dialog *d, msg_t *req, sip_method_t method);
    bool handleSubscriptionRefresh(nta_incoming_t *irq, const sip_t *sip);
    void armSubscriptionExpiry(pw_dialog *d, uint64_t ms); // on_refresh(0) + PW_END_EXPIRED when it fires
    pw_dialog *newDialog(ModuleInstance *mod, DialogRole role, const pw_dialog_callbacks *cbs, void *arg);
    void fillIdentity(pw_dialog *d);
    void terminate(pw_dialog *d, pw_dialog_end_reason reason);
    void releaseDialog(pw_dialog *d);
    void forgetDialog(pw_dialog *d); // dialog_forget (v1.7): out of the table now, freed next turn, nothing sent
    void startRetransmit(pw_dialog *d, msg_t *resp2xx, nta_incoming_t *irq);
    void stopRetransmit(pw_dialog *d);
    void retransmitTick(pw_dialog *d);
    int sendInDialog(pw_dialog *d, const char *method, const pw_header *headers, size_t n, pw_str ctype, pw_str body,
                     uint32_t flags, pw_response_cb cb, void *arg);
    int onUacResponse(UacRequest *u, nta_outgoing_t *orq, const sip_t *sip) noexcept;
    void sendAck(pw_dialog *d, uint32_t cseq, pw_str ctype, pw_str body); // records it as the dialog's ACK
    void transmitAck(pw_dialog *d);                                       // the recorded ACK (again)
    void ackAgain(pw_dialog *d, const sip_t *resp2xx); // a retransmitted 2xx in d: the same ACK, if one was sent
    bool ackRetransmitted2xx(const sip_t *resp2xx);    // a 2xx without transaction: true when it is in our dialog
    std::string contactHeader() const;
    // The primary URI for one side of a dialog: with ;transport=tcp when that side speaks TCP and UDP shares the
    // primary's host:port (RFC 3263 §4.1: without the parameter a numeric address means UDP).
    std::string plainUri(bool tcp) const;
    // Over TLS (RFC 3261 §26.2, RFC 5630): our URI on the TLS listener, sips: when the dialog is a sips one,
    // else sip:...;transport=tls.
    std::string tlsUri(bool sips) const;
    // Contact of a dialog we answer (req: the request it starts) or start (to the target ruri / next hop): our
    // TLS URI when that side speaks TLS, else contactHeader().
    std::string contactForRequest(const sip_t *req) const;
    std::string contactForTarget(const std::string &ruri, const std::string &hop) const;
    // RFC 3261 §16.6 step 4 with RFC 5658 (double Record-Route): the Record-Route value(s) for a forwarded
    // request (in: the request as received, out: the copy being sent, hop: its next hop or "").
    std::string recordRouteFor(const sip_t *in, const sip_t *out, const std::string &hop) const;
    void finishUac(UacRequest *u);

    // ---- host helpers (host_api.cc)
    void log(ModuleInstance *mod, pw_log_level level, std::string_view text);
    bool logEnabled(pw_log_level level) const; // whether log() at `level` writes a line (host log_enabled)
    // Strings handed to modules that live "until the turn ends" (module.h): dialog_get, uri_*. Cleared by the
    // loop's prepoll hook (LoopPacer), i.e. when every hook and callback of this loop turn has returned.
    std::deque<std::string> turnArena;
    pw_str turnKeep(std::string s) {
        turnArena.push_back(std::move(s));
        return pw_str{turnArena.back().data(), turnArena.back().size()};
    }
    int64_t nowMs() const;
};

using sofia::urlString;

// strings
inline std::string str(pw_str s) {
    return s.ptr && s.len ? std::string(s.ptr, s.len) : std::string();
}
// True when sofia-sip's URL parser takes u. Every URI string handed to nta passes this first: sofia-sip 1.12
// aborts (an assert in sip_request_create) on a Request-URI string its own parser refuses.
bool uriParses(const std::string &u);
inline pw_str view(const std::string &s) {
    return pw_str{s.data(), s.size()};
}
std::string headersToString(const pw_header *headers, size_t n); // "Name: value\r\n"...

// ---- where module-originated requests go (outbound.cc, docs/routing.md)
// A next hop given as a route set: name-addrs as in a Path or Route header ("<sip:edge;lr>, <sip:p2;lr>").
bool isRouteSet(const std::string &hop);
std::vector<std::string> routeSetUris(const std::string &set); // empty when it does not parse
bool nextHopValid(const std::string &hop);                     // a URI or a route set of URIs sofia takes
// [proxy] outbound_proxy_by_domain for the Request-URI's host, else the From's host, else outbound_proxy.
std::string outboundProxyFor(const CoreConfig &cfg, const std::string &ruri, const std::string &from);
struct UacRouteInput {
    std::string requestUri, from, to, nextHop;
    bool hasRoute = false; // the module gave Route headers
};
struct UacRoute {
    std::string hop;        // where nta sends it ("" = resolve the first Route or the Request-URI)
    std::string route;      // Route header value to put on top ("" = none)
    bool moduleHop = false; // hop is the module's own URI (a dialog keeps it for in-dialog requests)
};
// send_request / dialog_invite: a route set -> Route + first hop; no hop, no Route, no To tag -> the outbound proxy.
UacRoute planUacRoute(const CoreConfig &cfg, const UacRouteInput &in);
pw_str keep(const pw_msg *m, std::string s);
std::string messageSource(const pw_msg &v);
pw_dialog *restoreDialog(Proxy::Impl *impl, ModuleInstance *mod, const std::string &blob,
                         const pw_dialog_callbacks *cbs, void *arg, std::string &error);

} // namespace parkway::proxy
