// Retrieve and the bridge that follows (RFC 3725 third-party call control; the module stays in the
// signalling path, media flows directly): re-INVITE the parked party with the retriever's offer (or
// without SDP), answer the retriever, then relay BYE, re-INVITE/UPDATE, INFO between the legs. A REFER from
// a bridged leg re-parks (park code) or is carried out here as a blind transfer.
#include "callpark.hh"
#include "wire/bodies.hh"
#include "wire/sdp.hh"

#include <cctype>

namespace parkway::callpark {

namespace {

// A Content-Type naming SDP (parameters and case ignored).
bool isSdpType(std::string_view ctype) {
    std::string_view t = ctype.substr(0, ctype.find(';'));
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t'))
        t.remove_suffix(1);
    if (t.size() != kSdp.size())
        return false;
    for (size_t i = 0; i < t.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(t[i])) != kSdp[i])
            return false;
    return true;
}
} // namespace

// ---------------------------------------------------------------- connected identity (RFC 3325)

void CallPark::addConnectedIdentity(Headers &h, const std::string &display, const std::string &uri) const {
    // RFC 3325 §9.1: the asserted identity of the party this leg is now connected to. Only meaningful in a trust
    // domain (RFC 3325 §2.3); connected_identity = false leaves it out.
    if (settings_.connectedIdentity && !uri.empty())
        h.add("P-Asserted-Identity", nameAddr(display, uri));
}

// ---------------------------------------------------------------- our SDP origin per leg (RFC 3264 §8)

std::string CallPark::legSdp(Session &s, Leg *leg, const std::string &body) {
    if (!leg || body.empty())
        return body;
    // The parked leg's origin lives in the session (the hold answers of park_flow.cc use it, restarts keep it).
    const bool parked = leg == s.a;
    uint64_t &session = parked ? s.sdpSession : leg->sdpSession;
    uint64_t &version = parked ? s.sdpVersion : leg->sdpVersion;
    std::string &last = parked ? s.localSdp : leg->localSdp;
    if (!session)
        session = newSdpSessionId();
    SdpOrigin o;
    o.sessionId = session;
    o.version = version;
    o.addr = mediaIp();
    auto out = withLegOrigin(body, last, o);
    if (!out)
        return body; // no o= we can read: relayed as is
    version = o.version;
    last = *out;
    return *out;
}

void CallPark::sdpRefused(Session &s, Leg *leg) {
    if (leg)
        (leg == s.a ? s.localSdp : leg->localSdp).clear();
}

void CallPark::setParkedLeg(Session &s, Leg *leg) {
    if (s.a == leg)
        return;
    if (s.a) { // the old parked leg keeps its origin for whatever we send on it later
        s.a->sdpSession = s.sdpSession;
        s.a->sdpVersion = s.sdpVersion;
        s.a->localSdp = s.localSdp;
    }
    s.sdpSession = leg ? leg->sdpSession : 0;
    s.sdpVersion = leg ? leg->sdpVersion : 0;
    s.localSdp = leg ? leg->localSdp : std::string();
    s.a = leg;
}

pw_verdict CallPark::retrieveInvite(pw_request *req, const pw_msg *m, const eng::RetrieveRequest &rr) {
    if (!storage_.threaded())
        return retrieveClaimed(req, m, rr, engine()->claimRetrieve(rr));
    // With a storage thread (docs/cluster.md "Threads"): the claim runs there while the INVITE waits (100
    // Trying); the retrieve goes on here with its result. The world may have changed meanwhile: the continuation
    // finds the session by the claimed call's id, as the inline path does.
    if (!storage_.accepting()) {
        storageFailed("retrieve in " + rr.domain, "the park database is slow: storage queue over storage_queue or "
                                                  "storage_queue_wait");
        refuseStorage(req);
        return PW_STOP;
    }
    pw_request *held = host_.api()->request_retain(req);
    host_.reply(held, 100, "Trying");
    bool queued = storage_.run<eng::CallResult>([rr](eng::Engine &e) { return e.claimRetrieve(rr); },
                                                [this, held, rr](eng::CallResult &claim) {
                                                    pw_verdict v = retrieveClaimed(held, host_.msg(held), rr, claim);
                                                    if (v != PW_SUSPEND) // else retrieveResponse resumes it
                                                        host_.api()->request_resume(held, v);
                                                    host_.api()->request_release(held);
                                                });
    if (!queued) {
        refuseHeld(held);
    }
    return PW_SUSPEND;
}

