// parkway/engine/clock.hh — the engine's only source of time, injected so tests can drive it.
#pragma once

#include <cstdint>

namespace parkway::engine {

// Milliseconds since the Unix epoch (UTC). Recall deadlines are absolute values of this type, so they
// survive a restart unchanged.
using Millis = std::int64_t;

class Clock {
public:
    virtual ~Clock() = default;
    virtual Millis nowMs() const = 0;
    std::int64_t nowSeconds() const { return nowMs() / 1000; }
};

// Wall clock (std::chrono::system_clock): what a running server uses.
class SystemClock final : public Clock {
public:
    Millis nowMs() const override;
};

// Manually stepped clock for tests. Starts at a fixed, realistic instant (2023-11-14T22:13:20Z).
class FakeClock final : public Clock {
public:
    explicit FakeClock(Millis start = 1'700'000'000'000) : now_(start) {}
    Millis nowMs() const override { return now_; }
    void set(Millis t) { now_ = t; }
    void advanceMs(Millis d) { now_ += d; }
    void advanceSeconds(std::int64_t s) { now_ += s * 1000; }

private:
    Millis now_;
};

} // namespace parkway::engine
