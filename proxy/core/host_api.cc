// The pw_host_api table given to modules, module lifecycle, admin commands, and Proxy's public methods.
// Every function here is a noexcept trampoline: exceptions never cross into C.
#include "../plugin/loader.hh"
#include "core_impl.hh"
#include "sip_trace.hh"
#include "sofia_fixes.hh"

#include <sofia-sip/tport.h>

#include <parkway/module.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <dlfcn.h>
#include <optional>
#include <strings.h>

#ifdef PARKWAY_HAVE_METRICS
#include "../admin/event_bus.hh"
#include "../admin/metrics.hh"
#endif

namespace parkway::proxy {

bool uriParses(const std::string &u) {
    sofia::Home home;
    return !u.empty() && url_make(home.get(), u.c_str()) != nullptr;
}

namespace {

using Impl = Proxy::Impl;

const char *orNull(const std::string &s) {
    return s.empty() ? nullptr : s.c_str();
}

ModuleInstance *moduleOf(pw_request *tx) {
    if (tx->kind == TxKind::InDialog && tx->dialog)
        return tx->dialog->mod;
    auto &mods = tx->impl->modules;
    return tx->moduleIndex < mods.size() ? mods[tx->moduleIndex].get() : nullptr;
}

std::string lower(std::string s) {
    for (auto &c : s)
        c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return s;
}

// ---- logging, params, settings

void hLog(pw_host *h, pw_log_level level, pw_str text) noexcept {
    try {
        h->impl->log(h->mod, level, std::string_view(text.ptr ? text.ptr : "", text.len));
    } catch (...) {
    }
}

pw_str hParamStr(pw_host *h, const char *name) noexcept {
    try {
        if (!name)
            return {};
        auto it = h->mod->lm.params.find(name);
        if (it == h->mod->lm.params.end())
            return {};
        return view(it->second);
    } catch (...) {
        return {};
    }
}

int64_t parseDurationMs(const std::string &v) {
    size_t pos = 0;
    long long n = std::stoll(v, &pos);
    std::string unit = lower(v.substr(pos));
    if (unit.empty() || unit == "ms")
        return n;
    if (unit == "s")
        return n * 1000;
    if (unit == "m" || unit == "min")
        return n * 60000;
    if (unit == "h")
        return n * 3600000;
    return n;
}

int64_t hParamInt(pw_host *h, const char *name) noexcept {
    try {
        if (!name)
            return 0;
        auto it = h->mod->lm.params.find(name);
        if (it == h->mod->lm.params.end())
            return 0;
        std::string v = lower(it->second);
        if (v == "true" || v == "yes" || v == "on")
            return 1;
        if (v == "false" || v == "no" || v == "off" || v.empty())
            return 0;
        return parseDurationMs(v);
    } catch (...) {
        return 0;
    }
}

pw_str hCoreSetting(pw_host *h, const char *name) noexcept {
    try {
        if (!name)
            return {};
        Impl *impl = h->impl;
        std::string v, n = name;
        if (n == "database")
            v = impl->cfg.database;
        else if (n == "instance")
            v = impl->cfg.instance;
        else if (n == "contact")
            v = impl->primary;
        else if (n == "sip_t1_ms")
            v = std::to_string(impl->cfg.t1Ms);
        else if (n == "config_dir")
            v = impl->cfg.configDir;
        else if (n == "outbound_proxy")
            v = impl->cfg.outboundProxy;
        else if (n.rfind("outbound_proxy:", 0) == 0) // the one used for a domain (docs/routing.md)
            v = outboundProxyFor(impl->cfg, "sip:" + n.substr(15), "");
        else if (n == "domains") {
            for (auto &d : impl->cfg.domains)
                v += (v.empty() ? "" : ",") + d;
        } else
            return {};
        auto &slot = h->mod->paramCache["core:" + n];
        slot = v;
        return view(slot);
    } catch (...) {
        return {};
    }
}

int hIsLocalDomain(pw_host *h, pw_str domain) noexcept {
    try {
        return h->impl->isLocalDomain(str(domain)) ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

// ---- message access

const pw_msg *hRequestMsg(pw_request *req) noexcept {
    return req ? &req->view : nullptr;
}

pw_str hMsgMethod(const pw_msg *m) noexcept {
    if (!m || !m->sip)
        return {};
    if (m->sip->sip_request)
        return pw_str{m->sip->sip_request->rq_method_name, strlen(m->sip->sip_request->rq_method_name)};
    if (m->sip->sip_cseq)
        return pw_str{m->sip->sip_cseq->cs_method_name, strlen(m->sip->sip_cseq->cs_method_name)};
    return {};
}

int hMsgStatus(const pw_msg *m) noexcept {
    return m && m->sip && m->sip->sip_status ? m->sip->sip_status->st_status : 0;
}

pw_str hMsgRequestUri(const pw_msg *m) noexcept {
    try {
        if (!m || !m->sip || !m->sip->sip_request)
            return {};
        return keep(m, urlString(m->sip->sip_request->rq_url));
    } catch (...) {
        return {};
    }
}

pw_str hMsgHeader(const pw_msg *m, pw_str name, unsigned idx) noexcept {
    try {
        if (!m || !m->msg)
            return {};
        std::string v;
        if (!sofia::headerValue(m->msg, std::string_view(name.ptr ? name.ptr : "", name.len), idx, v))
            return {};
        return keep(m, std::move(v));
    } catch (...) {
        return {};
    }
}

pw_str hMsgBody(const pw_msg *m) noexcept {
    if (!m || !m->sip || !m->sip->sip_payload)
        return {};
    return pw_str{m->sip->sip_payload->pl_data, m->sip->sip_payload->pl_len};
}

struct AddrParts {
    const url_t *url = nullptr;
    const char *display = nullptr;
    const char *tag = nullptr;
};

AddrParts addrOf(const pw_msg *m, pw_str header) {
    AddrParts a;
    if (!m || !m->sip)
        return a;
    std::string_view n(header.ptr ? header.ptr : "", header.len);
    const sip_t *sip = m->sip;
    if ((sofia::iequals(n, "From") || sofia::iequals(n, "f")) && sip->sip_from)
        a = {sip->sip_from->a_url, sip->sip_from->a_display, sip->sip_from->a_tag};
    else if ((sofia::iequals(n, "To") || sofia::iequals(n, "t")) && sip->sip_to)
        a = {sip->sip_to->a_url, sip->sip_to->a_display, sip->sip_to->a_tag};
    else if ((sofia::iequals(n, "Contact") || sofia::iequals(n, "m")) && sip->sip_contact)
        a = {sip->sip_contact->m_url, sip->sip_contact->m_display, nullptr};
    else if ((sofia::iequals(n, "Refer-To") || sofia::iequals(n, "r")) && sip->sip_refer_to)
        a = {sip->sip_refer_to->r_url, sip->sip_refer_to->r_display, nullptr};
    else if ((sofia::iequals(n, "Referred-By") || sofia::iequals(n, "b")) && sip->sip_referred_by)
        a = {sip->sip_referred_by->b_url, sip->sip_referred_by->b_display, nullptr};
    return a;
}

pw_str hMsgUri(const pw_msg *m, pw_str header) noexcept {
    try {
        AddrParts a = addrOf(m, header);
        if (a.url)
            return keep(m, urlString(a.url));
        // any other name-addr header: take what is between < and >, else the value
        std::string v;
        if (!m || !sofia::headerValue(m->msg, std::string_view(header.ptr ? header.ptr : "", header.len), 0, v))
            return {};
        auto lt = v.find('<'), gt = v.find('>');
        if (lt != std::string::npos && gt != std::string::npos && gt > lt)
            v = v.substr(lt + 1, gt - lt - 1);
        return keep(m, v);
    } catch (...) {
        return {};
    }
}

pw_str hMsgTag(const pw_msg *m, pw_str header) noexcept {
    AddrParts a = addrOf(m, header);
    return a.tag ? pw_str{a.tag, strlen(a.tag)} : pw_str{};
}

pw_str hMsgDisplay(const pw_msg *m, pw_str header) noexcept {
    try {
        AddrParts a = addrOf(m, header);
        if (!a.display)
            return {};
        std::string d = a.display;
        if (d.size() >= 2 && d.front() == '"' && d.back() == '"')
            d = d.substr(1, d.size() - 2);
        return keep(m, d);
    } catch (...) {
        return {};
    }
}

pw_str hMsgSource(const pw_msg *m) noexcept {
    try {
        if (!m)
            return {};
        if (m->source.empty())
            m->source = messageSource(*m);
        return view(m->source);
    } catch (...) {
        return {};
    }
}

// ---- acting on the request

int hRequestReply(pw_request *req, int status, pw_str reason, const pw_header *headers, size_t n, pw_str ctype,
                  pw_str body) noexcept {
    try {
        if (!req)
            return PW_EINVAL;
        if (status < 100 || status > 699)
            return PW_EINVAL;
        if (!req->irq || req->finalSent)
            return PW_ESTATE;
        Impl *impl = req->impl;
        if (impl->streamClosed(req->irq, req->req.get())) { // the client is gone (Impl::streamClosed)
            if (status >= 200) {
                req->finalSent = true;
                impl->maybeFinish(req);
            }
            return PW_ETRANSPORT;
        }
        std::string hdrs = headersToString(headers, n), r = str(reason), ct = str(ctype), b = str(body);
        const sip_t *sip = req->req.sip();
        if (status > 100 && sip && sip->sip_to && !sip->sip_to->a_tag && !nta_incoming_gettag(req->irq))
            nta_incoming_tag(req->irq, nullptr); // RFC 3261 §8.2.6.2: our To-tag on local responses
        const char *phrase = r.empty() ? sip_status_phrase(status) : r.c_str();
        if (!phrase)
            phrase = "Unknown";
        int rc = nta_incoming_treply(req->irq, status, phrase, SIPTAG_HEADER_STR(orNull(hdrs)),
                                     SIPTAG_CONTENT_TYPE_STR(orNull(ct)),
                                     SIPTAG_PAYLOAD_STR(ct.empty() && b.empty() ? nullptr : b.c_str()), TAG_END());
        if (rc < 0)
            return PW_ETRANSPORT;
        impl->countResponse(status);
        if (status >= 200) {
            req->finalSent = true;
            impl->maybeFinish(req);
        }
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hRequestAddHeader(pw_request *req, pw_str name, pw_str value) noexcept {
    try {
        if (!req || !name.len)
            return PW_EINVAL;
        if (req->finalSent)
            return PW_ESTATE;
        std::string line = str(name) + ": " + str(value);
        msg_t *m = req->req.get();
        if (sip_add_tl(m, sip_object(m), SIPTAG_HEADER_STR(line.c_str()), TAG_END()) < 0)
            return PW_EINVAL;
        req->headersEdited = true;
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hRequestRemoveHeader(pw_request *req, pw_str name) noexcept {
    try {
        if (!req || !name.len)
            return PW_EINVAL;
        if (sofia::removeHeaders(req->req.get(), std::string_view(name.ptr, name.len)) <= 0)
            return PW_ENOTFOUND;
        req->headersEdited = true;
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hRequestAddTarget(pw_request *req, pw_str uri, pw_str nextHop) noexcept {
    try {
        if (!req || !uri.len || req->kind != TxKind::Proxied)
            return PW_EINVAL;
        if (req->finalSent)
            return PW_ESTATE;
        std::string u = str(uri), hop = str(nextHop);
        if (!uriParses(u) || (!hop.empty() && !nextHopValid(hop)))
            return PW_EINVAL;
        req->targets.push_back({u, hop});
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

pw_request *hRequestRetain(pw_request *req) noexcept {
    if (req)
        ++req->refs;
    return req;
}

int hRequestResume(pw_request *req, pw_verdict verdict) noexcept {
    try {
        if (!req)
            return PW_EINVAL;
        if (!req->suspended)
            return PW_ESTATE;
        if (verdict == PW_SUSPEND)
            return PW_EINVAL;
        Impl *impl = req->impl;
        req->suspended = false;
        ++req->refs;
        if (verdict == PW_CONTINUE && !req->finalSent && !req->cancelled)
            impl->runPipeline(req, req->moduleIndex + 1);
        else
            impl->afterPipeline(req, PW_STOP);
        impl->unref(req);
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

void hRequestRelease(pw_request *req) noexcept {
    try {
        if (req)
            req->impl->unref(req);
    } catch (...) {
    }
}

// ---- dialogs: UAS

using CommitFn = int (*)(void *commitArg, pw_dialog *dlg);

// The dialog's identity from the request it answers (our tag chosen): readable and exportable before the
// 2xx leaves, so a commit step can store it (module.h dialog_accept_commit).
void fillUasIdentity(pw_dialog *d, const sip_t *s, const char *tag) {
    d->callId = s->sip_call_id ? s->sip_call_id->i_id : "";
    d->localTag = tag ? tag : "";
    d->remoteTag = s->sip_from && s->sip_from->a_tag ? s->sip_from->a_tag : "";
    d->localUri = s->sip_to ? urlString(s->sip_to->a_url) : "";
    d->localDisplay = s->sip_to && s->sip_to->a_display ? s->sip_to->a_display : "";
    d->remoteUri = s->sip_from ? urlString(s->sip_from->a_url) : "";
    d->remoteDisplay = s->sip_from && s->sip_from->a_display ? s->sip_from->a_display : "";
    for (auto *disp : {&d->localDisplay, &d->remoteDisplay})
        if (disp->size() >= 2 && disp->front() == '"' && disp->back() == '"')
            *disp = disp->substr(1, disp->size() - 2);
    d->remoteTarget = s->sip_contact ? urlString(s->sip_contact->m_url) : d->remoteUri;
    for (sip_record_route_t *r = s->sip_record_route; r; r = r->r_next)
        d->routeSet.push_back("<" + urlString(r->r_url) + ">");
    d->remoteCseq = s->sip_cseq ? s->sip_cseq->cs_seq : 0;
}

// A dialog that never reached the wire: gone without on_terminated (dialog_accept_commit's contract).
void discardUas(Impl *impl, pw_dialog *d) {
    d->cbs = pw_dialog_callbacks{};
    impl->terminate(d, PW_END_FAILED);
}

enum class Commit { Send, Later, Refused };

// The request can still get its final response.
bool answerable(pw_request *req) {
    return req->irq && !req->finalSent && !req->impl->streamClosed(req->irq, req->req.get());
}

// Answers the request with status (300..699, else 500) unless it is answered already.
void replyUnlessAnswered(pw_request *req, int status) {
    if (!req->finalSent && req->irq)
        hRequestReply(req, status >= 300 && status <= 699 ? status : 500, pw_str{}, nullptr, 0, pw_str{}, pw_str{});
}

// The commit step of dialog_accept_commit: 0 = send the 2xx; PW_COMMIT_LATER = keep the dialog, the module
// finishes it (dialog_accept_finish); else the request is answered with the status the module returned (unless it
// answered itself inside commit) and the dialog is discarded.
Commit runCommit(pw_request *req, pw_dialog *d, CommitFn commit, void *commitArg) {
    Impl *impl = req->impl;
    ++req->refs; // commit may reply; the request must outlive this function either way
    int rc = 0;
    try {
        rc = commit(commitArg, d);
    } catch (...) {
        rc = 500;
    }
    bool open = !req->finalSent && req->irq;
    Commit c = rc == 0 && open ? Commit::Send : rc == PW_COMMIT_LATER && open ? Commit::Later : Commit::Refused;
    if (c == Commit::Refused) {
        discardUas(impl, d);
        replyUnlessAnswered(req, rc);
    }
    impl->unref(req);
    return c;
}

// Sends the 2xx that accepts the dialog d (built by acceptCommon). false: it could not be sent; the dialog is
// then discarded (after a commit step: no on_terminated, the module undoes) or terminated.
bool sendAccept(pw_request *req, pw_dialog *d, int status, const std::string &hdrs, const std::string &ct,
                const std::string &b, const std::string &contact, const std::string &ex, bool committed) {
    Impl *impl = req->impl;
    auto failed = [&] {
        if (committed)
            discardUas(impl, d);
        else
            impl->terminate(d, PW_END_FAILED);
        return false;
    };
    msg_t *resp = nta_incoming_create_response(req->irq, status, sip_status_phrase(status));
    if (!resp)
        return failed();
    sip_add_tl(resp, sip_object(resp), SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_EXPIRES_STR(orNull(ex)),
               SIPTAG_HEADER_STR(orNull(hdrs)), SIPTAG_CONTENT_TYPE_STR(orNull(ct)),
               SIPTAG_PAYLOAD_STR(ct.empty() && b.empty() ? nullptr : b.c_str()), TAG_END());
    if (nta_incoming_complete_response(req->irq, resp, status, sip_status_phrase(status), TAG_END()) < 0) {
        msg_destroy(resp);
        return failed();
    }
    msg_t *keepCopy = req->method == sip_method_invite ? msg_ref_create(resp) : nullptr;
    if (nta_incoming_mreply(req->irq, resp) < 0) {
        if (keepCopy)
            msg_destroy(keepCopy);
        return failed();
    }
    impl->countResponse(status);
    req->finalSent = true;
    req->dialog = d;
    if (keepCopy)
        impl->startRetransmit(d, keepCopy, req->irq);
    return true;
}

pw_dialog *acceptCommon(pw_request *req, int status, const pw_header *headers, size_t n, pw_str ctype, pw_str body,
                        const pw_dialog_callbacks *cbs, void *arg, bool subscription, uint32_t expires,
                        CommitFn commit = nullptr, void *commitArg = nullptr) {
    if (!req || !req->irq || req->finalSent)
        return nullptr;
    if (status < 200 || status > 299)
        return nullptr;
    Impl *impl = req->impl;
    if (impl->streamClosed(req->irq, req->req.get()))
        return nullptr; // the client is gone: like a CANCEL
    const sip_t *sip = req->req.sip();
    if (!sip || (sip->sip_to && sip->sip_to->a_tag))
        return nullptr; // in-dialog: use dialog_accept_request
    pw_dialog *d = impl->newDialog(moduleOf(req), DialogRole::Uas, cbs, arg);
    d->subscription = subscription;
    // The recipe: leg with From/To swapped, our tag on leg and transaction, route set from the request.
    d->leg = nta_leg_tcreate(
        impl->agent,
        [](nta_leg_magic_t *mg, nta_leg_t *l, nta_incoming_t *i, const sip_t *s) noexcept -> int {
            auto *dd = reinterpret_cast<pw_dialog *>(mg);
            return dd->impl->onLegRequest(dd, l, i, s);
        },
        reinterpret_cast<nta_leg_magic_t *>(d), SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to),
        SIPTAG_TO(sip->sip_from), SIPTAG_CSEQ(sip->sip_cseq), TAG_END());
    if (!d->leg) {
        impl->dialogs.erase(d);
        delete d;
        return nullptr;
    }
    const char *tag = nta_leg_tag(d->leg, nullptr);
    nta_incoming_tag(req->irq, tag);
    nta_leg_server_route(d->leg, sip->sip_record_route, sip->sip_contact);
    fillUasIdentity(d, sip, tag);
    impl->learnPeer(d, req->req.get()); // its peer: the source of the request that makes it (dialogs.cc)
    std::string hdrs = headersToString(headers, n), ct = str(ctype), b = str(body);
    std::string contact = impl->contactForRequest(sip);
    std::string ex;
    if (subscription) {
        expires = std::clamp(expires, impl->cfg.subMinExpires, impl->cfg.subMaxExpires);
        ex = std::to_string(expires);
        d->expires = expires;
    }
    d->state = DialogState::Confirmed;
    impl->updateGauges();
    if (commit) {
        Commit c = runCommit(req, d, commit, commitArg);
        if (c == Commit::Refused)
            return nullptr;
        if (c == Commit::Later) { // dialog_accept_finish sends it (v1.9)
            ++req->refs;
            d->laterAccept.reset(new Dialog::LaterAccept{req, status, hdrs, ct, b, contact});
            return d;
        }
    }
    // After a commit step a failure to send is reported by NULL alone (no on_terminated): the module undoes.
    if (!sendAccept(req, d, status, hdrs, ct, b, contact, ex, commit != nullptr))
        return nullptr;
    if (subscription) {
        d->expiryTimer = std::make_unique<sofia::Timer>(impl->root);
        d->expiryTimer->start(uint64_t(expires) * 1000, [impl, d] {
            if (d->cbs.on_refresh)
                d->cbs.on_refresh(d->arg, d, 0);
            impl->terminate(d, PW_END_EXPIRED);
        });
    }
    impl->maybeFinish(req);
    return d;
}

pw_dialog *hDialogAccept(pw_request *req, int status, const pw_header *headers, size_t n, pw_str ctype, pw_str body,
                         const pw_dialog_callbacks *cbs, void *arg) noexcept {
    try {
        return acceptCommon(req, status, headers, n, ctype, body, cbs, arg, false, 0);
    } catch (...) {
        return nullptr;
    }
}

pw_dialog *hDialogAcceptCommit(pw_request *req, int status, const pw_header *headers, size_t n, pw_str ctype,
                               pw_str body, const pw_dialog_callbacks *cbs, void *arg, CommitFn commit,
                               void *commitArg) noexcept {
    try {
        return acceptCommon(req, status, headers, n, ctype, body, cbs, arg, false, 0, commit, commitArg);
    } catch (...) {
        return nullptr;
    }
}

// module.h dialog_accept_finish (v1.9): the 2xx of a dialog whose commit step answered PW_COMMIT_LATER, or its
// refusal. Either way the request reference taken for it is dropped.
int hDialogAcceptFinish(pw_dialog *d, int status) noexcept {
    if (!d || !d->laterAccept)
        return -1;
    std::unique_ptr<Dialog::LaterAccept> later = std::move(d->laterAccept);
    pw_request *req = later->req;
    Impl *impl = req->impl;
    int rc = -1;
    try {
        if (status == 0 && answerable(req)) {
            if (sendAccept(req, d, later->status, later->headers, later->ctype, later->body, later->contact, "",
                           true)) {
                rc = 0;
                impl->maybeFinish(req);
            }
        } else {
            discardUas(impl, d);
            if (status != 0)
                replyUnlessAnswered(req, status);
        }
    } catch (...) {
        rc = -1;
    }
    impl->unref(req);
    return rc;
}

pw_dialog *hSubscriptionAccept(pw_request *req, uint32_t expires, const pw_dialog_callbacks *cbs, void *arg) noexcept {
    try {
        if (!req || req->method != sip_method_subscribe)
            return nullptr;
        return acceptCommon(req, 200, nullptr, 0, {}, {}, cbs, arg, true, expires);
    } catch (...) {
        return nullptr;
    }
}

int hDialogAcceptRequest(pw_dialog *d, pw_request *req, const pw_header *headers, size_t n, pw_str ctype,
                         pw_str body) noexcept {
    try {
        if (!d || !req)
            return PW_EINVAL;
        if (!req->irq || req->finalSent || d->notified)
            return PW_ESTATE;
        Impl *impl = d->impl;
        if (impl->streamClosed(req->irq, req->req.get()))
            return PW_ETRANSPORT; // the peer's connection is gone
        std::string hdrs = headersToString(headers, n), ct = str(ctype), b = str(body);
        std::string contact = impl->contactForRequest(req->req.sip());
        msg_t *resp = nta_incoming_create_response(req->irq, 200, sip_status_phrase(200));
        if (!resp)
            return PW_ENOMEM;
        sip_add_tl(resp, sip_object(resp), SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_HEADER_STR(orNull(hdrs)),
                   SIPTAG_CONTENT_TYPE_STR(orNull(ct)),
                   SIPTAG_PAYLOAD_STR(ct.empty() && b.empty() ? nullptr : b.c_str()), TAG_END());
        if (nta_incoming_complete_response(req->irq, resp, 200, sip_status_phrase(200), TAG_END()) < 0) {
            msg_destroy(resp);
            return PW_EINVAL;
        }
        msg_t *keepCopy = req->method == sip_method_invite ? msg_ref_create(resp) : nullptr;
        if (nta_incoming_mreply(req->irq, resp) < 0) {
            if (keepCopy)
                msg_destroy(keepCopy);
            return PW_ETRANSPORT;
        }
        impl->countResponse(200);
        req->finalSent = true;
        if (keepCopy)
            impl->startRetransmit(d, keepCopy, req->irq);
        impl->maybeFinish(req);
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

// ---- dialogs: UAC

bool hasHeader(const pw_header *headers, size_t n, const char *name) {
    for (size_t i = 0; headers && i < n; ++i)
        if (strcasecmp(str(headers[i].name).c_str(), name) == 0)
            return true;
    return false;
}

bool uacParamsOk(const pw_uac_params *p) {
    return p && p->struct_size >= offsetof(pw_uac_params, flags) + sizeof(uint32_t) && p->request_uri.len > 0 &&
           uriParses(str(p->request_uri)) && (!p->next_hop.len || nextHopValid(str(p->next_hop)));
}

std::string defaultFrom(Impl *impl) {
    sofia::Home home;
    url_t *u = url_make(home.get(), impl->primary.c_str());
    std::string host = u && u->url_host ? u->url_host : "127.0.0.1";
    if (u && u->url_port)
        host += std::string(":") + u->url_port;
    return "<sip:" + impl->cfg.instance + "@" + host + ">";
}

pw_dialog *hDialogInvite(pw_host *h, const pw_uac_params *p, pw_response_cb cb, const pw_dialog_callbacks *cbs,
                         void *arg) noexcept {
    try {
        if (!h || !uacParamsOk(p))
            return nullptr;
        Impl *impl = h->impl;
        if (impl->stopping || !impl->agent)
            return nullptr;
        std::string method = p->method.len ? str(p->method) : "INVITE";
        sip_method_t m = sip_method_code(method.c_str());
        std::string ruri = str(p->request_uri), from = str(p->from), to = str(p->to), hop = str(p->next_hop);
        if (from.empty())
            from = defaultFrom(impl);
        if (to.empty())
            to = "<" + ruri + ">";
        UacRoute rt = planUacRoute(impl->cfg, {ruri, from, to, hop, hasHeader(p->headers, p->n_headers, "Route")});
        hop = rt.hop;
        pw_dialog *d = impl->newDialog(h->mod, DialogRole::Uac, cbs, arg);
        d->nextHop = rt.moduleHop ? hop : ""; // else in-dialog requests follow the dialog's route set
        d->subscription = m == sip_method_subscribe;
        d->leg = nta_leg_tcreate(
            impl->agent,
            [](nta_leg_magic_t *mg, nta_leg_t *l, nta_incoming_t *i, const sip_t *s) noexcept -> int {
                auto *dd = reinterpret_cast<pw_dialog *>(mg);
                return dd->impl->onLegRequest(dd, l, i, s);
            },
            reinterpret_cast<nta_leg_magic_t *>(d), SIPTAG_FROM_STR(from.c_str()), SIPTAG_TO_STR(to.c_str()),
            TAG_END());
        if (!d->leg) {
            impl->dialogs.erase(d);
            delete d;
            return nullptr;
        }
        nta_leg_tag(d->leg, nullptr);
        std::string hdrs = (rt.route.empty() ? "" : "Route: " + rt.route + "\r\n") +
                           headersToString(p->headers, p->n_headers),
                    ct = str(p->content_type), b = str(p->body);
        std::string contact = impl->contactForTarget(ruri, hop);
        auto *u = new UacRequest();
        u->impl = impl;
        u->dialog = d;
        u->method = m;
        u->isInvite = true;
        u->orq = nta_outgoing_tcreate(
            d->leg,
            [](nta_outgoing_magic_t *mg, nta_outgoing_t *o, const sip_t *s) noexcept -> int {
                auto *uu = reinterpret_cast<UacRequest *>(mg);
                return uu->impl->onUacResponse(uu, o, s);
            },
            reinterpret_cast<nta_outgoing_magic_t *>(u), hop.empty() ? nullptr : URL_STRING_MAKE(hop.c_str()), m,
            method.c_str(), URL_STRING_MAKE(ruri.c_str()), SIPTAG_CONTACT_STR(contact.c_str()),
            SIPTAG_HEADER_STR(orNull(hdrs)), SIPTAG_CONTENT_TYPE_STR(orNull(ct)),
            SIPTAG_PAYLOAD_STR(ct.empty() && b.empty() ? nullptr : b.c_str()), TAG_END());
        if (!u->orq) {
            delete u;
            nta_leg_destroy(d->leg);
            impl->dialogs.erase(d);
            delete d;
            return nullptr;
        }
        impl->uacs.insert(u);
        impl->countRequest(method.c_str());
        d->pendingOrqs = 1;
        d->inviteOrq = u->orq;
        d->inviteCb = cb;
        d->inviteCbArg = arg;
        d->inviteFlags = p->flags;
        if (msg_t *req = nta_outgoing_getrequest(u->orq)) {
            const sip_t *s = sip_object(req);
            d->callId = s->sip_call_id ? s->sip_call_id->i_id : "";
            d->localTag = s->sip_from && s->sip_from->a_tag ? s->sip_from->a_tag : "";
            d->localUri = s->sip_from ? urlString(s->sip_from->a_url) : "";
            d->localDisplay = s->sip_from && s->sip_from->a_display ? s->sip_from->a_display : "";
            d->remoteUri = s->sip_to ? urlString(s->sip_to->a_url) : "";
            d->remoteDisplay = s->sip_to && s->sip_to->a_display ? s->sip_to->a_display : "";
            d->remoteTarget = ruri;
            msg_destroy(req);
        }
        impl->updateGauges();
        return d;
    } catch (...) {
        return nullptr;
    }
}

int hDialogCancel(pw_dialog *d) noexcept {
    try {
        if (!d)
            return PW_EINVAL;
        if (!d->inviteOrq || d->state == DialogState::Confirmed || d->notified)
            return PW_ESTATE;
        return nta_outgoing_tcancel(d->inviteOrq, nullptr, nullptr, TAG_END()) ? PW_OK : PW_ETRANSPORT;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hDialogRequest(pw_dialog *d, pw_str method, const pw_header *headers, size_t n, pw_str ctype, pw_str body,
                   uint32_t flags, pw_response_cb cb, void *arg) noexcept {
    try {
        if (!d || !method.len)
            return PW_EINVAL;
        if (d->notified || !d->leg)
            return PW_ESTATE;
        std::string m = str(method);
        return d->impl->sendInDialog(d, m.c_str(), headers, n, ctype, body, flags, cb, arg);
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hDialogAck(pw_dialog *d, pw_str ctype, pw_str body) noexcept {
    try {
        if (!d)
            return PW_EINVAL;
        if (!d->inviteCseq || d->notified)
            return PW_ESTATE;
        d->impl->sendAck(d, d->inviteCseq, ctype, body);
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hSendRequest(pw_host *h, const pw_uac_params *p, pw_response_cb cb, void *arg) noexcept {
    try {
        if (!h || !uacParamsOk(p) || !p->method.len)
            return PW_EINVAL;
        Impl *impl = h->impl;
        if (impl->stopping || !impl->agent)
            return PW_ESTATE;
        std::string method = str(p->method), ruri = str(p->request_uri), from = str(p->from), to = str(p->to),
                    hop = str(p->next_hop);
        if (from.empty())
            from = defaultFrom(impl);
        if (to.empty())
            to = "<" + ruri + ">";
        UacRoute rt = planUacRoute(impl->cfg, {ruri, from, to, hop, hasHeader(p->headers, p->n_headers, "Route")});
        hop = rt.hop;
        std::string hdrs = (rt.route.empty() ? "" : "Route: " + rt.route + "\r\n") +
                           headersToString(p->headers, p->n_headers),
                    ct = str(p->content_type), b = str(p->body);
        sip_method_t m = sip_method_code(method.c_str());
        auto *u = new UacRequest();
        u->impl = impl;
        u->cb = cb;
        u->arg = arg;
        u->flags = p->flags;
        u->method = m;
        std::string contact = impl->contactForTarget(ruri, hop);
        // A module speaking in another party's dialog gives that party's Contact itself (module.h, send_request)
        bool needsContact =
            (m == sip_method_invite || m == sip_method_subscribe || m == sip_method_refer || m == sip_method_notify) &&
            !hasHeader(p->headers, p->n_headers, "Contact");
        u->orq = nta_outgoing_tcreate(
            impl->defaultLeg,
            [](nta_outgoing_magic_t *mg, nta_outgoing_t *o, const sip_t *s) noexcept -> int {
                auto *uu = reinterpret_cast<UacRequest *>(mg);
                return uu->impl->onUacResponse(uu, o, s);
            },
            reinterpret_cast<nta_outgoing_magic_t *>(u), hop.empty() ? nullptr : URL_STRING_MAKE(hop.c_str()), m,
            method.c_str(), URL_STRING_MAKE(ruri.c_str()), SIPTAG_FROM_STR(from.c_str()), SIPTAG_TO_STR(to.c_str()),
            SIPTAG_CONTACT_STR(needsContact ? contact.c_str() : nullptr), SIPTAG_HEADER_STR(orNull(hdrs)),
            SIPTAG_CONTENT_TYPE_STR(orNull(ct)), SIPTAG_PAYLOAD_STR(ct.empty() && b.empty() ? nullptr : b.c_str()),
            TAG_END());
        if (!u->orq) {
            delete u;
            return PW_ETRANSPORT;
        }
        impl->uacs.insert(u);
        impl->countRequest(method.c_str());
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

// ---- dialogs: common

pw_str hDialogGet(pw_dialog *d, pw_dialog_field f) noexcept {
    try {
        if (!d)
            return {};
        std::string v;
        switch (f) {
        case PW_DLG_CALL_ID:
            v = d->callId;
            break;
        case PW_DLG_LOCAL_TAG:
            v = d->localTag;
            break;
        case PW_DLG_REMOTE_TAG:
            v = d->remoteTag;
            break;
        case PW_DLG_LOCAL_URI:
            v = d->localUri;
            break;
        case PW_DLG_REMOTE_URI:
            v = d->remoteUri;
            break;
        case PW_DLG_REMOTE_TARGET:
            v = d->remoteTarget;
            break;
        case PW_DLG_REMOTE_DISPLAY:
            v = d->remoteDisplay;
            break;
        case PW_DLG_STATE:
            v = d->state == DialogState::Early       ? "early"
                : d->state == DialogState::Confirmed ? "confirmed"
                                                     : "terminated";
            break;
        default:
            return {}; // a field this host does not know (module.h pw_dialog_field)
        }
        if (d->impl)
            return d->impl->turnKeep(std::move(v)); // until the turn ends (module.h dialog_get)
        if (d->scratch.size() > 64)
            d->scratch.pop_front();
        d->scratch.push_back(v);
        return view(d->scratch.back());
    } catch (...) {
        return {};
    }
}

// The module sent its own BYE in this dialog (dialog_request, e.g. to carry a Reason header, RFC 3326) and it
// is still pending: ending the dialog must not send a second one.
bool byePending(Impl *impl, pw_dialog *d) {
    for (const UacRequest *u : impl->uacs)
        if (u->dialog == d && u->method == sip_method_bye)
            return true;
    return false;
}

int hDialogEnd(pw_dialog *d) noexcept {
    try {
        if (!d)
            return PW_EINVAL;
        if (d->notified)
            return PW_ESTATE;
        Impl *impl = d->impl;
        if (!d->subscription || d->role == DialogRole::Uac) {
            if (d->inviteOrq && d->state != DialogState::Confirmed) {
                nta_outgoing_tcancel(d->inviteOrq, nullptr, nullptr, TAG_END()); // RFC 3261 §9.1
            } else if (d->state == DialogState::Confirmed && !d->subscription && !byePending(impl, d)) {
                impl->sendInDialog(d, "BYE", nullptr, 0, {}, {}, 0, nullptr, nullptr);
            }
        }
        impl->terminate(d, PW_END_LOCAL);
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hDialogRebind(pw_dialog *d, const pw_dialog_callbacks *cbs, void *arg) noexcept {
    if (!d)
        return PW_EINVAL;
    d->cbs = pw_dialog_callbacks{};
    if (cbs)
        std::memcpy(&d->cbs, cbs, std::min<size_t>(sizeof d->cbs, cbs->struct_size));
    d->cbs.struct_size = sizeof d->cbs;
    d->arg = arg;
    return PW_OK;
}

int hDialogForget(pw_dialog *d) noexcept {
    try {
        if (!d)
            return PW_EINVAL;
        Impl *impl = d->impl;
        if (d->notified || !impl->dialogs.count(d))
            return PW_ESTATE;
        if (d->inviteOrq && d->state != DialogState::Confirmed)
            return PW_ESTATE; // dialog_cancel it instead
        impl->forgetDialog(d);
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int64_t hDialogExport(pw_dialog *d, char *buf, size_t cap) noexcept {
    try {
        if (!d)
            return PW_EINVAL;
        std::string s = exportDialog(d);
        if (buf && cap) {
            size_t n = std::min(cap, s.size());
            std::memcpy(buf, s.data(), n);
            if (n < cap)
                buf[n] = '\0';
        }
        return static_cast<int64_t>(s.size());
    } catch (...) {
        return PW_ENOMEM;
    }
}

pw_dialog *hDialogRestore(pw_host *h, pw_str blob, const pw_dialog_callbacks *cbs, void *arg) noexcept {
    try {
        if (!h || !h->impl->agent)
            return nullptr;
        std::string err;
        pw_dialog *d = restoreDialog(h->impl, h->mod, str(blob), cbs, arg, err);
        if (!d)
            h->impl->log(h->mod, PW_LOG_ERROR, err);
        return d;
    } catch (...) {
        return nullptr;
    }
}

// ---- location

int hLocationRegister(pw_host *h, pw_location_fn fn, void *ctx) noexcept {
    try {
        if (!h || !fn)
            return PW_EINVAL;
        h->impl->locators.push_back({h->mod, fn, ctx});
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hLocationLookup(pw_host *h, pw_str aor, pw_contact_cb each, void *arg) noexcept {
    try {
        if (!h || !each)
            return PW_EINVAL;
        if (h->impl->locators.empty())
            return PW_ENOTFOUND;
        // The sum of the contacts found; PW_ENOTFOUND when no provider knows the AOR (never registered), so a
        // router can tell 404 from 480 (known user, no live contact: a provider returned 0).
        int total = 0;
        bool known = false;
        for (auto &l : h->impl->locators) {
            int n = l.fn(l.ctx, aor, each, arg);
            if (n < 0)
                continue;
            known = true;
            total += n;
        }
        return known ? total : PW_ENOTFOUND;
    } catch (...) {
        return PW_ENOMEM;
    }
}

// ---- timers

pw_timer_id hTimerStart(pw_host *h, uint64_t delay, pw_timer_fn fn, void *arg) noexcept {
    try {
        if (!h || !fn)
            return 0;
        Impl *impl = h->impl;
        uint64_t id = impl->nextTimerId++;
        auto t = std::make_unique<sofia::Timer>(impl->root);
        t->start(delay, [impl, id, fn, arg] {
            auto node = impl->timers.extract(id); // the Timer dies after the callback returns
            try {
                fn(arg);
            } catch (...) {
            }
        });
        impl->timers.emplace(id, std::move(t));
        return id;
    } catch (...) {
        return 0;
    }
}

int hTimerCancel(pw_host *h, pw_timer_id id) noexcept {
    if (!h)
        return PW_EINVAL;
    auto it = h->impl->timers.find(id);
    if (it == h->impl->timers.end())
        return PW_ENOTFOUND;
    h->impl->timers.erase(it);
    return PW_OK;
}

int64_t hNowMs(pw_host *h) noexcept {
    return h ? h->impl->nowMs() : 0;
}

// ---- metrics and events

void hCounterAdd(pw_host *h, pw_str name, pw_str labels, double delta) noexcept {
#ifdef PARKWAY_HAVE_METRICS
    try {
        if (h && h->impl->metrics)
            h->impl->metrics->counterAdd(str(name), str(labels), delta);
    } catch (...) {
    }
#else
    (void)h, (void)name, (void)labels, (void)delta;
#endif
}

void hGaugeSet(pw_host *h, pw_str name, pw_str labels, double value) noexcept {
#ifdef PARKWAY_HAVE_METRICS
    try {
        if (h && h->impl->metrics)
            h->impl->metrics->gaugeSet(str(name), str(labels), value);
    } catch (...) {
    }
#else
    (void)h, (void)name, (void)labels, (void)value;
#endif
}

void hHistogramObserve(pw_host *h, pw_str name, pw_str labels, double value) noexcept {
#ifdef PARKWAY_HAVE_METRICS
    try {
        if (h && h->impl->metrics)
            h->impl->metrics->histogramObserve(str(name), str(labels), value);
    } catch (...) {
    }
#else
    (void)h, (void)name, (void)labels, (void)value;
#endif
}

void hEventPublish(pw_host *h, pw_str type, pw_str json) noexcept {
#ifdef PARKWAY_HAVE_METRICS
    try {
        if (h && h->impl->events)
            h->impl->events->publish(str(type), str(json));
    } catch (...) {
    }
#else
    (void)h, (void)type, (void)json;
#endif
}

int hLogEnabled(pw_host *h, pw_log_level level) noexcept {
    try {
        return h && h->impl->logEnabled(level) ? 1 : 0;
    } catch (...) {
        return 1; // unsure: let the module format and log() decide
    }
}

int hEventListening(pw_host *h) noexcept {
#ifdef PARKWAY_HAVE_METRICS
    return h && h->impl->events && h->impl->events->listening() ? 1 : 0;
#else
    (void)h;
    return 0;
#endif
}

// ---- admin writer

int hWriterJson(pw_writer *w, pw_str json) noexcept {
    try {
        if (!w)
            return PW_EINVAL;
        if (w->written || w->deferred)
            return PW_ESTATE;
        std::string j = str(json);
        if (!nlohmann::json::accept(j))
            return PW_EINVAL;
        w->written = true;
        w->status = 200;
        w->json = j;
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

int hWriterError(pw_writer *w, int status, pw_str message) noexcept {
    try {
        if (!w)
            return PW_EINVAL;
        if (w->written || w->deferred)
            return PW_ESTATE;
        w->written = true;
        w->status = status >= 400 && status <= 599 ? status : 500;
        w->json = nlohmann::json{{"error", str(message)}}.dump();
        return PW_OK;
    } catch (...) {
        return PW_ENOMEM;
    }
}

// ABI 1.8: an admin command answered later. The deferred writer carries `out`'s sink and is owned by the proxy
// until writer_finish (or the proxy's end). The registry is looked up before a writer is touched, so a second
// writer_finish (or one on a writer that is not a deferred one) is ignored instead of reading freed memory.
std::mutex gDeferredMu;
std::map<pw_writer *, Proxy::Impl *> gDeferred; // deferred writer -> the proxy that answers it

pw_writer *hWriterDefer(pw_writer *out) noexcept {
    try {
        if (!out || !out->later || out->deferred || out->written || !out->owner)
            return nullptr;
        auto d = std::make_unique<pw_writer>();
        d->later = out->later;
        d->owner = out->owner;
        {
            std::lock_guard<std::mutex> g(gDeferredMu);
            gDeferred.emplace(d.get(), d->owner);
        }
        out->deferred = true;
        return d.release();
    } catch (...) {
        return nullptr;
    }
}

void hWriterFinish(pw_writer *d) noexcept {
    try {
        {
            std::lock_guard<std::mutex> g(gDeferredMu);
            if (!gDeferred.erase(d))
                return; // not a deferred writer, or finished already
        }
        std::unique_ptr<pw_writer> own(d);
        if (own->written)
            own->later(own->status, own->json);
        else
            own->later(200, "null");
    } catch (...) {
    }
}

int hPost(pw_host *h, pw_post_fn fn, void *arg) noexcept {
    try {
        if (!h || !fn)
            return PW_EINVAL;
        return h->impl->self->post([fn, arg] { fn(arg); }) ? PW_OK : PW_ESTATE;
    } catch (...) {
        return PW_ENOMEM;
    }
}

pw_str hRequestIdentity(pw_request *r, int *source) noexcept {
    if (source)
        *source = r ? r->identitySource : PW_IDENTITY_NONE;
    if (!r || r->identity.empty())
        return pw_str{nullptr, 0};
    return pw_str{r->identity.data(), r->identity.size()};
}

int hRequestChallenge(pw_request *r) noexcept {
    try {
        if (!r || r->dead)
            return PW_EINVAL;
        if (r->finalSent)
            return PW_ESTATE;
        return r->impl->challenge(r) ? PW_OK : PW_EUNSUPPORTED;
    } catch (...) {
        return PW_ENOMEM;
    }
}

uint32_t hDialogInjectCseq(pw_host *h, pw_str callId, pw_str fromTag, pw_str toTag) noexcept {
    try {
        if (!h || !h->impl)
            return 0;
        return h->impl->cseqShifts.inject(str(callId), str(fromTag), str(toTag), h->impl->nowMs());
    } catch (...) {
        return 0;
    }
}

int hDomainServe(pw_host *h, pw_str domain, int serve) noexcept {
    try {
        if (!h || !h->impl)
            return PW_EINVAL;
        return h->impl->serveDomain(h->mod, str(domain), serve != 0);
    } catch (...) {
        return PW_ENOMEM;
    }
}

// ---- URIs (v1.4): parsed by sofia-sip, results unescaped (module.h uri_part)

// The URI inside a name-addr's angle brackets, or the text itself.
std::string addrSpec(pw_str uri) {
    std::string t = str(uri);
    auto lt = t.find('<');
    if (lt != std::string::npos) {
        auto gt = t.find('>', lt);
        t = t.substr(lt + 1, gt == std::string::npos ? std::string::npos : gt - lt - 1);
    }
    size_t b = t.find_first_not_of(" \t\r\n"), e = t.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : t.substr(b, e - b + 1);
}

// A URI parsed in place: url_d() on its own copy of the text, as url_make() does, without a su_home per call
// (modules ask for URI parts on every routed request).
struct ParsedUri {
    std::string text;
    url_t url{};
};

// Parsed with sofia-sip; nullptr when it does not parse (or a sip/sips URI has no host).
const url_t *parseUri(ParsedUri &p, pw_str uri) {
    p.text = addrSpec(uri);
    if (p.text.empty())
        return nullptr;
    p.url = url_t{};
    const url_t *u = url_d(&p.url, p.text.data()) < 0 ? nullptr : &p.url;
    if (!u || u->url_type <= url_unknown || !u->url_scheme)
        return nullptr;
    if ((u->url_type == url_sip || u->url_type == url_sips) && (!u->url_host || !*u->url_host))
        return nullptr;
    return u;
}

std::string uriPart(const url_t *u, int part) {
    auto s = [](const char *c) { return std::string(c ? c : ""); };
    switch (part) {
    case PW_URI_SCHEME:
        return lower(s(u->url_scheme));
    case PW_URI_USER:
        return sdk::uriUnescape(s(u->url_user));
    case PW_URI_HOST:
        return lower(s(u->url_host));
    case PW_URI_PORT:
        return s(u->url_port);
    case PW_URI_AOR: {
        std::string scheme = lower(s(u->url_scheme));
        if (u->url_type == url_tel)
            return scheme + ":" + s(u->url_user);
        std::string user = sdk::uriEscapeUser(sdk::uriUnescape(s(u->url_user)));
        return scheme + ":" + (user.empty() ? "" : user + "@") + lower(s(u->url_host));
    }
    default:
        return {}; // a part this host does not know (module.h pw_uri_part)
    }
}

// name=value in a list separated by `sep` (';' parameters, '&' headers), name case-insensitive. nullopt: absent.
std::optional<std::string> listValue(const char *list, char sep, std::string_view name) {
    std::string_view rest(list ? list : "");
    while (!rest.empty()) {
        size_t end = rest.find(sep);
        std::string_view item = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
        size_t eq = item.find('=');
        if (sofia::iequals(sdk::uriUnescape(item.substr(0, eq)), name))
            return eq == std::string_view::npos ? std::string() : sdk::uriUnescape(item.substr(eq + 1));
    }
    return std::nullopt;
}

pw_str arenaValue(pw_host *h, std::optional<std::string> v) {
    if (!v)
        return {};
    pw_str out = h->impl->turnKeep(std::move(*v));
    if (!out.ptr)
        out.ptr = ""; // present but empty: a non-NULL pointer (module.h)
    return out;
}

pw_str hUriPart(pw_host *h, pw_str uri, pw_uri_part part) noexcept {
    try {
        ParsedUri parsed;
        const url_t *u = h && h->impl ? parseUri(parsed, uri) : nullptr;
        if (!u)
            return {};
        std::string v = uriPart(u, part);
        return v.empty() ? pw_str{} : h->impl->turnKeep(std::move(v));
    } catch (...) {
        return {};
    }
}

pw_str hUriParam(pw_host *h, pw_str uri, pw_str name) noexcept {
    try {
        ParsedUri parsed;
        const url_t *u = h && h->impl ? parseUri(parsed, uri) : nullptr;
        if (!u || !name.len)
            return {};
        return arenaValue(h, listValue(u->url_params, ';', std::string_view(name.ptr, name.len)));
    } catch (...) {
        return {};
    }
}

pw_str hUriHeader(pw_host *h, pw_str uri, pw_str name) noexcept {
    try {
        ParsedUri parsed;
        const url_t *u = h && h->impl ? parseUri(parsed, uri) : nullptr;
        if (!u || !name.len)
            return {};
        return arenaValue(h, listValue(u->url_headers, '&', std::string_view(name.ptr, name.len)));
    } catch (...) {
        return {};
    }
}

// The host table with designated initializers, in declaration order: every slot is named, and g++ refuses
// designators out of the struct's order ("designator order for field ... does not match declaration order"), so
// two swapped entries do not compile (tests/abi/CMakeLists.txt builds a swapped copy and expects the compiler
// to refuse it). A slot left out is NULL, which PW_HOST_HAS reports as missing. Designated initializers are
// C++20; g++ takes them in C++17 as an extension (-Wpedantic would say so, hence the pragma).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
const pw_host_api kApi = {
    .struct_size = sizeof(pw_host_api),
    .abi_major = PW_ABI_MAJOR,
    .abi_minor = PW_ABI_MINOR,
    .log = hLog,
    .param_str = hParamStr,
    .param_int = hParamInt,
    .core_setting = hCoreSetting,
    .is_local_domain = hIsLocalDomain,
    .request_msg = hRequestMsg,
    .msg_method = hMsgMethod,
    .msg_status = hMsgStatus,
    .msg_request_uri = hMsgRequestUri,
    .msg_header = hMsgHeader,
    .msg_body = hMsgBody,
    .msg_uri = hMsgUri,
    .msg_tag = hMsgTag,
    .msg_display = hMsgDisplay,
    .msg_source = hMsgSource,
    .request_reply = hRequestReply,
    .request_add_header = hRequestAddHeader,
    .request_remove_header = hRequestRemoveHeader,
    .request_add_target = hRequestAddTarget,
    .request_retain = hRequestRetain,
    .request_resume = hRequestResume,
    .request_release = hRequestRelease,
    .dialog_accept = hDialogAccept,
    .subscription_accept = hSubscriptionAccept,
    .dialog_accept_request = hDialogAcceptRequest,
    .dialog_invite = hDialogInvite,
    .dialog_cancel = hDialogCancel,
    .dialog_request = hDialogRequest,
    .dialog_ack = hDialogAck,
    .send_request = hSendRequest,
    .dialog_get = hDialogGet,
    .dialog_end = hDialogEnd,
    .dialog_rebind = hDialogRebind,
    .dialog_export = hDialogExport,
    .dialog_restore = hDialogRestore,
    .location_register_provider = hLocationRegister,
    .location_lookup = hLocationLookup,
    .timer_start = hTimerStart,
    .timer_cancel = hTimerCancel,
    .now_ms = hNowMs,
    .counter_add = hCounterAdd,
    .gauge_set = hGaugeSet,
    .histogram_observe = hHistogramObserve,
    .event_publish = hEventPublish,
    .writer_json = hWriterJson,
    .writer_error = hWriterError,
    .post = hPost,
    .dialog_accept_commit = hDialogAcceptCommit,
    .request_identity = hRequestIdentity,
    .request_challenge = hRequestChallenge,
    .dialog_inject_cseq = hDialogInjectCseq,
    .uri_part = hUriPart,                        // v1.4
    .uri_param = hUriParam,                      // v1.4
    .uri_header = hUriHeader,                    // v1.4
    .domain_serve = hDomainServe,                // v1.4 (tenants)
    .event_listening = hEventListening,          // v1.5
    .log_enabled = hLogEnabled,                  // v1.6
    .dialog_forget = hDialogForget,              // v1.7
    .writer_defer = hWriterDefer,                // v1.8
    .writer_finish = hWriterFinish,              // v1.8
    .dialog_accept_finish = hDialogAcceptFinish, // v1.9
};
#pragma GCC diagnostic pop

struct PostBox {
    std::function<void()> fn;
    std::shared_ptr<std::atomic<bool>> alive;
};

void postTrampoline(su_root_magic_t *, su_msg_r, su_msg_arg_t *data) noexcept {
    std::unique_ptr<PostBox> box(*static_cast<PostBox **>(data));
    try {
        if (box && box->alive->load() && box->fn)
            box->fn();
    } catch (...) {
    }
}

} // namespace

const pw_host_api *hostApi() {
    return &kApi;
}

bool Proxy::Impl::logEnabled(pw_log_level level) const {
    int lvl = std::clamp<int>(level, 0, 3);
    if (cfg.logSink) // the daemon's logger decides; without a filter of its own it writes everything
        return !cfg.logEnabled || cfg.logEnabled(lvl);
    return level != PW_LOG_DEBUG || getenv("PARKWAY_DEBUG");
}

void Proxy::Impl::log(ModuleInstance *mod, pw_log_level level, std::string_view text) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    int lvl = std::clamp<int>(level, 0, 3);
    if (cfg.logSink) { // the daemon's logger: its level and format
        try {
            cfg.logSink(lvl, mod ? mod->name : "core", std::string(text));
        } catch (...) {
        }
        return;
    }
    if (level == PW_LOG_DEBUG && !getenv("PARKWAY_DEBUG"))
        return;
    fmt::print(stderr, "parkway {} [{}] {}\n", names[lvl], mod ? mod->name : "core", text);
}

int64_t Proxy::Impl::nowMs() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// ---------------------------------------------------------------- Proxy

Proxy::Proxy(su_root_t *root, CoreConfig cfg, Metrics *metrics, EventBus *events) : impl_(std::make_unique<Impl>()) {
    impl_->self = this;
    impl_->root = root;
    impl_->cfg = std::move(cfg);
    impl_->metrics = metrics;
    impl_->events = events;
    impl_->loopSalt = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                      reinterpret_cast<uintptr_t>(this);
    if (!root)
        throw std::runtime_error("proxy: no su_root");
    impl_->pacer = std::make_unique<sofia::LoopPacer>(root);
    if (impl_->cfg.hugePageHeap) {
        impl_->heapPages = std::make_unique<HeapPages>();
        if (!impl_->heapPages->start())
            impl_->heapPages.reset();
    }
    impl_->pacer->onTurnEnd([impl = impl_.get()] {
        impl->turnArena.clear();
        if (impl->heapPages)
            impl->heapPages->poll();
    });
    if (impl_->cfg.t1Ms == 0 || impl_->cfg.t2Ms < impl_->cfg.t1Ms)
        throw std::runtime_error("proxy: timers: t1 must be > 0 and t2 >= t1");
    if (impl_->cfg.subMinExpires > impl_->cfg.subMaxExpires)
        throw std::runtime_error("proxy: subMinExpires must be <= subMaxExpires");
}

Proxy::~Proxy() {
    Impl &i = *impl_;
    i.alive->store(false);
    stop();
    i.tearDownOverload();
    // Module callbacks must not run any more: dialogs die silently (their peers keep them; a module may
    // restore them after a restart).
    for (auto *d : i.dialogs)
        d->notified = true;
    for (auto it = i.modules.rbegin(); it != i.modules.rend(); ++it) {
        ModuleInstance &m = **it;
        if (m.inited && m.lm.desc->destroy) {
            try {
                m.lm.desc->destroy(m.ctx);
            } catch (...) {
            }
        }
        m.inited = false;
    }
    i.timers.clear();
    {
        // Deferred admin answers never finished: their requests got 504 already.
        std::lock_guard<std::mutex> g(gDeferredMu);
        for (auto it = gDeferred.begin(); it != gDeferred.end();)
            if (it->second == &i) {
                delete it->first;
                it = gDeferred.erase(it);
            } else {
                ++it;
            }
    }
    for (auto *u : std::vector<UacRequest *>(i.uacs.begin(), i.uacs.end())) {
        if (u->orq)
            nta_outgoing_destroy(u->orq);
        delete u;
    }
    i.uacs.clear();
    for (auto *tx : std::vector<pw_request *>(i.txns.begin(), i.txns.end())) {
        for (auto &b : tx->branches)
            if (b->orq)
                nta_outgoing_destroy(b->orq), b->orq = nullptr;
        if (tx->irq) {
            nta_incoming_bind(tx->irq, nullptr, nullptr);
            nta_incoming_destroy(tx->irq);
        }
        delete tx;
    }
    i.txns.clear();
    for (auto *d : std::vector<pw_dialog *>(i.dialogs.begin(), i.dialogs.end())) {
        if (d->leg)
            nta_leg_destroy(d->leg);
        if (d->requestTport)
            tport_unref(d->requestTport); // before the agent (and its transports) go
        delete d;
    }
    i.dialogs.clear();
    i.terminatedDialogs = 0;
    if (i.defaultLeg)
        nta_leg_destroy(i.defaultLeg);
    traceApply({}); // the trace ends with the transports it records
    if (i.agent)
        nta_agent_destroy(i.agent);
    for (auto &m : i.modules)
        if (m->lm.dlHandle)
            dlclose(m->lm.dlHandle);
}

void Proxy::bind() {
    if (impl_->agent)
        return;
    impl_->createAgent();
    impl_->setUpAuth();
}

std::vector<std::string> Proxy::boundUrls() const {
    return impl_->bound;
}

uint16_t Proxy::port() const {
    for (size_t k = 0; k < impl_->bound.size(); ++k)
        if (impl_->bound[k].find(";transport=") == std::string::npos)
            return static_cast<uint16_t>(std::stoi(impl_->localHostPorts[k].second));
    return impl_->localHostPorts.empty() ? 0 : static_cast<uint16_t>(std::stoi(impl_->localHostPorts[0].second));
}

void Proxy::addModules(std::vector<LoadedModule> modules) {
    for (auto &lm : modules) {
        if (!lm.desc)
            throw std::runtime_error("proxy: a module without descriptor");
        auto mi = std::make_unique<ModuleInstance>();
        mi->lm = std::move(lm);
        mi->name = mi->lm.desc->name ? mi->lm.desc->name : "?";
        mi->host.impl = impl_.get();
        mi->host.mod = mi.get();
        ModuleInstance *m = mi.get();
        impl_->modules.push_back(std::move(mi));
        int rc;
        try {
            rc = m->lm.desc->init(hostApi(), &m->host, &m->ctx);
        } catch (const std::exception &e) {
            throw std::runtime_error(fmt::format("module {}: init failed: {}", m->name, e.what()));
        } catch (...) {
            throw std::runtime_error(fmt::format("module {}: init failed with an exception", m->name));
        }
        if (rc != PW_OK)
            throw std::runtime_error(fmt::format("module {}: init failed (error {})", m->name, rc));
        m->inited = true;
    }
}

void Proxy::start() {
    for (auto &m : impl_->modules) {
        if (!m->inited || m->started)
            continue;
        int rc = PW_OK;
        try {
            if (m->lm.desc->start)
                rc = m->lm.desc->start(m->ctx);
        } catch (...) {
            rc = PW_EINVAL;
        }
        if (rc != PW_OK)
            throw std::runtime_error(fmt::format("module {}: start failed (error {})", m->name, rc));
        m->started = true;
    }
}

void Proxy::stop() {
    if (impl_->stopping)
        return;
    impl_->stopping = true;
    for (auto it = impl_->modules.rbegin(); it != impl_->modules.rend(); ++it) {
        ModuleInstance &m = **it;
        if (m.started && m.lm.desc->stop) {
            try {
                m.lm.desc->stop(m.ctx);
            } catch (...) {
            }
        }
        m.started = false;
    }
}

int Proxy::reload() {
    int failed = 0;
    for (auto &m : impl_->modules) {
        if (!m->inited || !m->lm.desc->reload)
            continue;
        int rc;
        try {
            rc = m->lm.desc->reload(m->ctx);
        } catch (...) {
            rc = PW_EINVAL;
        }
        if (rc != PW_OK) {
            ++failed;
            impl_->log(m.get(), PW_LOG_ERROR, fmt::format("reload failed (error {})", rc));
        }
    }
    return failed;
}

namespace {
template <class F> void forEachCommand(const pw_module *desc, F f) {
    if (!desc->commands)
        return;
    const auto *p = reinterpret_cast<const char *>(desc->commands);
    uint32_t stride = reinterpret_cast<const pw_command_def *>(p)->struct_size;
    if (stride < sizeof(pw_command_def))
        return; // a short table: refuse to walk it
    for (;; p += stride) {
        const auto *c = reinterpret_cast<const pw_command_def *>(p);
        if (!c->name)
            break;
        f(c);
    }
}
} // namespace

std::vector<ModuleRoute> Proxy::moduleRoutes() const {
    std::vector<ModuleRoute> out;
    for (auto &m : impl_->modules)
        for (const pw_route_def *r : parkway::proxy::moduleRoutes(m->lm.desc)) {
            if (r->args < PW_ROUTE_ARGS_NONE || r->args > PW_ROUTE_ARGS_BODY) { // module.h pw_route_args
                impl_->log(m.get(), PW_LOG_WARN,
                           fmt::format("route {} {} has an argument kind this host does not know ({}): not served",
                                       r->method, r->path, static_cast<int>(r->args)));
                continue;
            }
            ModuleRoute mr{m->name, r->method, r->path, r->command, r->args, {}, r->flags};
            std::string q = r->args == PW_ROUTE_ARGS_QUERY && r->query ? r->query : "";
            for (size_t pos = 0; pos < q.size();) {
                size_t c = q.find(',', pos);
                std::string name = q.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
                if (!name.empty())
                    mr.query.push_back(name);
                pos = c == std::string::npos ? q.size() : c + 1;
            }
            out.push_back(std::move(mr));
        }
    return out;
}

std::vector<CommandInfo> Proxy::commands() const {
    std::vector<CommandInfo> out;
    for (auto &m : impl_->modules)
        forEachCommand(m->lm.desc, [&](const pw_command_def *c) {
            out.push_back({m->name, c->name, c->help ? c->help : ""});
        });
    return out;
}

CommandResult Proxy::runCommand(const std::string &module, const std::string &name, const std::string &argsJson,
                                std::function<void(CommandResult)> later) {
    for (auto &m : impl_->modules) {
        if (m->name != module)
            continue;
        const pw_command_def *found = nullptr;
        forEachCommand(m->lm.desc, [&](const pw_command_def *c) {
            if (name == c->name)
                found = c;
        });
        if (!found || !found->run)
            return {404, nlohmann::json{{"error", fmt::format("module {} has no command {}", module, name)}}.dump()};
        pw_writer w;
        if (later) {
            w.owner = impl_.get();
            w.later = [later = std::move(later)](int status, const std::string &json) { later({status, json}); };
        }
        std::string args = argsJson.empty() ? "{}" : argsJson;
        int rc;
        try {
            rc = found->run(m->ctx, view(args), &w);
        } catch (...) {
            rc = PW_EINVAL;
        }
        if (w.deferred) {
            CommandResult r;
            r.deferred = true;
            return r;
        }
        if (!w.written)
            return rc == PW_OK
                       ? CommandResult{200, "null"}
                       : CommandResult{500, nlohmann::json{{"error", fmt::format("command failed ({})", rc)}}.dump()};
        return {w.status, w.json};
    }
    return {404, nlohmann::json{{"error", fmt::format("no module {}", module)}}.dump()};
}

std::string Proxy::statsJson() const {
    size_t dialogs = 0, subs = 0;
    for (auto *d : impl_->dialogs) {
        if (d->state == DialogState::Terminated)
            continue;
        (d->subscription ? subs : dialogs)++;
    }
    nlohmann::json j{{"transactions", impl_->txns.size()},
                     {"dialogs", dialogs},
                     {"subscriptions", subs},
                     {"requests", impl_->requestCounts},
                     {"unsent_responses", unsentResponses()},
                     {"late_responses", lateResponses()}};
    return j.dump();
}

// tport_t starts with its su_home_t, which holds the reference count (sofia-sip 1.12, tport_internal.h).
size_t Proxy::transportReferences() const {
    size_t refs = 0;
    if (!impl_->agent)
        return 0;
    for (tport_t *tp = tport_primaries(nta_agent_tports(impl_->agent)); tp; tp = tport_next(tp))
        refs += su_home_refcount(reinterpret_cast<su_home_t *>(tp));
    return refs;
}

bool Proxy::post(std::function<void()> fn) {
    if (!impl_->alive->load())
        return false;
    su_msg_r m = SU_MSG_R_INIT;
    if (su_msg_create(m, su_root_task(impl_->root), su_root_task(impl_->root), postTrampoline, sizeof(PostBox *)) != 0)
        return false;
    auto *box = new PostBox{std::move(fn), impl_->alive};
    *static_cast<PostBox **>(su_msg_data(m)) = box;
    if (su_msg_send(m) != 0) {
        delete box;
        return false;
    }
    return true;
}

const CoreConfig &Proxy::config() const {
    return impl_->cfg;
}

} // namespace parkway::proxy
