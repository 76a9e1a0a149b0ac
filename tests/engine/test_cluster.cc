// Two engines, one database, two threads (docs/cluster.md "Concurrency"): on PostgreSQL two nodes; on SQLite two
// connections to one file. Claims never collide and every operation is accounted for. Catch2 assertions are
// not thread safe: the threads only record outcomes, the main thread checks them.
#include "helpers.hh"

#include <atomic>
#include <map>
#include <set>
#include <thread>

using namespace parkway::engine;

namespace {

struct ClusterPair {
    FakeClock clockA, clockB; // read only while the threads run
    TempDir dir;
    std::unique_ptr<Engine> a, b;
    ClusterPair() {
        std::string db = dir.db("cluster.db");
        OpenOptions o;
        o.releaseStaleClaims = false; // two live engines share the database
        // These tests count claims, not waits. SQLite's busy handler polls with growing sleeps, so a writer that
        // never pauses can keep the other one waiting past the default 5 s on a slow build (ThreadSanitizer:
        // one "database is locked" in 600 retrieves); a storage error would then read as a lost claim.
        o.busyTimeoutMs = 60000;
        a = Engine::open(db, clockA, o);
        b = Engine::open(db, clockB, o);
    }
    // Runs body(0, *a) and body(1, *b) on two threads started together.
    template <class F> void parallel(F &&body) {
        std::atomic<int> ready{0};
        auto run = [&](int who, Engine &e) {
            ++ready;
            while (ready.load() < 2) {
            }
            body(who, e);
        };
        std::thread t0(run, 0, std::ref(*a)), t1(run, 1, std::ref(*b));
        t0.join();
        t1.join();
    }
};

DomainSettings clusterDomain(OccupiedPolicy occupied, int maxParked = 0) {
    DomainSettings d;
    d.name = "a.example";
    d.occupied = occupied;
    d.maxParked = maxParked;     // 0 = no cap
    d.maxParkedPerExtension = 0; // no cap
    return d;
}

// Outcomes per error code, over both threads, and the last storage error's message (there should be none).
struct Tally : std::map<ErrorCode, int> {
    std::string storage;
    template <class R> void add(const R &r) {
        ++(*this)[r.ok ? ErrorCode::None : r.error];
        if (r.error == ErrorCode::Storage)
            storage = r.message;
    }
};
Tally merged(const Tally (&t)[2]) {
    Tally out = t[0];
    for (auto &[k, v] : t[1])
        out[k] += v;
    out.storage += t[1].storage;
    return out;
}

pe::ParkRequest clusterGroupPark(const std::string &parker) {
    pe::ParkRequest r;
    r.domain = "a.example";
    r.how = pe::ParkHow::Group;
    r.parker = parker;
    r.parkedUri = "sip:caller@pstn.example";
    return r;
}

} // namespace

TEST_CASE("cluster: parallel parks on one extension with occupied=reject: exactly one wins") {
    ClusterPair c;
    REQUIRE(c.a->setDomain(clusterDomain(OccupiedPolicy::Reject)).ok);
    REQUIRE(c.b->reloadRules().empty()); // b learns the domain written by a
    constexpr int kEach = 300;
    Tally t[2];
    c.parallel([&](int who, Engine &e) {
        for (int i = 0; i < kEach; ++i) {
            auto r = e.park(directed("700", who ? "101" : "100"));
            t[who].add(r);
        }
    });
    Tally all = merged(t);
    INFO("storage error: " << all.storage);
    CHECK(all[ErrorCode::Storage] == 0);
    CHECK(all[ErrorCode::None] == 1);
    CHECK(all[ErrorCode::Occupied] == 2 * kEach - 1);
    CHECK(c.a->list().size() == 1);
}

TEST_CASE("cluster: parallel group parks with stacking fill the group evenly, with reject one call per member") {
    ClusterPair c;
    const bool reject = GENERATE(false, true);
    REQUIRE(c.a->setDomain(clusterDomain(reject ? OccupiedPolicy::Reject : OccupiedPolicy::Stack)).ok);
    std::vector<std::string> members;
    for (int i = 0; i < 10; ++i)
        members.push_back(std::to_string(301 + i));
    REQUIRE(c.a->setGroup({"a.example", "sales", members, false, {}, {}}).ok);
    REQUIRE(c.b->reloadRules().empty());
    constexpr int kEach = 150;
    Tally t[2];
    c.parallel([&](int who, Engine &e) {
        for (int i = 0; i < kEach; ++i) {
            auto r = e.park(clusterGroupPark(members[static_cast<size_t>((i + who) % 10)]));
            t[who].add(r);
        }
    });
    Tally all = merged(t);
    INFO("storage error: " << all.storage);
    CHECK(all[ErrorCode::Storage] == 0);
    std::map<std::string, int> perMember;
    for (const auto &call : c.b->list())
        ++perMember[call.extension];
    REQUIRE(perMember.size() == members.size());
    if (reject) {
        CHECK(all[ErrorCode::None] == 10);
        CHECK(all[ErrorCode::GroupFull] == 2 * kEach - 10);
        for (auto &[m, n] : perMember)
            CHECK(n == 1);
    } else {
        CHECK(all[ErrorCode::None] == 2 * kEach);
        for (auto &[m, n] : perMember) // hunting always takes the member with the fewest calls: never uneven
            CHECK(n == 2 * kEach / 10);
    }
}

