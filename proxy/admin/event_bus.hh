// Thread-safe fan-out of events (engine changes, module events) to admin stream clients (SSE).
// publish() is called on the SIP thread; subscribers drain on the admin thread.
#pragma once
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace parkway::proxy {

struct Event {
    uint64_t seq = 0;   // monotonically increasing, SSE "id:"
    std::string type;   // "parked", "retrieved", ...
    std::string json;   // JSON object text
};

class EventBus {
public:
    using Wakeup = std::function<void()>; // called (any thread) after an event is queued for a subscriber
    uint64_t subscribe(Wakeup wake);
    void unsubscribe(uint64_t id);
    void publish(const std::string &type, const std::string &json);
    // Whether a subscriber is connected now (any thread; a hint: one may connect right after). Publishers use
    // it to skip building events nobody receives (module.h event_listening).
    bool listening() const { return subscribers_.load(std::memory_order_relaxed) > 0; }
    std::deque<Event> drain(uint64_t id); // events queued for that subscriber since last drain

private:
    struct Sub {
        Wakeup wake;
        std::deque<Event> queue;
    };
    std::mutex mu_;
    uint64_t nextId_ = 1, seq_ = 0;
    std::map<uint64_t, Sub> subs_;
    std::atomic<size_t> subscribers_{0}; // subs_.size(), readable without the lock
};

} // namespace parkway::proxy
