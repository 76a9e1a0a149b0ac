#include "admin/event_bus.hh"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

using parkway::proxy::EventBus;

TEST_CASE("every subscriber gets every event in order with increasing ids", "[events]") {
    EventBus bus;
    int wakesA = 0, wakesB = 0;
    uint64_t a = bus.subscribe([&] { ++wakesA; });
    uint64_t b = bus.subscribe([&] { ++wakesB; });
    bus.publish("parked", R"({"id":"1"})");
    bus.publish("retrieved", R"({"id":"1"})");
    CHECK(wakesA == 2);
    CHECK(wakesB == 2);
    auto ea = bus.drain(a);
    REQUIRE(ea.size() == 2);
    CHECK(ea[0].type == "parked");
    CHECK(ea[1].type == "retrieved");
    CHECK(ea[0].json == R"({"id":"1"})");
    CHECK(ea[1].seq == ea[0].seq + 1);
    CHECK(bus.drain(a).empty()); // drained
    CHECK(bus.drain(b).size() == 2);
}

TEST_CASE("events before subscribing and after unsubscribing are not delivered", "[events]") {
    EventBus bus;
    bus.publish("early", "{}");
    uint64_t a = bus.subscribe(nullptr);
    bus.publish("mid", "{}");
    auto e = bus.drain(a);
    REQUIRE(e.size() == 1);
    CHECK(e[0].type == "mid");
    bus.unsubscribe(a);
    bus.publish("late", "{}");
    CHECK(bus.drain(a).empty());
    CHECK(bus.drain(12345).empty()); // unknown subscriber: empty, no crash
}

TEST_CASE("publishing from several threads loses nothing", "[events]") {
    EventBus bus;
    std::atomic<int> wakes{0};
    uint64_t a = bus.subscribe([&] { ++wakes; });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 250; ++i) bus.publish("x", "{}");
        });
    size_t got = 0;
    for (auto &t : threads) t.join();
    got += bus.drain(a).size();
    CHECK(got == 1000);
    CHECK(wakes == 1000);
}