pw_verdict CallPark::retrieveClaimed(pw_request *req, const pw_msg *m, const eng::RetrieveRequest &rr,
                                     eng::CallResult claim) {
    if (!claim && claim.error == eng::ErrorCode::Storage) {
        // The call stays parked (nothing was claimed) and its dialog and music stay up: try again later.
        storageFailed("retrieve in " + rr.domain, claim.message);
        refuseStorage(req);
        return PW_STOP;
    }
    if (claim)
        storageOk();
    if (!claim && claim.error == eng::ErrorCode::NotOwner && clustered())
        return retrieveElsewhere(req, claim, rr); // another node holds the parked party's dialog (cluster.cc)
    if (!claim) {
        host_.reply(req, engineErrorStatus(claim.error),
                    claim.error == eng::ErrorCode::NotFound ? "Nothing Parked" : "");
        return PW_STOP;
    }
    Session *s = sessionByCall(claim.call.id);
    if (!s || !s->a || !s->a->dlg) {
        // The store knows a call the SIP side lost (e.g. its dialog could not be restored).
        abandonLater(claim.call.id);
        host_.reply(req, 404, "Nothing Parked");
        return PW_STOP;
    }
    if (s->state != SessionState::Parked && s->state != SessionState::Recalling) {
        abortLater(s->sid, claim.call.id);
        host_.reply(req, 486, "Busy Here");
        return PW_STOP;
    }
    // A retrieve during a recall cancels the ringing branches (docs/callpark.md "Recall").
    cancelBranches(*s, nullptr);
    cancelTimer(s->ringTimer);
    cancelTimer(s->recallTimer);

    if (settings_.retrieveMode == RetrieveMode::Replaces) {
        // Forward the retriever's INVITE to the parked party with Replaces naming our park dialog (RFC 3891):
        // the parked party answers the retriever directly and BYEs the park dialog; we leave the path.
        pw_dialog *d = s->a->dlg;
        ReplacesValue rv;
        rv.callId = host_.dialogGet(d, PW_DLG_CALL_ID);
        rv.toTag = host_.dialogGet(d, PW_DLG_REMOTE_TAG);  // the parked party's own (local) tag
        rv.fromTag = host_.dialogGet(d, PW_DLG_LOCAL_TAG); // its remote tag: ours
        std::string target = host_.dialogGet(d, PW_DLG_REMOTE_TARGET);
        host_.api()->request_remove_header(req, PW_STR_LIT("Replaces"));
        // The Route header makes later routing modules (router) leave the request alone (they skip loose-routed
        // requests); the core sends it to our target. See docs/callpark.md "retrieve_mode".
        std::string route = "<" + target + ";lr>";
        if (!target.empty() &&
            host_.api()->request_add_header(req, PW_STR_LIT("Replaces"), ps(formatReplaces(rv))) == PW_OK &&
            host_.api()->request_add_header(req, PW_STR_LIT("Route"), ps(route)) == PW_OK &&
            host_.api()->request_add_target(req, ps(target), ps(target)) == PW_OK) {
            s->state = SessionState::Retrieving;
            s->replacesCallId = host_.header(m, "Call-ID");
            sidByReplacesCid_[s->replacesCallId] = s->sid;
            s->retrieverUri = host_.uri(m, "From");
            return PW_CONTINUE;
        }
        host_.log(PW_LOG_WARN, "callpark: call {}: cannot forward with Replaces; bridging instead", claim.call.id);
    }

    std::string offer = host_.body(m);
    s->retrieveOfferless = offer.empty();
    // Who retrieves: the established identity (docs/auth.md), not what From claims; From's display name only
    // when From names that identity.
    const std::string fromUri = host_.uri(m, "From");
    const Host::Who w = who(req);
    s->retrieverUri = w.uri.empty() ? fromUri : w.uri;
    s->retrieverDisplay = fromUri == s->retrieverUri ? host_.display(m, "From") : std::string();
    s->state = SessionState::Retrieving;
    s->retrieveReq = host_.api()->request_retain(req);
    uint64_t sid = s->sid;
    // The parked party sees the retriever's offer under the o= of our hold answer, one version up (RFC 3264 §8):
    // a new origin would be a new session to it, and an unchanged version an SDP it may ignore.
    const uint64_t versionBefore = s->sdpVersion;
    std::string sdp = offer.empty() ? offer : legSdp(*s, s->a, offer);
    // The parked party learns who picked up: the re-INVITE's From is still its park dialog's (*68103), so the
    // retriever goes in P-Asserted-Identity (RFC 3325 §9.1).
    Headers h;
    addConnectedIdentity(h, s->retrieverDisplay, s->retrieverUri);
    bool sent =
        sendInDialog(s->a->dlg, "INVITE", &h, offer.empty() ? "" : kSdp, sdp, offer.empty() ? PW_SEND_DEFER_ACK : 0,
                     [this, sid](pw_dialog *, int status, const pw_msg *resp) { retrieveResponse(sid, status, resp); });
    if (!sent) {
        host_.api()->request_release(s->retrieveReq);
        s->retrieveReq = nullptr;
        s->state = SessionState::Parked;
        abortLater(s->sid, claim.call.id);
        armRecall(*s, claim.call.recallAt);
        host_.reply(req, 500, "Cannot Reach Parked Party");
        return PW_STOP;
    }
    if (s->sdpVersion != versionBefore)
        saveBlob(*s); // a restart while the retrieve is in flight goes on from this version
    return PW_SUSPEND;
}

