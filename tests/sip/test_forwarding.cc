// RFC 3261 §16 behaviour of the proxy core, seen from fake phones.
#include <sip_test.hh>

#include <catch2/catch.hpp>

using namespace parkway;
using namespace parkway::test;

namespace {
// A router for tests: every X-Target header becomes a branch.
[[maybe_unused]] void targetsFromHeader(HookModule &h) {
    h.onRequest = [&h](pw_request *req) {
        for (unsigned i = 0;; ++i) {
            std::string t = h.header(req, "X-Target", i);
            if (t.empty()) break;
            h.addTarget(req, t);
        }
        return PW_CONTINUE;
    };
}
} // namespace

TEST_CASE("OPTIONS is forwarded to the Request-URI and the 200 comes back", "[proxy]") {
    SipTestEnv env;
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("OPTIONS", 200);
    auto &c = a->send("OPTIONS", b->uri());
    REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
    CHECK(c.finalStatus == 200);
    REQUIRE(b->count("OPTIONS") == 1);
    // RFC 3261 §16.6 step 3: Max-Forwards decremented (nta inserts 70 on the UA side)
    CHECK(b->last("OPTIONS")->request.maxForwards() == 69);
    // two Vias at B: the proxy's and A's
    CHECK(b->last("OPTIONS")->request.headerCount("Via") == 2);
}
