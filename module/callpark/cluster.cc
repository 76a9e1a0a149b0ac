// Ownership and failover (docs/cluster.md "Ownership and failover"). On a PostgreSQL park database every node
// registers a lease under its name and the SIP address other nodes reach it at, renews it every node_heartbeat,
// and on the same timer takes over the calls and subscriptions of nodes whose lease ran out: their dialogs are
// restored from the stored blobs as after a restart (restore.cc), music on hold resumes toward each parked party
// with a re-INVITE carrying this node's media address and Contact (RFC 3261 §12.2.1.1, §14: the parked party's
// remote target becomes this node; RFC 3264 §8 offer), recalls are re-armed at their stored deadline, and each
// subscription gets a full-state NOTIFY from here. The engine's fence on (owner, generation) makes sure a node
// presumed dead that comes back cannot act on a call it lost: it drops that call's SIP state without a word.
#include "callpark.hh"

#include <unistd.h>

namespace parkway::callpark {

namespace {

// host name + SIP port of our Contact, e.g. "park1-5060": a default unique per node on one box and across boxes.
std::string defaultNodeName(const std::string &contact) {
    char buf[256] = {};
    std::string host = ::gethostname(buf, sizeof(buf) - 1) == 0 && buf[0] ? buf : "parkway";
    std::string port = "5060";
    std::string hostPort = contact.substr(contact.find(':') + 1); // after "sip:"
    hostPort = hostPort.substr(0, hostPort.find(';'));
    size_t colon = hostPort.rfind(':');
    if (colon != std::string::npos && hostPort.find(']', colon) == std::string::npos)
        port = hostPort.substr(colon + 1);
    std::string name;
    for (char c : host + "-" + port)
        name += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' ? c : '-';
    return name.substr(0, 64);
}

} // namespace

int CallPark::registerClusterNode(bool postgres) {
    if (!postgres)
        return PW_OK; // one node on SQLite: every call is ours, no lease, no fence
    std::string name = settings_.node.empty() ? defaultNodeName(contact_) : settings_.node;
    auto st = engine()->registerNode(name, contact_, settings_.nodeLeaseMs);
    if (!st) {
        host_.log(PW_LOG_ERROR, "callpark: node '{}': cannot register in the park database: {}", name, st.message);
        return PW_EINVAL;
    }
    nodeName_ = name;
    host_.log(PW_LOG_INFO, "callpark: cluster node '{}' at {} (heartbeat {} ms, lease {} ms)", name, contact_,
              settings_.nodeHeartbeatMs, settings_.nodeLeaseMs);
    return PW_OK;
}

void CallPark::startCluster() {
    if (!clustered())
        return;
    // Calls of nodes that died while we were down (and calls stored before ownership existed) become ours before
    // the restore reads our calls, so they come back with it.
    auto t = engine()->takeOver();
    if (!t)
        host_.log(PW_LOG_WARN, "callpark: node '{}': takeover at start: {}", nodeName_, t.message);
    else if (!t.calls.empty() || !t.watchers.empty())
        host_.log(PW_LOG_INFO, "callpark: node '{}': took over {} parked call(s) and {} subscription(s) of {} at start",
                  nodeName_, t.calls.size(), t.watchers.size(),
                  t.nodes.empty() ? std::string("no node") : fmt::format("{}", fmt::join(t.nodes, ", ")));
    clusterTimer_ = after(static_cast<uint64_t>(settings_.nodeHeartbeatMs), [this] { clusterTick(); });
}

void CallPark::clusterTick() {
    clusterTimer_ = 0;
    if (stopping_)
        return;
    // Re-armed first: whatever happens below (an exception from the store included), the heartbeat goes on.
    clusterTimer_ = after(static_cast<uint64_t>(settings_.nodeHeartbeatMs), [this] { clusterTick(); });
    if (heartbeatInFlight_)
        return; // the last one still waits for the database: one at a time
    // Only once our own restore is done: a takeover restores through the same queue of stored calls. And not
    // within one lease of a failed heartbeat: when the database itself was away, every node's lease ran out
    // together; the others get a lease's time to renew theirs before anyone counts them dead.
    const bool mayTakeOver = restore_.done && host_.nowMs() - lastHeartbeatFailMs_ > settings_.nodeLeaseMs;
    struct Tick {
        eng::NodeStatus hb;
        std::optional<eng::TakeoverResult> takeover;
    };
    // The heartbeat and the takeover look run on the storage thread; what they find comes back here.
    heartbeatInFlight_ = storage_.run<Tick>(
        [mayTakeOver](eng::Engine &e) {
            Tick t;
            t.hb = e.heartbeat();
            if (t.hb && !t.hb.lapsed && mayTakeOver)
                t.takeover = e.takeOver();
            return t;
        },
        [this](Tick &t) {
            heartbeatInFlight_ = false;
            if (stopping_)
                return;
            if (!t.hb) {
                lastHeartbeatFailMs_ = host_.nowMs();
                if (clusterLog_.allow(host_.nowMs()))
                    host_.log(PW_LOG_WARN, "callpark: node '{}': heartbeat failed: {}", nodeName_, t.hb.message);
                return;
            }
            if (t.hb.lapsed) {
                host_.log(PW_LOG_WARN,
                          "callpark: node '{}': its lease had run out (a stall longer than node_lease?); registered "
                          "again; calls taken over by other nodes are dropped here",
                          nodeName_);
                dropLostSessions();
            }
            if (t.takeover)
                takeOverDeadNodes(std::move(*t.takeover));
        },
        true);
}

void CallPark::takeOverDeadNodes(eng::TakeoverResult t) {
    if (!t) {
        if (clusterLog_.allow(host_.nowMs()))
            host_.log(PW_LOG_WARN, "callpark: node '{}': takeover: {}", nodeName_, t.message);
        return;
    }
    if (t.calls.empty() && t.watchers.empty()) {
        if (!t.nodes.empty())
            host_.log(PW_LOG_INFO, "callpark: node '{}': node(s) {} expired, holding nothing", nodeName_,
                      fmt::join(t.nodes, ", "));
        return;
    }
    if (takeoverOrder_.empty() && takeoverWatchers_.empty())
        takeover_ = TakeoverProgress{};
    takeover_.startedMs = host_.nowMs();
    takeover_.from = t.nodes.empty() ? std::string("(no owner)") : fmt::format("{}", fmt::join(t.nodes, ", "));
    takeover_.calls += t.calls.size();
    host_.log(PW_LOG_INFO, "callpark: node '{}': taking over {} parked call(s) and {} subscription(s) of node(s) {}",
              nodeName_, t.calls.size(), t.watchers.size(), takeover_.from);
    for (eng::ParkedCall &call : t.calls) {
        ++parkedCounts_[{call.domain, call.lot}];
        // A session still held here for this call (we lost it once and got it back): the new generation is
        // restored from the store, the stale one goes quietly.
        auto it = sidByCall_.find(call.id);
        if (it != sidByCall_.end())
            if (Session *old = session(it->second))
                dropLostSession(*old, "taken back at a new generation");
        takeoverOrder_.push_back(call.id);
        takeoverIds_.insert(call.id);
        pendingCalls_[call.id] = std::move(call);
    }
    for (eng::StoredWatcher &w : t.watchers)
        takeoverWatchers_.push_back(std::move(w));
    for (const auto &[key, n] : parkedCounts_)
        updateGauges(key.first, key.second);
    if (!takeoverTimer_)
        takeoverTimer_ = after(0, [this] { takeoverBatch(); });
}

// Restores taken-over calls restore_batch per loop turn (as a restart does), then their subscriptions.
void CallPark::takeoverBatch() {
    takeoverTimer_ = 0;
    if (stopping_)
        return;
    size_t done = 0;
    while (done < size_t(settings_.restoreBatch) && !takeoverOrder_.empty()) {
        eng::CallId id = takeoverOrder_.front();
        takeoverOrder_.pop_front();
        size_t lostBefore = restore_.lost;
        if (!restoreCall(id, true))
            continue; // restored on demand meanwhile, or gone
        ++done;
        if (restore_.lost != lostBefore)
            ++takeover_.lost;
        else
            ++takeover_.restored;
    }
    int64_t now = host_.nowMs();
    for (size_t n = 0; takeoverOrder_.empty() && n < size_t(settings_.notifyBatch) && !takeoverWatchers_.empty(); ++n) {
        eng::StoredWatcher w = std::move(takeoverWatchers_.front());
        takeoverWatchers_.pop_front();
        if (restoreWatcher(std::move(w), now))
            ++takeover_.watchers;
        else
            ++takeover_.watchersLost;
    }
    if (!takeoverOrder_.empty() || !takeoverWatchers_.empty()) {
        takeoverTimer_ = after(0, [this] { takeoverBatch(); });
        return;
    }
    // One line when everything is back (the black-box test measures the takeover time from it).
    host_.log(PW_LOG_INFO,
              "callpark: node '{}': takeover complete: {} parked call(s) of {} restored ({} lost), {} subscription(s) "
              "resumed ({} lost) in {} ms",
              nodeName_, takeover_.restored, takeover_.from, takeover_.lost, takeover_.watchers, takeover_.watchersLost,
              now - takeover_.startedMs);
}

void CallPark::dropLostSession(Session &s, const std::string &why) {
    host_.log(PW_LOG_WARN, "callpark: node '{}': call {} is no longer ours ({}); its SIP state is dropped here",
              nodeName_, s.callId, why);
    cancelTimer(s.recallTimer);
    cancelTimer(s.ringTimer);
    cancelBranches(s, nullptr);
    stopMoh(s);
    if (s.retrieveReq) {
        Headers h;
        h.add("Retry-After", "1");
        host_.reply(s.retrieveReq, 503, "Service Unavailable", &h);
        host_.api()->request_resume(s.retrieveReq, PW_STOP);
        host_.api()->request_release(s.retrieveReq);
        s.retrieveReq = nullptr;
    }
    // The parked party's dialog belongs to the new owner: no BYE from here (docs/cluster.md "Ownership and
    // failover"). A v1.7 host forgets it without a word on the wire; an older one keeps the (now silent) dialog
    // until it ends, and we stop listening to it.
    static const pw_dialog_callbacks kSilent = {sizeof(pw_dialog_callbacks), nullptr, nullptr, nullptr, nullptr};
    if (s.a) {
        if (s.a->dlg) {
            const pw_host_api *api = host_.api();
            if (!PW_HOST_HAS(api, dialog_forget) || api->dialog_forget(s.a->dlg) != PW_OK)
                api->dialog_rebind(s.a->dlg, &kSilent, nullptr);
            s.a->dlg = nullptr;
        }
        Leg *a = s.a;
        s.a = nullptr;
        dropLeg(a);
    }
    sidByCall_.erase(s.callId);
    s.callId = 0;
    s.state = SessionState::Ended;
    reapLater(s.sid);
}

void CallPark::dropLostSessions() {
    // The owners are read on the storage thread (docs/cluster.md "Threads"); the sessions are found again by call id
    // when they come back: one that ended or was retrieved meanwhile is left alone.
    std::vector<eng::CallId> ids;
    for (auto &[sid, s] : sessions_)
        if (s->callId && s->state != SessionState::Ended && s->state != SessionState::Bridged)
            ids.push_back(s->callId);
    if (ids.empty())
        return;
    storage_.run<std::vector<eng::CallId>>(
        [ids, node = nodeName_](eng::Engine &e) {
            std::vector<eng::CallId> lost;
            try {
                for (eng::CallId id : ids) {
                    auto call = e.get(id);
                    if (!call || call->owner != node)
                        lost.push_back(id);
                }
            } catch (...) {
                // The store went away again: what was found so far goes; the rest is fenced (NotOwner) when used.
            }
            return lost;
        },
        [this](std::vector<eng::CallId> &lost) {
            for (eng::CallId id : lost) {
                auto it = sidByCall_.find(id);
                Session *s = it == sidByCall_.end() ? nullptr : session(it->second);
                if (s && s->callId == id && s->state != SessionState::Ended && s->state != SessionState::Bridged)
                    dropLostSession(*s, "taken over while this node's lease had lapsed");
            }
        },
        true);
}

// A retrieve of a call that another node owns (docs/cluster.md "Retrieve on another node"): that node holds the
// parked party's dialog (one UA per dialog end, RFC 3261 §12), so the INVITE is proxied to it (RFC 3261 §16.6:
// a Route to the owner's address, the Request-URI unchanged) and the owner retrieves as if it had been dialled
// there. An owner whose lease ran out is taken over now and the claim tried again here. The owner's record (and
// the takeover) is read on the storage thread when there is one (docs/cluster.md "Threads"): the INVITE stays
// held (PW_SUSPEND) and is resumed by the continuation.
struct CallPark::OwnerLook {
    std::optional<eng::NodeInfo> owner;
    bool tookOver = false; // the owner is dead: taken over, and the claim tried again
    eng::TakeoverResult takeover;
    eng::CallResult again;
    std::string error; // the store failed
};

CallPark::OwnerLook CallPark::lookUpOwner(eng::Engine &e, const std::string &owner, const eng::RetrieveRequest &rr) {
    OwnerLook l;
    try {
        l.owner = e.node(owner);
        if (!l.owner || !l.owner->live) {
            l.tookOver = true;
            l.takeover = e.takeOver();
            l.again = e.claimRetrieve(rr);
        }
    } catch (const std::exception &x) {
        l.error = x.what();
    } catch (...) {
        l.error = "storage error";
    }
    return l;
}

pw_verdict CallPark::retrieveElsewhere(pw_request *req, const eng::CallResult &claim, const eng::RetrieveRequest &rr) {
    const std::string owner = claim.call.owner;
    const eng::CallId id = claim.call.id;
    if (!storage_.threaded()) {
        OwnerLook l = lookUpOwner(*engine(), owner, rr);
        return ownerLooked(req, id, rr, l);
    }
    pw_request *held = host_.api()->request_retain(req);
    bool queued = storage_.run<OwnerLook>([owner, rr](eng::Engine &e) { return lookUpOwner(e, owner, rr); },
                                          [this, held, id, rr](OwnerLook &l) {
                                              pw_verdict v = ownerLooked(held, id, rr, l);
                                              if (v != PW_SUSPEND) // else retrieveResponse resumes it
                                                  host_.api()->request_resume(held, v);
                                              host_.api()->request_release(held);
                                          });
    if (!queued) {
        refuseStorage(held);
        host_.api()->request_release(held);
        return PW_STOP;
    }
    return PW_SUSPEND;
}

pw_verdict CallPark::ownerLooked(pw_request *req, eng::CallId id, const eng::RetrieveRequest &rr, OwnerLook &l) {
    const pw_msg *m = host_.msg(req);
    if (!l.error.empty()) {
        storageFailed("retrieve in " + rr.domain, l.error);
        refuseStorage(req);
        return PW_STOP;
    }
    if (l.tookOver) {
        // Rare (an owner that died a moment ago): its calls become ours, then the claim made after the takeover
        // goes on as a local retrieve (the taken-over call is restored on demand).
        takeOverDeadNodes(std::move(l.takeover));
        if (l.again.ok || l.again.error != eng::ErrorCode::NotOwner)
            return retrieveClaimed(req, m, rr, l.again);
        Headers h;
        h.add("Retry-After", "2");
        host_.reply(req, 503, "Owner Node Unavailable", &h);
        return PW_STOP;
    }
    const eng::NodeInfo &owner = *l.owner;
    std::string route = "<" + owner.address + ";lr>";
    std::string ruri = host_.requestUri(m);
    if (owner.address.empty() || ruri.empty() ||
        host_.api()->request_add_header(req, PW_STR_LIT("Route"), ps(route)) != PW_OK ||
        host_.api()->request_add_target(req, ps(ruri), ps(owner.address)) != PW_OK) {
        host_.reply(req, 500, "Cannot Reach Owner Node");
        return PW_STOP;
    }
    host_.log(PW_LOG_INFO, "callpark: retrieve of call {} (node '{}') forwarded to {}", id, owner.name, owner.address);
    return PW_CONTINUE;
}

} // namespace parkway::callpark
