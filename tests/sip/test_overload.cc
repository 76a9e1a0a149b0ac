// The overload gate's arithmetic (proxy/core/overload.hh, docs/limits.md "Overload"): the moving average, the
// hysteresis between the hard and the soft threshold, and the RFC 7339 reduction and sequence. Synthetic clock:
// no timing here.
#include <core/overload.hh>

#include <catch2/catch.hpp>

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

} // namespace

TEST_CASE("Overload gate: shut from the hard threshold, open again under the soft one", "[overload]") {
    OverloadGate g;
    g.configure(OverloadSettings{200, 100, 1, true, 500});
    int64_t t = feed(g, 1000000, 5, 1000);
    CHECK_FALSE(g.refusing());
    CHECK(g.reduction() == 0);
    t = feed(g, t, 400, 1000); // far behind for a second
    CHECK(g.refusing());
    CHECK(g.reduction() == 100);
    t = feed(g, t, 150, 1000); // between the thresholds: still shut (hysteresis), reduction in proportion
    CHECK(g.refusing());
    CHECK(g.reduction() == 50);
    t = feed(g, t, 20, 1000); // caught up
    CHECK_FALSE(g.refusing());
    CHECK(g.reduction() == 0);
    t = feed(g, t, 150, 1000); // between the thresholds from below: served, but upstream is asked to reduce
    CHECK_FALSE(g.refusing());
    CHECK(g.reduction() == 50);
}

TEST_CASE("Overload gate: one late sample after a stall shuts it at once; a burst moves the average", "[overload]") {
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
    CHECK_FALSE(g.refusing());
    CHECK(g.reduction() == 0);
}