void CallPark::retrieveResponse(uint64_t sid, int status, const pw_msg *resp) {
    if (status < 200)
        return;
    Session *sp = session(sid);
    if (!sp)
        return;
    Session &s = *sp;
    pw_request *r = s.retrieveReq;
    s.retrieveReq = nullptr;
    std::string body = host_.body(resp);
    auto finish = [&](pw_request *rq) {
        if (!rq)
            return;
        host_.api()->request_resume(rq, PW_STOP);
        host_.api()->request_release(rq);
    };

    if (status >= 200 && status < 300 && s.a && s.a->dlg && r && storage_.threaded()) {
        // The call leaves the engine on the storage thread first; the retriever's 200 follows with its result.
        s.retrieveReq = r; // still ours: an abandon or a takeover meanwhile answers it
        eng::CallId id = s.callId;
        storage_.run<eng::CallResult>(
            [id](eng::Engine &e) { return e.completeRetrieve(id); },
            [this, sid, body](eng::CallResult &done) {
                Session *sp2 = session(sid);
                if (!sp2 || !sp2->retrieveReq)
                    return; // answered meanwhile (the parked party left, the call was taken over)
                Session &s2 = *sp2;
                pw_request *r2 = s2.retrieveReq;
                s2.retrieveReq = nullptr;
                if (!s2.a || !s2.a->dlg) {
                    host_.reply(r2, 480, "Temporarily Unavailable");
                    host_.api()->request_resume(r2, PW_STOP);
                    host_.api()->request_release(r2);
                    return;
                }
                answerRetriever(s2, r2, body, &done);
            },
            true);
        return;
    }
    if (status >= 200 && status < 300 && s.a && s.a->dlg && r) {
        answerRetriever(s, r, body, nullptr);
        return;
    }
    if (r) {
        if (!s.retrieveOfferless && s.a)
            sdpRefused(s, s.a);
        host_.reply(r, status == 486 || status == 488 || status == 606 ? status : 480);
        finish(r);
    }
    if (s.state == SessionState::Ended)
        return;
    if (!s.a || !s.a->dlg)
        return; // legTerminated handles the abandon
    s.state = SessionState::Parked;
    if (s.callId)
        abortLater(s.sid, s.callId);
}

void CallPark::abortLater(uint64_t sid, eng::CallId id) {
    storage_.run<eng::CallResult>([id](eng::Engine &e) { return e.abortRetrieve(id); },
                                  [this, sid, id](eng::CallResult &back) {
                                      if (!back) {
                                          writeDone(back, fmt::format("abort of the retrieve of call {}", id), id);
                                          return;
                                      }
                                      Session *sp = session(sid);
                                      if (sp && sp->callId == id && sp->state == SessionState::Parked)
                                          armRecall(*sp, back.call.recallAt);
                                  },
                                  true);
}

