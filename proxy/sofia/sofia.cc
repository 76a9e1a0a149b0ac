#include "sofia.hh"

#include <chrono>
#include <stdexcept>
#include <time.h>
#include <strings.h>

namespace parkway::sofia {

Root::Root() {
    su_init();
    root_ = su_root_create(nullptr);
    if (!root_) throw std::runtime_error("sofia: su_root_create failed");
}

Root::~Root() {
    su_root_destroy(root_);
    su_deinit();
}

Timer::Timer(su_root_t *root) : timer_(su_timer_create(su_root_task(root), 0)) {
    if (!timer_) throw std::runtime_error("sofia: su_timer_create failed");
}

Timer::~Timer() { su_timer_destroy(timer_); }

void Timer::start(uint64_t ms, std::function<void()> fn) {
    fn_ = std::move(fn);
    su_timer_reset(timer_);
    armed_ = su_timer_set_interval(timer_, &Timer::trampoline, reinterpret_cast<su_timer_arg_t *>(this),
                                   static_cast<su_duration_t>(ms)) == 0;
}

void Timer::cancel() {
    su_timer_reset(timer_);
    armed_ = false;
}

void Timer::trampoline(su_root_magic_t *, su_timer_t *, su_timer_arg_t *arg) noexcept {
    auto *self = reinterpret_cast<Timer *>(arg);
    self->armed_ = false;
    // The callback may destroy this Timer: move the function out first.
    auto fn = std::move(self->fn_);
    self->fn_ = nullptr;
    try {
        if (fn) fn();
    } catch (...) {
        // A timer callback must never unwind into sofia.
    }
}

LoopPacer::LoopPacer(su_root_t *root) : root_(root) {
    if (root_) su_root_add_prepoll(root_, &LoopPacer::prepoll, static_cast<su_prepoll_magic_t *>(static_cast<void *>(this)));
}

LoopPacer::~LoopPacer() {
    if (root_) su_root_remove_prepoll(root_);
}

void LoopPacer::prepoll(su_prepoll_magic_t *magic, su_root_t *) noexcept {
    using namespace std::chrono;
    auto *self = static_cast<LoopPacer *>(static_cast<void *>(magic));
    if (self->turnEnd_) {
        try {
            self->turnEnd_();
        } catch (...) {
        }
    }
    int64_t now = duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
    bool quick = now - self->lastNs_ < 100000; // the previous round ended < 0.1 ms ago
    bool idle = self->work_ == self->lastWork_;
    if (quick && idle) {
        // Two idle rounds in a row: the loop is polling with a zero timeout for a timer that is not due
        // yet. 0.2 ms keeps timers within their millisecond and costs nothing when work arrives (it only
        // delays the next poll, never drops anything).
        if (++self->idle_ >= 2) {
            timespec ts{0, 200000};
            nanosleep(&ts, nullptr);
            ++self->pauses_;
            now = duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
        }
    } else {
        self->idle_ = 0;
    }
    self->lastWork_ = self->work_;
    self->lastNs_ = now;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

static bool headerNameMatches(msg_header_t *h, std::string_view name) {
    msg_hclass_t const *hc = h->sh_class;
    if (!hc) return false;
    if (hc == sip_unknown_class) return h->sh_unknown->un_name && iequals(h->sh_unknown->un_name, name);
    if (!hc->hc_name || !*hc->hc_name) return false;
    if (iequals(hc->hc_name, name)) return true;
    return name.size() == 1 && hc->hc_short[0] && (hc->hc_short[0] | 0x20) == (name[0] | 0x20);
}

bool headerValue(msg_t *msg, std::string_view name, unsigned idx, std::string &out) {
    if (!msg || name.empty()) return false;
    msg_header_t **head = msg_chain_head(msg);
    if (head && !*head) { // built, never serialised: make the chain
        msg_serialize(msg, reinterpret_cast<msg_pub_t *>(sip_object(msg)));
        head = msg_chain_head(msg);
    }
    if (!head) return false;
    // The chain holds the headers in wire order (after serialisation or parsing).
    for (msg_header_t *h = *head; h; h = h->sh_succ) {
        if (!headerNameMatches(h, name)) continue;
        if (idx-- > 0) continue;
        if (h->sh_class == sip_unknown_class) {
            out = h->sh_unknown->un_value ? h->sh_unknown->un_value : "";
            return true;
        }
        char buf[4096];
        issize_t n = msg_header_field_e(buf, sizeof buf, h, 0);
        if (n < 0) return false;
        if (static_cast<size_t>(n) >= sizeof buf) {
            std::string big(static_cast<size_t>(n) + 1, '\0');
            n = msg_header_field_e(big.data(), big.size(), h, 0);
            big.resize(static_cast<size_t>(n));
            out = big;
        } else {
            out.assign(buf, static_cast<size_t>(n));
        }
        return true;
    }
    return false;
}

std::string headerValue(msg_t *msg, std::string_view name, unsigned idx) {
    std::string v;
    headerValue(msg, name, idx, v);
    return v;
}

int removeHeaders(msg_t *msg, std::string_view name) {
    if (!msg) return 0;
    int n = 0;
    for (;;) {
        msg_header_t **head = msg_chain_head(msg);
        msg_header_t *found = nullptr;
        for (msg_header_t *h = head ? *head : nullptr; h; h = h->sh_succ)
            if (headerNameMatches(h, name)) {
                found = h;
                break;
            }
        if (!found) return n;
        if (msg_header_remove(msg, reinterpret_cast<msg_pub_t *>(sip_object(msg)), found) < 0) return n;
        ++n;
    }
}

std::string urlString(const url_t *url) {
    if (!url) return {};
    char buf[1024];
    issize_t n = url_e(buf, sizeof buf, url);
    if (n < 0) return {};
    if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, static_cast<size_t>(n));
    Home home;
    char *s = url_as_string(home.get(), url);
    return s ? std::string(s) : std::string();
}

std::string msgText(msg_t *msg) {
    if (!msg) return {};
    Home home;
    size_t len = 0;
    char *s = msg_as_string(home.get(), msg, nullptr, 0, &len);
    return s ? std::string(s, len) : std::string();
}

} // namespace parkway::sofia
