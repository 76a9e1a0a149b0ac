// Which INVITE is ours: a Request-URI that the dialplan rules classify as park / group park / retrieve /
// lot slot, or a Replaces header naming one of our park dialogs. Everything else continues untouched.
#include "callpark.hh"

namespace parkway::callpark {

pw_verdict CallPark::refuseStranger(pw_request *req) {
    if (!host_.challenge(req))
        host_.reply(req, 403, "Forbidden");
    return PW_STOP;
}

namespace {

// Sources whose headers the operator chose to believe: a trusted peer (RFC 3325 trust domain) or a domain run
// without authentication. A digest-authenticated user proves who it is, not whom its Referred-By names.
bool headersBelieved(int source) {
    return source == PW_IDENTITY_ASSERTED || source == PW_IDENTITY_TRUSTED_PEER ||
           source == PW_IDENTITY_UNAUTHENTICATED;
}

// The header a trusted front proxy adds to the transferee's park INVITE, naming who sent the REFER it relayed
// and Parkway never saw (docs/carrier.md "The parker"). RFC 6648: a private header without an X- prefix.
constexpr std::string_view kParkerHeader = "Parkway-Parker";

} // namespace

// The parker of a park INVITE (docs/auth.md "Call park", docs/carrier.md "The parker"), in this order:
//  1. Referred-By (RFC 3892 §3: the transferee copies the REFER's) when the sender's headers are believed;
//  2. the REFER we relayed a moment before (passthrough memory): its authenticated sender;
//  3. the Parkway-Parker header of a trusted peer (a front proxy that relayed the REFER itself);
//  4. else nobody: the INVITE's sender is the party being parked, never its own parker; the call is stored
//     without a parker and the recall rings the parked-on extension (docs/callpark.md "Recall"). `uri` is then
//     the sender's identity, which the engine still needs (own-extension park, group membership, lot access).
CallPark::ParkerChoice CallPark::chooseParker(const pw_msg *m, const Host::Who &sender,
                                              const std::optional<ReferIntent> &intent) const {
    if (headersBelieved(sender.source) && !host_.uri(m, "Referred-By").empty())
        return {host_.uri(m, "Referred-By"), host_.display(m, "Referred-By"), false};
    if (intent)
        return {intent->parker, intent->parkerDisplay, false};
    if (sender.fromTrustedPeer() && !host_.uri(m, kParkerHeader).empty())
        return {host_.uri(m, kParkerHeader), host_.display(m, kParkerHeader), false};
    // A trusted peer asserts the transferee, who may be from anywhere (an outside caller): no tenant check.
    return {sender.uri, host_.display(m, "From"), sender.fromTrustedPeer()};
}

std::string CallPark::requestDomain(const pw_msg *m) const {
    return uriHost(host_.requestUri(m));
}

int CallPark::engineErrorStatus(eng::ErrorCode e) const {
    switch (e) {
    case eng::ErrorCode::Occupied:
    case eng::ErrorCode::GroupFull:
    case eng::ErrorCode::LotFull:
    case eng::ErrorCode::Busy:
    case eng::ErrorCode::ExtensionFull:
        return 486; // a cap on one extension answers like an occupied one
    case eng::ErrorCode::DomainFull:
    case eng::ErrorCode::Storage:
        return 503; // capacity, or the database is away: the caller adds Retry-After (RFC 3261 §21.5.4)
    case eng::ErrorCode::NoGroup:
    case eng::ErrorCode::UnknownExtension:
    case eng::ErrorCode::UnknownLot:
    case eng::ErrorCode::BadSlot:
    case eng::ErrorCode::NotFound:
        return 404;
    case eng::ErrorCode::Forbidden:
        return 403;
    case eng::ErrorCode::BadRequest:
        return 400;
    default:
        return 500;
    }
}

// pw_module.overload_priority (docs/limits.md "Overload"): while the host sheds load, the retrieve of a call that
// is parked now finishes work under way (the call, its music and its slot are freed), so it goes ahead of new
// work. A park, a retrieve of nothing and anything else are new work. Reads the rules and the sessions in memory,
// never the store (the SIP thread is behind already), and changes nothing.
int CallPark::overloadPriority(const pw_msg *m) {
    if (host_.method(m) != "INVITE")
        return 0;
    if (!host_.header(m, "Replaces").empty())
        return 1; // RFC 3891 pickup: onInvite finds out whether it names one of our dialogs
    std::string ruri = host_.requestUri(m);
    std::string domain = uriHost(ruri), dial = uriUser(ruri);
    if (domain.empty() || dial.empty() || !host_.isLocalDomain(domain))
        return 0;
    std::string caller = uriUser(host_.uri(m, "From"));
    eng::Classification c = engine_->classify(domain, caller, dial);
    if (c.action != eng::Action::Retrieve)
        return 0;
    // The sessions this node holds: a call parked on another node of a cluster is new work here (its retrieve is
    // forwarded to the owner, docs/cluster.md).
    std::string at = !c.lot.empty() ? std::to_string(c.slot) : c.extension.empty() ? caller : c.extension;
    return parkedHere(aor(at, domain)) ? 1 : 0;
}

pw_verdict CallPark::onInvite(pw_request *req, const pw_msg *m) {
    // A re-INVITE of a dialog we are not an endpoint of: not ours.
    if (!host_.tag(m, "To").empty())
        return PW_CONTINUE;

    // RFC 3891: an INVITE with Replaces naming our park dialog (BLF pickup from dialog-info) retrieves it.
    std::string replaces = host_.header(m, "Replaces");
    if (!replaces.empty()) {
        auto rv = parseReplaces(replaces);
        if (!rv) {
            host_.reply(req, 400, "Bad Replaces Header");
            return PW_STOP;
        }
        for (auto &[sid, s] : sessions_) {
            if (!s->a || !s->a->dlg || !s->callId)
                continue;
            pw_dialog *d = s->a->dlg;
            if (host_.dialogGet(d, PW_DLG_CALL_ID) != rv->callId)
                continue;
            // to-tag is our (the recipient's) local tag, from-tag the parked party's (RFC 3891 §3)
            if (host_.dialogGet(d, PW_DLG_LOCAL_TAG) != rv->toTag ||
                host_.dialogGet(d, PW_DLG_REMOTE_TAG) != rv->fromTag)
                continue;
            if (rv->earlyOnly) { // RFC 3891 §3: early-only against a confirmed dialog
                host_.reply(req, 486, "Busy Here");
                return PW_STOP;
            }
            // The session knows its call's domain: no read of the store here (docs/cluster.md "Threads"); the
            // claim by id below finds out whether the call is still parked.
            if (s->domain.empty())
                break;
            eng::RetrieveRequest rr;
            rr.domain = s->domain;
            rr.by = eng::RetrieveRequest::By::Id;
            rr.id = s->callId;
            Host::Who retriever = who(req);
            if (retriever.uri.empty())
                return refuseStranger(req);
            rr.retriever = uriUser(retriever.uri);
            if (uriHost(retriever.uri) != s->domain) {
                host_.reply(req, 403, "Forbidden");
                return PW_STOP;
            }
            return retrieveInvite(req, m, rr);
        }
        return PW_CONTINUE; // somebody else's dialog
    }

    std::string ruri = host_.requestUri(m);
    std::string domain = uriHost(ruri);
    if (domain.empty() || !host_.isLocalDomain(domain))
        return PW_CONTINUE;
    std::string dial = uriUser(ruri);
    if (dial.empty())
        return PW_CONTINUE;
    Host::Who sender = who(req);
    std::string caller = uriUser(sender.uri);
    eng::Classification c = engine_->classify(domain, caller, dial);

    // Orbit parking by transfer (docs/callpark.md "Transfer to a slot"): an INVITE to a lot slot is a retrieve,
    // unless it is the transferee's INVITE of a blind transfer: it carries Referred-By (RFC 3892) or follows a
    // REFER to that slot we saw (passthrough memory). Then it parks into the slot (rule attr `transfer=`); an
    // occupied slot fails or takes the next free one, it never connects the two callers.
    std::optional<ReferIntent> intent;
    if (c.action == eng::Action::Retrieve) {
        if (auto parkInto = eng::transferToSlot(c)) {
            intent = takeReferIntent(host_.uri(m, "From"), dial);
            if (intent || !host_.header(m, "Referred-By").empty())
                c = std::move(*parkInto);
        }
    } else if (c.action == eng::Action::Park || c.action == eng::Action::GroupPark) {
        intent = takeReferIntent(host_.uri(m, "From"), dial);
    }

    switch (c.action) {
    case eng::Action::Park:
    case eng::Action::GroupPark: {
        ParkerChoice pc = chooseParker(m, sender, intent);
        if (pc.uri.empty())
            return refuseStranger(req);
        // Only users of the same tenant park (docs/callpark.md "Tenants"); a front proxy's own transferee may be
        // anyone.
        if (!pc.withoutParker && uriHost(pc.uri) != domain) {
            host_.reply(req, 403, "Forbidden");
            return PW_STOP;
        }
        return parkInvite(req, m, c, domain, uriUser(pc.uri), pc.display, pc.withoutParker);
    }
    case eng::Action::Retrieve: {
        if (sender.uri.empty())
            return refuseStranger(req);
        if (uriHost(sender.uri) != domain) {
            host_.reply(req, 403, "Forbidden");
            return PW_STOP;
        }
        return retrieveInvite(req, m, eng::makeRetrieveRequest(c, domain, caller));
    }
    case eng::Action::Reject:
        host_.reply(req, c.rejectCode ? c.rejectCode : 403);
        return PW_STOP;
    default:
        return PW_CONTINUE;
    }
}

} // namespace parkway::callpark