// The parked party answered the retrieve re-INVITE: the 200 to the retriever, then the bridge. `pre`: the call left
// the engine already, on the storage thread (its result); nullptr: it leaves now, in the 200's commit step.
void CallPark::answerRetriever(Session &s, pw_request *r, const std::string &body, const eng::CallResult *pre) {
    const uint64_t sid = s.sid;
    auto finish = [&](pw_request *rq) {
        if (!rq)
            return;
        host_.api()->request_resume(rq, PW_STOP);
        host_.api()->request_release(rq);
    };
    Leg *b = newLeg(sid, "retriever");
    b->peerUri = s.retrieverUri;
    b->peerDisplay = s.retrieverDisplay;
    Headers h;
    // The retriever sees who is waiting, not the feature code (docs/callpark.md "Retrieve").
    addConnectedIdentity(h, s.a->peerDisplay, s.a->peerUri);
    // The 200 tells the retriever the call is theirs: the engine lets the call go first, so a crash after the
    // 200 never brings it back as parked while the two parties talk (docs/callpark.md "Durability").
    eng::CallId id = s.callId;
    bool completed = false, lost = false;
    // The retriever's dialog gets an origin of its own (RFC 3264 §8), not the parked party's o=.
    std::string toB = legSdp(s, b, body);
    b->dlg = host_.acceptCommit(
        r, 200, h, body.empty() ? std::string_view() : kSdp, toB, legCallbacks(), b, [&](pw_dialog *) -> int {
            auto done = pre ? *pre : engine()->completeRetrieve(id);
            if (!done) {
                host_.log(PW_LOG_WARN, "callpark: complete retrieve of call {}: {}", id, done.message);
                lost = done.error == eng::ErrorCode::NotOwner;
                return 500;
            }
            completed = true;
            return 0;
        });
    finish(r);
    if (b->dlg) {
        b->confirmed = true;
        if (s.retrieveOfferless)
            b->ackToId = s.a->id; // the retriever's ACK carries the parked party's answer
        else
            s.a->remoteSdp = body;
        s.b = b;
        stopMoh(s);
        s.callId = 0;
        s.state = SessionState::Bridged;
        host_.log(PW_LOG_INFO, "callpark: call {} retrieved by {}", id, s.retrieverUri);
        return;
    }
    dropLeg(b);
    if (lost) { // taken over by another node meanwhile (cluster.cc): its dialog is not ours to touch
        if (s.retrieveOfferless)
            host_.api()->dialog_ack(s.a->dlg, {}, {}); // the re-INVITE's 2xx is owed its ACK
        dropLostSession(s, "taken over during the retrieve");
        return;
    }
    if (completed) {
        // The call left the engine but the 200 could not be sent: nobody holds the parked party any more.
        host_.log(PW_LOG_WARN, "callpark: call {}: the retriever's 200 could not be sent; ending the call", id);
        s.callId = 0;
        stopMoh(s);
        s.state = SessionState::Ended;
        if (s.retrieveOfferless)
            host_.api()->dialog_ack(s.a->dlg, {}, {});
        host_.api()->dialog_end(s.a->dlg);
        reapLater(s.sid);
        return;
    }
    // The retriever went away (CANCEL) while the parked party was re-INVITEd: back on hold.
    if (s.retrieveOfferless) {
        std::string ans = holdAnswerFor(s, body);
        host_.api()->dialog_ack(s.a->dlg, ps(kSdp), ps(ans));
    } else {
        std::string offer = holdOfferFor(s);
        sendInDialog(s.a->dlg, "INVITE", nullptr, kSdp, offer, 0, [this, sid](pw_dialog *, int st, const pw_msg *rp) {
            Session *s2 = session(sid);
            if (s2 && st >= 200 && st < 300)
                startMohFromAnswer(*s2, host_.body(rp));
        });
    }
}

