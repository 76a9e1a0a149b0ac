#include "parkway/engine/clock.hh"

#include <chrono>

namespace parkway::engine {

Millis SystemClock::nowMs() const {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace parkway::engine
