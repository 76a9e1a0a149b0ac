// A thin C++ face on the pw_host_api table: string conversions, logging with fmt, and message helpers.
// Everything the module asks of the host goes through here, so the ABI stays the only door.
#pragma once
#include <parkway/module.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::callpark {

inline std::string_view sv(pw_str s) { return s.len ? std::string_view(s.ptr, s.len) : std::string_view(); }
inline std::string str(pw_str s) { return std::string(sv(s)); }
inline pw_str ps(std::string_view s) { return pw_str{s.data(), s.size()}; }

// Owned header list that can be handed to the host as pw_header[].
class Headers {
public:
    Headers &add(std::string name, std::string value) {
        items_.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    bool empty() const { return items_.empty(); }
    // Valid until the next add().
    const pw_header *data() {
        view_.clear();
        for (auto &[n, v] : items_) view_.push_back(pw_header{ps(n), ps(v)});
        return view_.data();
    }
    size_t size() const { return items_.size(); }

private:
    std::vector<std::pair<std::string, std::string>> items_;
    std::vector<pw_header> view_;
};

class Host {
public:
    Host(const pw_host_api *api, pw_host *host) : api_(api), host_(host) {}

    const pw_host_api *api() const { return api_; }
    pw_host *raw() const { return host_; }

    template <typename... A> void log(pw_log_level lvl, fmt::format_string<A...> f, A &&...a) const {
        std::string text = fmt::format(f, std::forward<A>(a)...);
        api_->log(host_, lvl, ps(text));
    }

    std::string paramStr(const char *name) const { return str(api_->param_str(host_, name)); }
    int64_t paramInt(const char *name) const { return api_->param_int(host_, name); }
    std::string coreSetting(const char *name) const { return str(api_->core_setting(host_, name)); }
    bool isLocalDomain(std::string_view d) const { return api_->is_local_domain(host_, ps(d)) == 1; }
    int64_t nowMs() const { return api_->now_ms(host_); }

    // Message access.
    const pw_msg *msg(pw_request *r) const { return api_->request_msg(r); }
    std::string method(const pw_msg *m) const { return str(api_->msg_method(m)); }
    int status(const pw_msg *m) const { return api_->msg_status(m); }
    std::string requestUri(const pw_msg *m) const { return str(api_->msg_request_uri(m)); }
    std::string header(const pw_msg *m, std::string_view name, unsigned idx = 0) const {
        return str(api_->msg_header(m, ps(name), idx));
    }
    std::string body(const pw_msg *m) const { return m ? str(api_->msg_body(m)) : std::string(); }
    std::string uri(const pw_msg *m, std::string_view hdr) const { return str(api_->msg_uri(m, ps(hdr))); }
    std::string tag(const pw_msg *m, std::string_view hdr) const { return str(api_->msg_tag(m, ps(hdr))); }
    std::string display(const pw_msg *m, std::string_view hdr) const { return str(api_->msg_display(m, ps(hdr))); }
    std::string source(const pw_msg *m) const { return str(api_->msg_source(m)); }

    // Replies to a pipeline or in-dialog request.
    int reply(pw_request *r, int status, std::string_view reason = {}, Headers *h = nullptr,
              std::string_view ctype = {}, std::string_view body = {}) const {
        return api_->request_reply(r, status, ps(reason), h ? h->data() : nullptr, h ? h->size() : 0, ps(ctype),
                                   ps(body));
    }

    std::string dialogGet(pw_dialog *d, pw_dialog_field f) const { return d ? str(api_->dialog_get(d, f)) : ""; }
    std::string dialogExport(pw_dialog *d) const {
        if (!d) return {};
        int64_t n = api_->dialog_export(d, nullptr, 0);
        if (n <= 0) return {};
        std::string out(static_cast<size_t>(n) + 1, '\0');
        int64_t m = api_->dialog_export(d, out.data(), out.size());
        if (m < 0) return {};
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

    pw_timer_id timer(uint64_t ms, pw_timer_fn fn, void *arg) const { return api_->timer_start(host_, ms, fn, arg); }
    void cancelTimer(pw_timer_id &id) const {
        if (id) api_->timer_cancel(host_, id);
        id = 0;
    }

private:
    const pw_host_api *api_;
    pw_host *host_;
};

} // namespace parkway::callpark
