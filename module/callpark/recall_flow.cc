// Recall (docs/callpark.md "Recall"): a timer per parked call from the engine's absolute deadline. On expiry the engine
// says whom to ring; we send an offerless INVITE (RFC 3725) to every contact of that target with Alert-Info and a From
// display name that says "Recall"; the first answer wins, the others are cancelled; the answerer is connected to the
// parked party as a retrieve would. No answer -> the engine's next stage or retry.
#include "callpark.hh"
#include "wire/sdp.hh"

namespace parkway::callpark {

namespace {

// The members of a recall step's alternate group when ringStep may ring it (a self-park: no parker, the alternate
// a group): read with the step, on the storage thread, so ringStep does not read the store on the SIP thread.
std::optional<std::vector<std::string>> alternateGroupMembers(eng::Engine &e, const eng::RecallStep &step) {
    if (!step || step.target.kind != eng::RecallTarget::Kind::Parker || !step.call.parker.empty() ||
        !step.call.recall.alternate || step.call.recall.alternate->kind != eng::RecallTarget::Kind::Group)
        return std::nullopt;
    try {
        auto g = e.group(step.call.domain, step.call.recall.alternate->value);
        return g ? g->members : std::vector<std::string>{};
    } catch (...) {
        return std::nullopt; // read again on the SIP thread
    }
}

} // namespace

void CallPark::armRecall(Session &s, eng::Millis at) {
    cancelTimer(s.recallTimer);
    if (!s.callId || at <= 0)
        return;
    int64_t delay = at - host_.nowMs();
    if (delay < 0)
        delay = 0; // overdue (e.g. after a restart): recall now
    uint64_t sid = s.sid;
    s.recallTimer = after(static_cast<uint64_t>(delay), [this, sid] { recallFire(sid); });
}

void CallPark::recallFire(uint64_t sid) {
    Session *sp = session(sid);
    if (!sp)
        return;
    Session &s = *sp;
    s.recallTimer = 0;
    if (!s.callId || (s.state != SessionState::Parked && s.state != SessionState::Recalling))
        return;
    // The step runs on the storage thread when there is one (docs/cluster.md "Threads"); what follows finds the
    // session again: it may have been retrieved, abandoned or taken over meanwhile.
    struct Fired {
        eng::RecallStep step;
        std::optional<eng::ParkedCall> call;                // not due yet by the engine's clock: when it is
        std::optional<std::vector<std::string>> altMembers; // the alternate group ringStep may need
    };
    const eng::CallId id = s.callId;
    storage_.run<Fired>(
        [id](eng::Engine &e) {
            Fired f;
            f.step = e.recallStep(id);
            if (!f.step && f.step.error == eng::ErrorCode::BadState) {
                try {
                    f.call = e.get(id);
                } catch (...) {
                }
            }
            f.altMembers = alternateGroupMembers(e, f.step);
            return f;
        },
        [this, sid, id](Fired &f) { recallStepped(sid, id, f.step, f.call, f.altMembers ? &*f.altMembers : nullptr); },
        true);
}

void CallPark::recallStepped(uint64_t sid, eng::CallId id, const eng::RecallStep &step,
                             const std::optional<eng::ParkedCall> &call, const std::vector<std::string> *altGroup) {
    Session *sp = session(sid);
    if (!sp || sp->callId != id || (sp->state != SessionState::Parked && sp->state != SessionState::Recalling))
        return;
    Session &s = *sp;
    if (!step && step.error == eng::ErrorCode::Storage) {
        // The database is away: the call stays parked with its music; the recall is tried again shortly (it
        // fires once, when the database has recorded it).
        storageFailed(fmt::format("recall of call {}", s.callId), step.message);
        armRecall(s, host_.nowMs() + static_cast<int64_t>(kStorageRetryMs));
        return;
    }
    if (!step) {
        if (step.error == eng::ErrorCode::NotOwner) { // taken over by another node: it rings, not us
            dropLostSession(s, step.message);
            return;
        }
        if (step.error == eng::ErrorCode::BadState && call && call->recallAt > host_.nowMs()) {
            armRecall(s, call->recallAt); // not due yet by the engine's clock: wait for it
            return;
        }
        host_.log(PW_LOG_WARN, "callpark: recall of call {}: {}", s.callId, step.message);
        return;
    }
    ringStep(s, step, altGroup);
}

std::vector<Leg *> CallPark::ringTarget(Session &s, const std::string &target, bool isNumber,
                                        const std::string &fromDisplay, const std::string &fromUri,
                                        const std::string &alertInfo, const std::string &role) {
    std::vector<Leg *> legs;
    std::string aorUri = target.rfind("sip:", 0) == 0 || target.rfind("sips:", 0) == 0 || target.rfind("tel:", 0) == 0
                             ? target
                             : aor(target, s.domain);
    // A user: its contacts (through their Path) or its AOR through the outbound proxy (notify_target).
    std::vector<Destination> dests;
    if (!isNumber)
        dests = destinationsFor(aorUri, s.domain);
    if (dests.empty()) // a number, or a user we cannot reach directly: through our own routing (router module)
        dests.push_back({aorUri, ourContact()});
    std::string from = nameAddr(fromDisplay, fromUri);
    std::string to = nameAddr("", aorUri);
    uint64_t sid = s.sid;
    for (const Destination &dest : dests) {
        const std::string &uri = dest.uri, &hop = dest.hop; // hop: a URI or a Path route set (module.h)
        Headers h;
        if (!alertInfo.empty())
            h.add("Alert-Info", alertInfo);
        pw_uac_params p{};
        p.struct_size = sizeof(p);
        p.method = PW_STR_LIT("INVITE");
        p.request_uri = ps(uri);
        p.from = ps(from);
        p.to = ps(to);
        p.next_hop = ps(hop);
        p.headers = h.data();
        p.n_headers = h.size();
        p.flags = PW_SEND_DEFER_ACK; // offerless (RFC 3725): the answerer offers, the parked party answers
        Leg *leg = newLeg(sid, role);
        leg->peerUri = aorUri;
        uint64_t legId = leg->id;
        Pending *pend = invitePending(leg, [this, legId](pw_dialog *dlg, int status, const pw_msg *resp) {
            if (status < 200)
                return;
            bool ok2xx = status < 300;
            auto hangUp = [this, dlg] {
                // A forked or late 2xx nobody wants: ACK it and hang up (RFC 3261 §13.2.2.4).
                host_.api()->dialog_ack(dlg, {}, {});
                host_.api()->dialog_end(dlg);
            };
            Leg *leg = legById(legId);
            if (!leg || leg->finalSeen) {
                if (ok2xx && dlg)
                    hangUp();
                return;
            }
            leg->finalSeen = true;
            leg->answered = ok2xx;
            leg->confirmed = ok2xx;
            leg->failed = !ok2xx;
            if (leg->sid == 0 || !leg->onAnswer) {
                if (ok2xx && dlg)
                    hangUp();
                return;
            }
            auto cb = leg->onAnswer;
            cb(leg, status, resp);
        });
        leg->dlg = host_.api()->dialog_invite(host_.raw(), &p, pendingResponse, uacLegCallbacks(), pend);
        if (!leg->dlg) {
            dropLeg(leg);
            continue;
        }
        legs.push_back(leg);
    }
    return legs;
}

void CallPark::ringStep(Session &s, const eng::RecallStep &step, const std::vector<std::string> *altGroup) {
    cancelBranches(s, nullptr);
    s.state = SessionState::Recalling;
    s.winner = nullptr;
    s.winnerId = 0;
    auto call = step.call;
    std::string who = call.parkedDisplay.empty() ? uriUser(call.parkedUri) : call.parkedDisplay;
    std::string display = "Recall: " + who;
    bool isNumber = step.target.kind == eng::RecallTarget::Kind::Number;
    std::vector<std::string> ring = step.ring;
    // No parker recorded (a self-park: the parker is never the parked party): the engine names the parked-on
    // extension. One without a registered contact cannot answer, so the call's alternate rings instead
    // (docs/callpark.md "Recall"); with no alternate the extension is still tried through our routing.
    if (step.target.kind == eng::RecallTarget::Kind::Parker && call.parker.empty() && !call.extension.empty() &&
        ring == std::vector<std::string>{call.extension} && call.recall.alternate &&
        call.recall.alternate->kind != eng::RecallTarget::Kind::Parker) {
        std::string extAor = aor(call.extension, call.domain);
        if (destinationsFor(extAor, call.domain).empty()) {
            const eng::RecallTarget &alt = *call.recall.alternate;
            isNumber = alt.kind == eng::RecallTarget::Kind::Number;
            ring.clear();
            if (alt.kind == eng::RecallTarget::Kind::Group) {
                if (altGroup) // read with the recall step, on the storage thread
                    ring = *altGroup;
                else // that read failed (the database away): nobody rings, counted as no answer
                    host_.log(PW_LOG_WARN, "callpark: recall of call {}: the members of group {} could not be read",
                              call.id, alt.value);
            } else {
                ring.push_back(alt.value);
            }
            host_.log(PW_LOG_INFO,
                      "callpark: recall of call {}: no parker and {} has no contact: ringing the alternate {}", call.id,
                      extAor, alt.toString());
        }
    }
    for (const std::string &target : ring) {
        auto legs = ringTarget(s, target, isNumber, display, call.parkedUri, settings_.recallAlertInfo, "recall");
        for (Leg *l : legs) {
            l->onAnswer = [this](Leg *leg, int status, const pw_msg *resp) { branchResponse(leg, status, resp); };
            s.branches.push_back(l);
        }
    }
    uint64_t sid = s.sid;
    host_.log(PW_LOG_INFO, "callpark: recall {} of call {}: ringing {} branch(es) for {} s", step.attempt, s.callId,
              s.branches.size(), step.ringSeconds);
    cancelTimer(s.ringTimer);
    // Nobody to ring: count it as no answer at once (on the next loop turn, not re-entrantly).
    uint64_t ringMs = s.branches.empty() ? 0 : static_cast<uint64_t>(std::max(1, step.ringSeconds)) * 1000;
    s.ringTimer = after(ringMs, [this, sid] { ringTimeout(sid); });
}

void CallPark::ringTimeout(uint64_t sid) {
    Session *sp = session(sid);
    if (!sp)
        return;
    Session &s = *sp;
    cancelTimer(s.ringTimer);
    if (s.state != SessionState::Recalling || s.winner || !s.callId)
        return;
    cancelBranches(s, nullptr);
    s.state = SessionState::Parked; // still parked (engine: recalling), music on hold goes on
    const eng::CallId id = s.callId;
    storage_.run<eng::RecallStep>([id](eng::Engine &e) { return e.recallNoAnswer(id); },
                                  [this, sid, id](eng::RecallStep &next) {
                                      Session *sp2 = session(sid);
                                      if (sp2 && sp2->callId == id && sp2->state == SessionState::Parked)
                                          recallUnanswered(*sp2, next);
                                  },
                                  true);
}

void CallPark::recallUnanswered(Session &s, const eng::RecallStep &next) {
    if (!next && next.error == eng::ErrorCode::NotOwner) {
        dropLostSession(s, next.message);
        return;
    }
    if (!next) {
        if (next.error == eng::ErrorCode::Storage) { // try the step again once the database is back
            storageFailed(fmt::format("recall of call {}", s.callId), next.message);
            armRecall(s, host_.nowMs() + static_cast<int64_t>(kStorageRetryMs));
            return;
        }
        host_.log(PW_LOG_WARN, "callpark: recall no-answer of call {}: {}", s.callId, next.message);
        return;
    }
    if (next.expired) { // max park time: the final target did not answer either
        endParkedTooLong(s, next.call);
        return;
    }
    armRecall(s, next.call.recallAt);
}

// Maximum park time (docs/callpark.md "Maximum park time"): the call has been parked max_park_time, its final
// recall target rang once more and nobody answered. The parked party gets a BYE saying why (RFC 3326 Reason,
// cause 480: nobody available), which ends our dialog; its on_terminated abandons the call in the engine (slot
// freed, watchers and park-info told, as for any hang-up).
void CallPark::endParkedTooLong(Session &s, const eng::ParkedCall &call) {
    host_.counter("parkway_park_expired_total", fmt::format("domain=\"{}\"", call.domain));
    host_.log(PW_LOG_INFO, "callpark: call {} ended: parked {} s (max park time {} s), final recall unanswered",
              call.id, (host_.nowMs() - call.parkedAt) / 1000, call.recall.maxParkSeconds);
    Leg *a = s.a;
    if (!a || !a->dlg) {
        sessionAbandoned(s);
        return;
    }
    Headers h;
    h.add("Reason", "SIP;cause=480;text=\"Parked too long\"");
    bool sent = sendInDialog(a->dlg, "BYE", &h, {}, {}, 0, [](pw_dialog *, int, const pw_msg *) {});
    if (!sent)
        host_.log(PW_LOG_WARN, "callpark: call {}: BYE with Reason could not be sent", call.id);
    host_.api()->dialog_end(a->dlg); // a pending BYE of ours is the dialog's BYE: none is sent twice
}

void CallPark::cancelBranches(Session &s, Leg *except) {
    for (Leg *l : s.branches) {
        if (l == except || !l->dlg)
            continue;
        l->onAnswer = nullptr; // a late 2xx is ACKed and hung up by the response closure
        if (host_.api()->dialog_cancel(l->dlg) != PW_OK)
            host_.api()->dialog_end(l->dlg);
    }
    s.branches.clear();
    if (except)
        s.branches.push_back(except);
}

void CallPark::branchResponse(Leg *leg, int status, const pw_msg *resp) {
    Session *sp = session(leg->sid);
    if (!sp)
        return;
    Session &s = *sp;
    if (status >= 300) {
        s.branches.erase(std::remove(s.branches.begin(), s.branches.end(), leg), s.branches.end());
        if (s.state == SessionState::Recalling && s.branches.empty() && !s.winner) {
            uint64_t sid = s.sid;
            cancelTimer(s.ringTimer);
            s.ringTimer = after(0, [this, sid] { ringTimeout(sid); });
        }
        return;
    }
    // 2xx: the first answer wins (docs/callpark.md "Recall")
    auto hangUp = [this](Leg *l) {
        if (!l->dlg)
            return;
        host_.api()->dialog_ack(l->dlg, {}, {});
        host_.api()->dialog_end(l->dlg);
    };
    if (s.winner || s.state != SessionState::Recalling || !s.callId) {
        hangUp(leg);
        return;
    }
    // The answer is claimed on the storage thread (docs/cluster.md "Threads"). Meanwhile this leg is the winner
    // (another 2xx is hung up), the other branches ring on, and the answerer's 2xx waits for its ACK (deferred:
    // the answerer retransmits it, RFC 3261 §13.3.1.4). The continuation finds session and leg again by id.
    s.winner = leg;
    s.winnerId = leg->id;
    const uint64_t sid = s.sid, legId = leg->id;
    const eng::CallId id = s.callId;
    const std::string by = uriUser(leg->peerUri);
    std::string offer = host_.body(resp);
    storage_.run<eng::CallResult>(
        [id, by](eng::Engine &e) { return e.recallAnswered(id, by); },
        [this, sid, legId, id, offer](eng::CallResult &claim) { recallClaimed(sid, legId, id, offer, claim); }, true);
}

void CallPark::recallClaimed(uint64_t sid, uint64_t legId, eng::CallId id, const std::string &offer,
                             const eng::CallResult &claim) {
    Session *sp = session(sid);
    Leg *leg = legById(legId);
    const bool claiming = sp && sp->winnerId == legId;
    if (claiming) {
        sp->winner = nullptr;
        sp->winnerId = 0;
    }
    const bool current = claiming && leg && leg->dlg && sp->callId == id && sp->state == SessionState::Recalling;
    if (!claim || !current) {
        if (sp && leg)
            sp->branches.erase(std::remove(sp->branches.begin(), sp->branches.end(), leg), sp->branches.end());
        if (leg && leg->dlg) { // the answer lost: ACK its 2xx and hang up (RFC 3261 §13.2.2.4)
            host_.api()->dialog_ack(leg->dlg, {}, {});
            host_.api()->dialog_end(leg->dlg);
        }
        if (!sp || sp->callId != id)
            return; // the call left this session meanwhile (BYE, takeover): its own path ends it
        Session &s = *sp;
        if (!claim && claim.error == eng::ErrorCode::NotOwner) {
            dropLostSession(s, claim.message);
            return;
        }
        if (claim && claiming && s.state == SessionState::Recalling) {
            // The answerer went away while its answer was recorded: parked again, as when it hangs up before the
            // connect (park_flow.cc legTerminated).
            cancelBranches(s, nullptr);
            cancelTimer(s.ringTimer);
            s.state = SessionState::Parked;
            abortLater(s.sid, id);
            return;
        }
        if (claim) // the session moved on meanwhile (a forced recall): the engine lets the answer go
            abortLater(s.sid, id);
        if (claiming && s.state == SessionState::Recalling && (s.branches.empty() || !s.ringTimer)) {
            // Nobody else rings, or the ring time ran out while the answer was being recorded: no answer.
            cancelTimer(s.ringTimer);
            s.ringTimer = after(0, [this, sid] { ringTimeout(sid); });
        }
        return;
    }
    Session &s = *sp;
    s.winner = leg;
    cancelTimer(s.ringTimer);
    cancelBranches(s, leg);
    s.branches.clear();
    s.b = leg;
    s.state = SessionState::Connecting;
    connectLegs(s, s.a, leg, offer, [this, sid](bool ok) {
        Session *s2 = session(sid);
        if (!s2)
            return;
        eng::CallId id = s2->callId;
        s2->winner = nullptr;
        if (ok) {
            stopMoh(*s2);
            s2->callId = 0;
            s2->state = SessionState::Bridged;
            storage_.run<eng::CallResult>([id](eng::Engine &e) { return e.completeRetrieve(id); },
                                          [this, id](eng::CallResult &r) {
                                              if (!r)
                                                  host_.log(PW_LOG_WARN, "callpark: complete recall of call {}: {}", id,
                                                            r.message);
                                          },
                                          true);
            host_.log(PW_LOG_INFO, "callpark: call {} recalled to {}", id, s2->b ? s2->b->peerUri : "");
        } else {
            s2->b = nullptr;
            if (s2->a && s2->a->dlg && id) {
                s2->state = SessionState::Parked;
                abortLater(s2->sid, id); // re-arms the recall at the call's deadline
            }
        }
    });
}

void CallPark::forceRecallPrepare(Session &s) {
    cancelTimer(s.recallTimer);
    if (s.state == SessionState::Recalling)
        cancelBranches(s, nullptr);
    cancelTimer(s.ringTimer);
    s.state = SessionState::Parked;
}

eng::RecallStep CallPark::forceRecallStep(eng::Engine &e, eng::CallId id, int64_t nowMs,
                                          std::optional<std::vector<std::string>> *altMembers) {
    // The override shows the engine the deadline for this one call only. We run with the engine locked (a storage
    // job, or the locked accessor inline), so no other operation sees it.
    auto call = e.get(id);
    if (call && call->recallAt > nowMs)
        clockOverrideMs = call->recallAt;
    try {
        eng::RecallStep step = e.recallStep(id);
        clockOverrideMs = 0;
        *altMembers = alternateGroupMembers(e, step); // read here, not by ringStep on the SIP thread
        return step;
    } catch (...) {
        clockOverrideMs = 0;
        throw;
    }
}

void CallPark::forceRecallStepped(uint64_t sid, eng::CallId id, const eng::RecallStep &step,
                                  const std::optional<std::vector<std::string>> &altMembers) {
    Session *s = session(sid);
    if (!s || s->callId != id || s->state != SessionState::Parked)
        return; // retrieved, hung up or taken over meanwhile: that wins, nothing rings
    if (!step && step.error != eng::ErrorCode::Storage && step.error != eng::ErrorCode::NotOwner) {
        host_.log(PW_LOG_WARN, "callpark: forced recall of call {}: {}", id, step.message);
        return;
    }
    // Rings; the database away: the recall is tried again shortly; taken over by another node: dropped here.
    recallStepped(sid, id, step, std::nullopt, altMembers ? &*altMembers : nullptr);
}

} // namespace parkway::callpark
