// Restart (docs/callpark.md "Restart"): every parked call comes back from the engine with the blob we stored (dialog
// export, SDPs, media port). We restore its dialog, resume music on hold (re-INVITE with a new hold offer when the port
// changed), and re-arm its recall (overdue -> soon, paced). Watchers (dialog / call-info subscriptions) are stored too:
// each is resumed in its own dialog with a full-state NOTIFY carrying the next version (docs/callpark.md
// "Notifications").
//
// At scale (docs/callpark.md "Restart"): start() only reads the store (one query) and queues the calls; they are
// restored in batches on later loop turns, so SIP requests are served between batches from the first second.
// A call still queued when something needs it (a retrieve, an admin command, a watcher's NOTIFY) is restored
// on demand at once (sessionByCall); an in-dialog request of a call still queued is handled by
// inDialogBeforeRestore. Watchers are resumed after the last call (their NOTIFYs show the restored dialogs).
#include "callpark.hh"

#include <nlohmann/json.hpp>

#include <cstring>

namespace parkway::callpark {

namespace {

// Overdue recalls (the deadline passed while we were down) fire at this rate, oldest first, not all at once:
// each one rings phones (RFC 3261 INVITEs), and thousands at the same instant would be a self-made overload.
constexpr int64_t kOverdueRecallsPerSecond = 50;

} // namespace

void CallPark::restoreCalls() {
    std::vector<eng::ParkedCall> live = engine()->liveCalls(); // one query, ordered by recall deadline
    // The gauge counts start from the store; from here on the engine's events keep them (countEvent).
    parkedCounts_.clear();
    for (const eng::ParkedCall &call : live)
        ++parkedCounts_[{call.domain, call.lot}];
    restore_ = RestoreProgress{};
    restore_.startedMs = host_.nowMs();
    restore_.total = live.size();
    restoreOrder_.clear();
    restoreOrder_.reserve(live.size());
    pendingCalls_.clear();
    pendingCalls_.reserve(live.size());
    for (eng::ParkedCall &call : live) {
        restoreOrder_.push_back(call.id);
        pendingCalls_.emplace(call.id, std::move(call));
    }
    for (auto &d : engine()->domains()) {
        updateGauges(d.name, "");
        for (auto &l : engine()->lots(d.name))
            updateGauges(d.name, l.name);
    }
    if (pendingCalls_.empty()) {
        finishCallRestore();
        return;
    }
    // The first batch runs on the first loop turn: start() returns and the daemon answers SIP at once.
    restoreTimer_ = after(0, [this] { restoreCallBatch(); });
}

void CallPark::restoreCallBatch() {
    restoreTimer_ = 0;
    if (stopping_)
        return; // what is left stays stored for the next start
    size_t done = 0;
    // restore_batch calls per loop turn: a turn stays within a few ms, so requests wait little.
    while (done < size_t(settings_.restoreBatch) && restore_.next < restoreOrder_.size()) {
        eng::CallId id = restoreOrder_[restore_.next++];
        if (restoreCall(id))
            ++done;
    }
    if (restore_.next < restoreOrder_.size()) {
        restoreTimer_ = after(0, [this] { restoreCallBatch(); });
        return;
    }
    finishCallRestore();
}

void CallPark::finishCallRestore() {
    restoreOrder_.clear();
    restoreOrder_.shrink_to_fit();
    pendingCalls_.clear(); // (empty already, unless the engine dropped a queued call meanwhile)
    restore_.callsDone = true;
    restore_.callsMs = host_.nowMs() - restore_.startedMs;
    if (restore_.restored || restore_.lost)
        host_.log(PW_LOG_INFO, "callpark: restored {} parked call(s), {} could not be resumed ({} ms)",
                  restore_.restored, restore_.lost, restore_.callsMs);
    restoreWatchers(); // after the calls: their NOTIFYs show the restored park dialogs
}

void CallPark::restoreFinished() {
    restore_.done = true;
    restore_.doneMs = host_.nowMs() - restore_.startedMs;
    // One line when everything is back (the recovery benchmark waits for it; docs/callpark.md "Restart").
    host_.log(PW_LOG_INFO,
              "callpark: restore complete: {} parked call(s) restored ({} lost), {} recall timer(s) armed ({} "
              "overdue, paced), {} music stream(s), {} subscription(s) resumed ({} lost) in {} ms",
              restore_.restored, restore_.lost, restore_.recallsArmed, restore_.overdue, moh_.streamCount(),
              restoredWatchers_, lostWatchers_, restore_.doneMs);
}

Session *CallPark::restoreOnDemand(eng::CallId id) {
    if (pendingCalls_.find(id) == pendingCalls_.end())
        return nullptr;
    ++restore_.onDemand;
    restoreCall(id); // its place in restoreOrder_ is skipped later (no longer pending)
    auto it = sidByCall_.find(id);
    return it == sidByCall_.end() ? nullptr : session(it->second);
}

// The stored call `id` (if still queued) gets its session, dialog, music and recall timer. False when it was
// not queued any more (restored on demand, or gone from the engine meanwhile).
bool CallPark::restoreCall(eng::CallId id, bool takeover) {
    auto node = pendingCalls_.extract(id);
    if (node.empty())
        return false;
    if (!takeoverIds_.empty() && takeoverIds_.erase(id))
        takeover = true; // another node's call (cluster.cc), restored here on demand or in its batch
    const eng::ParkedCall &call = node.mapped();
    nlohmann::json j = nlohmann::json::parse(call.blob, nullptr, false);
    std::string dlgBlob = j.is_object() ? j.value("dialog", std::string()) : std::string();
    if (dlgBlob.empty()) {
        host_.log(PW_LOG_WARN, "callpark: call {} has no stored dialog; it cannot be resumed", call.id);
        abandonLater(call.id); // on the storage thread when there is one (docs/cluster.md "Threads")
        ++restore_.lost;
        return true;
    }
    Session &s = newSession();
    bindCall(s, call.id);
    s.domain = call.domain;
    s.parker = call.parker;
    setParkedOn(s, call, call.domain);
    s.sdpSession = j.value("sdp_session", uint64_t(0));
    s.sdpVersion = j.value("sdp_version", uint64_t(0));
    s.localSdp = j.value("local_sdp", std::string());
    s.remoteMediaIp = j.value("remote_ip", std::string());
    s.remoteMediaPort = j.value("remote_port", uint16_t(0));
    Leg *leg = newLeg(s.sid, "parked");
    leg->peerUri = j.value("peer_uri", call.parkedUri);
    leg->peerDisplay = j.value("peer_display", call.parkedDisplay);
    leg->remoteSdp = j.value("remote_sdp", std::string());
    leg->dlg = host_.api()->dialog_restore(host_.raw(), ps(dlgBlob), legCallbacks(), leg);
    if (!leg->dlg) {
        host_.log(PW_LOG_WARN, "callpark: call {}: stored dialog could not be restored", call.id);
        dropLeg(leg);
        s.callId = 0;
        s.state = SessionState::Ended;
        abandonLater(call.id);
        ++restore_.lost;
        return true;
    }
    leg->confirmed = true;
    s.a = leg;
    s.state = SessionState::Parked;
    resumeMoh(s, j.value("pt", -1), takeover ? uint16_t(0) : j.value("moh_port", uint16_t(0)),
              j.value("signaling_ip", std::string()));
    armRestoredRecall(s, call);
    ++restore_.restored;
    return true;
}

void CallPark::resumeMoh(Session &s, int pt, uint16_t oldPort, const std::string &signalingIp) {
    std::string err;
    bool send = pt >= 0 && s.remoteMediaPort != 0;
    auto st = moh_.add(send ? s.remoteMediaIp : "0.0.0.0", send ? s.remoteMediaPort : 0, send ? pt : 0, &err, oldPort);
    if (!st) {
        host_.log(PW_LOG_WARN, "callpark: call {}: music on hold: {}", s.callId, err);
        return;
    }
    s.mohId = st->id;
    s.mohPort = st->localPort;
    s.mohPt = send ? pt : -1;
    moh_.setSignalingSource(s.mohId, signalingIp);
    if (st->localPort == oldPort)
        return;
    // Our media port changed: tell the parked party where the music comes from now.
    std::string offer = holdOfferFor(s);
    uint64_t sid = s.sid;
    sendInDialog(s.a->dlg, "INVITE", nullptr, "application/sdp", offer, 0,
                 [this, sid](pw_dialog *, int status, const pw_msg *resp) {
                     Session *sp = session(sid);
                     if (!sp || status < 200 || status >= 300)
                         return;
                     if (sp->a)
                         sp->a->remoteSdp = host_.body(resp);
                     moh_.setSignalingSource(sp->mohId, host_.source(resp));
                     startMohFromAnswer(*sp, host_.body(resp));
                     saveBlob(*sp);
                 });
}

// Re-arm a restored call's recall. An overdue one (its deadline passed while we were down) fires soon, in
// deadline order, kOverdueRecallsPerSecond at most: the engine already deems it due, so a later timer is fine.
void CallPark::armRestoredRecall(Session &s, const eng::ParkedCall &call) {
    if (call.recallAt <= 0)
        return;
    int64_t now = host_.nowMs();
    eng::Millis at = call.recallAt;
    if (at <= now) {
        at = now + int64_t(restore_.overdue) * 1000 / kOverdueRecallsPerSecond;
        ++restore_.overdue;
    }
    armRecall(s, at);
    ++restore_.recallsArmed;
}

// A stored call left the engine (retrieved, abandoned) or changed (moved) before it was restored.
void CallPark::pendingCallChanged(const eng::ChangeEvent &e) {
    auto it = pendingCalls_.find(e.call.id);
    if (it == pendingCalls_.end())
        return;
    if (e.kind == eng::EventKind::Retrieved || e.kind == eng::EventKind::Abandoned) {
        pendingCalls_.erase(it);
        return;
    }
    std::string blob = std::move(it->second.blob);
    it->second = e.call;
    if (it->second.blob.empty())
        it->second.blob = std::move(blob);
}

// An in-dialog request (To tag) that no dialog took, while calls are still queued: if it belongs to a queued
// call's park dialog, that call is restored now. The request itself reached us before its dialog existed, so:
// a BYE (the parked party hung up) is answered 200 and ends the call as a BYE in the dialog would (RFC 3261
// §15.1.2); anything else gets 500 + Retry-After, the answer RFC 3261 §14.2 gives for "retry this request on
// the dialog shortly". Returns false when the request is none of ours.
bool CallPark::inDialogBeforeRestore(pw_request *req, const pw_msg *m) {
    if (pendingCalls_.empty() || host_.tag(m, "To").empty())
        return false;
    std::string callId = host_.header(m, "Call-ID");
    if (callId.empty())
        return false;
    // The stored dialog export holds the Call-ID: a substring scan of the queued blobs finds the candidates
    // (cheaper than parsing each); the restored dialog's own Call-ID decides.
    std::vector<eng::CallId> candidates;
    for (const auto &[id, call] : pendingCalls_)
        if (call.blob.find(callId) != std::string::npos)
            candidates.push_back(id);
    for (eng::CallId id : candidates) {
        Session *s = restoreOnDemand(id);
        if (!s || !s->a || !s->a->dlg || host_.dialogGet(s->a->dlg, PW_DLG_CALL_ID) != callId)
            continue;
        if (host_.method(m) == "BYE") {
            host_.reply(req, 200);
            host_.api()->dialog_end(s->a->dlg); // on_terminated: the parked party left
        } else if (host_.method(m) != "ACK") {
            Headers h;
            h.add("Retry-After", "1");
            host_.reply(req, 500, "Dialog Being Restored", &h);
        }
        return true;
    }
    return false;
}

// restoreWatchers() is in watchers.cc: stored subscriptions are resumed in paced batches.

} // namespace parkway::callpark
