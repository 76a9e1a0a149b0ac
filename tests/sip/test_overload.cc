// The overload gate's arithmetic (proxy/core/overload.hh, docs/limits.md "Overload"): the moving average, the
// proportional shedding between the soft and the hard threshold and its hysteresis, and the RFC 7339 reduction
// and sequence. Synthetic clock: no timing here.
#include <core/overload.hh>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

using parkway::proxy::OverloadGate;
using parkway::proxy::OverloadSettings;

namespace {

// Feed `ms` of samples of value `late` every 20 ms (as the loop-lag probe does) from time `t` (microseconds).
int64_t feed(OverloadGate &g, int64_t t, double late, int ms) {
    for (int i = 0; i < ms / 20; ++i)
        g.sample(t += 20000, late);
    return t;
}

// How many of `n` new requests the gate refuses now.
int refusedOf(OverloadGate &g, int n) {
    int refused = 0;
    for (int i = 0; i < n; ++i)
        refused += g.admit() ? 0 : 1;
    return refused;
}

} // namespace

TEST_CASE("Overload gate: all refused from the hard threshold, in proportion above the soft one", "[overload]") {
    OverloadGate g;
    g.configure(OverloadSettings{200, 100, 1, true, 500});
    int64_t t = feed(g, 1000000, 5, 1000);
    CHECK_FALSE(g.shedding());
    CHECK(g.reduction() == 0);
    t = feed(g, t, 400, 1000); // far behind for a second
    CHECK(g.refusing());
    CHECK(g.reduction() == 100);
    t = feed(g, t, 198, 1000); // just under the hard threshold: still fully shut (hysteresis, one step)
    CHECK(g.refusing());
    t = feed(g, t, 150, 1000); // between the thresholds: in proportion
    CHECK_FALSE(g.refusing());
    CHECK(g.shedding());
    CHECK(g.reduction() == 50);
    t = feed(g, t, 20, 1000); // caught up
    CHECK_FALSE(g.shedding());
    CHECK(g.reduction() == 0);
    t = feed(g, t, 150, 1000); // between the thresholds from below: the same share
    CHECK(g.reduction() == 50);
}

TEST_CASE("Overload gate: the refused share follows the delay, deterministically", "[overload]") {
    OverloadGate g;
    g.configure(OverloadSettings{200, 100, 1, true, 500});
    int64_t t = feed(g, 1000000, 60, 1000); // below the soft threshold: none refused
    CHECK(refusedOf(g, 100) == 0);
    t = feed(g, t, 150, 1000); // halfway between the thresholds: half of them, every other one
    REQUIRE(g.reduction() == 50);
    CHECK(refusedOf(g, 100) == 50);
    CHECK(refusedOf(g, 2) == 1);
    t = feed(g, t, 120, 1000); // a fifth of the way: 20 of 100, never two in a row
    REQUIRE(g.reduction() == 20);
    int run = 0, longest = 0, refused = 0;
    for (int i = 0; i < 100; ++i) {
        bool in = g.admit();
        refused += in ? 0 : 1;
        run = in ? 0 : run + 1;
        longest = std::max(longest, run);
    }
    CHECK(refused == 20);
    CHECK(longest == 1);
    t = feed(g, t, 200, 1000); // at the hard threshold: all
    CHECK(refusedOf(g, 100) == 100);
    feed(g, t, 90, 1000);
    CHECK(refusedOf(g, 100) == 0);
    // two gates fed alike refuse the same requests (no randomness)
    OverloadGate a, b;
    for (OverloadGate *x : {&a, &b}) {
        x->configure(OverloadSettings{200, 100, 1, true, 500});
        feed(*x, 1000000, 135, 1000);
    }
    for (int i = 0; i < 100; ++i)
        CHECK(a.admit() == b.admit());
}

TEST_CASE("Overload gate: jitter around a value does not move it (no flapping)", "[overload]") {
    OverloadGate g;
    g.configure(OverloadSettings{200, 100, 1, true, 500});
    int64_t t = feed(g, 1000000, 150, 1000);
    REQUIRE(g.reduction() == 50);
    std::string seq = g.seq();
    for (int i = 0; i < 50; ++i) // jitter of +-3 ms around 150 (+-3 %)
        g.sample(t += 20000, i % 2 ? 153 : 147);
    CHECK(g.reduction() == 50);
    CHECK(g.seq() == seq);
}

TEST_CASE("Overload gate: one late sample after a stall shuts it at once, a burst moves the average", "[overload]") {
    OverloadGate g;
    g.configure(OverloadSettings{200, 100, 1, true, 500});
    int64_t t = feed(g, 1000000, 1, 200);
    g.sample(t + 1500000, 1400); // the first datagram read after a 1.5 s stall
    CHECK(g.refusing());
    OverloadGate h;
    h.configure(OverloadSettings{200, 100, 1, true, 500});
    t = feed(h, 1000000, 1, 200);
    for (int i = 0; i < 200; ++i)
        h.sample(t, 500); // many datagrams read in the same instant
    CHECK(h.refusing());
    OverloadGate k; // one late firing of the loop-lag probe (a scheduling hiccup, nothing queued) is not enough
    k.configure(OverloadSettings{200, 100, 1, true, 500});
    t = feed(k, 1000000, 1, 200);
    k.sample(t + 400000, 380, 20);
    CHECK_FALSE(k.refusing());
}

TEST_CASE("Overload gate: RFC 7339 parameters, oc-seq grows with each new value", "[overload]") {
    OverloadGate g;
    g.configure(OverloadSettings{200, 100, 1, true, 500});
    std::string p0 = g.ocParams();
    CHECK(p0.rfind("oc=0;oc-algo=\"loss\";oc-validity=500;oc-seq=", 0) == 0);
    std::string s0 = g.seq();
    int64_t t = feed(g, 1000000, 180, 1000);
    CHECK(g.reduction() == 80);
    std::string s1 = g.seq();
    CHECK(std::stod(s1) > std::stod(s0));
    feed(g, t, 1, 1000);
    CHECK(g.reduction() == 0);
    CHECK(std::stod(g.seq()) > std::stod(s1));
}

TEST_CASE("Overload gate: overload_queue_ms = 0 never refuses nor asks for a reduction", "[overload]") {
    OverloadGate g;
    g.configure(OverloadSettings{0, 0, 1, true, 500});
    feed(g, 1000000, 5000, 2000);
    CHECK_FALSE(g.shedding());
    CHECK(g.reduction() == 0);
    CHECK(refusedOf(g, 100) == 0);
}