TEST_CASE("cluster: parallel lot parks take each slot once, the domain cap holds across engines") {
    ClusterPair c;
    const bool lot = GENERATE(true, false);
    REQUIRE(c.a->setDomain(clusterDomain(OccupiedPolicy::Stack, lot ? 0 : 40)).ok);
    REQUIRE(c.a->setLot({"a.example", "main", 701, 740, SlotChoice::First, {}, {}}).ok);
    REQUIRE(c.b->reloadRules().empty());
    constexpr int kEach = 150;
    Tally t[2];
    c.parallel([&](int who, Engine &e) {
        for (int i = 0; i < kEach; ++i) {
            ParkRequest r = directed(std::to_string(1000 + who * kEach + i)); // a different extension each time
            if (lot) {
                r.how = ParkHow::Lot;
                r.lot = "main";
            }
            auto p = e.park(r);
            t[who].add(p);
        }
    });
    Tally all = merged(t);
    INFO("storage error: " << all.storage);
    CHECK(all[ErrorCode::Storage] == 0);
    CHECK(all[ErrorCode::None] == 40);
    CHECK(all[lot ? ErrorCode::LotFull : ErrorCode::DomainFull] == 2 * kEach - 40);
    auto calls = c.a->list();
    CHECK(calls.size() == 40);
    if (lot) {
        std::set<int> slots;
        for (const auto &call : calls)
            slots.insert(call.slot);
        CHECK(slots.size() == 40);
    }
}

TEST_CASE("cluster: parallel retrieves from two engines: every call retrieved exactly once") {
    ClusterPair c;
    REQUIRE(c.a->setDomain(clusterDomain(OccupiedPolicy::Stack)).ok);
    REQUIRE(c.b->reloadRules().empty());
    constexpr int kCalls = 600;
    for (int i = 0; i < kCalls; ++i)
        REQUIRE(c.a->park(directed("700")).ok);
    std::vector<CallId> got[2];
    Tally t[2];
    c.parallel([&](int who, Engine &e) {
        while (true) {
            auto r = e.claimRetrieve(byExt("700", who ? "201" : "200"));
            t[who].add(r);
            if (r.error == ErrorCode::NotFound || r.error == ErrorCode::Storage)
                break;
            if (!r.ok)
                continue; // Busy: the other engine holds the only call left; try again
            auto done = e.completeRetrieve(r.call.id);
            if (!done.ok) {
                ++t[who][ErrorCode::BadState];
                break;
            }
            got[who].push_back(r.call.id);
        }
    });
    std::set<CallId> ids(got[0].begin(), got[0].end());
    ids.insert(got[1].begin(), got[1].end());
    CHECK(got[0].size() + got[1].size() == kCalls); // none twice ...
    CHECK(ids.size() == kCalls);                    // ... and none lost
    Tally all = merged(t);
    INFO("storage error: " << all.storage);
    CHECK(all[ErrorCode::Storage] == 0);
    CHECK(all[ErrorCode::BadState] == 0);
    CHECK(all[ErrorCode::None] == kCalls);
    CHECK(c.a->list().empty());
}

TEST_CASE("cluster: two engines claim the same calls by id: exactly one wins each") {
    ClusterPair c;
    REQUIRE(c.a->setDomain(clusterDomain(OccupiedPolicy::Stack)).ok);
    constexpr int kCalls = 300;
    std::vector<CallId> ids;
    for (int i = 0; i < kCalls; ++i) {
        auto p = c.a->park(directed(std::to_string(2000 + i)));
        REQUIRE(p.ok);
        ids.push_back(p.call.id);
    }
    std::vector<int> wins[2];
    Tally t[2];
    c.parallel([&](int who, Engine &e) {
        wins[who].assign(ids.size(), 0);
        for (size_t i = 0; i < ids.size(); ++i) {
            RetrieveRequest r;
            r.domain = "a.example";
            r.by = RetrieveRequest::By::Id;
            r.id = ids[i];
            r.retriever = who ? "201" : "200";
            auto res = e.claimRetrieve(r);
            t[who].add(res);
            wins[who][i] = res.ok ? 1 : 0;
        }
    });
    int doubles = 0, none = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
        doubles += wins[0][i] && wins[1][i];
        none += !wins[0][i] && !wins[1][i];
    }
    CHECK(doubles == 0);
    CHECK(none == 0);
    Tally all = merged(t);
    INFO("storage error: " << all.storage);
    CHECK(all[ErrorCode::Storage] == 0);
    CHECK(all[ErrorCode::None] == kCalls);
    CHECK(all[ErrorCode::Busy] == kCalls);
    for (const auto &call : c.b->list())
        CHECK(call.state == CallState::Retrieving);
}
