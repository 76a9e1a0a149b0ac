// Parkway module SDK: a header-only C++17 layer over the C ABI in <parkway/module.h> (docs/modules.md).
//
// What it gives a module written in C++:
//   - pw_str helpers: sv()/str() to read, ps() and the _pw literal to write;
//   - noexcept trampolines (guard, guardRequest, guardCommand): no exception ever crosses the C ABI (the host may
//     be built with another C++ runtime, and unwinding through C is undefined). A request hook that throws
//     answers 500 (RFC 3261 §21.5.1) and stops the chain; every other entry logs an error line and returns
//     its error value; a command answers 500 with the message;
//   - RAII: Retained (request_retain ... request_release) and Timer (timer_start ... timer_cancel);
//   - Headers: an owned header list handed to the host as pw_header[];
//   - uri(): the host's URI accessors (ABI 1.4) when it has them, std::nullopt on an older host.
// It adds no ABI: everything here compiles into the module.
#pragma once
#include <parkway/module.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parkway::sdk {

// ------------------------------------------------------------------------------------------------- pw_str

// A view of a host string; valid as long as the host says (module.h "Lifetime:" lines). Copy with str().
inline std::string_view sv(pw_str s) noexcept {
    return s.ptr && s.len ? std::string_view(s.ptr, s.len) : std::string_view();
}
inline std::string str(pw_str s) {
    return std::string(sv(s));
}
// A pw_str over s, for a call into the host (which copies it).
inline pw_str ps(std::string_view s) noexcept {
    return pw_str{s.data(), s.size()};
}
// Whether a string the host returned is present (uri_param, uri_header: present but empty is non-NULL).
inline bool present(pw_str s) noexcept {
    return s.ptr != nullptr;
}

// ------------------------------------------------------------------------------------------------- URI escaping

