// A thin C++ face on the pw_host_api table: string conversions, logging with fmt, and message helpers.
// Everything the module asks of the host goes through here, so the ABI stays the only door.
#pragma once
#include <parkway/module.h>
#include <parkway/module.hpp>

#include "wire/sip_text.hh"

#include <fmt/format.h>
#include <utf8cpp/utf8.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::callpark {

// The SDK's pw_str helpers and header list (parkway/module.hpp).
using parkway::sdk::ps;
using parkway::sdk::str;
using parkway::sdk::sv;
using Headers = parkway::sdk::Headers;

// THE text boundary of the module (docs/callpark.md "Text and UTF-8"): every string read from a SIP message
// (headers, URIs, display names, tags, dialog fields) becomes valid UTF-8 here, each invalid sequence replaced
// by U+FFFD, so what reaches the engine's SQLite, JSON and XML bodies is always valid. SIP allows only UTF-8
// in quoted strings (RFC 3261 §25.1), yet phones send ISO-8859-1 display names ("Jos\xe9").
inline std::string validUtf8(std::string_view s) {
    if (utf8::is_valid(s.begin(), s.end()))
        return std::string(s);
    std::string out;
    out.reserve(s.size() + 8);
    utf8::replace_invalid(s.begin(), s.end(), std::back_inserter(out));
    return out;
}
inline std::string text(pw_str s) {
    return validUtf8(sv(s));
}

class Host {
public:
    Host(const pw_host_api *api, pw_host *host) : api_(api), host_(host) {}

    const pw_host_api *api() const { return api_; }
    pw_host *raw() const { return host_; }

    // Formats only when the line would be written (v1.6 log_enabled; an older host: always).
    template <typename... A> void log(pw_log_level lvl, fmt::format_string<A...> f, A &&...a) const {
        if (!logEnabled(lvl))
            return;
        std::string text = fmt::format(f, std::forward<A>(a)...);
        api_->log(host_, lvl, ps(text));
    }

    bool logEnabled(pw_log_level lvl) const {
        return !PW_HOST_HAS(api_, log_enabled) || api_->log_enabled(host_, lvl) != 0;
    }

    std::string paramStr(const char *name) const { return str(api_->param_str(host_, name)); }
    int64_t paramInt(const char *name) const { return api_->param_int(host_, name); }
    std::string coreSetting(const char *name) const { return str(api_->core_setting(host_, name)); }
    bool isLocalDomain(std::string_view d) const { return api_->is_local_domain(host_, ps(d)) == 1; }
    int64_t nowMs() const { return api_->now_ms(host_); }

    // Message access: text (valid UTF-8, see validUtf8) except the body, which is relayed byte for byte; what
    // the module stores of a body goes through JSON written with invalid sequences replaced (dumpJson).
    const pw_msg *msg(pw_request *r) const { return api_->request_msg(r); }
    std::string method(const pw_msg *m) const { return text(api_->msg_method(m)); }
    int status(const pw_msg *m) const { return api_->msg_status(m); }
    std::string requestUri(const pw_msg *m) const { return text(api_->msg_request_uri(m)); }
    std::string header(const pw_msg *m, std::string_view name, unsigned idx = 0) const {
        return text(api_->msg_header(m, ps(name), idx));
    }
    std::string body(const pw_msg *m) const { return m ? str(api_->msg_body(m)) : std::string(); }
    std::string uri(const pw_msg *m, std::string_view hdr) const { return text(api_->msg_uri(m, ps(hdr))); }
    std::string tag(const pw_msg *m, std::string_view hdr) const { return text(api_->msg_tag(m, ps(hdr))); }
    std::string display(const pw_msg *m, std::string_view hdr) const { return text(api_->msg_display(m, ps(hdr))); }
    std::string source(const pw_msg *m) const { return text(api_->msg_source(m)); }

    // Replies to a pipeline or in-dialog request.
    int reply(pw_request *r, int status, std::string_view reason = {}, Headers *h = nullptr,
              std::string_view ctype = {}, std::string_view body = {}) const {
        return api_->request_reply(r, status, ps(reason), h ? h->data() : nullptr, h ? h->size() : 0, ps(ctype),
                                   ps(body));
    }

    std::string dialogGet(pw_dialog *d, pw_dialog_field f) const { return d ? text(api_->dialog_get(d, f)) : ""; }

    // The Refer-To of a REFER (RFC 3515 §2.1) with its embedded Replaces (RFC 3891 §7). On an ABI 1.4 host the
    // target's user and host and the ?Replaces= value come from the host's URI accessors, so every module
    // unescapes URIs one way (module.h uri_part: RFC 3261 §19.1.1, §19.1.2); wire/sip_text.cc parseReferTo still
    // checks the shape (and refuses a bad %-escape) and is the whole reading on an older host.
    std::optional<ReferTarget> referTo(const pw_msg *m) const {
        auto t = parseReferTo(header(m, "Refer-To"));
        if (!t || !PW_HOST_HAS(api_, uri_header))
            return t;
        pw_str uri = ps(t->nameAddr.uri);
        t->user = text(api_->uri_part(host_, uri, PW_URI_USER));
        t->host = text(api_->uri_part(host_, uri, PW_URI_HOST));
        pw_str rep = api_->uri_header(host_, uri, PW_STR_LIT("Replaces"));
        t->replaces.reset();
        if (rep.ptr) {
            auto r = parseReplaces(text(rep));
            if (!r)
                return std::nullopt;
            t->replaces = std::move(*r);
        }
        return t;
    }

