// Notifications, always after the engine committed (engine listeners run after the commit; we handle the
// events on the next loop turn so the park dialog exists and its tags can be shown):
//   * RFC 4235 dialog-info to slot / group / lot watchers (SUBSCRIBE Event: dialog), full state every time,
//     version +1 per NOTIFY per subscription (RFC 4235 §4.1.2);
//   * BroadWorks x-broadworks-callpark-info on SUBSCRIBE Event: call-info with that Accept;
//   * RFC 3863 PIDF to presence watchers of the same URIs (SUBSCRIBE Event: presence, RFC 3856), same machinery;
//   * park-info out-of-dialog NOTIFY to every contact of the parked-on extension (+ group members);
//   * admin events and Prometheus metrics.
#include "callpark.hh"
#include "wire/bodies.hh"
#include "wire/pidf.hh"

#include <parkway/engine/json.hh>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iterator>
#include <string_view>

namespace parkway::callpark {

namespace {

void subOnRefresh(void *arg, pw_dialog *, uint32_t expires) {
    auto *sub = static_cast<Subscription *>(arg);
    CallPark *cp = sub->mod;
    try {
        if (expires == 0) {
            cp->notifySubscription(*sub, true);
            sub->ending = true;
            if (sub->dlg)
                cp->host().api()->dialog_end(sub->dlg);
        } else {
            sub->expiresAtMs = cp->host().nowMs() + int64_t(expires) * 1000;
            sub->listFull = true; // an event list's refresh: full state too (RFC 4662 §5.2 fullState="true")
            // RFC 6665 §4.2.2: a refresh gets the current (full) state; after the one in flight, if any.
            if (sub->inFlight)
                cp->queueNotify(*sub);
            else
                cp->notifySubscription(*sub);
        }
    } catch (const std::exception &e) {
        cp->host().log(PW_LOG_ERROR, "callpark: subscription refresh failed: {}", e.what());
    }
}

void subOnTerminated(void *arg, pw_dialog *d, pw_dialog_end_reason) {
    auto *sub = static_cast<Subscription *>(arg);
    CallPark *cp = sub->mod;
    cp->retirePendings(d); // its NOTIFYs in flight get no callback any more
    cp->forgetWatcher(*sub);
    cp->countWatcher(*sub, false);
    cp->notifyInFlight_.erase(sub->id); // its window place is free, whatever becomes of the NOTIFY
    sub->dlg = nullptr;
    cp->subById_.erase(sub->id);
    cp->subs_.erase(sub);
}

void subOnRequest(void *arg, pw_dialog *, pw_request *req) {
    auto *sub = static_cast<Subscription *>(arg);
    sub->mod->host().reply(req, 200);
}

const pw_dialog_callbacks kSubCallbacks = {sizeof(pw_dialog_callbacks), subOnRequest, nullptr, subOnRefresh,
                                           subOnTerminated};

// The event packages this module serves as subscriptions (RFC 6665 §4.2.2: Allow-Events of a 489 lists them).
// The one list: a package added here is accepted by onSubscribe and advertised in every 489 at once.
// (park-info is no subscription: it goes out as out-of-dialog NOTIFYs; REFER's implicit "refer" subscription
// belongs to the REFER, never to a SUBSCRIBE.)
// "presence" (RFC 3856 §6.1) is served on the same URIs as "dialog", for phones without dialog-package BLF.
constexpr std::string_view kServedEvents[] = {"dialog", "call-info", "presence"};

bool servedEvent(const std::string &event) {
    return std::find(std::begin(kServedEvents), std::end(kServedEvents), event) != std::end(kServedEvents);
}

std::string allowEvents() {
    std::string v;
    for (std::string_view e : kServedEvents) {
        if (!v.empty())
            v += ", ";
        v += e;
    }
    return v;
}

std::string eventName(const std::string &hdr) {
    std::string e = hdr.substr(0, hdr.find(';'));
    while (!e.empty() && e.back() == ' ')
        e.pop_back();
    std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
    return e;
}

// RFC 3856 §6.5: a presence NOTIFY body is of a type the SUBSCRIBE's Accept lists, application/pidf+xml when
// there is no Accept. Accept may be several headers, each a list of media ranges with parameters
// (RFC 3261 §20.1); a range matching application/pidf+xml (or application/*, */*) will do.
bool acceptsPidf(const std::vector<std::string> &accepts) {
    if (accepts.empty())
        return true;
    for (const std::string &hdr : accepts) {
        size_t pos = 0;
        while (pos <= hdr.size()) {
            size_t comma = std::min(hdr.find(',', pos), hdr.size());
            std::string range = hdr.substr(pos, std::min(hdr.find(';', pos), comma) - pos);
            pos = comma + 1;
            range.erase(std::remove_if(range.begin(), range.end(), [](unsigned char c) { return std::isspace(c); }),
                        range.end());
            std::transform(range.begin(), range.end(), range.begin(), [](unsigned char c) { return std::tolower(c); });
            if (range == kPidfContentType || range == "application/*" || range == "*/*")
                return true;
        }
    }
    return false;
}

// The `kind` label of the NOTIFY metrics.
const char *notifyKind(const Subscription &sub) {
    return sub.broadworks ? "kind=\"call-info\"" : sub.presence ? "kind=\"presence\"" : "kind=\"dialog\"";
}

// Retry-After of a 503 for watcher capacity (RFC 3261 §21.5.4): subscriptions end or expire within minutes.
constexpr int kWatcherRetryAfterSeconds = 60;

// The subscriber a cap counts: the From address-of-record, without parameters, host in lower case.
std::string subscriberOf(const std::string &fromUri) {
    std::string host = uriHost(fromUri);
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
    return fmt::format("sip:{}@{}", uriUser(fromUri), host);
}

// Key of a watched target across domains (the per-target index and cap).
std::string targetKey(const eng::Target &t) {
    return t.domain + "|" + t.key();
}

} // namespace

const pw_dialog_callbacks *CallPark::subCallbacks() {
    return &kSubCallbacks;
}

// Who may see the calls of a lot, a slot or a group: everyone of the domain, or the access list when the
// provisioning gives one (the list that says who may retrieve them; docs/auth.md "Call park"). From what
// subscribeRead read.
bool CallPark::mayWatch(const SubscribeAsk &a, const eng::Target &target, const std::string &user) const {
    std::vector<std::string> access;
    if (target.kind == eng::TargetKind::Lot || target.kind == eng::TargetKind::Slot) {
        if (auto it = a.lots.find(target.name); it != a.lots.end() && it->second)
            access = it->second->access;
    } else if (target.kind == eng::TargetKind::Group) {
        if (auto it = a.groups.find(target.name); it != a.groups.end() && it->second)
            access = it->second->access;
    }
    return access.empty() || std::find(access.begin(), access.end(), user) != access.end();
}

pw_verdict CallPark::onSubscribe(pw_request *req, const pw_msg *m) {
    if (!host_.tag(m, "To").empty())
        return PW_CONTINUE; // refreshes of our subscriptions reach the dialog
    auto ask = std::make_shared<SubscribeAsk>();
    SubscribeAsk &a = *ask;
    a.event = eventName(host_.header(m, "Event"));
    a.ruri = host_.requestUri(m);
    a.domain = uriHost(a.ruri);
    if (a.domain.empty() || !host_.isLocalDomain(a.domain))
        return PW_CONTINUE;
    a.dial = uriUser(a.ruri);
    if (a.dial.empty())
        return PW_CONTINUE;
    a.watcher = who(req);
    a.caller = uriUser(a.watcher.uri);
    if (!servedEvent(a.event)) {
        // A URI the dialplan makes ours (park / retrieve codes, slots, lots, watch rules) is a resource we
        // are the notifier of: a package we do not serve there gets 489 Bad Event with the packages we do
        // (RFC 6665 §4.2.2, §8.2.2), so the subscriber stops retrying. Other URIs (a plain extension's
        // presence) are somebody else's.
        eng::Classification oc = engine_->classify(a.domain, a.caller, a.dial);
        if (oc.action != eng::Action::Park && oc.action != eng::Action::GroupPark &&
            oc.action != eng::Action::Retrieve && oc.action != eng::Action::Watch)
            return PW_CONTINUE;
        Headers h;
        h.add("Allow-Events", allowEvents());
        host_.reply(req, 489, "Bad Event", &h);
        return PW_STOP;
    }
    for (unsigned i = 0; i < 16; ++i) {
        std::string acc = host_.header(m, "Accept", i);
        if (acc.empty())
            break;
        a.accepts.push_back(std::move(acc));
    }
    if (a.event == "call-info") {
        bool accepts = std::any_of(a.accepts.begin(), a.accepts.end(), [](const std::string &acc) {
            return acc.find("x-broadworks-callpark-info") != std::string::npos;
        });
        if (!accepts)
            return PW_CONTINUE; // shared-appearance call-info is not ours
        a.broadworks = true;
    }
    a.presence = a.event == "presence";
    // RFC 4662 §4.1: Supported: eventlist says the subscriber can take lists.
    for (unsigned i = 0; i < 16 && !a.eventlist; ++i) {
        std::string v = host_.header(m, "Supported", i);
        if (v.empty())
            break;
        size_t pos = 0;
        while (pos <= v.size()) {
            size_t comma = v.find(',', pos);
            std::string tok = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
            tok.erase(0, tok.find_first_not_of(" \t"));
            tok.erase(tok.find_last_not_of(" \t") + 1);
            std::transform(tok.begin(), tok.end(), tok.begin(), [](unsigned char ch) { return std::tolower(ch); });
            if (tok == "eventlist")
                a.eventlist = true;
            if (comma == std::string::npos)
                break;
            pos = comma + 1;
        }
    }
    a.expires = host_.header(m, "Expires");
    a.c = engine_->classify(a.domain, a.caller, a.dial);
    // RFC 4662: a lot's or a group's list URI (event_lists.cc), when that lot / group exists.
    auto named = [&](const std::string &prefix) -> std::optional<std::string> {
        if (prefix.empty() || a.dial.size() <= prefix.size() || a.dial.compare(0, prefix.size(), prefix) != 0)
            return std::nullopt;
        return a.dial.substr(prefix.size());
    };
    if (!a.broadworks) {
        a.listLot = named(settings_.listUriPrefixLot);
        a.listGroup = named(settings_.listUriPrefixGroup);
    }
    if (a.c.action == eng::Action::Park || a.c.action == eng::Action::GroupPark ||
        a.c.action == eng::Action::Retrieve || a.c.action == eng::Action::Watch) {
        a.fallback = eng::watchTarget(a.c, a.domain, a.caller);
    } else if (a.broadworks) {
        a.fallback = eng::Target{eng::TargetKind::Extension, a.domain, a.dial, 0};
    }
    if (!a.listLot && !a.listGroup && !a.fallback)
        return PW_CONTINUE;
    try {
        a.fetch = !a.expires.empty() && std::stoul(a.expires) == 0;
    } catch (...) { // answered 400 by subscribeRead
    }
    // What the answer needs from the configuration: the list URI's lot / group, the target's access list.
    bool configured = a.fallback && a.fallback->kind != eng::TargetKind::Extension;
    if (!a.listLot && !a.listGroup && !configured && !a.fetch)
        return subscribeRead(req, a); // nothing to read: answered now
    auto read = [ask](eng::Engine &e) {
        SubscribeAsk &q = *ask;
        try {
            auto lot = [&](const std::string &name) {
                if (!q.lots.count(name))
                    q.lots[name] = e.lot(q.domain, name);
            };
            auto group = [&](const std::string &name) {
                if (!q.groups.count(name))
                    q.groups[name] = e.group(q.domain, name);
            };
            if (q.listLot)
                lot(*q.listLot);
            if (q.listGroup)
                group(*q.listGroup);
            if (q.fallback && (q.fallback->kind == eng::TargetKind::Lot || q.fallback->kind == eng::TargetKind::Slot))
                lot(q.fallback->name);
            if (q.fallback && q.fallback->kind == eng::TargetKind::Group)
                group(q.fallback->name);
            if (q.fetch) {
                if (auto list = listTarget(q))
                    q.state.lists.push_back(*list);
                else if (q.fallback)
                    q.state.targets.push_back(*q.fallback);
                readNotify(e, q.state);
            }
        } catch (const std::exception &ex) {
            q.state.error = ex.what();
        }
    };
    if (!storage_.threaded()) { // inline: read and answer now
        if (!storage_.submit(read, nullptr)) {
            refuseStorage(req);
            return PW_STOP;
        }
        return subscribeRead(req, a);
    }
    // The SUBSCRIBE waits for the read (PW_SUSPEND); refused like a park while the storage thread is behind.
    if (!storage_.accepting()) {
        refuseStorage(req);
        return PW_STOP;
    }
    pw_request *held = host_.api()->request_retain(req);
    bool queued = storage_.submit(read, [this, held, ask] {
        pw_verdict v = subscribeRead(held, *ask);
        host_.api()->request_resume(held, v);
        host_.api()->request_release(held);
    });
    if (!queued) {
        refuseHeld(held);
    }
    return PW_SUSPEND;
}

// The SUBSCRIBE's answer, once what it needs is read (onSubscribe).
pw_verdict CallPark::subscribeRead(pw_request *req, SubscribeAsk &a) {
    if (!a.state.error.empty()) {
        storageFailed("SUBSCRIBE in " + a.domain, a.state.error);
        refuseStorage(req);
        return PW_STOP;
    }
    eng::Target target;
    // RFC 4662: a lot's or a group's list URI (event_lists.cc); -1 = answered 421.
    int list = a.broadworks ? 0 : eventListTarget(req, a, &target);
    if (list < 0)
        return PW_STOP;
    if (list > 0) {
        // target: the lot / group (its access list and caps apply, as to a BLF on it)
    } else if (a.fallback) {
        target = *a.fallback;
    } else {
        return PW_CONTINUE;
    }
    const Host::Who &watcher = a.watcher;
    const std::string &domain = a.domain;
    // Watchers see call-ids and tags (enough for a Replaces pickup): only an identified user of the same
    // tenant may watch (docs/auth.md; RFC 4235 §5 leaves the policy to us).
    if (watcher.uri.empty())
        return refuseStranger(req);
    if (uriHost(watcher.uri) != domain) {
        host_.reply(req, 403, "Forbidden");
        return PW_STOP;
    }
    if (!mayWatch(a, target, uriUser(watcher.uri))) { // a lot's or group's access list closes its calls' ids too
        host_.reply(req, 403, "Forbidden");
        return PW_STOP;
    }
    // after who may watch: a stranger is challenged first
    if (a.presence && !acceptsPidf(a.accepts)) { // RFC 6665 §4.2.1 / RFC 3261 §21.4.7: no body type we can send
        host_.reply(req, 406, "Not Acceptable");
        return PW_STOP;
    }
    std::string subscriber = subscriberOf(watcher.uri);
    std::string why;
    if (int status = watcherCapStatus(subscriber, target, &why)) {
        Headers h;
        if (status == 503)
            h.add("Retry-After", std::to_string(kWatcherRetryAfterSeconds));
        host_.reply(req, status, why, &h);
        return PW_STOP;
    }
    uint32_t expires = 3600;
    if (!a.expires.empty()) {
        try {
            expires = static_cast<uint32_t>(std::stoul(a.expires));
        } catch (...) {
            host_.reply(req, 400, "Bad Expires");
            return PW_STOP;
        }
    }
    auto sub = std::make_unique<Subscription>();
    sub->mod = this;
    sub->target = target;
    sub->broadworks = a.broadworks;
    sub->eventList = list > 0;
    sub->presence = a.presence;
    sub->entity = a.ruri.substr(0, a.ruri.find(';'));
    sub->subscriber = subscriber;
    Subscription *sp = addSubscription(std::move(sub));
    sp->dlg = host_.api()->subscription_accept(req, expires, subCallbacks(), sp);
    if (!sp->dlg) {
        subById_.erase(sp->id);
        subs_.erase(sp);
        return PW_STOP;
    }
    countWatcher(*sp, true);
    sp->expiresAtMs = host_.nowMs() + int64_t(expires) * 1000; // the host clamps; we track the request's value
    if (expires == 0) { // a fetch (RFC 6665 §4.4.3): one NOTIFY with the state read before the answer, then done
        Views views;
        notifySubscription(*sp, true, a.state, views);
        sp->ending = true;
        host_.api()->dialog_end(sp->dlg);
        return PW_STOP;
    }
    // The first NOTIFY (RFC 6665 §4.2.1): its state is read now, on the storage thread when there is one; the
    // 200 is out already.
    notifySubscription(*sp);
    return PW_STOP;
}

Subscription *CallPark::addSubscription(std::unique_ptr<Subscription> sub) {
    Subscription *sp = sub.get();
    sp->id = nextSubId_++;
    subById_[sp->id] = sp;
    subs_.emplace(sp, std::move(sub));
    return sp;
}

// ---------------------------------------------------------------- caps (docs/limits.md "Call park")

int CallPark::watcherCapStatus(const std::string &subscriber, const eng::Target &t, std::string *reason) {
    const WatcherCounts &c = watcherCounts_;
    auto at = [](int64_t cap, size_t n) { return cap > 0 && n >= static_cast<size_t>(cap); };
    auto count = [](const std::unordered_map<std::string, size_t> &m, const std::string &k) -> size_t {
        auto it = m.find(k);
        return it == m.end() ? 0 : it->second;
    };
    auto targets = c.byTarget.find(targetKey(t));
    size_t onTarget = targets == c.byTarget.end() ? 0 : targets->second.size();
    auto refuse = [&](const char *which, int status, const char *phrase) {
        host_.counter("parkway_watchers_refused_total", fmt::format("reason=\"{}\"", which));
        host_.log(PW_LOG_DEBUG, "callpark: SUBSCRIBE of {} to {} {} refused: {} cap reached", subscriber, t.domain,
                  t.key(), which);
        *reason = phrase;
        return status;
    };
    // The subscriber's own cap is a policy on that identity, not server capacity: 403, which tells the phone
    // that repeating the request will not help (RFC 3261 §21.4.4); a 503 would send it to another server or
    // back here (RFC 3261 §21.5.4, RFC 3263 §4.3). The others are capacity: 503 + Retry-After.
    if (at(settings_.maxWatchersPerSubscriber, count(c.bySubscriber, subscriber)))
        return refuse("subscriber", 403, "Too Many Subscriptions");
    if (at(settings_.maxWatchersPerTarget, onTarget))
        return refuse("target", 503, "Too Many Watchers");
    if (at(settings_.maxWatchersPerDomain, count(c.byDomain, t.domain)))
        return refuse("domain", 503, "Watcher Capacity Reached");
    if (at(settings_.maxWatchers, c.total))
        return refuse("total", 503, "Watcher Capacity Reached");
    return 0;
}

void CallPark::countWatcher(Subscription &sub, bool add) {
    if (sub.counted == add)
        return;
    sub.counted = add;
    WatcherCounts &c = watcherCounts_;
    const std::string &domain = sub.target.domain;
    std::string tkey = targetKey(sub.target);
    if (add) {
        ++c.total;
        ++c.byDomain[domain];
        ++c.bySubscriber[sub.subscriber];
        c.byTarget[tkey].insert(sub.id);
    } else {
        auto down = [](std::unordered_map<std::string, size_t> &m, const std::string &k) {
            auto it = m.find(k);
            if (it != m.end() && --it->second == 0)
                m.erase(it);
        };
        --c.total;
        down(c.byDomain, domain);
        down(c.bySubscriber, sub.subscriber);
        auto it = c.byTarget.find(tkey);
        if (it != c.byTarget.end()) {
            it->second.erase(sub.id);
            if (it->second.empty())
                c.byTarget.erase(it);
        }
    }
    auto d = c.byDomain.find(domain);
    host_.gauge("parkway_watchers", fmt::format("domain=\"{}\"", domain),
                d == c.byDomain.end() ? 0.0 : double(d->second));
}

// ---------------------------------------------------------------- paced fan-out (docs/notifications.md)
// One change may concern thousands of watchers. They are queued and sent notify_batch per loop turn, so
// the SIP thread answers other requests in between, with at most kWindowBatches * notify_batch NOTIFYs
// awaiting their answers (the pace follows what the network and the phones take). A subscription has one
// NOTIFY in flight at a time, so versions arrive in order; a change meanwhile is owed and sent when the
// answer comes. A watcher queued or owed is not queued twice: when its turn comes it gets the state
// current then (newest state wins), with the next version of its subscription (RFC 4235 §4.1: +1 per
// NOTIFY sent, whatever state it carries).

namespace {
constexpr size_t kWindowBatches = 10;
}

void CallPark::queueNotify(Subscription &sub) {
    if (!sub.queued) {
        sub.queued = true;
        notifyQueue_.push_back(sub.id);
    }
    if (!notifyTimer_ && !stopping_)
        notifyTimer_ = after(0, [this] { drainNotifies(); });
}

void CallPark::drainNotifies() {
    notifyTimer_ = 0;
    if (stopping_)
        return;
    std::vector<uint64_t> batch;
    const size_t budget = static_cast<size_t>(settings_.notifyBatch);
    const size_t window = budget * kWindowBatches;
    while (!notifyQueue_.empty() && batch.size() < budget && notifyInFlight_.size() < window) {
        uint64_t id = notifyQueue_.front();
        notifyQueue_.pop_front();
        auto it = subById_.find(id);
        if (it == subById_.end())
            continue; // ended while queued
        Subscription &s = *it->second;
        s.queued = false;
        if (!s.dlg || s.ending)
            continue;
        if (s.inFlight) { // sent when the one in flight (read or sent) is answered
            s.owed = true;
            continue;
        }
        batch.push_back(id);
    }
    if (!batch.empty())
        readThenNotify(std::move(batch), false); // one engine operation per batch, its state read once per target
    host_.gauge("parkway_notify_queue", "", double(notifyQueue_.size()));
    // More next turn; with the window full, the answers re-arm it (notifyAnswered).
    if (!notifyQueue_.empty() && notifyInFlight_.size() < window && !notifyTimer_)
        notifyTimer_ = after(0, [this] { drainNotifies(); });
}

// ---------------------------------------------------------------- the reads behind the NOTIFYs (docs/cluster.md
// "Threads"). One engine operation reads what a batch of NOTIFYs shows, on the storage thread when there is one;
// the SIP thread sends them in its continuation. Meanwhile each subscription counts as in flight (its window
// place taken), so a change in between is owed and sent after, with a later read: never an older state after a
// newer one, and the versions are given on the SIP thread when the NOTIFY is built (RFC 4235 §4.1).

void CallPark::readNotify(eng::Engine &e, NotifyRead &rd) {
    try {
        std::vector<eng::Target> targets = rd.targets;
        for (const eng::Target &list : rd.lists) {
            std::vector<ListEntry> &entries = rd.entries[targetKey(list)];
            readListEntries(e, list, &entries);
            for (const ListEntry &le : entries)
                targets.push_back(le.target);
        }
        for (const eng::Target &t : targets) {
            std::string k = targetKey(t);
            if (rd.states.count(k))
                continue;
            eng::TargetState st = e.targetState(t);
            if (st.calls.empty())
                continue; // absent: nothing parked there
            if (!rd.retrieveCodes.count(t.domain))
                rd.retrieveCodes[t.domain] = e.domain(t.domain).retrieveCode;
            rd.states.emplace(std::move(k), std::move(st));
        }
    } catch (const std::exception &ex) {
        rd.error = ex.what();
    }
}

void CallPark::mergeRead(const NotifyRead &rd) {
    if (!rd.error.empty())
        return;
    auto merge = [&](const eng::Target &t) {
        std::string k = targetKey(t);
        if (auto it = rd.states.find(k); it != rd.states.end())
            lastRead_.states[k] = it->second;
        else
            lastRead_.states.erase(k); // only targets with calls are kept: bounded by the parked calls
    };
    for (const eng::Target &t : rd.targets)
        merge(t);
    for (const auto &[k, entries] : rd.entries) {
        for (const ListEntry &le : entries)
            merge(le.target);
        lastRead_.entries[k] = entries;
    }
    for (const auto &[d, code] : rd.retrieveCodes)
        lastRead_.retrieveCodes[d] = code;
}

CallPark::TargetView &CallPark::viewOf(const NotifyRead &rd, Views &views, const eng::Target &t) {
    std::string k = targetKey(t);
    auto [v, fresh] = views.try_emplace(k);
    if (fresh) {
        if (auto it = rd.states.find(k); it != rd.states.end())
            v->second.st = it->second;
        else
            v->second.st.target = t;
        if (auto it = rd.retrieveCodes.find(t.domain); it != rd.retrieveCodes.end())
            v->second.retrieveCode = it->second;
    }
    return v->second;
}

void CallPark::notifySubscription(Subscription &sub, bool terminated) {
    if (!sub.dlg || sub.ending)
        return;
    if (terminated && storage_.threaded()) { // the host ends the dialog right after: no read can wait
        Views views;
        notifySubscription(sub, true, lastRead_, views);
        return;
    }
    readThenNotify({sub.id}, terminated);
}

void CallPark::readThenNotify(std::vector<uint64_t> ids, bool terminated) {
    auto rd = std::make_shared<NotifyRead>();
    std::unordered_set<std::string> asked;
    for (uint64_t id : ids) {
        Subscription &s = *subById_.at(id);
        s.inFlight = true; // until the read is back: a change meanwhile is owed
        notifyInFlight_.insert(id);
        if (asked.insert(targetKey(s.target) + (s.eventList ? "|list" : "")).second)
            (s.eventList ? rd->lists : rd->targets).push_back(s.target);
    }
    bool queued = storage_.submit([rd](eng::Engine &e) { readNotify(e, *rd); },
                                  [this, rd, ids, terminated] { notifyRead(*rd, ids, terminated); },
                                  true); // bounded by the window (notifyInFlight_), not refused for load
    if (!queued) {                       // stopping
        for (uint64_t id : ids) {
            notifyInFlight_.erase(id);
            if (auto it = subById_.find(id); it != subById_.end())
                it->second->inFlight = false;
        }
    }
}

void CallPark::notifyRead(const NotifyRead &rd, const std::vector<uint64_t> &ids, bool terminated) {
    if (!rd.error.empty())
        storageFailed(fmt::format("the state of {} NOTIFY(s)", ids.size()), rd.error);
    mergeRead(rd);
    Views views; // a target's dialogs are built once per batch
    std::vector<Subscription *> sent;
    for (uint64_t id : ids) {
        notifyInFlight_.erase(id);
        auto it = subById_.find(id);
        if (it == subById_.end())
            continue; // ended while its state was read
        Subscription &s = *it->second;
        s.inFlight = false;
        if (!rd.error.empty()) {
            host_.counter("parkway_notify_failed_total", notifyKind(s));
            continue;
        }
        if (!s.dlg || s.ending)
            continue;
        notifySubscription(s, terminated, rd, views);
        if (s.inFlight)
            sent.push_back(&s);
        else if (s.owed) { // nothing sent (an event list without a change): the owed one goes on
            s.owed = false;
            queueNotify(s);
        }
    }
    if (!terminated)
        saveWatchers(sent); // one transaction per batch
    // The window has room again: go on with the queue.
    if (!notifyQueue_.empty() && !notifyTimer_ && !stopping_)
        notifyTimer_ = after(0, [this] { drainNotifies(); });
}

// ---------------------------------------------------------------- persistence (docs/callpark.md "Notifications": state
// is re-sent after restarts). Stored after each NOTIFY: the version and our CSeq moved; the subscription is resumed in
// the same dialog with the next version (RFC 4235 §4.1: versions keep increasing within a subscription).

eng::StoredWatcher CallPark::watcherRecord(Subscription &sub) {
    if (sub.storeId.empty())
        sub.storeId = host_.dialogGet(sub.dlg, PW_DLG_CALL_ID) + ";" + host_.dialogGet(sub.dlg, PW_DLG_LOCAL_TAG);
    nlohmann::json j;
    j["kind"] = static_cast<int>(sub.target.kind);
    j["domain"] = sub.target.domain;
    j["name"] = sub.target.name;
    j["slot"] = sub.target.slot;
    j["broadworks"] = sub.broadworks; // Event: call-info with the BroadWorks body, else dialog-info
    j["presence"] = sub.presence;     // Event: presence with PIDF (absent in older records: dialog)
    j["entity"] = sub.entity;
    j["version"] = sub.version; // the next version to send
    j["expires_at"] = sub.expiresAtMs;
    j["subscriber"] = sub.subscriber;
    if (sub.eventList) { // RFC 4662 list: each resource's dialog-info version goes on after a restart
        nlohmann::json versions = nlohmann::json::object();
        for (const auto &[uri, r] : sub.listResources)
            versions[uri] = r.version;
        j["event_list"] = versions;
    }
    j["dialog"] = host_.dialogExport(sub.dlg);
    return {sub.storeId, j.dump()};
}

void CallPark::saveWatchers(const std::vector<Subscription *> &subs) {
    std::vector<eng::StoredWatcher> recs;
    recs.reserve(subs.size());
    for (Subscription *s : subs)
        if (s->dlg && !s->ending)
            recs.push_back(watcherRecord(*s));
    if (recs.empty())
        return;
    // Fire and forget (on the storage thread when there is one, in order with the removals): only a failure
    // matters.
    const size_t n = recs.size();
    storage_.run<eng::Status>([recs = std::move(recs)](eng::Engine &e) { return e.putWatchers(recs); },
                              [this, n](eng::Status &st) {
                                  if (!st.ok)
                                      host_.log(PW_LOG_ERROR, "callpark: storing {} subscription(s) failed: {}", n,
                                                st.message);
                              },
                              true);
}

void CallPark::forgetWatcher(Subscription &sub) {
    if (sub.storeId.empty() || stopping_)
        return;
    removeStoredWatcher(sub.storeId);
    sub.storeId.clear();
}

void CallPark::removeStoredWatcher(const std::string &storeId) {
    storage_.run<eng::Status>([id = storeId](eng::Engine &e) { return e.removeWatcher(id); },
                              [this, id = storeId](eng::Status &st) {
                                  if (!st.ok)
                                      host_.log(PW_LOG_ERROR, "callpark: removing subscription {} failed: {}", id,
                                                st.message);
                              },
                              true);
}

// The <dialog>s every dialog-info NOTIFY of one target shows (a BLF on it, or its part in an event list).
void CallPark::buildViewDialogs(TargetView &view) {
    if (!view.dialogsBuilt) {
        view.dialogsBuilt = true;
        const std::string &retrieveCode = view.retrieveCode;
        for (const eng::ParkedCall &call : view.st.calls) {
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
}

void CallPark::notifySubscription(Subscription &sub, bool terminated, const NotifyRead &rd, Views &views) {
    if (!sub.dlg || sub.ending)
        return;
    if (sub.eventList) { // RFC 4662 multipart/related with RLMI (event_lists.cc)
        notifyEventList(sub, terminated, rd, views);
        return;
    }
    TargetView &view = viewOf(rd, views, sub.target);
    const eng::TargetState &st = view.st;
    Headers h;
    std::string body, ctype;
    if (sub.broadworks) {
        std::optional<Identity> parked;
        if (!st.calls.empty())
            parked = Identity{st.calls.front().parkedUri, st.calls.front().parkedDisplay};
        body = buildBroadWorksCallparkInfo(parked);
        ctype = std::string(kBroadWorksCallparkContentType);
        h.add("Event", "call-info");
    } else if (sub.presence) {
        // RFC 3856 §6.5 / RFC 3863 §4: the slot's presence; parked calls make it busy (RFC 4480 on-the-phone).
        std::vector<Identity> parked;
        for (const eng::ParkedCall &call : st.calls)
            parked.push_back(Identity{call.parkedUri, call.parkedDisplay});
        body = buildPidf(sub.entity, parked);
        ctype = std::string(kPidfContentType);
        h.add("Event", "presence");
    } else {
        buildViewDialogs(view);
        body = buildDialogInfo(sub.entity, sub.version, DialogInfoState::Full, view.dialogs);
        ctype = std::string(kDialogInfoContentType);
        h.add("Event", "dialog");
    }
    ++sub.version;
    sub.inFlight = true;
    notifyInFlight_.insert(sub.id);
    if (terminated) {
        h.add("Subscription-State", "terminated;reason=timeout");
    } else {
        int64_t left = std::max<int64_t>(0, (sub.expiresAtMs - host_.nowMs() + 999) / 1000);
        h.add("Subscription-State", fmt::format("active;expires={}", left));
    }
    uint64_t id = sub.id;
    // (call-info failures have always been counted as kind="dialog"; presence gets its own label)
    const char *failKind = sub.presence ? notifyKind(sub) : "kind=\"dialog\"";
    bool sent = sendInDialog(
        sub.dlg, "NOTIFY", &h, ctype, body, 0, [this, id, failKind](pw_dialog *, int status, const pw_msg *) {
            if (status < 200)
                return;
            auto it = subById_.find(id); // by id: the subscription may be gone (and its address reused)
            Subscription *sp = it == subById_.end() ? nullptr : it->second;
            if (status >= 300) {
                host_.counter("parkway_notify_failed_total", failKind);
                // RFC 6665 §4.1.3: 481 means the subscriber forgot the subscription
                if (status == 481 && sp && sp->dlg && !sp->ending) {
                    sp->ending = true;
                    notifyAnswered(id);
                    host_.api()->dialog_end(sp->dlg);
                    return;
                }
            }
            notifyAnswered(id);
        });
    if (sent) {
        host_.counter("parkway_notify_sent_total", notifyKind(sub));
    } else {
        host_.counter("parkway_notify_failed_total", failKind);
        sub.inFlight = false;
        notifyInFlight_.erase(sub.id);
    }
}

void CallPark::notifyAnswered(uint64_t id) {
    notifyInFlight_.erase(id);
    if (auto it = subById_.find(id); it != subById_.end()) {
        Subscription &s = *it->second;
        s.inFlight = false;
        if (s.owed) {
            s.owed = false;
            queueNotify(s);
        }
    }
    // The window has room again: go on with the queue.
    if (!notifyQueue_.empty() && !notifyTimer_ && !stopping_)
        notifyTimer_ = after(0, [this] { drainNotifies(); });
}

// ---------------------------------------------------------------- restart (docs/callpark.md "Notifications")
// Stored subscriptions are resumed notify_batch per loop turn, each with a full-state NOTIFY at the next
// version through the paced queue: thousands of them neither stall the start nor flood the network at once.

void CallPark::restoreWatchers() {
    restoredWatchers_ = lostWatchers_ = 0;
    // Read on the storage thread (when there is one), resumed here in batches.
    using Stored = std::optional<std::vector<eng::StoredWatcher>>; // nullopt: the read failed
    bool queued = storage_.run<Stored>(
        [](eng::Engine &e) -> Stored {
            try {
                return e.watchers();
            } catch (const std::exception &) {
                return std::nullopt;
            }
        },
        [this](Stored &all) {
            if (!all) {
                host_.log(PW_LOG_ERROR, "callpark: the stored subscriptions could not be read; none resumed");
                restoreFinished();
                return;
            }
            restoreQueue_.assign(std::make_move_iterator(all->begin()), std::make_move_iterator(all->end()));
            if (!restoreQueue_.empty())
                restoreWatcherBatch();
            else
                restoreFinished();
        });
    if (!queued)
        restoreFinished();
}

// One stored subscription back: its dialog restored, counted, a full-state NOTIFY queued (RFC 4235 §4.1: the next
// version in the same subscription). False (and the record removed) when it cannot be resumed.
bool CallPark::restoreWatcher(eng::StoredWatcher w, int64_t now) {
    nlohmann::json j = nlohmann::json::parse(w.blob, nullptr, false);
    std::string dlgBlob = j.is_object() ? j.value("dialog", std::string()) : std::string();
    int kind = j.is_object() ? j.value("kind", -1) : -1;
    if (dlgBlob.empty() || kind < int(eng::TargetKind::Extension) || kind > int(eng::TargetKind::Lot)) {
        host_.log(PW_LOG_WARN, "callpark: stored subscription {} is unreadable; dropped", w.id);
        removeStoredWatcher(w.id);
        return false;
    }
    auto sub = std::make_unique<Subscription>();
    sub->mod = this;
    sub->target.kind = static_cast<eng::TargetKind>(kind);
    sub->target.domain = j.value("domain", std::string());
    sub->target.name = j.value("name", std::string());
    sub->target.slot = j.value("slot", 0);
    sub->broadworks = j.value("broadworks", false);
    sub->presence = j.value("presence", false);
    sub->entity = j.value("entity", std::string());
    sub->version = j.value("version", uint64_t(0));
    sub->expiresAtMs = j.value("expires_at", int64_t(0));
    sub->subscriber = j.value("subscriber", std::string());
    if (auto el = j.find("event_list"); el != j.end() && el->is_object()) { // resumed with full state
        sub->eventList = true;
        for (const auto &[uri, v] : el->items())
            if (v.is_number_unsigned())
                sub->listResources[uri].version = v.get<uint64_t>();
    }
    sub->storeId = w.id;
    Subscription *sp = addSubscription(std::move(sub));
    // The host re-arms the expiry for the time left (already past: on_refresh(0) + terminated next turn).
    sp->dlg = host_.api()->dialog_restore(host_.raw(), ps(dlgBlob), subCallbacks(), sp);
    if (!sp->dlg) {
        host_.log(PW_LOG_WARN, "callpark: stored subscription {} could not be restored; dropped", w.id);
        removeStoredWatcher(w.id);
        subById_.erase(sp->id);
        subs_.erase(sp);
        return false;
    }
    // Records written before the subscriber was stored: the dialog's remote URI is the SUBSCRIBE's From.
    if (sp->subscriber.empty())
        sp->subscriber = subscriberOf(host_.dialogGet(sp->dlg, PW_DLG_REMOTE_URI));
    countWatcher(*sp, true); // an existing subscription: counted, never refused by a cap
    // Fresh full state (RFC 4235 §4.1: version = last sent + 1 within the same subscription).
    if (sp->expiresAtMs > now)
        queueNotify(*sp);
    return true;
}

void CallPark::restoreWatcherBatch() {
    if (stopping_)
        return; // what is left stays stored for the next start
    int64_t now = host_.nowMs();
    for (int64_t n = 0; n < settings_.notifyBatch && !restoreQueue_.empty(); ++n) {
        eng::StoredWatcher w = std::move(restoreQueue_.front());
        restoreQueue_.pop_front();
        if (restoreWatcher(std::move(w), now))
            ++restoredWatchers_;
        else
            ++lostWatchers_;
    }
    if (!restoreQueue_.empty()) {
        after(0, [this] { restoreWatcherBatch(); });
        return;
    }
    if (restoredWatchers_ || lostWatchers_)
        host_.log(PW_LOG_INFO, "callpark: restored {} subscription(s), {} could not be resumed", restoredWatchers_,
                  lostWatchers_);
    restoreFinished();
}

// ---------------------------------------------------------------- engine events

void CallPark::onEngineEvent(const eng::ChangeEvent &e) {
    countEvent(e); // at once, in commit order: the gauge below shows the count when the closure runs
    // Listeners run inside the engine call; act on the next loop turn (the dialog is up by then). One timer takes
    // every event of a turn (a park cycle has several), handled in commit order; an event raised while they are
    // handled waits for the turn after.
    pendingEvents_.push_back(e);
    if (eventTimer_)
        return;
    eventTimer_ = after(0, [this] {
        eventTimer_ = 0;
        std::vector<eng::ChangeEvent> events;
        events.swap(pendingEvents_);
        for (const eng::ChangeEvent &ev : events)
            handleEvent(ev);
    });
}

void CallPark::handleEvent(const eng::ChangeEvent &ev) {
    {
        const eng::ParkedCall &call = ev.call;
        std::string labels = fmt::format("domain=\"{}\"", call.domain);
        double dur = double(ev.at - call.parkedAt) / 1000.0;
        // Another node's change (change_feed.cc): that node counts it and sends its park-info; here its watchers
        // (and the admin stream, and the parked-calls gauge, which counts the shared store) see it.
        if (!ev.remote) {
            switch (ev.kind) {
            case eng::EventKind::Parked:
                host_.counter("parkway_parks_total", labels);
                break;
            case eng::EventKind::Retrieved:
                host_.counter("parkway_retrieves_total", labels);
                host_.observe("parkway_park_duration_seconds", labels, dur);
                break;
            case eng::EventKind::RecallStarted:
                host_.counter("parkway_recalls_total", labels);
                break;
            case eng::EventKind::Abandoned:
                host_.counter("parkway_abandons_total", labels);
                host_.observe("parkway_park_duration_seconds", labels, dur);
                break;
            default:
                break;
            }
        }
        if (host_.eventListening()) // no admin stream client: no JSON built for nobody
            host_.event(eng::toString(ev.kind), eng::toJson(ev));
        bool counted = ev.kind == eng::EventKind::Parked || ev.kind == eng::EventKind::Retrieved ||
                       ev.kind == eng::EventKind::Abandoned || ev.kind == eng::EventKind::Moved;
        if (counted) { // other kinds change no count (the gauge is set from the counts kept by countEvent)
            updateGauges(call.domain, call.lot);
            if (ev.previous && ev.previous->lot != call.lot)
                updateGauges(ev.previous->domain, ev.previous->lot);
        }

        // Watchers see who is parked where: claims and recall stages change nothing they show. Their NOTIFYs
        // are queued and paced (drainNotifies).
        bool visible = counted;
        if (visible)
            for (const eng::TargetVersion &tv : ev.targets) {
                auto it = watcherCounts_.byTarget.find(targetKey(tv.target));
                if (it == watcherCounts_.byTarget.end())
                    continue;
                for (uint64_t id : it->second)
                    if (auto s = subById_.find(id); s != subById_.end())
                        queueNotify(*s->second);
            }
        if (visible)
            queueEventLists(ev); // a group list also shows its members' extensions

        if (settings_.parkInfo && !ev.remote &&
            (ev.kind == eng::EventKind::Parked || ev.kind == eng::EventKind::Retrieved ||
             ev.kind == eng::EventKind::RecallStarted || ev.kind == eng::EventKind::Abandoned))
            sendParkInfo(ev);
    }
}

void CallPark::countEvent(const eng::ChangeEvent &e) {
    if (!pendingCalls_.empty())
        pendingCallChanged(e); // a call still queued for restore (restore.cc)
    // The gauge counts this node's calls (with several nodes, their sum is the store's): another node's change
    // moves that node's gauge; a call taken over is counted when it is taken (cluster.cc).
    auto add = [this, &e](const eng::ParkedCall &c, int64_t d) {
        if (!e.remote)
            parkedCounts_[{c.domain, c.lot}] += d;
    };
    switch (e.kind) {
    case eng::EventKind::Parked:
        add(e.call, +1);
        break;
    case eng::EventKind::Retrieved:
    case eng::EventKind::Abandoned:
        add(e.call, -1);
        sidByCall_.erase(e.call.id); // the call left the engine
        break;
    case eng::EventKind::Moved:
        if (e.previous)
            add(*e.previous, -1);
        add(e.call, +1);
        break;
    default:
        break;
    }
}

void CallPark::updateGauges(const std::string &domain, const std::string &lot) {
    auto it = parkedCounts_.find({domain, lot});
    int64_t n = it == parkedCounts_.end() ? 0 : std::max<int64_t>(0, it->second);
    host_.gauge("parkway_parked_calls", domainLabels(domain, lot), double(n));
}

// Who is told (the extension, its group's members, the parker if the group says so) and the domain's retrieve
// code are read first, then the versions of those reachable (sendParkInfoTo): each read on the storage thread
// when there is one, in event order (the continuations run in the order of the reads).
void CallPark::sendParkInfo(const eng::ChangeEvent &e) {
    struct Read {
        std::vector<std::string> users;
        std::string retrieveCode, error;
    };
    storage_.run<Read>(
        [call = e.call](eng::Engine &en) {
            Read r;
            auto addUser = [&](const std::string &u) {
                if (!u.empty() && std::find(r.users.begin(), r.users.end(), u) == r.users.end())
                    r.users.push_back(u);
            };
            addUser(call.extension);
            try {
                if (!call.group.empty()) {
                    if (auto g = en.group(call.domain, call.group)) {
                        for (auto &mbr : g->members)
                            addUser(mbr);
                        if (g->notifyParker)
                            addUser(call.parker);
                    }
                }
                r.retrieveCode = en.domain(call.domain).retrieveCode;
            } catch (const std::exception &ex) {
                r.error = ex.what();
            }
            return r;
        },
        [this, e](Read &r) {
            if (!r.error.empty()) {
                host_.log(PW_LOG_ERROR, "callpark: park-info for call {} not sent: {}", e.call.id, r.error);
                host_.counter("parkway_notify_failed_total", "kind=\"park-info\"");
                return;
            }
            if (!stopping_)
                sendParkInfoTo(e, r.users, r.retrieveCode);
        },
        true);
}

void CallPark::sendParkInfoTo(const eng::ChangeEvent &e, const std::vector<std::string> &users,
                              const std::string &retrieveCode) {
    const eng::ParkedCall &call = e.call;
    ParkInfoEntry entry;
    entry.id = std::to_string(call.id);
    switch (e.kind) {
    case eng::EventKind::Retrieved:
        entry.state = ParkInfoState::Retrieved;
        break;
    case eng::EventKind::RecallStarted:
        entry.state = ParkInfoState::Recalled;
        break;
    case eng::EventKind::Abandoned:
        entry.state = ParkInfoState::Abandoned;
        break;
    default:
        entry.state = ParkInfoState::Parked;
        break;
    }
    std::string slotUser = call.lot.empty() ? call.extension : std::to_string(call.slot);
    entry.parkedOn = aor(slotUser, call.domain);
    entry.parker = Identity{call.parker.empty() ? "" : aor(call.parker, call.domain), ""};
    entry.parkedParty = Identity{call.parkedUri, call.parkedDisplay};
    entry.retrieve = call.lot.empty() ? aor(retrieveCode + call.extension, call.domain) : entry.parkedOn;
    entry.group = call.group;
    entry.lot = call.lot;
    if (!call.lot.empty())
        entry.slot = std::to_string(call.slot);
    entry.parkedAt = call.parkedAt / 1000;
    entry.recallAt = e.kind == eng::EventKind::Parked ? call.recallAt / 1000 : 0;
    entry.changedAt = e.at / 1000;

    // Only extensions we can reach are told (and so only they consume a version): their contacts, or their AOR
    // through the outbound proxy (notify_target, docs/routing.md).
    std::vector<std::string> told;
    std::vector<std::vector<Destination>> contactsOf;
    for (const std::string &u : users) {
        std::string aorUri = aor(u, call.domain);
        std::vector<Destination> contacts = destinationsFor(aorUri, call.domain);
        host_.log(PW_LOG_DEBUG, "callpark: park-info for {}: {} destination(s)", aorUri, contacts.size());
        if (contacts.empty())
            continue;
        told.push_back(u);
        contactsOf.push_back(std::move(contacts));
    }
    // The version is a counter per told extension, +1 per park-info notification it gets (docs/park-info.md;
    // RFC 4235 §4.1 style). Not the engine's target version: that one also moves on events that send no
    // park-info (retrieve started/aborted, recall failed, moved), which made the versions a phone sees jump.
    // Stored, so it keeps increasing across restarts.
    if (told.empty())
        return; // nobody to tell: no version used
    struct Versions {
        eng::Status st;
        std::vector<std::int64_t> v;
    };
    storage_.run<Versions>(
        [domain = call.domain, told](eng::Engine &en) {
            Versions r;
            try {
                r.st = en.nextParkInfoVersions(domain, told, &r.v);
            } catch (const std::exception &ex) {
                r.st = eng::Status::failure(eng::ErrorCode::Storage, ex.what());
            }
            return r;
        },
        [this, id = call.id, domain = call.domain, entry, told, contactsOf](Versions &r) {
            if (!r.st) {
                host_.log(PW_LOG_ERROR, "callpark: park-info for call {} not sent: {}", id, r.st.message);
                for (size_t i = 0; i < told.size(); ++i)
                    host_.counter("parkway_notify_failed_total", "kind=\"park-info\"", double(contactsOf[i].size()));
                return;
            }
            if (!stopping_)
                sendParkInfoNotifies(domain, entry, told, contactsOf, r.v);
        },
        true);
}

void CallPark::sendParkInfoNotifies(const std::string &domain, const ParkInfoEntry &entry,
                                    const std::vector<std::string> &told,
                                    const std::vector<std::vector<Destination>> &contactsOf,
                                    const std::vector<std::int64_t> &versions) {
    std::string from = fmt::format("<sip:park@{}>", domain);
    for (size_t i = 0; i < told.size(); ++i) {
        std::string aorUri = aor(told[i], domain);
        std::string body = buildParkInfo(aorUri, uint64_t(versions[i]), {entry});
        for (auto &[uri, hop] : contactsOf[i]) {
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
            Pending *pend =
                trackPending(makePending([this, uri = uri](pw_dialog *, int status, const pw_msg *) {
                                 host_.log(PW_LOG_DEBUG, "callpark: park-info NOTIFY to {}: {}", uri, status);
                                 if (status >= 300)
                                     host_.counter("parkway_notify_failed_total", "kind=\"park-info\"");
                             }),
                             nullptr);
            if (host_.api()->send_request(host_.raw(), &p, pendingResponse, pend) != PW_OK) {
                forgetPending(pend);
                host_.counter("parkway_notify_failed_total", "kind=\"park-info\"");
                continue;
            }
            host_.counter("parkway_notify_sent_total", "kind=\"park-info\"");
        }
    }
}

} // namespace parkway::callpark
