#include "event_bus.hh"

#include <vector>

namespace parkway::proxy {

namespace {
// A stalled stream client must not grow memory without bound; the oldest events are dropped and the
// client sees a gap in the SSE ids.
constexpr size_t kMaxQueued = 10000;
} // namespace

uint64_t EventBus::subscribe(Wakeup wake) {
    std::lock_guard<std::mutex> lock(mu_);
    uint64_t id = nextId_++;
    subs_[id].wake = std::move(wake);
    subscribers_.store(subs_.size(), std::memory_order_relaxed);
    return id;
}

void EventBus::unsubscribe(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    subs_.erase(id);
    subscribers_.store(subs_.size(), std::memory_order_relaxed);
}

void EventBus::publish(const std::string &type, const std::string &json) {
    std::vector<Wakeup> wakes;
    {
        std::lock_guard<std::mutex> lock(mu_);
        Event ev{++seq_, type, json};
        for (auto &[id, sub] : subs_) {
            sub.queue.push_back(ev);
            if (sub.queue.size() > kMaxQueued) sub.queue.pop_front();
            if (sub.wake) wakes.push_back(sub.wake);
        }
    }
    // Outside the lock: a wakeup may call back into drain().
    for (auto &w : wakes) w();
}

std::deque<Event> EventBus::drain(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = subs_.find(id);
    if (it == subs_.end()) return {};
    std::deque<Event> out;
    out.swap(it->second.queue);
    return out;
}

} // namespace parkway::proxy