    // Who sent the request, as the host established it (module.h request_identity, v1.2). A v1.0/1.1 host knows
    // no identity: From is all there is, as before authentication existed.
    struct Who {
        std::string uri;
        int source = PW_IDENTITY_NONE;
        // A trusted peer (a front proxy or SBC, RFC 3325 trust domain) sent it, with or without
        // P-Asserted-Identity: the request's source address is the peer's, not its sender's.
        bool fromTrustedPeer() const { return source == PW_IDENTITY_ASSERTED || source == PW_IDENTITY_TRUSTED_PEER; }
    };
    Who identity(pw_request *r) const {
        if (!PW_HOST_HAS(api_, request_identity))
            return {uri(msg(r), "From"), PW_IDENTITY_UNAUTHENTICATED};
        Who w;
        w.uri = text(api_->request_identity(r, &w.source));
        return w;
    }
    // Tell the host this module serves `domain` (a tenant provisioned here) or no longer does (module.h
    // domain_serve, v1.4). False on an older host: there the domain must be listed in [proxy] domains.
    bool serveDomain(std::string_view domain, bool serve) const {
        return PW_HOST_HAS(api_, domain_serve) && api_->domain_serve(host_, ps(domain), serve ? 1 : 0) == PW_OK;
    }
    // Ask the sender to authenticate (401/407); false when it cannot be asked (the caller refuses with 403).
    bool challenge(pw_request *r) const {
        return PW_HOST_HAS(api_, request_challenge) && api_->request_challenge(r) == PW_OK;
    }

    // dialog_accept with a commit step before the 2xx leaves (module.h dialog_accept_commit): `commit` returns 0
    // to send the 2xx, or answers the request itself and returns its status. On a v1.0 host (no such member)
    // the 2xx goes first and commit runs after it; a refusal then ends the fresh dialog silently (BYE, no
    // on_terminated), which is the weaker ordering the host could not avoid.
    using CommitFn = std::function<int(pw_dialog *)>;
    pw_dialog *acceptCommit(pw_request *req, int status, Headers &h, std::string_view ctype, std::string_view body,
                            const pw_dialog_callbacks *cbs, void *arg, CommitFn commit) const {
        auto trampoline = [](void *c, pw_dialog *d) -> int { return (*static_cast<CommitFn *>(c))(d); };
        if (hasAcceptCommit())
            return api_->dialog_accept_commit(req, status, h.data(), h.size(), ps(ctype), ps(body), cbs, arg,
                                              trampoline, &commit);
        pw_dialog *d = api_->dialog_accept(req, status, h.data(), h.size(), ps(ctype), ps(body), cbs, arg);
        if (d && commit(d) != 0) {
            static const pw_dialog_callbacks none = {sizeof(pw_dialog_callbacks), nullptr, nullptr, nullptr, nullptr};
            api_->dialog_rebind(d, &none, nullptr);
            api_->dialog_end(d);
            return nullptr;
        }
        return d;
    }
    bool hasAcceptCommit() const { return PW_HOST_HAS(api_, dialog_accept_commit); }
    // A commit step may answer PW_COMMIT_LATER, the 2xx then sent by acceptFinish (module.h v1.9).
    bool canAcceptLater() const { return hasAcceptCommit() && PW_HOST_HAS(api_, dialog_accept_finish); }
    int acceptFinish(pw_dialog *d, int status) const { return api_->dialog_accept_finish(d, status); }
    // The CSeq for a request we send as the party fromTag in a dialog the host proxies (module.h
    // dialog_inject_cseq, v1.3); 0 when the host cannot tell (older host): the caller picks one itself.
    uint32_t injectCseq(const std::string &callId, const std::string &fromTag, const std::string &toTag) const {
        if (!PW_HOST_HAS(api_, dialog_inject_cseq))
            return 0;
        return api_->dialog_inject_cseq(host_, ps(callId), ps(fromTag), ps(toTag));
    }
    std::string dialogExport(pw_dialog *d) const {
        if (!d)
            return {};
        int64_t n = api_->dialog_export(d, nullptr, 0);
        if (n <= 0)
            return {};
        std::string out(static_cast<size_t>(n) + 1, '\0');
        int64_t m = api_->dialog_export(d, out.data(), out.size());
        if (m < 0)
            return {};
        out.resize(static_cast<size_t>(std::min<int64_t>(m, n)));
        return out;
    }

    // Metrics and events.
    void counter(std::string_view name, std::string_view labels = {}, double d = 1) const {
        api_->counter_add(host_, ps(name), ps(labels), d);
    }
    void gauge(std::string_view name, std::string_view labels, double v) const {
        api_->gauge_set(host_, ps(name), ps(labels), v);
    }
    void observe(std::string_view name, std::string_view labels, double v) const {
        api_->histogram_observe(host_, ps(name), ps(labels), v);
    }
    void event(std::string_view type, std::string_view json) const { api_->event_publish(host_, ps(type), ps(json)); }
    // Whether an event published now reaches anyone (v1.5 event_listening); an older host: assume so.
    bool eventListening() const { return !PW_HOST_HAS(api_, event_listening) || api_->event_listening(host_) != 0; }

    pw_timer_id timer(uint64_t ms, pw_timer_fn fn, void *arg) const { return api_->timer_start(host_, ms, fn, arg); }
    void cancelTimer(pw_timer_id &id) const {
        if (id)
            api_->timer_cancel(host_, id);
        id = 0;
    }

private:
    const pw_host_api *api_;
    pw_host *host_;
};

} // namespace parkway::callpark
