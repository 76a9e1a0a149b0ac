// Resource behaviour under sustained calls: nothing a finished call used may stay alive, and the event loop
// must not burn CPU polling for timers (the 200 calls/s regression of bench/proxy).
#include <sip_test.hh>

#include <core/core_impl.hh>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <memory>
#include <vector>

using namespace parkway;
using namespace parkway::test;

namespace {

size_t liveTransactions(proxy::Proxy &p) { return nlohmann::json::parse(p.statsJson()).at("transactions").get<size_t>(); }

double threadCpuMs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

} // namespace

TEST_CASE("Finished calls leave no transaction, branch or timer behind", "[proxy][load]") {
    SipTestEnv env; // T1 50 ms: the old late-2xx hold (64*T1) kept every INVITE 3.2 s
    HookModule router;
    env.add(router);
    env.start();
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    router.onRequest = [&](pw_request *r) {
        if (router.method(r) == "INVITE") router.addTarget(r, b->uri());
        return PW_CONTINUE;
    };
    b->autoAnswer("INVITE", 200, "v=0\r\n", "application/sdp");
    b->autoAnswer("BYE", 200);
    const int calls = 30;
    std::vector<Client *> invites;
    for (int i = 0; i < calls; ++i) invites.push_back(&a->send("INVITE", "sip:bob@parkway.test"));
    REQUIRE(env.runUntil([&] {
        for (auto *c : invites)
            if (c->finalStatus != 200 || c->acksSent == 0) return false;
        return true;
    }));
    std::vector<Client *> byes;
    for (auto *c : invites) byes.push_back(&a->inDialog(*c, "BYE"));
    REQUIRE(env.runUntil([&] {
        for (auto *c : byes)
            if (c->finalStatus != 200) return false;
        return true;
    }));
    // Within a few hundred ms (far less than 64*T1 = 3.2 s): every proxy transaction is gone, with its
    // client transactions (branches) and timers.
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(env.runUntil([&] { return liveTransactions(env.proxy()) == 0; }, 5000));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1000)); // (it would take 64*T1 = 3.2 s)
    proxy::Proxy::Impl *impl = router.host->impl; // the core behind the module's host handle
    CHECK(impl->txns.empty());
    CHECK(impl->timers.empty());
}

TEST_CASE("The event loop sleeps until its timers are due instead of polling", "[proxy][load]") {
    sofia::Root root;
    sofia::LoopPacer pacer(root.get());
    // 150 timers 1.3 ms apart: without pacing, su_root polls with a zero timeout for the last fraction of a
    // millisecond before each one (about half the wall time here).
    const int n = 150;
    std::vector<std::unique_ptr<sofia::Timer>> timers;
    int fired = 0;
    for (int i = 0; i < n; ++i) timers.push_back(std::make_unique<sofia::Timer>(root.get()));
    auto wall0 = std::chrono::steady_clock::now();
    double cpu0 = threadCpuMs();
    for (int i = 0; i < n; ++i) {
        timers[i]->start(static_cast<uint64_t>(1 + i * 13 / 10), [&] { ++fired; });
    }
    REQUIRE(runUntil(root.get(), [&] { return fired == n; }, 5000));
    double cpu = threadCpuMs() - cpu0;
    double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall0).count();
    INFO("loop CPU " << cpu << " ms over " << wall << " ms, " << pacer.pauses() << " pauses");
    CHECK(cpu < 0.25 * wall);
}
