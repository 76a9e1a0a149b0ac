// Restart (SPEC §9): every parked call comes back from the engine with the blob we stored (dialog export,
// SDPs, media port). We restore its dialog, resume music on hold (re-INVITE with a new hold offer when the
// port changed), and re-arm its recall (overdue -> now). Watchers (dialog / call-info subscriptions) are
// stored too: each is resumed in its own dialog with a full-state NOTIFY carrying the next version (SPEC §7).
#include "callpark.hh"

#include <nlohmann/json.hpp>

namespace parkway::callpark {

void CallPark::restoreCalls() {
    size_t restored = 0, lost = 0;
    std::vector<eng::ParkedCall> live = engine_->liveCalls();
    // The gauge counts start from the store; from here on the engine's events keep them (countEvent).
    parkedCounts_.clear();
    for (const eng::ParkedCall &call : live)
        ++parkedCounts_[{call.domain, call.lot}];
    for (const eng::ParkedCall &call : live) {
        nlohmann::json j = nlohmann::json::parse(call.blob, nullptr, false);
        std::string dlgBlob = j.is_object() ? j.value("dialog", std::string()) : std::string();
        if (dlgBlob.empty()) {
            host_.log(PW_LOG_WARN, "callpark: call {} has no stored dialog; it cannot be resumed", call.id);
            engine_->abandon(call.id);
            ++lost;
            continue;
        }
        Session &s = newSession();
        bindCall(s, call.id);
        s.domain = call.domain;
        s.parker = call.parker;
        s.parkedOnUri =
            call.extension.empty() ? aor(std::to_string(call.slot), call.domain) : aor(call.extension, call.domain);
        s.sdpSession = j.value("sdp_session", uint64_t(0));
        s.sdpVersion = j.value("sdp_version", uint64_t(0));
        s.localSdp = j.value("local_sdp", std::string());
        s.remoteMediaIp = j.value("remote_ip", std::string());
        s.remoteMediaPort = j.value("remote_port", uint16_t(0));
        int pt = j.value("pt", -1);
        uint16_t oldPort = j.value("moh_port", uint16_t(0));
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
            engine_->abandon(call.id);
            ++lost;
            continue;
        }
        leg->confirmed = true;
        s.a = leg;
        s.state = SessionState::Parked;

        std::string err;
        bool send = pt >= 0 && s.remoteMediaPort != 0;
        auto st =
            moh_.add(send ? s.remoteMediaIp : "0.0.0.0", send ? s.remoteMediaPort : 0, send ? pt : 0, &err, oldPort);
        if (st) {
            s.mohId = st->id;
            s.mohPort = st->localPort;
            s.mohPt = send ? pt : -1;
            moh_.setSignalingSource(s.mohId, j.value("signaling_ip", std::string()));
        } else {
            host_.log(PW_LOG_WARN, "callpark: call {}: music on hold: {}", call.id, err);
        }
        if (st && st->localPort != oldPort) {
            // Our media port changed: tell the parked party where the music comes from now.
            std::string offer = holdOfferFor(s);
            uint64_t sid = s.sid;
            sendInDialog(leg->dlg, "INVITE", nullptr, "application/sdp", offer, 0,
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
        armRecall(s, call.recallAt);
        ++restored;
    }
    if (restored || lost)
        host_.log(PW_LOG_INFO, "callpark: restored {} parked call(s), {} could not be resumed", restored, lost);
    for (auto &d : engine_->domains()) {
        updateGauges(d.name, "");
        for (auto &l : engine_->lots(d.name))
            updateGauges(d.name, l.name);
    }
}

// restoreWatchers() is in watchers.cc: stored subscriptions are resumed in paced batches.

} // namespace parkway::callpark
