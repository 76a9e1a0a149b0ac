// Lifecycle (init/start/stop/reload), the request entry point, and the bookkeeping of sessions and legs:
// the trampolines the host calls for our dialogs live here.
#include "callpark.hh"
#include "pending.hh"

#include <nlohmann/json.hpp>

#include <chrono>

namespace parkway::callpark {

namespace {

// The engine reads time through the host so tests that control now_ms() control recalls too. now_ms() is a SIP
// thread function (module.h): on the storage thread the clock reads the system clock shifted by how far the host's
// clock stood from it at its last reading on the SIP thread (0 in the daemon: the host's clock is the system clock).
class HostClock final : public eng::Clock {
public:
    HostClock(const Host &h, const std::atomic<int64_t> &override) : host_(h), override_(override) {}
    eng::Millis nowMs() const override {
        if (int64_t o = override_.load())
            return o;
        int64_t sys =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                .count();
        if (StorageWorker::onStorageThread())
            return sys + offset_.load();
        int64_t now = host_.nowMs();
        offset_.store(now - sys);
        return now;
    }
    // SIP thread, before a job is queued: the storage thread's clock follows the host's.
    void sync() const { (void)nowMs(); }

private:
    const Host &host_;
    const std::atomic<int64_t> &override_;
    mutable std::atomic<int64_t> offset_{0};
};

void legOnRequest(void *arg, pw_dialog *, pw_request *req) {
    auto *leg = static_cast<Leg *>(arg);
    CallPark *cp = leg->mod;
    try {
        Session *s = cp->session(leg->sid);
        if (!s || s->state == SessionState::Ended) {
            cp->host().reply(req, 481, "Call Does Not Exist");
            return;
        }
        if (s->state == SessionState::Bridged)
            cp->onBridgedRequest(*s, leg, req);
        else
            cp->onParkedRequest(*s, leg, req);
    } catch (const std::exception &e) {
        cp->host().log(PW_LOG_ERROR, "callpark: in-dialog request failed: {}", e.what());
        cp->host().reply(req, 500, "Call Park Error");
    }
}

void legOnAck(void *arg, pw_dialog *, const pw_msg *ack) {
    auto *leg = static_cast<Leg *>(arg);
    CallPark *cp = leg->mod;
    try {
        Session *s = cp->session(leg->sid);
        if (!s)
            return;
        cp->onBridgedAck(*s, leg, ack);
    } catch (const std::exception &e) {
        cp->host().log(PW_LOG_ERROR, "callpark: ACK handling failed: {}", e.what());
    }
}

void legOnTerminated(void *arg, pw_dialog *d, pw_dialog_end_reason reason) {
    auto *leg = static_cast<Leg *>(arg);
    CallPark *cp = leg->mod;
    cp->retirePendings(d); // the host calls none of their callbacks any more
    leg->dlg = nullptr;    // the handle is invalid from now on
    try {
        cp->legTerminated(leg, reason);
    } catch (const std::exception &e) {
        cp->host().log(PW_LOG_ERROR, "callpark: dialog end handling failed: {}", e.what());
    }
    cp->dropLeg(leg);
}

// UAC INVITE legs: the arg is the Pending that outlives the leg; resolve the leg by id.
Leg *uacLeg(void *arg) {
    auto *p = static_cast<Pending *>(arg);
    return static_cast<CallPark *>(p->owner)->legById(p->legId);
}
void uacOnRequest(void *arg, pw_dialog *d, pw_request *req) {
    if (Leg *l = uacLeg(arg))
        legOnRequest(l, d, req);
    else
        static_cast<CallPark *>(static_cast<Pending *>(arg)->owner)->host().reply(req, 481);
}
void uacOnAck(void *arg, pw_dialog *d, const pw_msg *ack) {
    if (Leg *l = uacLeg(arg))
        legOnAck(l, d, ack);
}
void uacOnTerminated(void *arg, pw_dialog *d, pw_dialog_end_reason reason) {
    auto *p = static_cast<Pending *>(arg);
    auto *cp = static_cast<CallPark *>(p->owner);
    if (Leg *l = uacLeg(arg))
        legOnTerminated(l, d, reason);
    else
        cp->retirePendings(d);
    cp->releaseInvitePendingLater(p); // the INVITE's own callback comes no more either
}
const pw_dialog_callbacks kUacLegCallbacks = {sizeof(pw_dialog_callbacks), uacOnRequest, uacOnAck, nullptr,
                                              uacOnTerminated};

const pw_dialog_callbacks kLegCallbacks = {sizeof(pw_dialog_callbacks), legOnRequest, legOnAck, nullptr,
                                           legOnTerminated};
const pw_dialog_callbacks kNoCallbacks = {sizeof(pw_dialog_callbacks), nullptr, nullptr, nullptr, nullptr};

void reapTimer(void *arg) {
    static_cast<CallPark *>(arg)->reap();
}
void sweepTimer(void *arg) {
    static_cast<CallPark *>(arg)->sweep();
}

} // namespace

void pendingResponse(void *arg, pw_dialog *dlg, int status, const pw_msg *resp) {
    auto *p = static_cast<Pending *>(arg);
    p->running = true;
    try {
        if (p->fn)
            p->fn(dlg, status, resp);
    } catch (...) {
    }
    p->running = false;
    if ((status < 200 || p->multi) && !p->retired)
        return;
    if (p->owner)
        static_cast<CallPark *>(p->owner)->forgetPending(p);
    else
        delete p;
}

Pending *CallPark::trackPending(Pending *p, pw_dialog *dlg) {
    p->owner = this;
    p->dlg = dlg;
    pendings_.insert(p);
    return p;
}

void CallPark::forgetPending(Pending *p) {
    pendings_.erase(p);
    delete p;
}

void CallPark::retirePendings(pw_dialog *dlg) {
    if (!dlg)
        return;
    for (auto it = pendings_.begin(); it != pendings_.end();) {
        Pending *p = *it;
        if (p->dlg != dlg) {
            ++it;
            continue;
        }
        if (p->running) { // freed by pendingResponse when its closure returns
            p->retired = true;
            ++it;
            continue;
        }
        it = pendings_.erase(it);
        delete p;
    }
}

const pw_dialog_callbacks *CallPark::legCallbacks() {
    return &kLegCallbacks;
}
const pw_dialog_callbacks *CallPark::uacLegCallbacks() {
    return &kUacLegCallbacks;
}

CallPark::~CallPark() {
    if (engine_ && listener_)
        engine()->removeListener(listener_);
    for (auto &[id, ctx] : timerCtx_)
        delete ctx;
    // Closures of requests still in flight: the host never calls a module back after its destroy hook (it
    // drops the remaining transactions silently), so they can go now.
    for (Pending *p : pendings_)
        delete p;
    for (Pending *p : invitePendings_)
        delete p;
    moh_.stop();
}

namespace {
std::string parkDatabaseBeside(const std::string &core) {
    if (core.empty() || core == ":memory:")
        return ":memory:";
    auto slash = core.find_last_of('/');
    auto dot = core.find_last_of('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash))
        return core + "-park";
    return core.substr(0, dot) + "-park" + core.substr(dot);
}
} // namespace

int CallPark::init() {
    std::string err;
    if (!settings_.load(host_, &err)) {
        host_.log(PW_LOG_ERROR, "{}", err);
        return PW_EINVAL;
    }
    contact_ = host_.coreSetting("contact");
    // The engine owns its SQLite file (it migrates by PRAGMA user_version and refuses a file holding other
    // schemas), so by default it lives beside the core database: "parkway.db" -> "parkway-park.db".
    std::string path =
        settings_.database.empty() ? parkDatabaseBeside(host_.coreSetting("database")) : settings_.database;
    clock_ = std::make_unique<HostClock>(host_, clockOverrideMs);
    const bool postgres = path.rfind("postgresql://", 0) == 0 || path.rfind("postgres://", 0) == 0;
    try {
        eng::OpenOptions options;
        // Several nodes on one PostgreSQL database: a starting node must not release another live node's claims
        // in flight; registerNode releases this node's own (docs/cluster.md "Ownership and failover").
        options.releaseStaleClaims = !postgres;
        engine_ = eng::Engine::open(path, *clock_, options);
    } catch (const std::exception &e) {
        host_.log(PW_LOG_ERROR, "callpark: park database: {}", e.what());
        return PW_EINVAL;
    }
    // The storage thread (docs/cluster.md "Threads"): on PostgreSQL the SIP thread never waits on the network
    // for a park, a retrieve, a save, the heartbeat or a catch-up; on SQLite they run inline unless forced.
    dbPath_ = engine_->path();
    storage_.setEngine(engine_.get());
    storage_.setNoteSink([this](const StorageWorker::Note &n) {
        if (auto *e = std::get_if<eng::ChangeEvent>(&n))
            onEngineEvent(*e);
        else
            onEngineSync(std::get<eng::SyncNotice>(n));
    });
    {
        auto *clock = static_cast<HostClock *>(clock_.get());
        storage_.setBeforeQueue([clock] { clock->sync(); });
    }
    // auto: on when the host can answer a park's 200 after its storage-thread commit (v1.9), which keeps a crash
    // from losing a park answered 200; inline on an older host with SQLite (docs/cluster.md "Threads")
    const bool threaded =
        settings_.storageThread == Settings::StorageThread::On ||
        (settings_.storageThread == Settings::StorageThread::Auto && (engine_->shared() || host_.canAcceptLater()));
    storage_.start(threaded, static_cast<size_t>(settings_.storageQueue), settings_.storageQueueMs);
    if (threaded)
        host_.log(PW_LOG_INFO, "callpark: park database operations run on a storage thread (queue {}, wait {} ms)",
                  settings_.storageQueue, settings_.storageQueueMs);
    if (int rc = registerClusterNode(postgres); rc != PW_OK)
        return rc;

    // Module-level defaults for local domains that have no settings of their own yet.
    const int maxParkSeconds = static_cast<int>(settings_.maxParkTimeMs / 1000);
    bool anyDefault = !settings_.occupiedPolicy.empty() || settings_.recallTimeMs || !settings_.recallMode.empty() ||
                      !settings_.alternate.empty() || maxParkSeconds != eng::RecallSettings{}.maxParkSeconds;
    if (anyDefault) {
        std::set<std::string> configured;
        for (auto &d : engine()->domains())
            configured.insert(d.name);
        std::string list = host_.coreSetting("domains");
        size_t pos = 0;
        while (pos <= list.size()) {
            size_t comma = list.find(',', pos);
            std::string name = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            pos = comma == std::string::npos ? list.size() + 1 : comma + 1;
            while (!name.empty() && name.front() == ' ')
                name.erase(0, 1);
            while (!name.empty() && name.back() == ' ')
                name.pop_back();
            if (name.empty() || configured.count(name))
                continue;
            eng::DomainSettings d = engine()->domain(name);
            if (!settings_.occupiedPolicy.empty())
                d.occupied = *eng::parseOccupiedPolicy(settings_.occupiedPolicy);
            if (settings_.recallTimeMs)
                d.recall.recallSeconds = static_cast<int>((settings_.recallTimeMs + 999) / 1000);
            if (!settings_.recallMode.empty())
                d.recall.mode = *eng::parseRecallMode(settings_.recallMode);
            d.recall.maxParkSeconds = maxParkSeconds; // max_park_time
            if (!settings_.alternate.empty()) {
                auto t = eng::RecallTarget::parse(settings_.alternate);
                if (!t) {
                    host_.log(PW_LOG_ERROR, "callpark: alternate '{}' is not a recall target", settings_.alternate);
                    return PW_EINVAL;
                }
                d.recall.alternate = *t;
            }
            auto st = engine()->setDomain(d);
            if (!st) {
                host_.log(PW_LOG_ERROR, "callpark: domain {}: {}", name, st.message);
                return PW_EINVAL;
            }
        }
    }

    if (!settings_.provisionFile.empty() && !loadProvisionFile(settings_.provisionFile, &err)) {
        host_.log(PW_LOG_ERROR, "{}", err);
        return PW_EINVAL;
    }
    if (!loadRules(&err)) {
        host_.log(PW_LOG_ERROR, "{}", err);
        return PW_EINVAL;
    }
    // Fires on the thread that ran the operation: noted, handled on the SIP thread in commit order (storage_worker.hh).
    listener_ = engine()->addListener([this](const eng::ChangeEvent &e) { storage_.note(e); });
    return PW_OK;
}

int CallPark::start() {
    std::string err;
    moh_.setPrelatchMs(settings_.mohPrelatchMs);
    moh_.setStreamsPerPort(settings_.mohStreamsPerPort);
    if (!moh_.start(settings_.mohIp, settings_.mohPortMin, settings_.mohPortMax, settings_.mohFile, &err)) {
        host_.log(PW_LOG_ERROR, "callpark: music on hold: {}", err);
        return PW_EINVAL;
    }
    declareDomains();  // before the restored calls send anything: their domains are local
    startCluster();    // a cluster node first adopts the calls of nodes that died meanwhile (cluster.cc)
    restoreCalls();    // queued and restored in batches from the first loop turn; then the watchers (restore.cc)
    startChangeFeed(); // PostgreSQL: other nodes' changes (change_feed.cc)
    return PW_OK;
}

void CallPark::stop() {
    // Parked calls stay parked in the store: a stop is a restart to come, not a hang-up (docs/callpark.md "Restart").
    stopping_ = true;
    stopChangeFeed();
    storage_.stop(); // the operation running finishes, queued ones are dropped, later results do nothing
    for (auto &[sid, s] : sessions_) {
        cancelTimer(s->recallTimer);
        cancelTimer(s->ringTimer);
    }
    host_.cancelTimer(reapTimer_);
    host_.cancelTimer(sweepTimer_);
    // Unbind every dialog so the host never calls into a destroyed module.
    for (auto &[p, leg] : legs_)
        if (leg->dlg)
            host_.api()->dialog_rebind(leg->dlg, &kNoCallbacks, nullptr);
    for (auto &[p, sub] : subs_)
        if (sub->dlg)
            host_.api()->dialog_rebind(sub->dlg, &kNoCallbacks, nullptr);
    for (Pending *p : invitePendings_) {
        p->fn = nullptr;
        p->legId = 0;
    }
    for (auto &[id, ctx] : timerCtx_) {
        host_.api()->timer_cancel(host_.raw(), id);
        delete ctx;
    }
    timerCtx_.clear();
    moh_.stop();
}

int CallPark::reload() {
    std::string err;
    // Both files are validated before anything changes; parked calls and subscriptions are untouched.
    if (!settings_.provisionFile.empty() && !loadProvisionFile(settings_.provisionFile, &err)) {
        host_.log(PW_LOG_ERROR, "{}", err);
        return PW_EINVAL;
    }
    declareDomains(); // the provision_file may have added domains
    if (!loadRules(&err)) {
        host_.log(PW_LOG_ERROR, "{}", err);
        return PW_EINVAL;
    }
    return PW_OK;
}

bool CallPark::loadRules(std::string *err) {
    if (settings_.rulesFile.empty())
        return true;
    auto errors = engine()->loadRulesFile(settings_.rulesFile);
    if (errors.empty())
        return true;
    std::string msg = fmt::format("callpark: rules_file {}:", settings_.rulesFile);
    for (auto &e : errors)
        msg += fmt::format(" [line {}] {};", e.line, e.message);
    if (err)
        *err = msg;
    return false;
}

pw_verdict CallPark::onRequest(pw_request *req) {
    if (stopping_)
        return PW_CONTINUE;
    const pw_msg *m = host_.msg(req);
    if (!pendingCalls_.empty() && inDialogBeforeRestore(req, m))
        return PW_STOP; // a request in the park dialog of a call not restored yet (restore.cc)
    std::string method = host_.method(m);
    try {
        if (method == "INVITE")
            return onInvite(req, m);
        if (method == "REFER")
            return onRefer(req, m);
        if (method == "SUBSCRIBE")
            return onSubscribe(req, m);
    } catch (const eng::StorageFailure &e) {
        // A read the request needed failed (the database is away): refused with 503 + Retry-After rather than
        // the 500 of an unexpected exception; nothing was changed for it.
        storageFailed(method + " request", e.what());
        refuseStorage(req);
        return PW_STOP;
    }
    return PW_CONTINUE;
}

// ---------------------------------------------------------------- sessions and legs

Session &CallPark::newSession() {
    auto s = std::make_unique<Session>();
    s->sid = nextSid_++;
    Session &ref = *s;
    sessions_.emplace(ref.sid, std::move(s));
    return ref;
}

Session *CallPark::session(uint64_t sid) {
    auto it = sessions_.find(sid);
    return it == sessions_.end() ? nullptr : it->second.get();
}

Session *CallPark::sessionByCall(eng::CallId id) {
    if (!id)
        return nullptr;
    auto it = sidByCall_.find(id);
    if (it == sidByCall_.end())
        return restoreOnDemand(id); // still queued after a restart: restored now (restore.cc)
    Session *s = session(it->second);
    if (!s || s->callId != id || s->state == SessionState::Ended)
        return nullptr;
    return s;
}

void CallPark::bindCall(Session &s, eng::CallId id) {
    s.callId = id;
    if (id) {
        sidByCall_[id] = s.sid;
        s.parkedCallId = id;
    }
}

void CallPark::setParkedOn(Session &s, const eng::ParkedCall &call, const std::string &domain) {
    unindexParkedOn(s); // a bridged call parked again (REFER) moves to its new place
    s.parkedOnUri = call.extension.empty() ? aor(std::to_string(call.slot), domain) : aor(call.extension, domain);
    sidsByParkedOn_.emplace(s.parkedOnUri, s.sid);
}

void CallPark::unindexParkedOn(const Session &s) {
    auto [from, to] = sidsByParkedOn_.equal_range(s.parkedOnUri);
    for (auto it = from; it != to; ++it)
        if (it->second == s.sid) {
            sidsByParkedOn_.erase(it);
            return;
        }
}

// A call parked on this node waits at parkedOnUri for a retrieve: parked, or its recall ringing (either one a
// retrieve can take). Memory only (no store read): a call parked on another node of a cluster is not seen.
bool CallPark::parkedHere(const std::string &parkedOnUri) const {
    auto [from, to] = sidsByParkedOn_.equal_range(parkedOnUri);
    for (auto it = from; it != to; ++it) {
        auto s = sessions_.find(it->second);
        if (s != sessions_.end() && s->second->callId &&
            (s->second->state == SessionState::Parked || s->second->state == SessionState::Recalling))
            return true;
    }
    return false;
}

Leg *CallPark::newLeg(uint64_t sid, std::string role) {
    auto leg = std::make_unique<Leg>();
    leg->mod = this;
    leg->sid = sid;
    leg->role = std::move(role);
    leg->id = nextLegId_++;
    Leg *p = leg.get();
    legById_[p->id] = p;
    legs_.emplace(p, std::move(leg));
    return p;
}

void CallPark::dropLeg(Leg *leg) {
    // Freed on the next reap, not now: a response callback of the same loop turn may still name it.
    uint64_t sid = leg->sid;
    leg->sid = 0;
    leg->dlg = nullptr;
    legById_.erase(leg->id);
    graveyard_.push_back(leg);
    if (sid)
        reapLater(sid);
    else
        reapLater(~uint64_t(0)); // only the leg to free
}

void CallPark::reapLater(uint64_t sid) {
    if (stopping_)
        return;
    if (sid == 0)
        reapAll_ = true;
    else if (sid != ~uint64_t(0))
        reapCandidates_.push_back(sid);
    if (reapTimer_)
        return;
    reapTimer_ = host_.timer(0, reapTimer, this);
}

void CallPark::reap() {
    reapTimer_ = 0;
    for (Leg *l : graveyard_)
        legs_.erase(l);
    graveyard_.clear();
    auto tryReap = [this](std::map<uint64_t, std::unique_ptr<Session>>::iterator it) {
        Session &s = *it->second;
        bool live = (s.a && s.a->dlg) || (s.b && s.b->dlg) || (s.transferor && s.transferor->dlg) ||
                    !s.branches.empty() || s.retrieveReq;
        if (s.state != SessionState::Ended || live)
            return std::next(it);
        cancelTimer(s.recallTimer);
        cancelTimer(s.ringTimer);
        if (s.mohId)
            moh_.remove(s.mohId);
        if (!s.replacesCallId.empty())
            sidByReplacesCid_.erase(s.replacesCallId);
        unindexParkedOn(s);
        return sessions_.erase(it);
    };
    int64_t now = host_.nowMs();
    // Only the sessions named since the last reap (a scan of every session per ended call was O(n) per
    // event); a full sweep when asked for, and at least once a second for a session nobody named.
    if (reapAll_ || now - lastFullReapMs_ >= 1000) {
        reapAll_ = false;
        lastFullReapMs_ = now;
        for (auto it = sessions_.begin(); it != sessions_.end();)
            it = tryReap(it);
    } else {
        for (uint64_t sid : reapCandidates_)
            if (auto it = sessions_.find(sid); it != sessions_.end())
                tryReap(it);
        if (!sweepTimer_ && !stopping_)
            sweepTimer_ = host_.timer(1000, sweepTimer, this);
    }
    reapCandidates_.clear();
}

void CallPark::sweep() {
    sweepTimer_ = 0;
    reapLater(0);
}

// ---------------------------------------------------------------- small helpers

std::string domainLabels(const std::string &domain, const std::string &lot) {
    return fmt::format("domain=\"{}\",lot=\"{}\"", domain, lot);
}

std::string userOf(const std::string &uri) {
    return uriUser(uri);
}
std::string hostOf(const std::string &uri) {
    return uriHost(uri);
}

std::string quoteDisplay(const std::string &display) {
    std::string out = "\"";
    for (char c : display) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

std::string nameAddr(const std::string &display, const std::string &uri) {
    if (display.empty())
        return "<" + uri + ">";
    return quoteDisplay(display) + " <" + uri + ">";
}

} // namespace parkway::callpark

namespace parkway::callpark {

namespace {
void timerFire(void *arg) {
    auto *ctx = static_cast<CallPark::TimerCtx *>(arg);
    CallPark *cp = ctx->cp;
    cp->timerCtx_.erase(ctx->id);
    std::function<void()> fn = std::move(ctx->fn);
    delete ctx;
    try {
        if (fn && !cp->stopping())
            fn();
    } catch (const std::exception &e) {
        cp->host().log(PW_LOG_ERROR, "callpark: timer failed: {}", e.what());
    }
}
} // namespace

Pending *CallPark::invitePending(Leg *leg, std::function<void(pw_dialog *, int, const pw_msg *)> fn) {
    auto *p = new Pending;
    p->multi = true;
    p->owner = this;
    p->legId = leg->id;
    invitePendings_.insert(p);
    p->fn = [this, p, fn = std::move(fn)](pw_dialog *d, int status, const pw_msg *m) {
        if (status >= 200)
            releaseInvitePendingLater(p);
        fn(d, status, m);
    };
    return p;
}

void CallPark::releaseInvitePendingLater(Pending *p) {
    if (p->armed)
        return;
    p->armed = true;
    int64_t t1 = 500;
    try {
        t1 = std::stoll(host_.coreSetting("sip_t1_ms"));
    } catch (...) {
    }
    after(uint64_t(64 * t1 + 1000), [this, p] {
        invitePendings_.erase(p);
        delete p;
    });
}

pw_timer_id CallPark::after(uint64_t ms, std::function<void()> fn) {
    auto *ctx = new TimerCtx{this, std::move(fn), 0};
    ctx->id = host_.timer(ms, timerFire, ctx);
    if (!ctx->id) {
        delete ctx;
        return 0;
    }
    timerCtx_[ctx->id] = ctx;
    return ctx->id;
}

void CallPark::cancelTimer(pw_timer_id &id) {
    if (!id)
        return;
    auto it = timerCtx_.find(id);
    if (it != timerCtx_.end()) {
        host_.api()->timer_cancel(host_.raw(), id);
        delete it->second;
        timerCtx_.erase(it);
    }
    id = 0;
}

} // namespace parkway::callpark
