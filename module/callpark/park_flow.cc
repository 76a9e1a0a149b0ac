// Parking: answer the park INVITE as UAS with a hold answer (music on hold), hold the dialog while parked
// (re-INVITE, UPDATE, OPTIONS, INFO), and free the slot when the parked party hangs up.
#include "callpark.hh"
#include "wire/sdp.hh"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <utility>

namespace parkway::callpark {

namespace {
// Retry-After of a park refused for capacity (domain cap, music-on-hold ports): calls leave within minutes.
constexpr int kParkRetryAfterSeconds = 30;
// the Allow of a park's 200 (RFC 3261 §20.5)
constexpr char kParkAllow[] = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, REFER, NOTIFY";

// Test hook of the durability test (tests/sipp-park/test_durability.py): PARKWAY_TEST_KILL_AFTER_PARKS=N
// kills the daemon with SIGKILL right after the N-th park 2xx left, the instant where a write still owed
// after the 2xx would be lost. Unset in production.
void killPointAfterParkAnswered() {
    static const long limit = [] {
        const char *v = std::getenv("PARKWAY_TEST_KILL_AFTER_PARKS");
        return v ? std::strtol(v, nullptr, 10) : 0L;
    }();
    static long answered = 0;
    if (limit > 0 && ++answered >= limit)
        std::raise(SIGKILL);
}

// What one music-on-hold stream saw, counted when it ends (the player's thread may not call the host: module.h).
void reportMohStream(const Host &host, eng::CallId call, const MohPlayer::StreamStats &st) {
    if (st.hadDestination) // streams that had somewhere to play; "false": the party never sent RTP we could latch on
        host.counter("parkway_moh_streams_total", st.latches ? "latched=\"true\"" : "latched=\"false\"");
    if (st.packetsNotRtp)
        host.counter("parkway_moh_rtp_ignored_total", "reason=\"not_rtp\"", double(st.packetsNotRtp));
    if (st.packetsForeign) {
        host.counter("parkway_moh_rtp_ignored_total", "reason=\"foreign\"", double(st.packetsForeign));
        host.log(PW_LOG_INFO,
                 "callpark: call {}: music on hold ignored {} packet(s) from addresses that may not steer it "
                 "(neither the SDP address nor the signalling source; last from {})",
                 call, st.packetsForeign, st.lastForeignSource);
    }
    if (st.hadDestination && !st.latches)
        host.log(PW_LOG_DEBUG,
                 "callpark: call {}: the parked party never sent RTP to latch on; music on hold played {} packets to "
                 "its SDP address {}:{} (moh_prelatch_ms)",
                 call, st.prelatchSent, st.remoteIp, st.remotePort);
}
} // namespace

// ---------------------------------------------------------------- music on hold and SDP

std::string CallPark::holdAnswerFor(Session &s, const std::string &offer, HoldError *why) {
    auto failed = [why](HoldError e) {
        if (why)
            *why = e;
        return std::string();
    };
    auto parsed = parseSdp(offer);
    if (!parsed || !parsed->audio())
        return failed(HoldError::BadOffer);
    if (!s.sdpSession)
        s.sdpSession = newSdpSessionId();
    // First pass: which codec and where the parked party wants RTP (our port does not change that).
    HoldAnswer probe = buildHoldAnswer(*parsed, mediaIp(), s.mohPort ? s.mohPort : 9, s.sdpSession, s.sdpVersion);
    bool send = probe.chosenPt >= 0 && probe.direction == SdpDirection::SendOnly && probe.remotePort != 0;
    std::string rip = send ? probe.remoteIp : "0.0.0.0";
    uint16_t rport = send ? probe.remotePort : 0;
    int pt = probe.chosenPt >= 0 ? probe.chosenPt : 0;
    if (!s.mohId) {
        // The port first (only capacity can refuse it), then where to send: a full range is a 503, a
        // destination we cannot send to is the offer's fault (488).
        if (!allocateMoh(s))
            return failed(HoldError::NoMediaPort);
        if (!moh_.setRemote(s.mohId, rip, rport, pt)) {
            stopMoh(s);
            return failed(HoldError::BadOffer);
        }
    } else {
        moh_.setRemote(s.mohId, rip, rport, pt);
    }
    s.mohPt = send ? pt : -1;
    s.remoteMediaIp = probe.remoteIp;
    s.remoteMediaPort = probe.remotePort;
    ++s.sdpVersion; // RFC 3264 §8: a new version for every SDP we send that may differ
    HoldAnswer ans = buildHoldAnswer(*parsed, mediaIp(), s.mohPort, s.sdpSession, s.sdpVersion);
    s.localSdp = ans.sdp;
    return ans.sdp;
}

std::string CallPark::holdOfferFor(Session &s, HoldError *why) {
    if (!s.sdpSession)
        s.sdpSession = newSdpSessionId();
    if (!s.mohId && !allocateMoh(s)) {
        if (why)
            *why = HoldError::NoMediaPort;
        return {};
    }
    ++s.sdpVersion;
    s.localSdp = buildHoldOffer(mediaIp(), s.mohPort, s.sdpSession, s.sdpVersion);
    return s.localSdp;
}

bool CallPark::allocateMoh(Session &s) {
    std::string err;
    MohPlayer::AddError why = MohPlayer::AddError::None;
    auto st = moh_.add("0.0.0.0", 0, 0, &err, 0, &why, s.partySource);
    if (!st) {
        // Every park may fail the same way while ports or descriptors are out: one log line per minute.
        host_.counter("parkway_moh_failures_total",
                      why == MohPlayer::AddError::NoDescriptors ? "reason=\"descriptors\"" : "reason=\"ports\"");
        if (mohFailureLog_.allow(host_.nowMs())) {
            uint64_t more = mohFailureLog_.suppressed();
            host_.log(PW_LOG_ERROR, "callpark: music on hold: {}{}", err,
                      more ? fmt::format(" ({} more failures since the last report)", more) : std::string());
        }
        return false;
    }
    s.mohId = st->id;
    s.mohPort = st->localPort;
    return true;
}

void CallPark::startMohFromAnswer(Session &s, const std::string &answer) {
    auto parsed = parseSdp(answer);
    if (!parsed || !parsed->audio() || !s.mohId)
        return;
    const SdpMedia &a = *parsed->audio();
    int pt = -1;
    for (int p : a.payloadTypes)
        if (p == 0 || p == 8) {
            pt = p;
            break;
        }
    bool send =
        pt >= 0 && a.port != 0 && (a.direction == SdpDirection::RecvOnly || a.direction == SdpDirection::SendRecv);
    std::string ip = a.connectionAddr;
    s.remoteMediaIp = ip;
    s.remoteMediaPort = a.port;
    s.mohPt = send ? pt : -1;
    moh_.setRemote(s.mohId, send ? ip : "0.0.0.0", send ? a.port : 0, send ? pt : 0);
}

void CallPark::stopMoh(Session &s) {
    if (s.mohId) {
        if (auto st = moh_.stats(s.mohId))
            reportMohStream(host_, s.parkedCallId, *st);
        moh_.remove(s.mohId);
    }
    s.mohId = 0;
    s.mohPt = -1;
}

std::string CallPark::parkBlob(Session &s, const std::string &dialog) {
    nlohmann::json j;
    j["dialog"] = dialog;
    j["local_sdp"] = s.localSdp;
    j["remote_sdp"] = s.a ? s.a->remoteSdp : std::string();
    j["moh_port"] = s.mohPort;
    j["sdp_session"] = s.sdpSession;
    j["sdp_version"] = s.sdpVersion;
    j["remote_ip"] = s.remoteMediaIp;
    j["remote_port"] = s.remoteMediaPort;
    j["pt"] = s.mohPt;
    if (auto st = s.mohId ? moh_.stats(s.mohId) : std::nullopt) // RTP from there may latch after a restart too
        j["signaling_ip"] = st->signalingIp;
    j["peer_uri"] = s.a ? s.a->peerUri : std::string();
    j["peer_display"] = s.a ? s.a->peerDisplay : std::string();
    // Bodies are kept byte for byte elsewhere; stored, an invalid UTF-8 sequence in one becomes U+FFFD.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void CallPark::saveBlob(Session &s) {
    if (!s.callId || !s.a || !s.a->dlg)
        return;
    // Fire and forget (on the storage thread when there is one): only a failure matters here.
    eng::CallId id = s.callId;
    storage_.run<eng::CallResult>(
        [id, blob = parkBlob(s, host_.dialogExport(s.a->dlg))](eng::Engine &e) { return e.updateBlob(id, blob); },
        [this, id](eng::CallResult &r) { writeDone(r, fmt::format("saving call {}", id), id); }, true);
}

void CallPark::writeDone(const eng::CallResult &r, const std::string &what, eng::CallId id) {
    if (r) {
        storageOk();
        return;
    }
    if (r.error == eng::ErrorCode::Storage) { // the database is away: counted and logged as such
        storageFailed(what, r.message);
        return;
    }
    if (r.error == eng::ErrorCode::NotOwner && clustered() && id && !stopping_) {
        // The fence refused the write: another node took the call over (docs/cluster.md "Ownership and failover").
        if (Session *s = sessionByCall(id))
            dropLostSession(*s, "the park database refused a write: " + r.message);
        return;
    }
    host_.log(PW_LOG_WARN, "callpark: {} failed: {}", what, r.message);
}

// ---------------------------------------------------------------- park INVITE

// The backend's reason, short: the first line, without the statement text or the database name the engine adds.
std::string storageReason(std::string msg) {
    if (auto nl = msg.find('\n'); nl != std::string::npos)
        msg.resize(nl);
    if (auto sql = msg.find(" (SQL: "); sql != std::string::npos)
        msg.resize(sql);
    if (msg.rfind("database ", 0) == 0) // "database <url>: ..." (engine.cc transact)
        if (auto colon = msg.find(": "); colon != std::string::npos)
            msg.erase(0, colon + 2);
    if (msg.rfind("prepare failed: ", 0) == 0)
        msg.erase(0, 16);
    return msg;
}

void CallPark::storageFailed(const std::string &what, const std::string &message) {
    host_.counter("parkway_storage_failures_total");
    int64_t now = host_.nowMs();
    if (!storageDownSinceMs_)
        storageDownSinceMs_ = now;
    ++storageRefused_;
    if (!storageLog_.allow(now))
        return;
    uint64_t more = storageLog_.suppressed();
    host_.log(PW_LOG_ERROR,
              "callpark: park database '{}' unavailable ({}): {}; parks and retrieves are refused with 503 until it "
              "is back, parked calls stay up{}",
              dbPath_, what, storageReason(message),
              more ? fmt::format(" ({} more failures in the last {} s)", more, kStorageLogMs / 1000) : std::string());
}

void CallPark::storageOk() {
    if (!storageDownSinceMs_)
        return;
    host_.log(PW_LOG_WARN,
              "callpark: park database '{}' is reachable again after {} ms ({} operation(s) failed meanwhile)", dbPath_,
              host_.nowMs() - storageDownSinceMs_, storageRefused_);
    storageDownSinceMs_ = 0;
    storageRefused_ = 0;
    storageLog_ = ReportThrottle{kStorageLogMs}; // the next outage is reported at once
}

void CallPark::refuseStorage(pw_request *req) {
    // RFC 3261 §21.5.4: the server cannot serve now, and says when to try again; a front proxy tries another
    // node (examples/kamailio/dispatcher.cfg).
    Headers h;
    h.add("Retry-After", std::to_string(kStorageRetryAfterSeconds));
    host_.reply(req, 503, "Service Unavailable", &h);
}

void CallPark::refuseHeld(pw_request *held) {
    refuseStorage(held);
    host_.api()->request_resume(held, PW_STOP);
    host_.api()->request_release(held);
}

int CallPark::refusePark(pw_request *req, const std::string &domain, eng::ErrorCode error, const std::string &message) {
    int status = engineErrorStatus(error);
    host_.counter("parkway_park_failures_total", fmt::format("reason=\"{}\"", eng::toString(error)));
    if (error == eng::ErrorCode::Storage) {
        storageFailed("park in " + domain, message);
        refuseStorage(req);
        return 503;
    }
    host_.log(PW_LOG_INFO, "callpark: park in {} refused: {}", domain, message);
    if (error == eng::ErrorCode::DomainFull) {
        // RFC 3261 §21.5.4: capacity is out for now; tell the sender when to try again.
        Headers h;
        h.add("Retry-After", std::to_string(kParkRetryAfterSeconds));
        host_.reply(req, 503, "Service Unavailable", &h);
    } else {
        host_.reply(req, status, error == eng::ErrorCode::GroupFull ? "All Slots Busy" : "");
    }
    return status;
}

// Where the parked party's SIP came from, for spreading music-on-hold streams over ports (MohPlayer::add): "" when
// a trusted peer relayed it (a front proxy or SBC, docs/carrier.md). That address is every relayed party's, not
// this one's: spreading by it gave each parked call a socket of its own behind a front proxy. The phones behind
// one NAT that the spread protects signal to us directly, from the NAT's address; a party behind the peer latches
// by its exact SDP address:port (symmetric RTP, RFC 4961 §3), which tells streams on one port apart (the case
// this gives up: docs/callpark.md "Shared ports").
std::string CallPark::partySourceOf(pw_request *req, const pw_msg *m) const {
    return who(req).fromTrustedPeer() ? std::string() : host_.source(m);
}

// Our SDP for a parked party (its offer answered, or an offer of ours when it sent none), or "" after answering the
// park INVITE: 503 + Retry-After when every music-on-hold port is taken (capacity, not the caller's offer, RFC 3261
// §21.5.4), 488 when the offer is unusable.
std::string CallPark::holdSdpOrRefuse(Session &s, pw_request *req, const pw_msg *m, const std::string &offer) {
    HoldError why = HoldError::None;
    s.partySource = partySourceOf(req, m);
    std::string sdp = offer.empty() ? holdOfferFor(s, &why) : holdAnswerFor(s, offer, &why);
    if (!sdp.empty())
        return sdp;
    if (why == HoldError::NoMediaPort) {
        host_.counter("parkway_park_failures_total", "reason=\"no_media_port\"");
        Headers h;
        h.add("Retry-After", std::to_string(kParkRetryAfterSeconds));
        host_.reply(req, 503, "Service Unavailable", &h);
    } else {
        host_.reply(req, 488, "Not Acceptable Here");
    }
    return {};
}

// The duplicate check and the park as one storage-thread operation (park INVITE and REFER takeover): a request key
// parked already is `merged`; a read that met the database away is a Storage error.
CallPark::ParkOnce CallPark::parkOnce(eng::Engine &e, const eng::ParkRequest &pr) {
    ParkOnce o;
    try {
        if (e.getByRequestKey(pr.domain, pr.requestKey)) {
            o.merged = true;
            return o;
        }
    } catch (const std::exception &ex) {
        o.r.ok = false;
        o.r.error = eng::ErrorCode::Storage;
        o.r.message = ex.what();
        return o;
    }
    o.r = e.park(pr);
    return o;
}

pw_verdict CallPark::parkInvite(pw_request *req, const pw_msg *m, const eng::Classification &c,
                                const std::string &domain, const std::string &parker, const std::string &,
                                bool withoutParker) {
    eng::ParkRequest pr = eng::makeParkRequest(c, domain, parker);
    pr.parkedUri = host_.uri(m, "From");
    pr.parkedDisplay = host_.display(m, "From");
    // Self-park: the caller dialled the park code itself (no REFER, no Referred-By), so the parker would be the
    // parked party. The parker is never the parked party (a recall ringing the waiting caller's own phone helps
    // nobody): the call is stored without one and the recall goes to the parked-on extension, else the
    // alternate (docs/callpark.md "Recall"). The same for a front proxy's transferee when nothing named the
    // parker (withoutParker, dispatch.cc chooseParker).
    {
        std::string parkedHost = uriHost(pr.parkedUri);
        std::transform(parkedHost.begin(), parkedHost.end(), parkedHost.begin(),
                       [](unsigned char ch) { return std::tolower(ch); });
        std::string ourHost = domain;
        std::transform(ourHost.begin(), ourHost.end(), ourHost.begin(),
                       [](unsigned char ch) { return std::tolower(ch); });
        pr.parkerIsParked =
            withoutParker || (!parker.empty() && uriUser(pr.parkedUri) == parker && parkedHost == ourHost);
    }
    // A duplicated INVITE (same dialog-creating Call-ID and From tag, new transaction) parks once.
    pr.requestKey = host_.header(m, "Call-ID") + ";" + host_.tag(m, "From");
    if (storage_.threaded())
        return parkInviteQueued(req, m, std::move(pr), domain, parker);
    if (auto existing = engine()->getByRequestKey(domain, pr.requestKey)) {
        (void)existing;
        host_.reply(req, 482, "Merged Request"); // RFC 3261 §8.2.2.2
        return PW_STOP;
    }

    Session &s = newSession();
    s.domain = domain;
    s.parker = pr.parkerIsParked ? std::string() : parker;
    auto ended = [this, &s] {
        s.state = SessionState::Ended;
        reapLater(s.sid);
        return PW_STOP;
    };
    std::string offer = host_.body(m);
    std::string sdp = holdSdpOrRefuse(s, req, m, offer);
    if (sdp.empty())
        return ended();
    moh_.setSignalingSource(s.mohId, host_.source(m)); // its RTP may latch from there too (symmetric RTP)

    Leg *leg = newLeg(s.sid, "parked");
    leg->peerUri = pr.parkedUri;
    leg->peerDisplay = pr.parkedDisplay;
    leg->remoteSdp = offer;
    s.a = leg;
    Headers h;
    h.add("Allow", kParkAllow);
    // One transaction holds the call and everything needed to resume it (the dialog as the 2xx will create
    // it, SDPs, MOH port, peer identity), committed BEFORE the 2xx reveals the park: a crash at any instant
    // either loses an unanswered INVITE or keeps a resumable park (docs/callpark.md "Durability").
    eng::ParkResult r;
    leg->dlg = host_.acceptCommit(req, 200, h, kSdp, sdp, legCallbacks(), leg, [&](pw_dialog *dlg) -> int {
        std::string dialog = host_.dialogExport(dlg);
        if (dialog.empty())
            return refuseUnexportable(pr.parkedUri);
        pr.blob = parkBlob(s, dialog);
        r = engine()->park(pr);
        if (r && r.duplicate) { // parked meanwhile under the same key (another process on this database)
            host_.reply(req, 482, "Merged Request");
            return 482;
        }
        if (!r)
            return refusePark(req, domain, r.error, r.message);
        return 0;
    });
    if (!leg->dlg) {
        // Refused, or the INVITE went away (CANCEL) / the 2xx could not be sent: nothing is parked after all.
        dropLeg(leg);
        s.a = nullptr;
        if (r && !r.duplicate)
            engine()->abandon(r.call.id);
        stopMoh(s);
        return ended();
    }
    killPointAfterParkAnswered();
    storageOk();
    bindCall(s, r.call.id);
    setParkedOn(s, r.call, domain);
    leg->confirmed = true;
    armRecall(s, r.call.recallAt);
    host_.log(PW_LOG_INFO, "callpark: parked {} on {} (call {})", pr.parkedUri, s.parkedOnUri, s.callId);
    return PW_STOP;
}

// The park INVITE with a storage thread (docs/cluster.md "Threads"): the SIP side is prepared (music on hold, our
// SDP), the duplicate check and the park run on the storage thread while the INVITE waits (100 Trying, RFC 3261
// §17.2.1), and the 200 goes out when the park is committed. The dialog the 200 creates is built first and stored
// with the park in that one transaction (dialog_accept_commit answered later, module.h v1.9), so a crash at any
// instant either loses an unanswered INVITE or keeps a resumable park (docs/callpark.md "Durability"). An older
// host (no dialog_accept_finish) gets the dialog stored right after the 200 (saveBlob): a crash in that one round
// trip then leaves a call that cannot be resumed (its restore reports it lost) rather than a 200 for nothing.
pw_verdict CallPark::parkInviteQueued(pw_request *req, const pw_msg *m, eng::ParkRequest pr, const std::string &domain,
                                      const std::string &parker) {
    if (!storage_.accepting()) {
        host_.counter("parkway_park_failures_total", "reason=\"storage\"");
        storageFailed("park in " + domain, "the park database is slow: storage queue over storage_queue or "
                                           "storage_queue_wait");
        refuseStorage(req);
        return PW_STOP;
    }
    Session &s = newSession();
    s.domain = domain;
    s.parker = pr.parkerIsParked ? std::string() : parker;
    std::string offer = host_.body(m);
    std::string sdp = holdSdpOrRefuse(s, req, m, offer);
    if (sdp.empty()) {
        s.state = SessionState::Ended;
        reapLater(s.sid);
        return PW_STOP;
    }
    moh_.setSignalingSource(s.mohId, host_.source(m));
    Leg *leg = newLeg(s.sid, "parked");
    leg->peerUri = pr.parkedUri;
    leg->peerDisplay = pr.parkedDisplay;
    leg->remoteSdp = offer;
    s.a = leg;
    pw_request *held = host_.api()->request_retain(req);
    host_.reply(held, 100, "Trying");
    const bool answerLater = host_.canAcceptLater();
    // The dialog built for a later 200, until acceptFinish sends or discards it (then NULL: finished once).
    auto later = std::make_shared<pw_dialog *>(answerLater ? acceptLater(held, s, leg, sdp, pr) : nullptr);
    if (!answerLater)
        pr.blob = parkBlob(s, std::string()); // an older host: the dialog follows the 200
    auto finishLater = [this, later](int status) {
        pw_dialog *d = std::exchange(*later, nullptr);
        return d && host_.acceptFinish(d, status) == 0 ? d : nullptr;
    };
    const uint64_t sid = s.sid, legId = leg->id;
    // Whatever the continuation finds, the INVITE is answered (if it still can be) and released exactly once, and
    // the dialog built for a later 200 is finished (sent or discarded) exactly once.
    auto finish = [this, held, sid, legId, finishLater](bool parked) {
        if (!parked) {
            finishLater(500); // discarded; 500 only if nothing answered the INVITE yet
            if (Session *sp = session(sid)) {
                if (Leg *l = legById(legId); l && sp->a == l) {
                    sp->a = nullptr;
                    dropLeg(l);
                }
                stopMoh(*sp);
                sp->state = SessionState::Ended;
                reapLater(sid);
            }
        }
        host_.api()->request_resume(held, PW_STOP);
        host_.api()->request_release(held);
    };
    if (answerLater && !*later) { // the dialog could not be built or exported: refused (500) already
        finish(false);
        return PW_SUSPEND;
    }
    bool queued = storage_.run<ParkOnce>(
        [pr = std::move(pr)](eng::Engine &e) { return parkOnce(e, pr); },
        [this, held, sid, legId, domain, sdp, finish, answerLater, finishLater](ParkOnce &o) {
            Session *sp = session(sid);
            Leg *l = legById(legId);
            if (!sp || !l || sp->a != l || sp->state != SessionState::Parked) {
                // The session went meanwhile (it cannot today: nothing ends it before its dialog exists).
                if (o.r && !o.r.duplicate)
                    abandonLater(o.r.call.id);
                host_.reply(held, 500);
                finish(false);
                return;
            }
            Session &s = *sp;
            if (o.merged || (o.r && o.r.duplicate)) {
                host_.reply(held, 482, "Merged Request"); // RFC 3261 §8.2.2.2
                finish(false);
                return;
            }
            if (!o.r) {
                refusePark(held, domain, o.r.error, o.r.message);
                finish(false);
                return;
            }
            // the park stored the dialog too: the 200 can go (an older host: it is sent and stored now)
            l->dlg = answerLater ? finishLater(0) : acceptNow(held, *l, sdp);
            if (!l->dlg) {
                // CANCELled or gone while the park was stored, or the 2xx could not be sent: nothing stays parked.
                abandonLater(o.r.call.id);
                finish(false);
                return;
            }
            killPointAfterParkAnswered();
            storageOk();
            bindCall(s, o.r.call.id);
            setParkedOn(s, o.r.call, domain);
            l->confirmed = true;
            if (!answerLater)
                saveBlob(s); // the dialog the 200 created
            armRecall(s, o.r.call.recallAt);
            host_.log(PW_LOG_INFO, "callpark: parked {} on {} (call {})", l->peerUri, s.parkedOnUri, s.callId);
            finish(true);
        });
    if (!queued) { // stopping, or the queue is full
        host_.counter("parkway_park_failures_total", "reason=\"storage\"");
        refuseStorage(held);
        finish(false);
    }
    return PW_SUSPEND;
}

// The 200 of a queued park, answered later (module.h v1.9): the dialog is built and exported now, its blob goes
// into the park request, and acceptFinish sends the 200 once the park is committed. NULL: refused (500 sent).
pw_dialog *CallPark::acceptLater(pw_request *held, Session &s, Leg *leg, const std::string &sdp, eng::ParkRequest &pr) {
    Headers h;
    h.add("Allow", kParkAllow);
    return host_.acceptCommit(held, 200, h, kSdp, sdp, legCallbacks(), leg, [&](pw_dialog *dlg) -> int {
        std::string dialog = host_.dialogExport(dlg);
        if (dialog.empty())
            return refuseUnexportable(leg->peerUri);
        pr.blob = parkBlob(s, dialog);
        return PW_COMMIT_LATER;
    });
}

// The 200 of a queued park on an older host: sent now, the dialog stored after it (saveBlob).
pw_dialog *CallPark::acceptNow(pw_request *held, Leg &leg, const std::string &sdp) {
    Headers h;
    h.add("Allow", kParkAllow);
    return host_.acceptCommit(held, 200, h, kSdp, sdp, legCallbacks(), &leg, [&](pw_dialog *dlg) -> int {
        return host_.dialogExport(dlg).empty() ? refuseUnexportable(leg.peerUri) : 0;
    });
}

// We would acknowledge a park no restart could resume.
int CallPark::refuseUnexportable(const std::string &party) {
    host_.counter("parkway_park_failures_total", "reason=\"storage\"");
    host_.log(PW_LOG_ERROR, "callpark: park of {} refused: the dialog cannot be exported", party);
    return 500;
}

void CallPark::abandonLater(eng::CallId id) {
    storage_.run<eng::CallResult>([id](eng::Engine &e) { return e.abandon(id); },
                                  [this, id](eng::CallResult &r) {
                                      if (!r && r.error != eng::ErrorCode::NotFound &&
                                          r.error != eng::ErrorCode::NotOwner)
                                          writeDone(r, fmt::format("abandon of call {}", id), 0);
                                  },
                                  true);
}

// ---------------------------------------------------------------- while parked

void CallPark::onParkedRequest(Session &s, Leg *leg, pw_request *req) {
    const pw_msg *m = host_.msg(req);
    std::string method = host_.method(m);
    if (host_.tag(m, "To").empty()) {
        // Same Call-ID and From tag as our dialog but no To tag: a duplicate of the dialog-creating request
        // that reached our leg (RFC 3261 §8.2.2.2 merged request): it parks once.
        host_.reply(req, 482, "Merged Request");
        return;
    }
    if (leg != s.a) { // a recall branch or a leg not yet connected
        host_.reply(req, method == "INVITE" ? 491 : 200);
        return;
    }
    if (method == "INVITE" || method == "UPDATE") {
        if (s.state != SessionState::Parked) { // an offer of ours is in flight (RFC 3261 §14.2)
            host_.reply(req, 491, "Request Pending");
            return;
        }
        std::string offer = host_.body(m);
        if (offer.empty() && method == "UPDATE") {
            host_.reply(req, 200);
            return;
        }
        std::string sdp = offer.empty() ? holdOfferFor(s) : holdAnswerFor(s, offer);
        if (sdp.empty()) {
            host_.reply(req, 488, "Not Acceptable Here");
            return;
        }
        if (!offer.empty())
            leg->remoteSdp = offer;
        moh_.setSignalingSource(s.mohId, host_.source(m)); // the party may have moved (symmetric RTP)
        saveBlob(s); // stored before the 200 shows the new SDP (a crash in between resumes with it)
        host_.api()->dialog_accept_request(leg->dlg, req, nullptr, 0, ps(kSdp), ps(sdp));
        return;
    }
    if (method == "REFER") { // the parked party cannot transfer a call nobody is on
        host_.reply(req, 403, "Forbidden");
        return;
    }
    if (method == "OPTIONS" || method == "INFO" || method == "NOTIFY" || method == "MESSAGE") {
        host_.reply(req, 200);
        return;
    }
    host_.reply(req, 501, "Not Implemented");
}

void CallPark::sessionAbandoned(Session &s) {
    cancelBranches(s, nullptr);
    cancelTimer(s.recallTimer);
    cancelTimer(s.ringTimer);
    stopMoh(s);
    if (s.callId) {
        // Fire and forget. On a storage failure the row stays until a retrieve finds no dialog for it.
        eng::CallId id = s.callId;
        storage_.run<eng::CallResult>([id](eng::Engine &e) { return e.abandon(id); },
                                      [this, id](eng::CallResult &r) {
                                          if (r || r.error != eng::ErrorCode::NotOwner)
                                              writeDone(r, fmt::format("abandon of call {}", id), 0);
                                      },
                                      true);
    }
    s.callId = 0;
    if (s.retrieveReq) {
        host_.reply(s.retrieveReq, 480, "Temporarily Unavailable");
        host_.api()->request_resume(s.retrieveReq, PW_STOP);
        host_.api()->request_release(s.retrieveReq);
        s.retrieveReq = nullptr;
    }
    if (s.b && s.b->dlg)
        host_.api()->dialog_end(s.b->dlg);
    s.state = SessionState::Ended;
    reapLater(s.sid);
}

void CallPark::legTerminated(Leg *leg, pw_dialog_end_reason reason) {
    if (stopping_)
        return; // shutting down: the store keeps the call for the restart
    Session *sp = session(leg->sid);
    if (!sp)
        return;
    Session &s = *sp;
    if (leg == s.transferor) { // the party that transferred away is gone: nothing else changes
        s.transferor = nullptr;
        reapLater(s.sid);
        return;
    }
    // A ringing recall branch that ended.
    for (auto it = s.branches.begin(); it != s.branches.end(); ++it) {
        if (*it == leg) {
            s.branches.erase(it);
            if (s.state == SessionState::Recalling && s.branches.empty() && !s.winner)
                ringTimeout(s.sid);
            reapLater(s.sid);
            return;
        }
    }
    if (leg == s.a) {
        s.a = nullptr;
        if (s.state == SessionState::Ended) { // replaced by the retriever (retrieve_mode=replaces)
            reapLater(s.sid);
            return;
        }
        if (s.state == SessionState::Retrieving && !s.replacesCallId.empty()) {
            // The parked party BYEd the park dialog before its 2xx to the Replaces INVITE passed us.
            sidByReplacesCid_.erase(s.replacesCallId);
            s.replacesCallId.clear();
            stopMoh(s);
            eng::CallId id = s.callId;
            s.callId = 0;
            s.state = SessionState::Ended;
            storage_.run<eng::CallResult>([id](eng::Engine &e) { return e.completeRetrieve(id); },
                                          [](eng::CallResult &) {}, true);
            reapLater(s.sid);
            return;
        }
        // s.callId is 0 once the call was retrieved (bridged): name it by the call it was parked as.
        host_.log(PW_LOG_INFO, "callpark: parked party of call {} left ({})", s.parkedCallId, static_cast<int>(reason));
        if (s.state == SessionState::Bridged)
            endBridge(s, leg);
        else
            sessionAbandoned(s);
        return;
    }
    if (leg == s.b) {
        s.b = nullptr;
        if (s.state == SessionState::Bridged)
            endBridge(s, leg);
        else if (s.state == SessionState::Connecting) {
            // the recall answerer hung up before the parked party was connected: park again as it was
            s.winner = nullptr;
            s.state = SessionState::Parked;
            if (s.callId)
                abortLater(s.sid, s.callId);
        }
        return;
    }
}

} // namespace parkway::callpark