void CallPark::onResponse(const pw_msg *resp) {
    if (sidByReplacesCid_.empty())
        return; // no Replaces retrieve in flight: nothing proxied concerns us
    if (host_.method(resp) != "INVITE")
        return;
    int status = host_.status(resp);
    if (status < 200)
        return;
    std::string cid = host_.header(resp, "Call-ID");
    auto at = sidByReplacesCid_.find(cid);
    if (at == sidByReplacesCid_.end())
        return;
    Session *sp = session(at->second);
    if (!sp || sp->replacesCallId != cid) {
        sidByReplacesCid_.erase(at);
        return;
    }
    {
        Session &s = *sp;
        if (s.state != SessionState::Retrieving)
            return;
        s.replacesCallId.clear();
        sidByReplacesCid_.erase(at);
        if (status < 300) {
            // Replaced: the parked party talks to the retriever now and BYEs our park dialog.
            stopMoh(s);
            eng::CallId id = s.callId;
            s.callId = 0;
            s.state = SessionState::Ended;
            storage_.run<eng::CallResult>([id](eng::Engine &e) { return e.completeRetrieve(id); },
                                          [this, id](eng::CallResult &done) {
                                              if (!done)
                                                  host_.log(PW_LOG_WARN, "callpark: complete retrieve of call {}: {}",
                                                            id, done.message);
                                          },
                                          true);
            // RFC 3891 §3: the parked party ends the replaced dialog itself; we end our side too so a party
            // that answered without honouring Replaces does not keep a stale dialog with us.
            if (s.a && s.a->dlg)
                host_.api()->dialog_end(s.a->dlg);
            reapLater(s.sid);
        } else {
            // Refused (e.g. no Replaces support): the call stays parked; the retriever sees the refusal.
            s.state = SessionState::Parked;
            abortLater(s.sid, s.callId);
        }
        return;
    }
}

// ---------------------------------------------------------------- connecting a fresh leg (recall, transfer)

void CallPark::connectLegs(Session &s, Leg *keep, Leg *fresh, const std::string &offer,
                           std::function<void(bool)> done) {
    uint64_t sid = s.sid;
    uint64_t keepId = keep ? keep->id : 0, freshId = fresh->id;
    auto fail = [this, freshId, offer] {
        // We owe the fresh leg an ACK for its 2xx (RFC 3261 §13.2.2.4); answer and hang up.
        Leg *f = legById(freshId);
        if (f && f->dlg) {
            auto parsed = parseSdp(offer);
            std::string ans;
            if (parsed)
                ans = buildHoldAnswer(*parsed, mediaIp(), 9, newSdpSessionId(), 1).sdp;
            host_.api()->dialog_ack(f->dlg, ans.empty() ? pw_str{} : ps(kSdp), ps(ans));
            host_.api()->dialog_end(f->dlg);
        }
    };
    if (!keep || !keep->dlg) {
        fail();
        done(false);
        return;
    }
    std::string toKeep = legSdp(s, keep, offer);
    Headers h; // who `keep` is connected to now: the recall answerer or the transfer target (RFC 3325 §9.1)
    addConnectedIdentity(h, fresh->peerDisplay, fresh->peerUri);
    bool sent =
        sendInDialog(keep->dlg, "INVITE", &h, offer.empty() ? "" : kSdp, toKeep, 0,
                     [this, sid, keepId, freshId, fail, done, offer](pw_dialog *, int status, const pw_msg *resp) {
                         if (status < 200)
                             return;
                         Session *sp = session(sid);
                         Leg *keep = legById(keepId), *fresh = legById(freshId);
                         bool alive = sp && keep && fresh && (sp->a == keep || sp->b == keep);
                         if (status < 300 && alive && fresh->dlg) {
                             std::string ans = host_.body(resp);
                             keep->remoteSdp = ans;
                             fresh->remoteSdp = offer;
                             std::string toFresh = legSdp(*sp, fresh, ans);
                             host_.api()->dialog_ack(fresh->dlg, ans.empty() ? pw_str{} : ps(kSdp), ps(toFresh));
                             done(true);
                         } else {
                             if (sp && keep && status >= 300 && !offer.empty())
                                 sdpRefused(*sp, keep);
                             fail();
                             done(false);
                         }
                     });
    if (!sent) {
        fail();
        done(false);
    }
}

// ---------------------------------------------------------------- the bridge

