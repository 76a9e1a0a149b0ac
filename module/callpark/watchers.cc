// Notifications, always after the engine committed (engine listeners run after the commit; we handle the
// events on the next loop turn so the park dialog exists and its tags can be shown):
//   * RFC 4235 dialog-info to slot / group / lot watchers (SUBSCRIBE Event: dialog), full state every time,
//     version +1 per NOTIFY per subscription (RFC 4235 §4.1.2);
//   * BroadWorks x-broadworks-callpark-info on SUBSCRIBE Event: call-info with that Accept;
//   * park-info out-of-dialog NOTIFY to every contact of the parked-on extension (+ group members);
//   * admin events and Prometheus metrics.
#include "callpark.hh"
#include "wire/bodies.hh"

#include <parkway/engine/json.hh>

#include <nlohmann/json.hpp>

#include <algorithm>

namespace parkway::callpark {

namespace {

void subOnRefresh(void *arg, pw_dialog *, uint32_t expires) {
    auto *sub = static_cast<Subscription *>(arg);
    CallPark *cp = sub->mod;
    try {
        if (expires == 0) {
            cp->notifySubscription(*sub, true);
            sub->ending = true;
            if (sub->dlg) cp->host().api()->dialog_end(sub->dlg);
        } else {
            sub->expiresAtMs = cp->host().nowMs() + int64_t(expires) * 1000;
            cp->notifySubscription(*sub); // RFC 6665 §4.2.2: a refresh gets the current (full) state
        }
    } catch (const std::exception &e) {
        cp->host().log(PW_LOG_ERROR, "callpark: subscription refresh failed: {}", e.what());
    }
}

void subOnTerminated(void *arg, pw_dialog *, pw_dialog_end_reason) {
    auto *sub = static_cast<Subscription *>(arg);
    sub->mod->forgetWatcher(*sub);
    sub->dlg = nullptr;
    sub->mod->subs_.erase(sub);
}

void subOnRequest(void *arg, pw_dialog *, pw_request *req) {
    auto *sub = static_cast<Subscription *>(arg);
    sub->mod->host().reply(req, 200);
}

const pw_dialog_callbacks kSubCallbacks = {sizeof(pw_dialog_callbacks), subOnRequest, nullptr, subOnRefresh,
                                           subOnTerminated};

std::string eventName(const std::string &hdr) {
    std::string e = hdr.substr(0, hdr.find(';'));
    while (!e.empty() && e.back() == ' ') e.pop_back();
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
    return e;
}

struct ContactList {
    std::vector<std::pair<std::string, std::string>> items;
};
void collect(void *arg, const pw_contact *c) {
    static_cast<ContactList *>(arg)->items.emplace_back(str(c->uri), str(c->received));
}

} // namespace

const pw_dialog_callbacks *CallPark::subCallbacks() { return &kSubCallbacks; }

pw_verdict CallPark::onSubscribe(pw_request *req, const pw_msg *m) {
    if (!host_.tag(m, "To").empty()) return PW_CONTINUE; // refreshes of our subscriptions reach the dialog
    std::string event = eventName(host_.header(m, "Event"));
    if (event != "dialog" && event != "call-info") return PW_CONTINUE;
    std::string ruri = host_.requestUri(m);
    std::string domain = uriHost(ruri);
    if (domain.empty() || !host_.isLocalDomain(domain)) return PW_CONTINUE;
    std::string dial = uriUser(ruri);
    if (dial.empty()) return PW_CONTINUE;
    std::string caller = callerExtension(m);
    bool broadworks = false;
    if (event == "call-info") {
        bool accepts = false;
        for (unsigned i = 0; i < 16; ++i) {
            std::string acc = host_.header(m, "Accept", i);
            if (acc.empty()) break;
            if (acc.find("x-broadworks-callpark-info") != std::string::npos) accepts = true;
        }
        if (!accepts) return PW_CONTINUE; // shared-appearance call-info is not ours
        broadworks = true;
    }
    eng::Classification c = engine_->classify(domain, caller, dial);
    eng::Target target;
    if (c.action == eng::Action::Park || c.action == eng::Action::GroupPark || c.action == eng::Action::Retrieve ||
        c.action == eng::Action::Watch) {
        target = eng::watchTarget(c, domain, caller);
    } else if (broadworks) {
        target.kind = eng::TargetKind::Extension;
        target.domain = domain;
        target.name = dial;
    } else {
        return PW_CONTINUE;
    }
    if (uriHost(host_.uri(m, "From")) != domain) { // tenant isolation: watchers see call-ids and tags
        host_.reply(req, 403, "Forbidden");
        return PW_STOP;
    }
    std::string exp = host_.header(m, "Expires");
    uint32_t expires = 3600;
    if (!exp.empty()) {
        try {
            expires = static_cast<uint32_t>(std::stoul(exp));
        } catch (...) {
            host_.reply(req, 400, "Bad Expires");
            return PW_STOP;
        }
    }
    auto sub = std::make_unique<Subscription>();
    sub->mod = this;
    sub->target = target;
    sub->broadworks = broadworks;
    sub->entity = ruri.substr(0, ruri.find(';'));
    Subscription *sp = sub.get();
    subs_.emplace(sp, std::move(sub));
    sp->dlg = host_.api()->subscription_accept(req, expires, subCallbacks(), sp);
    if (!sp->dlg) {
        subs_.erase(sp);
        return PW_STOP;
    }
    std::string granted = host_.header(m, "Expires"); // the host clamps; we track the request's value
    sp->expiresAtMs = host_.nowMs() + int64_t(expires) * 1000;
    if (expires == 0) { // a fetch (RFC 6665 §4.4.3): one NOTIFY with the state, then done
        notifySubscription(*sp, true);
        sp->ending = true;
        host_.api()->dialog_end(sp->dlg);
        return PW_STOP;
    }
    notifySubscription(*sp);
    return PW_STOP;
}

CallPark::TargetView CallPark::targetView(const eng::Target &t) {
    TargetView v;
    v.st = engine_->targetState(t);
    return v;
}

void CallPark::notifySubscription(Subscription &sub, bool terminated) {
    if (!sub.dlg || sub.ending) return;
    TargetView view = targetView(sub.target);
    notifySubscription(sub, terminated, view);
    if (!terminated) saveWatchers({&sub});
}

// ---------------------------------------------------------------- persistence (SPEC §7: state is re-sent
// after restarts). Stored after each NOTIFY: the version and our CSeq moved; the subscription is resumed
// in the same dialog with the next version (RFC 4235 §4.1: versions keep increasing within a subscription).

eng::StoredWatcher CallPark::watcherRecord(Subscription &sub) {
    if (sub.storeId.empty())
        sub.storeId = host_.dialogGet(sub.dlg, PW_DLG_CALL_ID) + ";" + host_.dialogGet(sub.dlg, PW_DLG_LOCAL_TAG);
    nlohmann::json j;
    j["kind"] = static_cast<int>(sub.target.kind);
    j["domain"] = sub.target.domain;
    j["name"] = sub.target.name;
    j["slot"] = sub.target.slot;
    j["broadworks"] = sub.broadworks; // Event: call-info with the BroadWorks body, else dialog-info
    j["entity"] = sub.entity;
    j["version"] = sub.version; // the next version to send
    j["expires_at"] = sub.expiresAtMs;
    j["dialog"] = host_.dialogExport(sub.dlg);
    return {sub.storeId, j.dump()};
}

void CallPark::saveWatchers(const std::vector<Subscription *> &subs) {
    std::vector<eng::StoredWatcher> recs;
    recs.reserve(subs.size());
    for (Subscription *s : subs)
        if (s->dlg && !s->ending) recs.push_back(watcherRecord(*s));
    if (recs.empty()) return;
    eng::Status st = engine_->putWatchers(recs);
    if (!st.ok) host_.log(PW_LOG_ERROR, "callpark: storing {} subscription(s) failed: {}", recs.size(), st.message);
}

void CallPark::forgetWatcher(Subscription &sub) {
    if (sub.storeId.empty() || stopping_) return;
    eng::Status st = engine_->removeWatcher(sub.storeId);
    if (!st.ok) host_.log(PW_LOG_ERROR, "callpark: removing subscription {} failed: {}", sub.storeId, st.message);
    sub.storeId.clear();
}

void CallPark::notifySubscription(Subscription &sub, bool terminated, TargetView &view) {
    if (!sub.dlg || sub.ending) return;
    const eng::TargetState &st = view.st;
    Headers h;
    std::string body, ctype;
    if (sub.broadworks) {
        std::optional<Identity> parked;
        if (!st.calls.empty()) parked = Identity{st.calls.front().parkedUri, st.calls.front().parkedDisplay};
        body = buildBroadWorksCallparkInfo(parked);
        ctype = std::string(kBroadWorksCallparkContentType);
        h.add("Event", "call-info");
    } else {
        if (!view.dialogsBuilt) {
            view.dialogsBuilt = true;
            const std::string retrieveCode = st.calls.empty() ? std::string() : engine_->domain(sub.target.domain).retrieveCode;
            for (const eng::ParkedCall &call : st.calls) {
                DialogInfoDialog d;
                d.id = fmt::format("park-{}", call.id);
                if (Session *s = sessionByCall(call.id); s && s->a && s->a->dlg) {
                    d.callId = host_.dialogGet(s->a->dlg, PW_DLG_CALL_ID);
                    d.localTag = host_.dialogGet(s->a->dlg, PW_DLG_LOCAL_TAG);
                    d.remoteTag = host_.dialogGet(s->a->dlg, PW_DLG_REMOTE_TAG);
                }
                d.direction = "recipient";
                d.state = settings_.blfConfirmed ? DialogState::Confirmed : DialogState::Early;
                d.remote = Identity{call.parkedUri, call.parkedDisplay};
                d.remoteTarget = call.parkedUri;
                std::string slotUser = call.lot.empty() ? call.extension : std::to_string(call.slot);
                d.local = Identity{aor(slotUser, call.domain), ""};
                d.localTarget = call.lot.empty() ? aor(retrieveCode + call.extension, call.domain)
                                                 : aor(std::to_string(call.slot), call.domain);
                d.broadworksCallpark = true;
                view.dialogs.push_back(std::move(d));
            }
        }
        body = buildDialogInfo(sub.entity, sub.version, DialogInfoState::Full, view.dialogs);
        ctype = std::string(kDialogInfoContentType);
        h.add("Event", "dialog");
    }
    ++sub.version;
    if (terminated) {
        h.add("Subscription-State", "terminated;reason=timeout");
    } else {
        int64_t left = std::max<int64_t>(0, (sub.expiresAtMs - host_.nowMs() + 999) / 1000);
        h.add("Subscription-State", fmt::format("active;expires={}", left));
    }
    Subscription *sp = &sub;
    bool sent = sendInDialog(sub.dlg, "NOTIFY", &h, ctype, body, 0, [this, sp](pw_dialog *, int status, const pw_msg *) {
        if (status < 200) return;
        if (status >= 300) {
            host_.counter("parkway_notify_failed_total", "kind=\"dialog\"");
            // RFC 6665 §4.1.3: 481 means the subscriber forgot the subscription
            auto it = subs_.find(sp);
            if (status == 481 && it != subs_.end() && sp->dlg && !sp->ending) {
                sp->ending = true;
                host_.api()->dialog_end(sp->dlg);
            }
        }
    });
    if (sent) host_.counter("parkway_notify_sent_total", sub.broadworks ? "kind=\"call-info\"" : "kind=\"dialog\"");
    else host_.counter("parkway_notify_failed_total", "kind=\"dialog\"");
}

// ---------------------------------------------------------------- engine events

void CallPark::onEngineEvent(const eng::ChangeEvent &e) {
    countEvent(e); // at once, in commit order: the gauge below shows the count when the closure runs
    // Listeners run inside the engine call; act on the next loop turn (the dialog is up by then).
    auto copy = std::make_shared<eng::ChangeEvent>(e);
    after(0, [this, copy] {
        const eng::ChangeEvent &ev = *copy;
        const eng::ParkedCall &call = ev.call;
        std::string labels = fmt::format("domain=\"{}\"", call.domain);
        double dur = double(ev.at - call.parkedAt) / 1000.0;
        switch (ev.kind) {
        case eng::EventKind::Parked: host_.counter("parkway_parks_total", labels); break;
        case eng::EventKind::Retrieved:
            host_.counter("parkway_retrieves_total", labels);
            host_.observe("parkway_park_duration_seconds", labels, dur);
            break;
        case eng::EventKind::RecallStarted: host_.counter("parkway_recalls_total", labels); break;
        case eng::EventKind::Abandoned:
            host_.counter("parkway_abandons_total", labels);
            host_.observe("parkway_park_duration_seconds", labels, dur);
            break;
        default: break;
        }
        host_.event(eng::toString(ev.kind), eng::toJson(ev));
        bool counted = ev.kind == eng::EventKind::Parked || ev.kind == eng::EventKind::Retrieved ||
                       ev.kind == eng::EventKind::Abandoned || ev.kind == eng::EventKind::Moved;
        if (counted) { // other kinds change no count (the gauge is set from the counts kept by countEvent)
            updateGauges(call.domain, call.lot);
            if (ev.previous && ev.previous->lot != call.lot) updateGauges(ev.previous->domain, ev.previous->lot);
        }

        // Watchers see who is parked where: claims and recall stages change nothing they show.
        bool visible = counted;
        std::vector<std::pair<Subscription *, size_t>> watchers; // subscription, index of its target
        if (visible && !subs_.empty())
            for (auto &[p, sub] : subs_)
                for (size_t i = 0; i < ev.targets.size(); ++i)
                    if (ev.targets[i].target == sub->target) {
                        watchers.emplace_back(p, i);
                        break;
                    }
        // The state of a target is read (and its dialogs built) once for all its watchers.
        std::vector<std::optional<TargetView>> views(ev.targets.size());
        std::vector<Subscription *> notified;
        for (auto &[s, i] : watchers) {
            if (!subs_.count(s) || !s->dlg || s->ending) continue;
            if (!views[i]) views[i] = targetView(ev.targets[i].target);
            notifySubscription(*s, false, *views[i]);
            notified.push_back(s);
        }
        saveWatchers(notified); // one transaction for all of them

        if (settings_.parkInfo &&
            (ev.kind == eng::EventKind::Parked || ev.kind == eng::EventKind::Retrieved ||
             ev.kind == eng::EventKind::RecallStarted || ev.kind == eng::EventKind::Abandoned))
            sendParkInfo(ev);
    });
}

void CallPark::countEvent(const eng::ChangeEvent &e) {
    auto add = [this](const eng::ParkedCall &c, int64_t d) { parkedCounts_[{c.domain, c.lot}] += d; };
    switch (e.kind) {
    case eng::EventKind::Parked: add(e.call, +1); break;
    case eng::EventKind::Retrieved:
    case eng::EventKind::Abandoned:
        add(e.call, -1);
        sidByCall_.erase(e.call.id); // the call left the engine
        break;
    case eng::EventKind::Moved:
        if (e.previous) add(*e.previous, -1);
        add(e.call, +1);
        break;
    default: break;
    }
}

void CallPark::updateGauges(const std::string &domain, const std::string &lot) {
    auto it = parkedCounts_.find({domain, lot});
    int64_t n = it == parkedCounts_.end() ? 0 : std::max<int64_t>(0, it->second);
    host_.gauge("parkway_parked_calls", domainLabels(domain, lot), double(n));
}

void CallPark::sendParkInfo(const eng::ChangeEvent &e) {
    const eng::ParkedCall &call = e.call;
    std::vector<std::string> users;
    auto addUser = [&](const std::string &u) {
        if (!u.empty() && std::find(users.begin(), users.end(), u) == users.end()) users.push_back(u);
    };
    addUser(call.extension);
    if (!call.group.empty()) {
        if (auto g = engine_->group(call.domain, call.group)) {
            for (auto &mbr : g->members) addUser(mbr);
            if (g->notifyParker) addUser(call.parker);
        }
    }
    ParkInfoEntry entry;
    entry.id = std::to_string(call.id);
    switch (e.kind) {
    case eng::EventKind::Retrieved: entry.state = ParkInfoState::Retrieved; break;
    case eng::EventKind::RecallStarted: entry.state = ParkInfoState::Recalled; break;
    case eng::EventKind::Abandoned: entry.state = ParkInfoState::Abandoned; break;
    default: entry.state = ParkInfoState::Parked; break;
    }
    eng::DomainSettings ds = engine_->domain(call.domain);
    std::string slotUser = call.lot.empty() ? call.extension : std::to_string(call.slot);
    entry.parkedOn = aor(slotUser, call.domain);
    entry.parker = Identity{call.parker.empty() ? "" : aor(call.parker, call.domain), ""};
    entry.parkedParty = Identity{call.parkedUri, call.parkedDisplay};
    entry.retrieve = call.lot.empty() ? aor(ds.retrieveCode + call.extension, call.domain) : entry.parkedOn;
    entry.group = call.group;
    entry.lot = call.lot;
    if (!call.lot.empty()) entry.slot = std::to_string(call.slot);
    entry.parkedAt = call.parkedAt / 1000;
    entry.recallAt = e.kind == eng::EventKind::Parked ? call.recallAt / 1000 : 0;
    entry.changedAt = e.at / 1000;

    std::string from = fmt::format("<sip:park@{}>", call.domain);
    for (const std::string &u : users) {
        std::string aorUri = aor(u, call.domain);
        uint64_t version = uint64_t(call.version);
        for (auto &tv : e.targets)
            if (tv.target.kind == eng::TargetKind::Extension && tv.target.name == u) version = uint64_t(tv.version);
        std::string body = buildParkInfo(aorUri, version, {entry});
        ContactList contacts;
        int found = host_.api()->location_lookup(host_.raw(), ps(aorUri), collect, &contacts);
        host_.log(PW_LOG_DEBUG, "callpark: park-info for {}: {} contact(s) ({})", aorUri, contacts.items.size(), found);
        for (auto &[uri, hop] : contacts.items) {
            Headers h;
            h.add("Event", "park-info");
            h.add("Subscription-State", "terminated;reason=noresource"); // RFC 6665 §8.2.3: always present
            pw_uac_params p{};
            p.struct_size = sizeof(p);
            p.method = PW_STR_LIT("NOTIFY");
            p.request_uri = ps(uri);
            p.from = ps(from);
            std::string to = nameAddr("", aorUri); // must outlive send_request
            p.to = ps(to);
            p.next_hop = ps(hop);
            p.headers = h.data();
            p.n_headers = h.size();
            p.content_type = ps(kParkInfoContentType);
            p.body = ps(body);
            // A 4xx (481/489 from phones without PortSIP firmware) is counted and never retried.
            Pending *pend = makePending([this, uri = uri](pw_dialog *, int status, const pw_msg *) {
                host_.log(PW_LOG_DEBUG, "callpark: park-info NOTIFY to {}: {}", uri, status);
                if (status >= 300) host_.counter("parkway_notify_failed_total", "kind=\"park-info\"");
            });
            if (host_.api()->send_request(host_.raw(), &p, pendingResponse, pend) != PW_OK) {
                delete pend;
                host_.counter("parkway_notify_failed_total", "kind=\"park-info\"");
                continue;
            }
            host_.counter("parkway_notify_sent_total", "kind=\"park-info\"");
        }
    }
}

} // namespace parkway::callpark
