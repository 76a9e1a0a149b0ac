// Thin RAII over sofia-sip objects used by the core and the test harness. No SIP policy here.
// Threading: every object belongs to the thread that runs its su_root (the SIP thread).
#pragma once
#include <sofia-sip/su_config.h>
#include <sofia-sip/msg.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/sip_util.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/url.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace parkway::sofia {

// Owns an su_root (tests and the daemon's SIP thread). su_init() is reference counted by sofia.
class Root {
public:
    Root();
    ~Root();
    Root(const Root &) = delete;
    Root &operator=(const Root &) = delete;
    su_root_t *get() const { return root_; }

private:
    su_root_t *root_ = nullptr;
};

// An su_home_t for short-lived allocations.
class Home {
public:
    Home() : home_(static_cast<su_home_t *>(su_home_new(sizeof(su_home_t)))) {}
    ~Home() { su_home_unref(home_); }
    Home(const Home &) = delete;
    Home &operator=(const Home &) = delete;
    su_home_t *get() const { return home_; }

private:
    su_home_t *home_;
};

// A reference to a msg_t. adopt() takes over a reference the caller owns; borrow() adds one.
class Msg {
public:
    Msg() = default;
    static Msg adopt(msg_t *m) { return Msg(m); }
    static Msg borrow(msg_t *m) { return Msg(m ? msg_ref_create(m) : nullptr); }
    ~Msg() { reset(); }
    Msg(Msg &&o) noexcept : msg_(o.msg_) { o.msg_ = nullptr; }
    Msg &operator=(Msg &&o) noexcept {
        if (this != &o) {
            reset();
            msg_ = o.msg_;
            o.msg_ = nullptr;
        }
        return *this;
    }
    Msg(const Msg &o) : msg_(o.msg_ ? msg_ref_create(o.msg_) : nullptr) {}
    Msg &operator=(const Msg &o) {
        if (this != &o) {
            reset();
            msg_ = o.msg_ ? msg_ref_create(o.msg_) : nullptr;
        }
        return *this;
    }
    void reset() {
        if (msg_) msg_destroy(msg_);
        msg_ = nullptr;
    }
    msg_t *get() const { return msg_; }
    msg_t *release() {
        msg_t *m = msg_;
        msg_ = nullptr;
        return m;
    }
    sip_t *sip() const { return msg_ ? sip_object(msg_) : nullptr; }
    explicit operator bool() const { return msg_ != nullptr; }

private:
    explicit Msg(msg_t *m) : msg_(m) {}
    msg_t *msg_ = nullptr;
};

// RFC 3261 §13.2.2.4: a 2xx that no transaction wants (a second fork's answer) is ACKed and then ended with a
// BYE. Takes over the reference to msg in every case: sofia's nta_msg_ackbye() keeps it when it cannot build
// the ACK or the BYE (e.g. a To URI that is no SIP URI), which leaked one message per such response.
inline void ackAndBye(nta_agent_t *agent, Msg msg) {
    if (msg && nta_msg_ackbye(agent, msg.get()) == 0)
        msg.release();
}

// A one-shot su_timer with a C++ callback. Destroying it cancels it.
class Timer {
public:
    explicit Timer(su_root_t *root);
    ~Timer();
    Timer(const Timer &) = delete;
    Timer &operator=(const Timer &) = delete;
    void start(uint64_t ms, std::function<void()> fn);
    void cancel();
    bool armed() const { return armed_; }

private:
    static void trampoline(su_root_magic_t *, su_timer_t *, su_timer_arg_t *arg) noexcept;
    su_timer_t *timer_ = nullptr;
    std::function<void()> fn_;
    bool armed_ = false;
};

// Stops su_root's event loop from spinning in front of a timer that is due in less than a millisecond.
// su_base_port computes the poll timeout in whole milliseconds, truncated: a timer 0.6 ms away gives
// epoll_wait(0) again and again until it is due. Under steady SIP load nta's transaction timers (K, J, ...)
// expire hundreds of times a second, and that spinning cost more CPU than the calls themselves.
// Installed as the root's prepoll hook: when the loop comes round again within a few microseconds and the
// owner reported no work in between, it yields the CPU for a fraction of a millisecond.
class LoopPacer {
public:
    explicit LoopPacer(su_root_t *root);
    ~LoopPacer(); // uninstalls the hook
    LoopPacer(const LoopPacer &) = delete;
    LoopPacer &operator=(const LoopPacer &) = delete;
    void noteWork() { ++work_; } // a message or timer reached the owner: the loop is not idle
    uint64_t pauses() const { return pauses_; }
    // Runs at the end of every loop turn (before the next poll), e.g. to free what lived for one turn.
    void onTurnEnd(std::function<void()> fn) { turnEnd_ = std::move(fn); }

private:
    static void prepoll(su_prepoll_magic_t *magic, su_root_t *root) noexcept;
    su_root_t *root_;
    uint64_t work_ = 0, lastWork_ = 0, pauses_ = 0;
    int64_t lastNs_ = 0;
    int idle_ = 0;
    std::function<void()> turnEnd_;
};

// ---- small helpers shared by the core and the harness

// Value of the idx-th occurrence of a header (full or compact name, case-insensitive), "" when absent.
// Comma-separated lines count as several occurrences (sofia parses them apart).
bool headerValue(msg_t *msg, std::string_view name, unsigned idx, std::string &out);
std::string headerValue(msg_t *msg, std::string_view name, unsigned idx = 0);
// Remove every occurrence of a header by name. Returns the number removed.
int removeHeaders(msg_t *msg, std::string_view name);
std::string urlString(const url_t *url);
std::string msgText(msg_t *msg); // the serialised message (for logs and tests)
bool iequals(std::string_view a, std::string_view b);

} // namespace parkway::sofia
