#include "fake_host.hh"

#include <algorithm>
#include <cstring>

namespace fakehost {
namespace {

Host *H(pw_host *h) { return reinterpret_cast<Host *>(h); }
Request *R(pw_request *r) { return reinterpret_cast<Request *>(r); }
const Request *M(const pw_msg *m) { return reinterpret_cast<const Request *>(m); }
std::string S(pw_str s) { return s.len ? std::string(s.ptr, s.len) : std::string(); }
pw_str V(std::deque<std::string> &keep, std::string s) {
    keep.push_back(std::move(s));
    return pw_str{keep.back().data(), keep.back().size()};
}
pw_str V(const std::deque<std::string> &keep, std::string s) { return V(const_cast<std::deque<std::string> &>(keep), std::move(s)); }

std::string fullName(const std::string &n) {
    std::string l = lower(n);
    if (l == "m") return "contact";
    if (l == "t") return "to";
    if (l == "f") return "from";
    if (l == "i") return "call-id";
    return l;
}

pw_str header(const pw_msg *msg, pw_str name, unsigned idx) {
    const Request *r = M(msg);
    unsigned seen = 0;
    for (const auto &[n, v] : r->headers)
        if (fullName(n) == fullName(S(name)) && seen++ == idx) return V(r->scratch, v);
    return pw_str{nullptr, 0};
}

std::string headerText(const pw_msg *msg, const char *name) {
    return S(header(msg, pw_str{name, std::strlen(name)}, 0));
}

pw_str msgUri(const pw_msg *msg, pw_str name) {
    std::string v = headerText(msg, S(name).c_str());
    auto lt = v.find('<');
    if (lt != std::string::npos) return V(M(msg)->scratch, v.substr(lt + 1, v.find('>') - lt - 1));
    return V(M(msg)->scratch, v.substr(0, v.find(';')));
}

pw_str msgTag(const pw_msg *msg, pw_str name) {
    std::string v = headerText(msg, S(name).c_str());
    auto gt = v.find('>');
    auto t = v.find(";tag=", gt == std::string::npos ? 0 : gt);
    if (t == std::string::npos) return pw_str{nullptr, 0};
    return V(M(msg)->scratch, v.substr(t + 5, v.find(';', t + 5) - t - 5));
}

Dialog *D(pw_dialog *d) {
    return reinterpret_cast<Dialog *>(d);
}

// dialog_accept_commit as module.h specifies it, minus the wire: the dialog exists (with a To-tag) before commit
// runs; 0 records the 2xx, 300..699 records that status unless commit answered itself; NULL after a refusal.
pw_dialog *acceptCommit(pw_request *req, int status, const pw_header *hs, size_t n, pw_str, pw_str,
                        const pw_dialog_callbacks *cbs, void *arg, int (*commit)(void *, pw_dialog *), void *carg) {
    Request *r = R(req);
    if (!r || r->final() || status < 200 || status > 299)
        return nullptr;
    auto d = std::make_shared<Dialog>();
    d->callId = headerText(reinterpret_cast<const pw_msg *>(r), "Call-ID");
    d->localTag = "fake" + std::to_string(r->dialogs.size() + 1);
    d->remoteTag = S(msgTag(reinterpret_cast<const pw_msg *>(r), PW_STR_LIT("From")));
    d->localUri = S(msgUri(reinterpret_cast<const pw_msg *>(r), PW_STR_LIT("To")));
    d->remoteUri = S(msgUri(reinterpret_cast<const pw_msg *>(r), PW_STR_LIT("From")));
    d->cbs = cbs;
    d->arg = arg;
    Dialog *dp = d.get();
    r->dialogs.push_back(std::move(d));
    int rc = commit ? commit(carg, reinterpret_cast<pw_dialog *>(dp)) : 0;
    if (rc != 0 || r->final()) {
        if (!r->final())
            r->replies.push_back(Reply{rc >= 300 && rc <= 699 ? rc : 500, "", {}});
        return nullptr;
    }
    Reply ok{status, "OK", {}};
    for (size_t i = 0; i < n; ++i)
        ok.headers.emplace_back(S(hs[i].name), S(hs[i].value));
    r->replies.push_back(ok);
    dp->answered = true;
    return reinterpret_cast<pw_dialog *>(dp);
}

pw_str dialogGet(pw_dialog *dlg, pw_dialog_field f) {
    Dialog *d = D(dlg);
    switch (f) {
    case PW_DLG_CALL_ID:
        return V(d->scratch, d->callId);
    case PW_DLG_LOCAL_TAG:
        return V(d->scratch, d->localTag);
    case PW_DLG_REMOTE_TAG:
        return V(d->scratch, d->remoteTag);
    case PW_DLG_LOCAL_URI:
        return V(d->scratch, d->localUri);
    case PW_DLG_REMOTE_URI:
    case PW_DLG_REMOTE_TARGET:
        return V(d->scratch, d->remoteUri);
    case PW_DLG_REMOTE_DISPLAY:
        return V(d->scratch, d->remoteDisplay);
    case PW_DLG_STATE:
        return V(d->scratch, "confirmed");
    }
    return pw_str{nullptr, 0};
}

int64_t dialogExport(pw_dialog *dlg, char *buf, size_t cap) {
    Dialog *d = D(dlg);
    std::string s = "{\"v\":1,\"callId\":\"" + d->callId + "\",\"localTag\":\"" + d->localTag + "\",\"remoteTag\":\"" +
                    d->remoteTag + "\"}";
    if (buf && cap) {
        size_t k = std::min(cap, s.size());
        std::memcpy(buf, s.data(), k);
        if (k < cap)
            buf[k] = '\0';
    }
    return static_cast<int64_t>(s.size());
}

pw_host_api makeApi() {
    pw_host_api a{};
    a.struct_size = sizeof a;
    a.abi_major = PW_ABI_MAJOR;
    a.abi_minor = PW_ABI_MINOR;
    a.log = [](pw_host *h, pw_log_level, pw_str t) { H(h)->logs.push_back(S(t)); };
    a.param_str = [](pw_host *h, const char *n) {
        auto &p = H(h)->mod.params;
        auto it = p.find(n);
        return it == p.end() ? pw_str{nullptr, 0} : pw_str{it->second.data(), it->second.size()};
    };
    a.param_int = [](pw_host *h, const char *n) -> int64_t {
        auto &p = H(h)->mod.params;
        auto it = p.find(n);
        if (it == p.end()) return 0;
        if (it->second == "true") return 1;
        if (it->second == "false") return 0;
        return std::stoll(it->second);
    };
    a.core_setting = [](pw_host *h, const char *n) {
        auto it = H(h)->core.find(n);
        return it == H(h)->core.end() ? pw_str{nullptr, 0} : V(H(h)->scratch, it->second);
    };
    a.is_local_domain = [](pw_host *h, pw_str d) {
        auto &ds = H(h)->domains;
        return std::find(ds.begin(), ds.end(), lower(S(d))) != ds.end() ? 1 : 0;
    };
    a.request_msg = [](pw_request *r) { return reinterpret_cast<const pw_msg *>(r); };
    a.msg_method = [](const pw_msg *m) { return V(M(m)->scratch, M(m)->method); };
    a.msg_status = [](const pw_msg *) { return 0; };
    a.msg_request_uri = [](const pw_msg *m) { return V(M(m)->scratch, M(m)->ruri); };
    a.msg_header = header;
    a.msg_body = [](const pw_msg *) { return pw_str{nullptr, 0}; };
    a.msg_uri = msgUri;
    a.msg_tag = msgTag;
    a.msg_source = [](const pw_msg *m) { return V(M(m)->scratch, M(m)->source); };
    a.request_reply = [](pw_request *r, int status, pw_str reason, const pw_header *hs, size_t n, pw_str, pw_str) {
        Reply rep{status, S(reason), {}};
        for (size_t i = 0; i < n; ++i) rep.headers.emplace_back(S(hs[i].name), S(hs[i].value));
        R(r)->replies.push_back(rep);
        return static_cast<int>(PW_OK);
    };
    a.request_add_header = [](pw_request *r, pw_str n, pw_str v) {
        R(r)->added.emplace_back(S(n), S(v));
        return static_cast<int>(PW_OK);
    };
    a.request_add_target = [](pw_request *r, pw_str uri, pw_str hop) {
        R(r)->targets.emplace_back(S(uri), S(hop));
        return static_cast<int>(PW_OK);
    };
    a.request_identity = [](pw_request *r, int *source) {
        if (source)
            *source = R(r)->identity && R(r)->identity->empty() ? PW_IDENTITY_NONE : R(r)->identitySource;
        if (R(r)->identity)
            return V(R(r)->scratch, *R(r)->identity);
        return msgUri(reinterpret_cast<const pw_msg *>(r), PW_STR_LIT("From"));
    };
    a.request_challenge = [](pw_request *) { return static_cast<int>(PW_EUNSUPPORTED); };
    a.location_register_provider = [](pw_host *h, pw_location_fn fn, void *ctx) {
        H(h)->provider = fn;
        H(h)->providerCtx = ctx;
        return static_cast<int>(PW_OK);
    };
    a.location_lookup = [](pw_host *h, pw_str aor, pw_contact_cb each, void *arg) {
        if (!H(h)->provider) return static_cast<int>(PW_ENOTFOUND);
        return H(h)->provider(H(h)->providerCtx, aor, each, arg);
    };
    a.timer_start = [](pw_host *h, uint64_t ms, pw_timer_fn fn, void *arg) -> pw_timer_id {
        Host *host = H(h);
        host->timers.push_back(Timer{host->nextTimer, host->nowMs + static_cast<int64_t>(ms), fn, arg});
        return host->nextTimer++;
    };
    a.timer_cancel = [](pw_host *h, pw_timer_id id) {
        auto &ts = H(h)->timers;
        auto it = std::find_if(ts.begin(), ts.end(), [&](const Timer &t) { return t.id == id; });
        if (it == ts.end()) return static_cast<int>(PW_ENOTFOUND);
        ts.erase(it);
        return static_cast<int>(PW_OK);
    };
    a.now_ms = [](pw_host *h) { return H(h)->nowMs; };
    a.counter_add = [](pw_host *h, pw_str n, pw_str l, double d) { H(h)->counters[S(n) + "{" + S(l) + "}"] += d; };
    a.gauge_set = [](pw_host *h, pw_str n, pw_str l, double v) { H(h)->counters[S(n) + "{" + S(l) + "}"] = v; };
    a.histogram_observe = [](pw_host *, pw_str, pw_str, double) {};
    a.event_publish = [](pw_host *h, pw_str t, pw_str j) { H(h)->events.emplace_back(S(t), S(j)); };
    a.writer_json = [](pw_writer *w, pw_str j) {
        auto *out = reinterpret_cast<std::pair<int, std::string> *>(w);
        *out = {200, S(j)};
        return static_cast<int>(PW_OK);
    };
    a.dialog_accept_commit = acceptCommit;
    a.dialog_get = dialogGet;
    a.dialog_export = dialogExport;
    a.writer_error = [](pw_writer *w, int status, pw_str msg) {
        auto *out = reinterpret_cast<std::pair<int, std::string> *>(w);
        *out = {status, S(msg)};
        return static_cast<int>(PW_OK);
    };
    return a;
}

} // namespace

bool Request::final() const {
    for (const Reply &r : replies)
        if (r.status >= 200)
            return true;
    return false;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

const pw_host_api *Host::api() {
    static const pw_host_api a = makeApi();
    return &a;
}

int Host::init(const std::string &name, const std::string &dir, const std::map<std::string, std::string> &p) {
    mod = parkway::proxy::loadModule(name, dir, p);
    int rc = mod.desc->init(api(), reinterpret_cast<pw_host *>(this), &ctx);
    if (rc != PW_OK) {
        parkway::proxy::unloadModule(mod);
        return rc;
    }
    if (mod.desc->start) rc = mod.desc->start(ctx);
    return rc;
}

void Host::destroy() {
    if (!mod.desc) return;
    if (mod.desc->stop) mod.desc->stop(ctx);
    mod.desc->destroy(ctx);
    parkway::proxy::unloadModule(mod);
    provider = nullptr;
    timers.clear();
}

pw_verdict Host::send(Request &req) { return mod.desc->on_request(ctx, reinterpret_cast<pw_request *>(&req)); }

void Host::advance(int64_t ms) {
    int64_t until = nowMs + ms;
    for (;;) {
        auto it = std::min_element(timers.begin(), timers.end(),
                                   [](const Timer &a, const Timer &b) { return a.dueMs < b.dueMs; });
        if (it == timers.end() || it->dueMs > until) break;
        Timer t = *it;
        timers.erase(it);
        nowMs = std::max(nowMs, t.dueMs);
        t.fn(t.arg);
    }
    nowMs = until;
}

std::pair<int, std::string> Host::command(const std::string &name, const std::string &args) {
    std::pair<int, std::string> out{0, ""};
    for (const pw_command_def *c = mod.desc->commands; c && c->name; ++c)
        if (name == c->name) c->run(ctx, pw_str{args.data(), args.size()}, reinterpret_cast<pw_writer *>(&out));
    return out;
}

} // namespace fakehost