// The escaping rules of the host's URI accessors (module.h uri_part), for code that must read URIs the same way on
// a host without them: %XX decoding (RFC 3261 §19.1.2; a '%' without two hex digits stays as it is), and a user
// part re-escaped canonically as PW_URI_AOR gives it (RFC 3261 §25.1 `user` characters stay, every other byte is
// %XX in upper case; §19.1.4: two spellings of one user compare equal).
inline int hexDigit(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
inline std::string uriUnescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        int hi = s[i] == '%' && i + 2 < s.size() ? hexDigit(s[i + 1]) : -1;
        int lo = hi >= 0 ? hexDigit(s[i + 2]) : -1;
        if (lo < 0) {
            out += s[i];
            continue;
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}
inline std::string uriEscapeUser(std::string_view s) {
    static const char *kHex = "0123456789ABCDEF";
    static const std::string_view kMarks = "-_.!~*'()&=+$,;?/";
    std::string out;
    for (unsigned char c : s) {
        bool keep = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c && kMarks.find(static_cast<char>(c)) != std::string_view::npos);
        if (keep) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    return out;
}

namespace literals {
// "Alert-Info"_pw
inline constexpr pw_str operator""_pw(const char *s, std::size_t n) noexcept {
    return pw_str{s, n};
}
} // namespace literals

// ------------------------------------------------------------------------------------------------- headers

// An owned header list, handed to the host as pw_header[] (data() is valid until the next add()).
class Headers {
public:
    Headers &add(std::string name, std::string value) {
        items_.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    bool empty() const { return items_.empty(); }
    size_t size() const { return items_.size(); }
    const pw_header *data() {
        view_.clear();
        for (auto &[n, v] : items_)
            view_.push_back(pw_header{ps(n), ps(v)});
        return view_.empty() ? nullptr : view_.data();
    }

private:
    std::vector<std::pair<std::string, std::string>> items_;
    std::vector<pw_header> view_;
};

// ------------------------------------------------------------------------------------------------- trampolines

// Log "<module>: <entry> failed: <what>" at error level; never throws (out of memory while logging: silent).
inline void logFailure(const pw_host_api *api, pw_host *host, const char *module, const char *entry,
                       const char *what) noexcept {
    if (!api || !api->log)
        return;
    try {
        std::string text = std::string(module ? module : "module") + ": " + entry + " failed: " + what;
        api->log(host, PW_LOG_ERROR, ps(text));
    } catch (...) {
    }
}

// Run body(); an exception is logged and onError() returned instead. For init/start/stop/destroy/reload hooks,
// on_response, dialog callbacks, timers and posted functions.
template <typename Body, typename OnError>
auto guard(const pw_host_api *api, pw_host *host, const char *module, const char *entry, Body &&body,
           OnError &&onError) noexcept -> decltype(body()) {
    try {
        return body();
    } catch (const std::exception &e) {
        logFailure(api, host, module, entry, e.what());
    } catch (...) {
        logFailure(api, host, module, entry, "unknown exception");
    }
    try {
        return onError();
    } catch (...) {
        std::terminate(); // onError must not throw: it is the last line before the C ABI
    }
}

// The same for a hook returning void: an exception is logged and swallowed.
template <typename Body>
void guardVoid(const pw_host_api *api, pw_host *host, const char *module, const char *entry, Body &&body) noexcept {
    guard(api, host, module, entry, std::forward<Body>(body), [] {});
}

// The same for an int hook (init, start, reload): an exception gives `error` (PW_EINVAL by default).
template <typename Body>
int guardInt(const pw_host_api *api, pw_host *host, const char *module, const char *entry, Body &&body,
             int error = PW_EINVAL) noexcept {
    return guard(api, host, module, entry, std::forward<Body>(body), [error] { return error; });
}

// For on_request (and pw_dialog_callbacks.on_request, with the verdict ignored): an exception is logged, the
// request answered 500 when it still can be (RFC 3261 §21.5.1; the host refuses a second final response with
// PW_ESTATE, which is fine) and PW_STOP returned: the client is never left hanging.
template <typename Body>
pw_verdict guardRequest(const pw_host_api *api, pw_host *host, const char *module, pw_request *req,
                        Body &&body) noexcept {
    return guard(api, host, module, "on_request", std::forward<Body>(body), [&] {
        if (api && api->request_reply && req)
            api->request_reply(req, 500, pw_str{"Server Internal Error", 21}, nullptr, 0, pw_str{nullptr, 0},
                               pw_str{nullptr, 0});
        return PW_STOP;
    });
}

// For a pw_command_def.run: an exception becomes writer_error(500, "<module>: <command> failed: <what>").
template <typename Body>
int guardCommand(const pw_host_api *api, pw_host *host, const char *module, const char *command, pw_writer *out,
                 Body &&body) noexcept {
    std::string what;
    try {
        return body();
    } catch (const std::exception &e) {
        try {
            what = e.what();
        } catch (...) {
        }
    } catch (...) {
        what = "unknown exception";
    }
    logFailure(api, host, module, command, what.c_str());
    try {
        std::string msg = std::string(module) + ": " + command + " failed: " + what;
        return api->writer_error(out, 500, ps(msg));
    } catch (...) {
        return api->writer_error(out, 500, pw_str{"command failed", 14});
    }
}

// ------------------------------------------------------------------------------------------------- RAII

// A request kept beyond on_request (return PW_SUSPEND after constructing one). Releases it when destroyed;
// resume() once, on the SIP thread, before or after that. Move-only.
class Retained {
public:
    Retained() = default;
    Retained(const pw_host_api *api, pw_request *req)
        : api_(api), req_(api && req ? api->request_retain(req) : nullptr) {}
    Retained(Retained &&o) noexcept : api_(o.api_), req_(std::exchange(o.req_, nullptr)) {}
    Retained &operator=(Retained &&o) noexcept {
        if (this != &o) {
            reset();
            api_ = o.api_;
            req_ = std::exchange(o.req_, nullptr);
        }
        return *this;
    }
    Retained(const Retained &) = delete;
    Retained &operator=(const Retained &) = delete;
    ~Retained() { reset(); }

    pw_request *get() const { return req_; }
    explicit operator bool() const { return req_ != nullptr; }
    // request_resume(); the handle stays held until reset() or destruction.
    int resume(pw_verdict v) const { return req_ ? api_->request_resume(req_, v) : PW_ESTATE; }
    // request_release() now (idempotent).
    void reset() noexcept {
        if (req_)
            api_->request_release(req_);
        req_ = nullptr;
    }

private:
    const pw_host_api *api_ = nullptr;
    pw_request *req_ = nullptr;
};

// A one-shot timer with a C++ callback, cancelled when destroyed or restarted. The callback runs on the SIP
// thread inside a guard (an exception is logged). The Timer may be moved while armed (its state is on the heap),
// and may be destroyed or restarted from inside its own callback.
class Timer {
public:
    Timer() = default;
    Timer(const pw_host_api *api, pw_host *host, const char *module = "module")
        : api_(api), host_(host), module_(module) {}
    Timer(Timer &&) noexcept = default;
    Timer &operator=(Timer &&o) noexcept {
        if (this != &o) {
            cancel();
            api_ = o.api_;
            host_ = o.host_;
            module_ = o.module_;
            state_ = std::move(o.state_);
        }
        return *this;
    }
    ~Timer() { cancel(); }

    // Arms the timer (an armed one is cancelled first). False when the host refused it.
    bool start(uint64_t delayMs, std::function<void()> fn) {
        cancel();
        state_ = std::make_shared<State>();
        state_->self = state_;
        state_->fn = std::move(fn);
        state_->api = api_;
        state_->host = host_;
        state_->module = module_;
        state_->id = api_->timer_start(host_, delayMs, &Timer::fire, state_.get());
        if (state_->id == 0) {
            state_->self.reset();
            state_.reset();
            return false;
        }
        return true;
    }
    bool armed() const { return state_ && state_->id != 0; }
    // timer_cancel(); nothing when not armed.
    void cancel() noexcept {
        if (!state_)
            return;
        if (state_->id)
            api_->timer_cancel(host_, state_->id);
        state_->id = 0;
        state_->self.reset(); // the host will not call fire() any more: drop the reference it held
        state_.reset();
    }

private:
    struct State {
        std::shared_ptr<State> self; // held while the host may still call fire()
        std::function<void()> fn;
        const pw_host_api *api = nullptr;
        pw_host *host = nullptr;
        const char *module = "module";
        pw_timer_id id = 0;
    };
    static void fire(void *arg) noexcept {
        auto *raw = static_cast<State *>(arg);
        std::shared_ptr<State> keep = std::move(raw->self); // alive for this call even if the Timer goes
        keep->id = 0;
        std::function<void()> fn = std::move(keep->fn);
        guardVoid(keep->api, keep->host, keep->module, "timer", [&] {
            if (fn)
                fn();
        });
    }

    const pw_host_api *api_ = nullptr;
    pw_host *host_ = nullptr;
    const char *module_ = "module";
    std::shared_ptr<State> state_;
};

// ------------------------------------------------------------------------------------------------- URIs

// A part of a URI as the host parses it (ABI 1.4 uri_part: unescaped, see module.h); std::nullopt when the host
// is older than 1.4 (the caller falls back to its own reading) -- an unparsable URI gives "" on a 1.4 host.
inline std::optional<std::string> uriPart(const pw_host_api *api, pw_host *host, std::string_view uri,
                                          pw_uri_part part) {
    if (!PW_HOST_HAS(api, uri_part))
        return std::nullopt;
    return str(api->uri_part(host, ps(uri), part));
}
// A URI parameter (unescaped): nullopt on an older host; an empty optional string when absent is told apart by
// the second member (present).
struct UriValue {
    bool present = false;
    std::string value;
};
inline std::optional<UriValue> uriParam(const pw_host_api *api, pw_host *host, std::string_view uri,
                                        std::string_view name) {
    if (!PW_HOST_HAS(api, uri_param))
        return std::nullopt;
    pw_str v = api->uri_param(host, ps(uri), ps(name));
    return UriValue{present(v), str(v)};
}
inline std::optional<UriValue> uriHeader(const pw_host_api *api, pw_host *host, std::string_view uri,
                                         std::string_view name) {
    if (!PW_HOST_HAS(api, uri_header))
        return std::nullopt;
    pw_str v = api->uri_header(host, ps(uri), ps(name));
    return UriValue{present(v), str(v)};
}

} // namespace parkway::sdk
