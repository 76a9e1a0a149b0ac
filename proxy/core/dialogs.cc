// Module-owned dialogs: UAS accept with our own 2xx retransmission, UAC INVITE, in-dialog requests,
// subscriptions (RFC 6665), export/restore.
#include "core_impl.hh"

#include <sofia-sip/nta_tport.h>
#include <sofia-sip/tport.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#ifdef PARKWAY_HAVE_METRICS
#include "../admin/metrics.hh"
#endif

namespace parkway::proxy {

namespace {

int dialogLegTrampoline(nta_leg_magic_t *magic, nta_leg_t *leg, nta_incoming_t *irq, const sip_t *sip) noexcept {
    auto *d = reinterpret_cast<pw_dialog *>(magic);
    return d->impl->onLegRequest(d, leg, irq, sip);
}

int uacTrampoline(nta_outgoing_magic_t *magic, nta_outgoing_t *orq, const sip_t *sip) noexcept {
    auto *u = reinterpret_cast<UacRequest *>(magic);
    return u->impl->onUacResponse(u, orq, sip);
}

std::string unquote(const char *s) {
    if (!s)
        return {};
    std::string v = s;
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
        v = v.substr(1, v.size() - 2);
    return v;
}

const char *orNull(const std::string &s) {
    return s.empty() ? nullptr : s.c_str();
}

std::string addrHeader(const std::string &display, const std::string &uri, const std::string &tag) {
    std::string out;
    if (!display.empty())
        out += "\"" + display + "\" ";
    out += "<" + uri + ">";
    if (!tag.empty())
        out += ";tag=" + tag;
    return out;
}

bool sourceIp(msg_t *msg, IpKey &ip) {
    su_sockaddr_t su;
    socklen_t len = sizeof su;
    return msg && msg_get_address(msg, &su, &len) == 0 && ipKeyOf(&su.su_sa, ip);
}

// The address the dialog's own state says the peer's requests come from, when it is an IP literal: the first
// entry of the route set that is not us (a proxy on the path: our requests go there, RFC 3261 §12.2.1.1, and the
// peer's come back through it), or with no such entry the remote target (a peer that reaches us directly, also
// through a proxy that did not record-route, whose source we learnt instead). A host name gives nothing: no DNS
// lookup on this path.
bool hopIp(const Proxy::Impl *impl, const pw_dialog *d, IpKey &ip) {
    sofia::Home home;
    for (const std::string &r : d->routeSet) {
        sip_route_t *rt = sip_route_make(home.get(), r.c_str());
        if (!rt || impl->isOurs(rt->r_url))
            continue;
        return rt->r_url->url_host && parseIp(rt->r_url->url_host, ip);
    }
    url_t *u = d->remoteTarget.empty() ? nullptr : url_make(home.get(), d->remoteTarget.c_str());
    return u && u->url_host && parseIp(u->url_host, ip);
}

} // namespace

// RFC 3261 §26.1.4 (tearing down sessions): whoever learns a dialog's Call-ID and tags can send a BYE in it. Our
// own dialogs (the parked party's leg, bridge legs, subscriptions) take in-dialog requests only from the peer
// that made them. IP addresses are compared, not ports: a TCP client reconnects from a new ephemeral port, and a
// UDP phone may send from another socket. So a stranger behind the peer's own NAT address is not stopped
// (docs/limits.md "In-dialog requests").
void Proxy::Impl::learnPeer(pw_dialog *d, msg_t *from) {
    IpKey ip;
    if (!sourceIp(from, ip))
        return;
    d->peerIps.assign(1, ip); // a UAC dialog takes the address of the response that (re)set its remote tag
    d->learnOnFirst = false;
}

bool Proxy::Impl::fromPeer(pw_dialog *d, msg_t *req, sip_method_t method) {
    IpKey ip;
    bool known = sourceIp(req, ip); // every message read from a socket has one: without it, fail closed
    if (known) {
        if (trusted.contains(ip)) // our own Kamailio/OpenSIPS relays the peer's requests ([proxy] trusted_peers)
            return true;
        if (std::find(d->peerIps.begin(), d->peerIps.end(), ip) != d->peerIps.end())
            return true;
        IpKey hop;
        bool haveHop = hopIp(this, d, hop);
        if (haveHop && hop == ip)
            return true;
        if (d->peerIps.empty() && d->learnOnFirst && !haveHop) {
            // Restored from a blob of an older version, which kept no address, and nothing in the dialog names
            // one: the first request is taken as the peer's (else the peer could never end the dialog).
            d->peerIps.push_back(ip);
            d->learnOnFirst = false;
            log(d->mod, PW_LOG_INFO,
                fmt::format("dialog {}: peer address {} learnt from its first request after restore", d->callId,
                            ip.text()));
            return true;
        }
    }
    const char *name = sip_method_name(method, "other"); // a bounded label: the known methods and "other"
#ifdef PARKWAY_HAVE_METRICS
    if (metrics)
        metrics->counterAdd("parkway_dialog_foreign_requests_total", fmt::format("method=\"{}\"", name), 1);
#endif
    int64_t now = nowMs();
    if (now - lastLimitLogMs >= 1000) { // one line a second at most, like the limits
        lastLimitLogMs = now;
        log(d->mod, PW_LOG_WARN,
            fmt::format("{} from {} in dialog {} refused (403): not the dialog's peer nor a trusted peer", name,
                        ip.text(), d->callId));
    }
    return false;
}

std::string Proxy::Impl::contactHeader() const {
    return "<" + primary + ">";
}

pw_dialog *Proxy::Impl::newDialog(ModuleInstance *mod, DialogRole role, const pw_dialog_callbacks *cbs, void *arg) {
    auto *d = new pw_dialog();
    d->impl = this;
    d->mod = mod;
    d->role = role;
    if (cbs)
        std::memcpy(&d->cbs, cbs, std::min<size_t>(sizeof d->cbs, cbs->struct_size));
    d->cbs.struct_size = sizeof d->cbs;
    d->arg = arg;
    d->expiryBaseMs = nowMs(); // a subscription accepted now expires `expires` seconds from here
    dialogs.insert(d);
    return d;
}

void Proxy::Impl::terminate(pw_dialog *d, pw_dialog_end_reason reason) {
    if (d->notified)
        return;
    d->notified = true;
    if (d->state != DialogState::Terminated && dialogs.count(d))
        ++terminatedDialogs;
    d->state = DialogState::Terminated;
    stopRetransmit(d);
    if (d->expiryTimer)
        d->expiryTimer->cancel();
    if (d->laterAccept) { // ended before dialog_accept_finish (module.h v1.9): its request is answered, or never
        pw_request *req = d->laterAccept->req;
        d->laterAccept.reset();
        if (!req->finalSent && req->irq)
            replyLocal(req, 500);
        unref(req);
    }
    if (d->cbs.on_terminated) {
        try {
            d->cbs.on_terminated(d->arg, d, reason);
        } catch (...) {
            log(d->mod, PW_LOG_ERROR, "on_terminated threw an exception");
        }
    }
    updateGauges();
    // Never destroy the leg from inside a callback of that leg: release from a timer (RFC-free hygiene).
    if (!d->lingerTimer)
        d->lingerTimer = std::make_unique<sofia::Timer>(root);
    d->lingerTimer->start(d->pendingOrqs > 0 ? t1x64 : 0, [this, d] { releaseDialog(d); });
}

void Proxy::Impl::releaseDialog(pw_dialog *d) {
    if (d->requestTport)
        tport_unref(d->requestTport);
    d->requestTport = nullptr;
    for (auto it = uacs.begin(); it != uacs.end();) {
        UacRequest *u = *it;
        if (u->dialog == d) {
            if (u->orq)
                nta_outgoing_destroy(u->orq);
            it = uacs.erase(it);
            delete u;
        } else {
            ++it;
        }
    }
    for (auto *tx : txns)
        if (tx->dialog == d)
            tx->dialog = nullptr;
    if (d->leg)
        nta_leg_destroy(d->leg);
    d->leg = nullptr;
    if (dialogs.erase(d) && d->state == DialogState::Terminated)
        --terminatedDialogs;
    delete d;
    updateGauges();
}

// dialog_forget (module.h, v1.7): the other end of the dialog is carried on elsewhere (docs/cluster.md), so this
// host drops its state without sending anything. Out of the table at once: the gauges and statsJson go down, a
// SUBSCRIBE refresh no longer matches it, a retransmitted 2xx is no longer ours (ackRetransmitted2xx). Marked
// `notified` so no callback of it runs again (an in-dialog request arriving before the release gets 481, a
// response to a pending request of ours reaches nobody and a re-INVITE's 2xx is not ACKed). The leg and the
// object go on a zero timer, as in terminate(): the module may call this from inside a callback of the same leg.
void Proxy::Impl::forgetDialog(pw_dialog *d) {
    d->notified = true;
    d->cbs = pw_dialog_callbacks{};
    d->cbs.struct_size = sizeof d->cbs;
    d->arg = nullptr;
    stopRetransmit(d);
    if (d->expiryTimer)
        d->expiryTimer->cancel();
    if (d->forkTimer)
        d->forkTimer->cancel();
    for (auto *tx : txns) // an in-dialog request the module holds stays answerable with request_reply()
        if (tx->dialog == d)
            tx->dialog = nullptr;
    if (dialogs.erase(d) && d->state == DialogState::Terminated)
        --terminatedDialogs;
    updateGauges();
    if (!d->lingerTimer)
        d->lingerTimer = std::make_unique<sofia::Timer>(root);
    d->lingerTimer->start(0, [this, d] { releaseDialog(d); });
}

void Proxy::Impl::startRetransmit(pw_dialog *d, msg_t *resp2xx, nta_incoming_t *irq) {
    d->pending2xx = sofia::Msg::adopt(resp2xx);
    if (d->requestTport)
        tport_unref(d->requestTport);
    d->requestTport = nta_incoming_transport(agent, irq, nullptr);
    if (!d->retransmitTimer)
        d->retransmitTimer = std::make_unique<sofia::Timer>(root);
    d->retransmitInterval = cfg.t1Ms;
    d->retransmitElapsed = 0;
    d->retransmitTimer->start(d->retransmitInterval, [this, d] { retransmitTick(d); });
}

// RFC 3261 §13.3.1.4: our 2xx again at T1, 2*T1, ... capped at T2, until the ACK comes or 64*T1 pass.
void Proxy::Impl::retransmitTick(pw_dialog *d) {
    d->retransmitElapsed += d->retransmitInterval;
    // A peer whose TCP connection is gone gets nothing more from us on it (Impl::streamClosed says why)
    tport_t *tp = d->requestTport;
    bool gone = tp && tport_is_stream(tp) && (tport_is_closed(tp) || tport_is_shutdown(tp));
    if (d->retransmitElapsed >= t1x64) {
        stopRetransmit(d);
        if (!gone)
            sendInDialog(d, "BYE", nullptr, 0, {}, {}, 0, nullptr, nullptr);
        terminate(d, PW_END_ACK_TIMEOUT);
        return;
    }
    if (!d->pending2xx)
        return;
    if (gone) { // no ACK can come any more either: wait for the timeout above
        d->retransmitInterval = std::min<uint64_t>(d->retransmitInterval * 2, cfg.t2Ms);
        d->retransmitTimer->start(d->retransmitInterval, [this, d] { retransmitTick(d); });
        return;
    }
    // nta_msg_tsend() forwards a response: it pops the top Via and sends along the next one. Give it a
    // copy with a throw-away top Via so the peer's Via (with received/rport) decides where it goes.
    if (msg_t *copy = msg_copy(d->pending2xx.get())) {
        sip_t *cs = sip_object(copy);
        sip_via_t *v = sip_via_make(msg_home(copy), "SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKpwrtx");
        if (v && msg_header_insert(copy, reinterpret_cast<msg_pub_t *>(cs), reinterpret_cast<msg_header_t *>(v)) == 0)
            nta_msg_tsend(agent, copy, nullptr, TAG_END());
        else
            msg_destroy(copy);
    }
    d->retransmitInterval = std::min<uint64_t>(d->retransmitInterval * 2, cfg.t2Ms);
    d->retransmitTimer->start(d->retransmitInterval, [this, d] { retransmitTick(d); });
}

void Proxy::Impl::stopRetransmit(pw_dialog *d) {
    d->pending2xx.reset();
    if (d->retransmitTimer)
        d->retransmitTimer->cancel();
    if (d->requestTport)
        tport_unref(d->requestTport);
    d->requestTport = nullptr;
}

// Fill identity from our request and the peer's response as UAC — RFC 3261 §12.1.2.
static void fillUac(pw_dialog *d, const sip_t *req, const sip_t *resp) {
    if (req) {
        d->callId = req->sip_call_id ? req->sip_call_id->i_id : "";
        d->localTag = req->sip_from && req->sip_from->a_tag ? req->sip_from->a_tag : "";
        d->localUri = req->sip_from ? sofia::urlString(req->sip_from->a_url) : "";
        d->localDisplay = req->sip_from ? unquote(req->sip_from->a_display) : "";
        d->remoteUri = req->sip_to ? sofia::urlString(req->sip_to->a_url) : "";
        d->remoteDisplay = req->sip_to ? unquote(req->sip_to->a_display) : "";
    }
    if (resp) {
        if (resp->sip_to && resp->sip_to->a_tag)
            d->remoteTag = resp->sip_to->a_tag;
        if (resp->sip_contact)
            d->remoteTarget = sofia::urlString(resp->sip_contact->m_url);
        d->routeSet.clear();
        for (sip_record_route_t *r = resp->sip_record_route; r; r = r->r_next)
            d->routeSet.insert(d->routeSet.begin(), "<" + sofia::urlString(r->r_url) + ">");
    }
}

// ---------------------------------------------------------------- incoming in-dialog requests

int Proxy::Impl::onLegRequest(pw_dialog *d, nta_leg_t *, nta_incoming_t *irq, const sip_t *sip) noexcept {
    noteWork();
    try {
        sip_method_t method = sip->sip_request->rq_method;
        countRequest(sip->sip_request->rq_method_name);
        {
            sofia::Msg m = sofia::Msg::adopt(nta_incoming_getrequest(irq));
            if (!admitRequest(irq, m.get()))
                return 0; // rate limited like any request (docs/limits.md)
            if (!fromPeer(d, m.get(), method)) {
                // Not the dialog's peer: the dialog is left exactly as it was (no callback, no CSeq or target
                // update). An ACK has no answer: it is dropped (it must not stop our 2xx retransmission).
                if (method == sip_method_ack) {
                    nta_incoming_destroy(irq);
                    return 0;
                }
                countResponse(403);
                return 403;
            }
        }
        if (method == sip_method_ack) {
            msg_t *ack = nta_incoming_getrequest(irq);
            nta_incoming_destroy(irq);
            bool wanted = d->pending2xx || d->state != DialogState::Terminated;
            if (d->pending2xx)
                stopRetransmit(d);
            if (wanted && !d->notified && d->cbs.on_ack) {
                pw_msg v;
                initView(v, ack);
                d->cbs.on_ack(d->arg, d, &v);
            }
            if (ack)
                msg_destroy(ack);
            return 0;
        }
        if (d->notified) {
            countResponse(481);
            return 481;
        }
        if (sip->sip_cseq && sip->sip_cseq->cs_seq > d->remoteCseq)
            d->remoteCseq = sip->sip_cseq->cs_seq;
        if (sip->sip_contact && method != sip_method_subscribe && method != sip_method_bye)
            d->remoteTarget = sofia::urlString(sip->sip_contact->m_url); // target refresh (RFC 3261 §12.2.2)
        if (method == sip_method_bye) {
            countResponse(200);
            nta_incoming_treply(irq, SIP_200_OK, TAG_END());
            nta_incoming_destroy(irq);
            terminate(d, PW_END_BYE);
            return 0;
        }
        if (method == sip_method_subscribe && d->subscription) {
            if (handleSubscriptionRefresh(irq, sip))
                return 0;
        }
        if (!d->cbs.on_request) {
            countResponse(501);
            return 501;
        }
        auto *tx = new pw_request();
        tx->impl = this;
        tx->kind = TxKind::InDialog;
        tx->irq = irq;
        tx->req = sofia::Msg::adopt(nta_incoming_getrequest(irq));
        tx->method = method;
        tx->methodName = sip->sip_request->rq_method_name;
        tx->dialog = d;
        tx->identity = d->remoteUri; // request_identity: the dialog's peer sent it (fromPeer above)
        tx->identitySource = PW_IDENTITY_DIALOG;
        txns.insert(tx);
        initView(tx->view, tx->req.get());
        nta_incoming_bind(
            irq,
            [](nta_incoming_magic_t *m, nta_incoming_t *i, const sip_t *s) noexcept -> int {
                auto *t = reinterpret_cast<pw_request *>(m);
                return t->impl->onAckCancel(t, i, s);
            },
            reinterpret_cast<nta_incoming_magic_t *>(tx));
        // A module that never answers: 500 after 64*T1 so the peer is not left hanging.
        tx->noAnswerTimer = std::make_unique<sofia::Timer>(root);
        tx->noAnswerTimer->start(t1x64, [this, tx] {
            if (!tx->finalSent)
                replyLocal(tx, 500, "Request Not Answered");
            maybeFinish(tx);
        });
        ++tx->refs;
        tx->inPipeline = true;
        try {
            d->cbs.on_request(d->arg, d, tx);
        } catch (...) {
            log(d->mod, PW_LOG_ERROR, "on_request (dialog) threw an exception");
            if (!tx->finalSent)
                replyLocal(tx, 500);
        }
        tx->inPipeline = false;
        maybeFinish(tx);
        unref(tx);
        return 0;
    } catch (...) {
        log(d->mod, PW_LOG_ERROR, "in-dialog request handling failed");
    }
    return 500;
}

bool Proxy::Impl::handleSubscriptionRefresh(nta_incoming_t *irq, const sip_t *sip) {
    if (sip->sip_request->rq_method != sip_method_subscribe || !sip->sip_to || !sip->sip_to->a_tag || !sip->sip_from ||
        !sip->sip_from->a_tag || !sip->sip_call_id)
        return false;
    pw_dialog *d = nullptr;
    for (auto *x : dialogs)
        if (x->subscription && !x->notified && x->callId == sip->sip_call_id->i_id &&
            !strcasecmp(x->localTag.c_str(), sip->sip_to->a_tag) &&
            !strcasecmp(x->remoteTag.c_str(), sip->sip_from->a_tag))
            d = x;
    if (!d)
        return false;
    {
        sofia::Msg m = sofia::Msg::adopt(nta_incoming_getrequest(irq));
        if (!fromPeer(d, m.get(), sip_method_subscribe)) {
            countResponse(403);
            nta_incoming_treply(irq, SIP_403_FORBIDDEN, TAG_END());
            nta_incoming_destroy(irq);
            return true;
        }
    }
    uint32_t expires = sip->sip_expires ? static_cast<uint32_t>(sip->sip_expires->ex_delta) : cfg.subMaxExpires;
    if (expires > 0)
        expires = std::clamp(expires, cfg.subMinExpires, cfg.subMaxExpires);
    if (sip->sip_cseq && sip->sip_cseq->cs_seq > d->remoteCseq)
        d->remoteCseq = sip->sip_cseq->cs_seq;
    if (sip->sip_contact)
        d->remoteTarget = sofia::urlString(sip->sip_contact->m_url);
    std::string ex = std::to_string(expires);
    countResponse(200);
    nta_incoming_treply(irq, SIP_200_OK, SIPTAG_EXPIRES_STR(ex.c_str()),
                        SIPTAG_CONTACT_STR(contactForRequest(sip).c_str()), TAG_END());
    nta_incoming_destroy(irq);
    d->expires = expires;
    d->expiryBaseMs = nowMs();
    if (expires > 0) {
        armSubscriptionExpiry(d, uint64_t(expires) * 1000);
    } else if (d->expiryTimer) {
        d->expiryTimer->cancel();
    }
    if (d->cbs.on_refresh) {
        try {
            d->cbs.on_refresh(d->arg, d, expires);
        } catch (...) {
            log(d->mod, PW_LOG_ERROR, "on_refresh threw an exception");
        }
    }
    return true;
}

void Proxy::Impl::armSubscriptionExpiry(pw_dialog *d, uint64_t ms) {
    if (!d->expiryTimer)
        d->expiryTimer = std::make_unique<sofia::Timer>(root);
    d->expiryTimer->start(ms, [this, d] {
        if (d->cbs.on_refresh)
            d->cbs.on_refresh(d->arg, d, 0);
        terminate(d, PW_END_EXPIRED);
    });
}

// ---------------------------------------------------------------- requests we send

int Proxy::Impl::sendInDialog(pw_dialog *d, const char *method, const pw_header *headers, size_t n, pw_str ctype,
                              pw_str body, uint32_t flags, pw_response_cb cb, void *arg) {
    if (!d->leg)
        return PW_ESTATE;
    sip_method_t m = sip_method_code(method);
    std::string hdrs = headersToString(headers, n);
    std::string ct = str(ctype), b = str(body);
    bool needsContact = m == sip_method_invite || m == sip_method_subscribe || m == sip_method_refer ||
                        m == sip_method_notify || m == sip_method_update;
    auto *u = new UacRequest();
    u->impl = this;
    u->dialog = d;
    u->cb = cb;
    u->arg = arg;
    u->flags = flags;
    u->method = m;
    std::string contact = contactForTarget(d->remoteTarget, d->nextHop); // the transport that side speaks
    u->orq = nta_outgoing_tcreate(d->leg, uacTrampoline, reinterpret_cast<nta_outgoing_magic_t *>(u),
                                  d->nextHop.empty() ? nullptr : URL_STRING_MAKE(d->nextHop.c_str()), m, method,
                                  nullptr, SIPTAG_CONTACT_STR(needsContact ? contact.c_str() : nullptr),
                                  SIPTAG_HEADER_STR(orNull(hdrs)), SIPTAG_CONTENT_TYPE_STR(orNull(ct)),
                                  SIPTAG_PAYLOAD_STR(ct.empty() && b.empty() ? nullptr : b.c_str()), TAG_END());
    if (!u->orq) {
        delete u;
        return PW_ETRANSPORT;
    }
    uacs.insert(u);
    ++d->pendingOrqs;
    countRequest(method);
    return PW_OK;
}

void Proxy::Impl::sendAck(pw_dialog *d, uint32_t cseq, pw_str ctype, pw_str body) {
    d->ackCseq = cseq;
    d->ackCtype = str(ctype);
    d->ackBody = str(body);
    transmitAck(d);
}

void Proxy::Impl::transmitAck(pw_dialog *d) {
    if (!d->leg)
        return;
    sofia::Home home;
    sip_cseq_t *cs = sip_cseq_create(home.get(), d->ackCseq, SIP_METHOD_ACK);
    const std::string &b = d->ackBody;
    nta_outgoing_t *ack = nta_outgoing_tcreate(
        d->leg, nullptr, nullptr, d->nextHop.empty() ? nullptr : URL_STRING_MAKE(d->nextHop.c_str()), SIP_METHOD_ACK,
        nullptr, SIPTAG_CSEQ(cs), SIPTAG_CONTENT_TYPE_STR(orNull(d->ackCtype)),
        SIPTAG_PAYLOAD_STR(b.empty() ? nullptr : b.c_str()), TAG_END());
    if (ack)
        nta_outgoing_destroy(ack);
    countRequest("ACK");
}

// RFC 3261 §13.2.2.4: the UAC core ACKs every 2xx retransmission it is handed, and it is the same ACK: same
// CSeq number, same body (the module's SDP answer of a deferred ACK). A repeat of the 2xx we already took is no
// new fork: no BYE. Before the module sent its deferred ACK there is nothing to repeat (no ACK of the host's own,
// which would differ): the peer retransmits until that ACK comes (§13.3.1.4).
void Proxy::Impl::ackAgain(pw_dialog *d, const sip_t *resp2xx) {
    uint32_t cseq = resp2xx && resp2xx->sip_cseq ? resp2xx->sip_cseq->cs_seq : 0;
    if (d->ackCseq && d->ackCseq == cseq)
        transmitAck(d);
}

// A 2xx to an INVITE we sent that no client transaction takes: a re-INVITE's transaction ends with its first 2xx,
// an initial INVITE's after 64*T1, and RFC 3261 §17.1.1.2 has the 2xx retransmissions bypass the transaction
// anyway. When Call-ID, From tag and To tag name one of our live dialogs it is a retransmission of a 2xx in it
// (ackAgain; a stale one of an older re-INVITE is dropped). Otherwise false: another fork's 2xx, which the caller
// ACKs and BYEs (§13.2.2.4).
bool Proxy::Impl::ackRetransmitted2xx(const sip_t *sip) {
    if (!sip || !sip->sip_call_id || !sip->sip_cseq || !sip->sip_from || !sip->sip_from->a_tag || !sip->sip_to ||
        !sip->sip_to->a_tag)
        return false;
    nta_leg_t *leg =
        nta_leg_by_dialog(agent, nullptr, sip->sip_call_id, sip->sip_to->a_tag, nullptr, sip->sip_from->a_tag, nullptr);
    auto *d = leg ? reinterpret_cast<pw_dialog *>(nta_leg_magic(leg, nullptr)) : nullptr;
    if (!d || !dialogs.count(d) || d->leg != leg || d->notified || d->callId != sip->sip_call_id->i_id ||
        strcasecmp(d->localTag.c_str(), sip->sip_from->a_tag) != 0 ||
        strcasecmp(d->remoteTag.c_str(), sip->sip_to->a_tag) != 0)
        return false;
    ackAgain(d, sip);
    return true;
}

void Proxy::Impl::finishUac(UacRequest *u) {
    if (u->orq)
        nta_outgoing_destroy(u->orq);
    u->orq = nullptr;
    uacs.erase(u);
    pw_dialog *d = static_cast<pw_dialog *>(u->dialog);
    delete u;
    if (d && --d->pendingOrqs <= 0 && d->notified && d->lingerTimer)
        d->lingerTimer->start(0, [this, d] { releaseDialog(d); });
}

int Proxy::Impl::onUacResponse(UacRequest *u, nta_outgoing_t *orq, const sip_t *sip) noexcept {
    noteWork();
    try {
        int status = sip ? sip->sip_status->st_status : nta_outgoing_status(orq);
        if (status < 100)
            status = 408;
        pw_dialog *d = static_cast<pw_dialog *>(u->dialog);
        pw_msg v;
        msg_t *resp = sip ? nta_outgoing_getresponse(orq) : nullptr;
        sofia::Msg respHolder = sofia::Msg::adopt(resp);
        noteReceived(resp);
        initView(v, resp);
        bool initialInvite = d && d->inviteOrq == orq;

        if (initialInvite) {
            const char *rtag = sip && sip->sip_to ? sip->sip_to->a_tag : nullptr;
            if (status >= 200 && status < 300 && d->state == DialogState::Confirmed) {
                if (rtag && strcasecmp(rtag, d->remoteTag.c_str()) != 0) {
                    // A second 2xx from another fork: ACK and BYE it (RFC 3261 §13.2.2.4)
                    sofia::ackAndBye(agent, sofia::Msg::borrow(resp));
                } else {
                    ackAgain(d, sip); // a retransmission of the 2xx we took (RFC 3261 §13.2.2.4)
                }
                return 0;
            }
            if (d->notified) {
                if (status >= 200 && status < 300 && resp)
                    sofia::ackAndBye(agent, sofia::Msg::borrow(resp));
                if (status >= 200) {
                    d->inviteOrq = nullptr;
                    finishUac(u);
                }
                return 0;
            }
            if (rtag && status > 100 && (status < 300)) {
                msg_t *req = nta_outgoing_getrequest(orq);
                if (d->remoteTag.empty() || status < 300) {
                    nta_leg_rtag(d->leg, rtag);
                    nta_leg_client_route(d->leg, sip->sip_record_route, sip->sip_contact);
                }
                fillUac(d, req ? sip_object(req) : nullptr, sip);
                if (req)
                    msg_destroy(req);
                learnPeer(d, resp); // the peer of a UAC dialog: where its establishing response came from
                if (status < 200)
                    d->state = DialogState::Early;
            }
            if (status >= 200 && status < 300) {
                d->state = DialogState::Confirmed;
                d->inviteCseq = sip->sip_cseq ? sip->sip_cseq->cs_seq : 0;
                if (!(d->inviteFlags & PW_SEND_DEFER_ACK) && u->method == sip_method_invite)
                    sendAck(d, d->inviteCseq, {}, {});
                updateGauges();
            }
            if (d->inviteCb) {
                try {
                    d->inviteCb(d->inviteCbArg, d, status, resp ? &v : nullptr);
                } catch (...) {
                    log(d->mod, PW_LOG_ERROR, "response callback threw an exception");
                }
            }
            if (status >= 300) {
                d->inviteOrq = nullptr;
                --d->pendingOrqs;
                uacs.erase(u);
                nta_outgoing_destroy(orq);
                delete u;
                terminate(d, PW_END_FAILED);
                return 0;
            }
            if (status >= 200 && !d->forkTimer) {
                // Keep the client transaction for 64*T1 to catch 2xx from other forks.
                d->forkTimer = std::make_unique<sofia::Timer>(root);
                d->forkTimer->start(t1x64, [this, d, u] {
                    if (uacs.count(u)) {
                        d->inviteOrq = nullptr;
                        finishUac(u);
                    }
                });
            }
            return 0;
        }

        // in-dialog request or out-of-dialog request
        if (d && u->method == sip_method_invite && status >= 200 && status < 300) {
            uint32_t cseq = sip && sip->sip_cseq ? sip->sip_cseq->cs_seq : 0;
            d->inviteCseq = cseq;
            if (sip && sip->sip_contact)
                d->remoteTarget = sofia::urlString(sip->sip_contact->m_url);
            if (!(u->flags & PW_SEND_DEFER_ACK) && !d->notified)
                sendAck(d, cseq, {}, {});
        }
        if (status < 200 && status == 100)
            return 0;
        bool final = status >= 200;
        pw_response_cb cb = u->cb;
        void *arg = u->arg;
        if (final)
            finishUac(u);
        if (cb && !(d && d->notified)) {
            try {
                cb(arg, d, status, resp ? &v : nullptr);
            } catch (...) {
                log(d ? d->mod : nullptr, PW_LOG_ERROR, "response callback threw an exception");
            }
        }
        // RFC 3261 §12.2.1.2: 481/408 to an in-dialog request ends the dialog
        if (final && d && !d->notified && (status == 481 || status == 408))
            terminate(d, PW_END_TRANSPORT);
    } catch (...) {
        log(nullptr, PW_LOG_ERROR, "UAC response handling failed");
    }
    return 0;
}

// ---------------------------------------------------------------- export / restore

std::string exportDialog(pw_dialog *d) {
    nlohmann::json j;
    j["v"] = 1;
    j["callId"] = d->callId;
    j["localTag"] = d->localTag;
    j["remoteTag"] = d->remoteTag;
    j["localUri"] = d->localUri;
    j["remoteUri"] = d->remoteUri;
    j["localDisplay"] = d->localDisplay;
    j["remoteDisplay"] = d->remoteDisplay;
    j["remoteTarget"] = d->remoteTarget;
    j["routeSet"] = d->routeSet;
    j["localCseq"] = d->leg ? nta_leg_get_seq(d->leg) : 0;
    j["remoteCseq"] = d->remoteCseq;
    j["nextHop"] = d->nextHop;
    j["role"] = d->role == DialogRole::Uas ? "uas" : "uac";
    j["subscription"] = d->subscription;
    j["expires"] = d->expires;
    // Absolute wall-clock expiry, so a restore re-arms the remaining time (not a fresh period).
    if (d->subscription && d->expires > 0)
        j["expiresAt"] = d->expiryBaseMs + int64_t(d->expires) * 1000;
    // The learnt peer addresses (fromPeer). Older versions ignore the key; a blob without it is restored with
    // learnOnFirst (restoreDialog).
    std::vector<std::string> peer;
    for (const IpKey &ip : d->peerIps)
        peer.push_back(ip.text());
    j["peer"] = peer;
    // A peer's ISO-8859-1 display name must not make the dialog unexportable: invalid UTF-8 becomes U+FFFD
    // (display names play no part in matching a dialog, RFC 3261 §12).
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

pw_dialog *restoreDialog(Proxy::Impl *impl, ModuleInstance *mod, const std::string &blob,
                         const pw_dialog_callbacks *cbs, void *arg, std::string &error) {
    nlohmann::json j = nlohmann::json::parse(blob, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        error = "dialog_restore: blob is not JSON";
        return nullptr;
    }
    auto s = [&](const char *k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
    if (j.value("v", 0) != 1 || s("callId").empty() || s("localTag").empty() || s("remoteTag").empty() ||
        s("localUri").empty() || s("remoteUri").empty()) {
        error = "dialog_restore: blob lacks Call-ID, tags or URIs";
        return nullptr;
    }
    pw_dialog *d = impl->newDialog(mod, s("role") == "uac" ? DialogRole::Uac : DialogRole::Uas, cbs, arg);
    d->callId = s("callId");
    d->localTag = s("localTag");
    d->remoteTag = s("remoteTag");
    d->localUri = s("localUri");
    d->remoteUri = s("remoteUri");
    d->localDisplay = s("localDisplay");
    d->remoteDisplay = s("remoteDisplay");
    d->remoteTarget = s("remoteTarget").empty() ? d->remoteUri : s("remoteTarget");
    d->nextHop = s("nextHop");
    if (j.contains("routeSet") && j["routeSet"].is_array())
        for (auto &r : j["routeSet"])
            if (r.is_string())
                d->routeSet.push_back(r.get<std::string>());
    d->remoteCseq = j.value("remoteCseq", 0u);
    d->subscription = j.value("subscription", false);
    d->expires = j.value("expires", 0u);
    uint32_t localCseq = j.value("localCseq", 0u);
    if (j.contains("peer") && j["peer"].is_array())
        for (auto &p : j["peer"]) {
            IpKey ip;
            if (p.is_string() && parseIp(p.get<std::string>(), ip))
                d->peerIps.push_back(ip);
        }
    // No learnt address (a blob of an older version): the peer is who the dialog's route set or remote target
    // names when that is an IP address; only when it names none is the first request's source learnt.
    d->learnOnFirst = d->peerIps.empty();

    std::string local = addrHeader(d->localDisplay, d->localUri, d->localTag);
    std::string remote = addrHeader(d->remoteDisplay, d->remoteUri, d->remoteTag);
    std::string cseq = std::to_string(localCseq);
    d->leg = nta_leg_tcreate(impl->agent, dialogLegTrampoline, reinterpret_cast<nta_leg_magic_t *>(d),
                             SIPTAG_CALL_ID_STR(d->callId.c_str()), SIPTAG_FROM_STR(local.c_str()),
                             SIPTAG_TO_STR(remote.c_str()), SIPTAG_CSEQ_STR(cseq.c_str()),
                             NTATAG_REMOTE_CSEQ(d->remoteCseq), TAG_END());
    if (!d->leg) {
        error = "dialog_restore: cannot create the dialog leg";
        impl->dialogs.erase(d);
        delete d;
        return nullptr;
    }
    sofia::Home home;
    sip_contact_t *target = sip_contact_make(home.get(), d->remoteTarget.c_str());
    sip_record_route_t *rr = nullptr;
    if (!d->routeSet.empty()) {
        std::string joined;
        for (auto &r : d->routeSet)
            joined += (joined.empty() ? "" : ", ") + r;
        rr = sip_record_route_make(home.get(), joined.c_str());
    }
    nta_leg_server_route(d->leg, rr, target); // route set used in stored order
    d->state = DialogState::Confirmed;
    if (d->subscription) {
        // Re-arm the expiry for what is left of the period; already past -> expire on the next loop turn
        // through the usual on_refresh(0) + PW_END_EXPIRED path (RFC 6665 §4.1.2.4 for the module's NOTIFY).
        int64_t now = impl->nowMs();
        int64_t at = j.contains("expiresAt") && j["expiresAt"].is_number_integer() ? j["expiresAt"].get<int64_t>()
                                                                                   : now + int64_t(d->expires) * 1000;
        d->expiryBaseMs = at - int64_t(d->expires) * 1000;
        impl->armSubscriptionExpiry(d, uint64_t(std::max<int64_t>(0, at - now)));
    }
    impl->updateGauges();
    return d;
}

} // namespace parkway::proxy
