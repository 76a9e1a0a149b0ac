// RFC 4662 event lists: one SUBSCRIBE (Event: dialog, Supported: eventlist) to a lot's or a park group's list URI
// (sip:<list_uri_prefix_lot><lot>@domain, sip:<list_uri_prefix_group><group>@domain) gets multipart/related
// NOTIFYs: an RLMI document (application/rlmi+xml) naming one resource per slot of the lot / member of the group,
// and for each one the dialog-info a BLF on that slot / extension gets (RFC 4235). The first NOTIFY, a refresh's
// and the first after a restart carry the full state; the others only the resources whose state changed
// (fullState="false", RFC 4662 §5.2). The list version is the subscription's version (+1 per NOTIFY, from 0);
// each resource's dialog-info has its own version sequence within the subscription (RFC 4235 §4.1.2).
// Accepting, caps, access, pacing, persistence and expiry are the dialog watchers' (watchers.cc).
#include "callpark.hh"
#include "wire/rlmi.hh"

#include <algorithm>
#include <cctype>

namespace parkway::callpark {

std::optional<eng::Target> CallPark::listTarget(const SubscribeAsk &a) {
    // The list URI's lot / group, as onSubscribe read it (a lot first).
    auto found = [&](const auto &byName, const std::optional<std::string> &name) {
        auto it = name ? byName.find(*name) : byName.end();
        return it != byName.end() && it->second;
    };
    if (found(a.lots, a.listLot))
        return eng::Target{eng::TargetKind::Lot, a.domain, *a.listLot, 0};
    if (found(a.groups, a.listGroup))
        return eng::Target{eng::TargetKind::Group, a.domain, *a.listGroup, 0};
    return std::nullopt;
}

int CallPark::eventListTarget(pw_request *req, const SubscribeAsk &a, eng::Target *target) {
    std::optional<eng::Target> t = listTarget(a);
    if (!t)
        return 0;
    // RFC 4662 §4.1: a subscriber that can take lists says so with Supported: eventlist; we only serve the list
    // as a list, so without it: 421 Extension Required naming the extension in Require (RFC 3261 §21.4.15).
    if (!a.eventlist) {
        Headers h;
        h.add("Require", "eventlist");
        host_.reply(req, 421, "Extension Required", &h);
        return -1;
    }
    *target = *t;
    return 1;
}

// The list's resources now: the lot's slots in order, or the group's members in hunting order (engine side:
// runs on the storage thread when there is one, CallPark::readNotify).
void CallPark::readListEntries(eng::Engine &e, const eng::Target &list, std::vector<ListEntry> *out) {
    const std::string &domain = list.domain;
    if (list.kind == eng::TargetKind::Lot) {
        if (auto lot = e.lot(domain, list.name))
            for (int s = lot->firstSlot; s <= lot->lastSlot && s - lot->firstSlot < 10000; ++s)
                out->push_back({std::to_string(s), eng::Target{eng::TargetKind::Slot, domain, lot->name, s}});
    } else if (list.kind == eng::TargetKind::Group) {
        if (auto group = e.group(domain, list.name))
            for (const std::string &mbr : group->members)
                out->push_back({mbr, eng::Target{eng::TargetKind::Extension, domain, mbr, 0}});
    }
}

void CallPark::notifyEventList(Subscription &sub, bool terminated, const NotifyRead &rd, Views &views) {
    if (!sub.dlg || sub.ending)
        return;
    const std::string &domain = sub.target.domain;
    // The list's resources as read (readListEntries).
    static const std::vector<ListEntry> kNone;
    auto listed = rd.entries.find(domain + "|" + sub.target.key());
    const std::vector<ListEntry> &entries = listed == rd.entries.end() ? kNone : listed->second;
    // A resource added or removed (lots.set / groups.set changed the list): the full list again (RFC 4662 §5.2:
    // a full-state list replaces what the subscriber knows; a partial one cannot remove a resource).
    bool full = sub.listFull || terminated || entries.size() != sub.listResources.size();
    for (const ListEntry &e : entries)
        if (!sub.listResources.count(aor(e.user, domain)))
            full = true;
    if (full) // forget resources no longer listed
        for (auto it = sub.listResources.begin(); it != sub.listResources.end();) {
            bool listed = std::any_of(entries.begin(), entries.end(),
                                      [&](const ListEntry &e) { return aor(e.user, domain) == it->first; });
            it = listed ? std::next(it) : sub.listResources.erase(it);
        }

    std::vector<RlmiResource> resources;
    std::vector<MimePart> parts(1);
    for (const ListEntry &e : entries) {
        std::string uri = aor(e.user, domain);
        TargetView &view = viewOf(rd, views, e.target);
        buildViewDialogs(view);
        // What a BLF on the slot / extension gets (its entity = the resource URI), without the version:
        // compared with what this subscription last got for it.
        std::string shown = buildDialogInfo(uri, 0, DialogInfoState::Full, view.dialogs);
        Subscription::ListResource &r = sub.listResources[uri];
        if (!full && r.sent == shown)
            continue; // unchanged: not in a partial notification (RFC 4662 §5.2 fullState="false")
        r.sent = std::move(shown);
        RlmiResource res;
        res.uri = uri;
        res.instanceId = e.user; // one instance per resource, the same for the subscription's life (§5.5)
        res.state = terminated ? "terminated" : "active";
        res.reason = terminated ? "timeout" : "";
        // Content-ID (RFC 2392): unique per part and NOTIFY (list version), named by the rlmi cid (§5.5).
        res.cid = fmt::format("{}.{}.{}@{}", e.user, sub.version, sub.id, domain);
        parts.push_back({std::string(kDialogInfoContentType), res.cid,
                         buildDialogInfo(uri, r.version++, DialogInfoState::Full, view.dialogs)});
        resources.push_back(std::move(res));
    }
    if (!full && resources.empty())
        return; // nothing this list shows changed: no NOTIFY, no version used
    sub.listFull = false;
    std::string listUri = sub.entity;
    parts[0].contentType = std::string(kRlmiContentType);
    parts[0].contentId = fmt::format("list.{}.{}@{}", sub.version, sub.id, domain);
    parts[0].body = buildRlmi(listUri, sub.version, full, resources);
    MultipartBody mb = buildMultipartRelated(parts, fmt::format("pw-rlmi-{}-{}", sub.id, sub.version));

    Headers h;
    h.add("Event", "dialog");
    h.add("Require", "eventlist"); // RFC 4662 §4.1: NOTIFYs of a list subscription require the extension
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
    bool sent = sendInDialog(sub.dlg, "NOTIFY", &h, mb.contentType, mb.body, 0,
                             [this, id](pw_dialog *, int status, const pw_msg *) {
                                 if (status < 200)
                                     return;
                                 auto it = subById_.find(id);
                                 Subscription *sp = it == subById_.end() ? nullptr : it->second;
                                 if (status >= 300) {
                                     host_.counter("parkway_notify_failed_total", "kind=\"dialog-list\"");
                                     if (status == 481 && sp && sp->dlg && !sp->ending) { // RFC 6665 §4.1.3
                                         sp->ending = true;
                                         notifyAnswered(id);
                                         host_.api()->dialog_end(sp->dlg);
                                         return;
                                     }
                                     // Lost: the subscriber's view is unknown now, the next one is full.
                                     if (sp)
                                         sp->listFull = true;
                                 }
                                 notifyAnswered(id);
                             });
    if (sent) {
        host_.counter("parkway_notify_sent_total", "kind=\"dialog-list\"");
    } else {
        host_.counter("parkway_notify_failed_total", "kind=\"dialog-list\"");
        sub.inFlight = false;
        sub.listFull = true;
        notifyInFlight_.erase(sub.id);
    }
}

void CallPark::queueEventLists(const eng::ChangeEvent &e) {
    // Lot lists are watchers of the lot target: every change of a slot names it (watchers.cc queued them).
    // A group list shows its members' extensions, which a park straight on a member changes without the group.
    // Which groups have that member is configuration: rather than read it here on the SIP thread, every group
    // list of the domain is queued; the read (readNotify) finds its members, and a list whose resources did not
    // change gets no NOTIFY (notifyEventList).
    if (settings_.listUriPrefixGroup.empty())
        return;
    std::vector<const eng::ParkedCall *> calls{&e.call};
    if (e.previous)
        calls.push_back(&*e.previous);
    for (const eng::ParkedCall *c : calls) {
        if (c->extension.empty())
            continue;
        for (const auto &[id, sub] : subById_)
            if (sub->eventList && sub->target.kind == eng::TargetKind::Group && sub->target.domain == c->domain)
                queueNotify(*sub); // once at most: a queued watcher is not queued twice
    }
}

} // namespace parkway::callpark