void CallPark::onBridgedAck(Session &s, Leg *from, const pw_msg *ack) {
    std::string body = host_.body(ack);
    if (from->ackToId) {
        Leg *to = legById(from->ackToId);
        from->ackToId = 0;
        if (to && to->dlg) {
            std::string sdp = legSdp(s, to, body);
            host_.api()->dialog_ack(to->dlg, body.empty() ? pw_str{} : ps(kSdp), ps(sdp));
        }
        if (!body.empty())
            from->remoteSdp = body;
        return;
    }
    // The ACK to our offerless-INVITE 200 (or re-INVITE 200 with our hold offer) carries the answer.
    if (from == s.a && !body.empty() && s.state != SessionState::Bridged) {
        from->remoteSdp = body;
        startMohFromAnswer(s, body);
        saveBlob(s);
    }
}

void CallPark::onBridgedRequest(Session &s, Leg *from, pw_request *req) {
    const pw_msg *m = host_.msg(req);
    std::string method = host_.method(m);
    Leg *other = from == s.a ? s.b : s.a;
    if (from == s.transferor) { // the transferor's dialog is only waiting for its BYE
        host_.reply(req, method == "INVITE" ? 488 : 200);
        return;
    }
    if (method == "REFER") {
        onBridgedRefer(s, from, req);
        return;
    }
    if (!other || !other->dlg) {
        host_.reply(req, 481, "Call Does Not Exist");
        return;
    }
    if (method != "INVITE" && method != "UPDATE" && method != "INFO" && method != "OPTIONS" && method != "MESSAGE" &&
        method != "NOTIFY") {
        host_.reply(req, 501, "Not Implemented");
        return;
    }
    std::string body = host_.body(m);
    std::string ctype = host_.header(m, "Content-Type");
    Headers h;
    for (const char *name : {"Info-Package", "Event", "Subscription-State", "Session-Expires"}) {
        std::string v = host_.header(m, name);
        if (!v.empty())
            h.add(name, v);
    }
    bool offerless = method == "INVITE" && body.empty();
    // SDP relayed between the legs goes out under the receiving leg's own o= (RFC 3264 §8).
    const bool sdpOut = isSdpType(ctype) && !body.empty();
    std::string relayed = sdpOut ? legSdp(s, other, body) : body;
    pw_request *r = host_.api()->request_retain(req);
    uint64_t sid = s.sid, fromId = from->id, otherId = other->id;
    bool sent = sendInDialog(
        other->dlg, method, &h, body.empty() ? "" : ctype, relayed, offerless ? PW_SEND_DEFER_ACK : 0,
        [this, sid, fromId, otherId, r, method, offerless, sdpOut](pw_dialog *, int status, const pw_msg *resp) {
            if (status < 200)
                return;
            Session *sp = session(sid);
            Leg *from = legById(fromId), *other = legById(otherId);
            if (sp && other && sdpOut && status >= 300)
                sdpRefused(*sp, other);
            bool fromAlive = sp && from && (sp->a == from || sp->b == from) && from->dlg;
            std::string rb = host_.body(resp);
            std::string rct = resp ? host_.header(resp, "Content-Type") : "";
            // The answer goes out under the requesting leg's o= (RFC 3264 §8).
            std::string back = fromAlive && status < 300 && isSdpType(rct) ? legSdp(*sp, from, rb) : rb;
            if (status < 300 && method == "INVITE" && fromAlive) {
                host_.api()->dialog_accept_request(from->dlg, r, nullptr, 0, rb.empty() ? pw_str{} : ps(rct), ps(back));
                if (offerless && other)
                    from->ackToId = other->id;
            } else {
                host_.reply(r, status, {}, nullptr, rb.empty() ? "" : rct, back);
            }
            if (other && status < 300 && !rb.empty() && method != "INFO")
                other->remoteSdp = rb;
            host_.api()->request_release(r);
        });
    if (!sent) {
        host_.reply(r, 500, "Relay Failed");
        host_.api()->request_release(r);
    }
}

void CallPark::endBridge(Session &s, Leg *from) {
    // One leg hung up (its BYE was answered by the host): hang up the other (RFC 3725 §6).
    for (Leg *l : {s.a, s.b})
        if (l && l != from && l->dlg)
            host_.api()->dialog_end(l->dlg);
    if (s.transferor && s.transferor->dlg)
        host_.api()->dialog_end(s.transferor->dlg);
    s.state = SessionState::Ended;
    reapLater(s.sid);
}

} // namespace parkway::callpark
