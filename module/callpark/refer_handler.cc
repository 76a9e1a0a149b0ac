// REFER handling.
//  * A REFER passing through the proxy whose Refer-To classifies as park (docs/callpark.md "Park"):
//      passthrough: remember the intent (parker = REFER From) keyed by the transferee's dialog, let it through;
//                   the transferee's INVITE to the park code is parked by park_flow.cc.
//      takeover:    202, an immediate NOTIFY "SIP/2.0 100 Trying" (Grandstream gives up ~7 s without one;
//                   RFC 3515 §2.4.4), INVITE the transferee with Replaces for the parker<->transferee dialog
//                   (RFC 3891), park that dialog, final sipfrag NOTIFY.
//  * A REFER from a leg of a bridge we hold: park code -> re-park the other leg; else a blind transfer.
#include "callpark.hh"
#include "wire/bodies.hh"
#include "wire/sdp.hh"

namespace parkway::callpark {

namespace {

// "udp:127.0.0.1:5062" -> "sip:127.0.0.1:5062;transport=udp"
std::string sourceToUri(const std::string &src) {
    size_t c = src.find(':');
    if (c == std::string::npos)
        return {};
    return "sip:" + src.substr(c + 1) + ";transport=" + src.substr(0, c);
}
} // namespace

std::optional<ReferIntent> CallPark::takeReferIntent(const std::string &fromUri, const std::string &targetUser) {
    int64_t now = host_.nowMs();
    std::optional<ReferIntent> found;
    for (auto it = referIntents_.begin(); it != referIntents_.end();) {
        if (it->second.expiresAtMs < now) {
            it = referIntents_.erase(it);
            continue;
        }
        if (!found && it->second.transfereeUri == fromUri && it->second.targetUser == targetUser) {
            found = it->second;
            it = referIntents_.erase(it);
            continue;
        }
        ++it;
    }
    return found;
}

pw_verdict CallPark::onRefer(pw_request *req, const pw_msg *m) {
    auto target = host_.referTo(m);
    if (!target || target->user.empty())
        return PW_CONTINUE;
    std::string domain = target->host;
    if (domain.empty() || !host_.isLocalDomain(domain))
        return PW_CONTINUE;
    // The parker is who sent the REFER (docs/auth.md): an in-dialog REFER carries no credentials until asked.
    Host::Who sender = who(req);
    std::string fromUri = sender.uri;
    eng::Classification c = engine_->classify(domain, uriUser(fromUri), target->user);
    // A transfer to a lot slot (`702`) parks into it (rule attr `transfer=`, docs/callpark.md "Transfer to a slot").
    if (auto parkInto = eng::transferToSlot(c))
        c = std::move(*parkInto);
    if (c.action != eng::Action::Park && c.action != eng::Action::GroupPark)
        return PW_CONTINUE;
    if (fromUri.empty())
        return refuseStranger(req);
    if (uriHost(fromUri) != domain) {
        host_.reply(req, 403, "Forbidden");
        return PW_STOP;
    }
    std::string callId = host_.header(m, "Call-ID");
    std::string key = callId + ";" + host_.tag(m, "To") + ";" + host_.tag(m, "From");

    if (settings_.referMode == ReferMode::Passthrough) {
        takeReferIntent({}, {}); // prunes expired intents
        ReferIntent in;
        in.transfereeUri = host_.uri(m, "To");
        in.targetUser = target->user;
        in.parker = fromUri;
        in.parkerDisplay = host_.display(m, "From");
        in.expiresAtMs = host_.nowMs() + settings_.referMemoryMs;
        referIntents_[key] = in;
        return PW_CONTINUE;
    }

    // ---- takeover
    struct Ctx {
        std::string notifyUri, hop, from, to, callId, contact, fromTag, toTag;
        uint32_t cseq = 0; // fallback numbering (older host)
    };
    auto ctx = std::make_shared<Ctx>();
    ctx->notifyUri = host_.uri(m, "Contact");
    ctx->hop = sourceToUri(host_.source(m));
    ctx->from = host_.header(m, "To"); // we speak for the transferee in the parker's dialog
    ctx->to = host_.header(m, "From");
    ctx->callId = callId;
    // ... with the transferee's Contact: the parker's remote target for this dialog is the REFER's Request-URI
    // (RFC 3261 §12.2.1.1). A phone that takes a NOTIFY's Contact as a target refresh keeps reaching the
    // transferee, so its BYE after a failed takeover ends the real call (never 481 from us).
    ctx->contact = "<" + host_.requestUri(m) + ">";
    // Each NOTIFY continues the transferee's CSeq space, and the host shifts the transferee's later requests
    // to the parker past it (module.h dialog_inject_cseq): the parker's §12.2.2 check passes for both. An older
    // host cannot: a high number the parker accepts, whose later requests from the transferee it may refuse.
    ctx->fromTag = host_.tag(m, "To");
    ctx->toTag = host_.tag(m, "From");
    ctx->cseq = 2000000000u + static_cast<uint32_t>(host_.nowMs() % 100000000);
    auto notify = [this, ctx](int status, bool final) {
        uint32_t cseq = host_.injectCseq(ctx->callId, ctx->fromTag, ctx->toTag);
        Headers h;
        h.add("Call-ID", ctx->callId);
        h.add("Contact", ctx->contact);
        h.add("CSeq", fmt::format("{} NOTIFY", cseq ? cseq : ctx->cseq++));
        h.add("Event", "refer");
        h.add("Subscription-State", final ? "terminated;reason=noresource" : "active;expires=60");
        std::string body = buildSipfrag(status);
        pw_uac_params p{};
        p.struct_size = sizeof(p);
        p.method = PW_STR_LIT("NOTIFY");
        p.request_uri = ps(ctx->notifyUri);
        p.from = ps(ctx->from);
        p.to = ps(ctx->to);
        p.next_hop = ps(ctx->hop);
        p.headers = h.data();
        p.n_headers = h.size();
        p.content_type = ps(kSipfragContentType);
        p.body = ps(body);
        host_.api()->send_request(host_.raw(), &p, nullptr, nullptr);
    };

    // Park first (docs/callpark.md "Durability"), then take the call over: a failed INVITE undoes the park.
    eng::ParkRequest pr = eng::makeParkRequest(c, domain, uriUser(fromUri));
    pr.parkedUri = host_.uri(m, "To");
    pr.parkedDisplay = host_.display(m, "To");
    // Keyed by the dialog, not the CSeq: a duplicated REFER parks once while the call is parked.
    pr.requestKey = "refer;" + key;
    // The duplicate check and the park run on the storage thread when there is one (docs/cluster.md "Threads");
    // the REFER is answered at once, the takeover goes on with the park's result.
    host_.reply(req, 202, "Accepted");
    const ReferTakeover t{host_.tag(m, "To"), host_.tag(m, "From"), host_.requestUri(m), host_.display(m, "From"),
                          target->user};
    // merged: a REFER of this dialog parked the call already; that one carries it out.
    bool queued = storage_.run<ParkOnce>([pr](eng::Engine &e) { return parkOnce(e, pr); },
                                         [this, pr, t, notify, domain, fromUri, callId](ParkOnce &o) {
                                             if (o.merged)
                                                 return;
                                             notify(100, false);
                                             if (!o.r) {
                                                 notify(engineErrorStatus(o.r.error), true);
                                                 return;
                                             }
                                             referTakeoverParked(o.r, pr, t, notify, domain, fromUri, callId);
                                         });
    if (!queued)
        notify(503, true);
    return PW_STOP;
}

// The REFER's park is stored: INVITE the transferee with Replaces (RFC 3891) and hold it once it answers.
void CallPark::referTakeoverParked(const eng::ParkResult &r, const eng::ParkRequest &pr, const ReferTakeover &t,
                                   const std::function<void(int, bool)> &notify, const std::string &domain,
                                   const std::string &fromUri, const std::string &callId) {
    Session &s = newSession();
    s.domain = domain;
    s.parker = uriUser(fromUri);
    bindCall(s, r.call.id);
    setParkedOn(s, r.call, domain);
    s.state = SessionState::Connecting; // not retrievable until the transferee is ours
    Leg *leg = newLeg(s.sid, "parked");
    leg->peerUri = pr.parkedUri;
    leg->peerDisplay = pr.parkedDisplay;
    s.a = leg;

    ReplacesValue rv{callId, t.toTag, t.fromTag, false};
    Headers h;
    h.add("Replaces", formatReplaces(rv));
    h.add("Referred-By", nameAddr(t.fromDisplay, fromUri));
    h.add("Require", "replaces");
    std::string ruri = t.ruri;
    // From is the park code the call was transferred to, not the parker: a phone refuses an INVITE that seems to
    // come from the party it is talking to, and this call now belongs to the park slot.
    std::string from = nameAddr("Call Park", aor(t.targetUser, domain));
    std::string to = nameAddr(pr.parkedDisplay, pr.parkedUri);
    pw_uac_params p{};
    p.struct_size = sizeof(p);
    p.method = PW_STR_LIT("INVITE");
    p.request_uri = ps(ruri);
    p.from = ps(from);
    p.to = ps(to);
    p.headers = h.data();
    p.n_headers = h.size();
    p.flags = PW_SEND_DEFER_ACK; // offerless: the transferee offers in its 2xx, our hold answer goes in the ACK
    uint64_t sid = s.sid;
    uint64_t legId = leg->id;
    const eng::Millis recallAt = r.call.recallAt;
    Pending *pend =
        invitePending(leg, [this, sid, legId, notify, recallAt](pw_dialog *dlg, int status, const pw_msg *resp) {
            if (status < 200)
                return;
            Leg *leg = legById(legId);
            Session *sp = session(sid);
            if (status >= 300) {
                if (sp && sp->callId) {
                    abandonLater(sp->callId);
                    sp->callId = 0;
                    stopMoh(*sp);
                    sp->state = SessionState::Ended;
                    reapLater(sp->sid);
                }
                notify(status, true);
                return;
            }
            if (!sp || !leg || sp->a != leg || !dlg ||
                leg->finalSeen) { // late or duplicate 2xx: ACK and hang up (RFC 3261 §13.2.2.4)
                if (dlg) {
                    host_.api()->dialog_ack(dlg, {}, {});
                    host_.api()->dialog_end(dlg);
                }
                return;
            }
            leg->finalSeen = true;
            std::string offer = host_.body(resp);
            std::string ans = offer.empty() ? std::string() : holdAnswerFor(*sp, offer);
            host_.api()->dialog_ack(dlg, ans.empty() ? pw_str{} : ps(kSdp), ps(ans));
            leg->remoteSdp = offer;
            leg->confirmed = true;
            sp->state = SessionState::Parked;
            saveBlob(*sp);
            armRecall(*sp, recallAt);
            notify(200, true);
        });
    leg->dlg = host_.api()->dialog_invite(host_.raw(), &p, pendingResponse, uacLegCallbacks(), pend);
    if (!leg->dlg) {
        abandonLater(s.callId);
        s.callId = 0;
        s.a = nullptr;
        dropLeg(leg);
        s.state = SessionState::Ended;
        notify(503, true);
    }
}

// ---------------------------------------------------------------- REFER inside a bridge we hold

void CallPark::onBridgedRefer(Session &s, Leg *from, pw_request *req) {
    const pw_msg *m = host_.msg(req);
    Leg *other = from == s.a ? s.b : s.a;
    auto target = host_.referTo(m);
    if (!target || !other || !other->dlg) {
        host_.reply(req, target ? 481 : 400, target ? "Call Does Not Exist" : "Bad Refer-To");
        return;
    }
    host_.reply(req, 202, "Accepted");
    uint64_t sid = s.sid;
    uint64_t fromId = from->id;
    auto notify = [this, fromId](int status, bool final) {
        Leg *from = legById(fromId);
        if (!from || !from->dlg)
            return;
        Headers h;
        h.add("Event", "refer");
        h.add("Subscription-State", final ? "terminated;reason=noresource" : "active;expires=60");
        std::string body = buildSipfrag(status);
        sendInDialog(from->dlg, "NOTIFY", &h, kSipfragContentType, body, 0, [](pw_dialog *, int, const pw_msg *) {});
    };
    notify(100, false);

    std::string domain = target->host;
    std::string caller = uriUser(from->peerUri);
    eng::Classification c;
    if (!domain.empty() && host_.isLocalDomain(domain))
        c = engine_->classify(domain, caller, target->user);
    if (auto parkInto = eng::transferToSlot(c)) // a transfer to a lot slot re-parks there, never bridges
        c = std::move(*parkInto);

    if (c.action == eng::Action::Park || c.action == eng::Action::GroupPark) {
        eng::ParkRequest pr = eng::makeParkRequest(c, domain, caller);
        pr.parkedUri = other->peerUri;
        pr.parkedDisplay = other->peerDisplay;
        pr.requestKey = "repark;" + host_.header(m, "Call-ID") + ";" + host_.header(m, "CSeq");
        // The park runs on the storage thread when there is one (docs/cluster.md "Threads"). The legs are arranged
        // first, as for the blind transfer below: the transferor may BYE right after the 202 (it is only waiting
        // for its BYE then), the other party becomes the leg the session holds. The continuation finds session and
        // legs again by id; a park that failed puts the bridge back.
        const bool fromWasA = from == s.a;
        const uint64_t otherId = other->id;
        s.transferor = from;
        if (fromWasA)
            setParkedLeg(s, other); // our o= towards it stays the one it already knows (RFC 3264 §8)
        s.b = nullptr;
        bool queued = storage_.run<eng::ParkResult>(
            [pr](eng::Engine &e) { return e.park(pr); },
            [this, sid, fromId, otherId, fromWasA, domain, caller, notify](eng::ParkResult &r) {
                bridgedReferParked(sid, fromId, otherId, fromWasA, domain, caller, r, notify);
            });
        if (!queued) { // the storage queue is full (or stopping): as a refused park
            eng::ParkResult r;
            r.ok = false;
            r.error = eng::ErrorCode::Storage;
            bridgedReferParked(sid, fromId, otherId, fromWasA, domain, caller, r, notify);
        }
        return;
    }

    // Blind transfer carried out by us: INVITE the target (through our own router), connect, report.
    s.transferor = from;
    if (from == s.a)
        setParkedLeg(s, other); // the transferee becomes the leg the session holds
    s.b = nullptr;
    auto legs = ringTarget(s, target->uri, true, other->peerDisplay, other->peerUri, "", "target");
    if (legs.empty()) {
        notify(503, true);
        return;
    }
    Leg *fresh = legs.front();
    fresh->onAnswer = [this, sid, notify](Leg *leg, int status, const pw_msg *resp) {
        Session *sp = session(sid);
        if (!sp)
            return;
        if (status >= 300) {
            notify(status, true);
            if (sp->a && sp->a->dlg)
                host_.api()->dialog_end(sp->a->dlg); // nobody is left for the transferee
            return;
        }
        std::string offer = host_.body(resp);
        connectLegs(*sp, sp->a, leg, offer, [this, sid, leg, notify](bool ok) {
            Session *s2 = session(sid);
            if (!s2)
                return;
            if (ok) {
                s2->b = leg;
                s2->state = SessionState::Bridged;
                notify(200, true);
            } else {
                notify(500, true);
            }
        });
    };
}

// The re-park of a bridged REFER is stored (or refused): hold the other party, or put the bridge back.
void CallPark::bridgedReferParked(uint64_t sid, uint64_t fromId, uint64_t otherId, bool fromWasA,
                                  const std::string &domain, const std::string &caller, const eng::ParkResult &r,
                                  const std::function<void(int, bool)> &notify) {
    Session *sp = session(sid);
    Leg *from = legById(fromId), *other = legById(otherId);
    const bool intact =
        sp && other && other->dlg && sp->a == other && !sp->b && !sp->callId && sp->state == SessionState::Bridged;
    if (!intact) { // a BYE ended the call meanwhile: nobody to park
        if (r)
            abandonLater(r.call.id);
        notify(487, true);
        return;
    }
    Session &s = *sp;
    if (!r) {
        notify(engineErrorStatus(r.error), true);
        if (from && from->dlg && s.transferor == from) { // the two talk on as before
            s.transferor = nullptr;
            if (fromWasA)
                setParkedLeg(s, from);
            s.b = fromWasA ? other : from;
        } else if (other->dlg) {
            host_.api()->dialog_end(other->dlg); // the transferor is gone: nobody is left for the other party
        }
        return;
    }
    bindCall(s, r.call.id);
    s.domain = domain;
    s.parker = caller;
    setParkedOn(s, r.call, domain);
    s.state = SessionState::Parked;
    std::string offer = holdOfferFor(s);
    const eng::CallId id = r.call.id;
    const eng::Millis recallAt = r.call.recallAt; // (the call's deadline; read with the park, not again here)
    sendInDialog(other->dlg, "INVITE", nullptr, kSdp, offer, 0,
                 [this, sid, id, recallAt, notify](pw_dialog *, int status, const pw_msg *resp) {
                     if (status < 200)
                         return;
                     Session *sp = session(sid);
                     if (!sp)
                         return;
                     if (status < 300) {
                         if (sp->a)
                             sp->a->remoteSdp = host_.body(resp);
                         startMohFromAnswer(*sp, host_.body(resp));
                         saveBlob(*sp);
                         if (sp->callId == id)
                             armRecall(*sp, recallAt);
                         notify(200, true);
                     } else {
                         notify(status, true);
                         if (sp->a && sp->a->dlg)
                             host_.api()->dialog_end(sp->a->dlg);
                     }
                 });
}

} // namespace parkway::callpark
