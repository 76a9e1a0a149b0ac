// Ownership and failover (docs/cluster.md "Ownership and failover"): nodes with leases, takeover of an expired
// node's calls by exactly one survivor, the fence on (owner, generation), a recall that fires once across a
// takeover. Several engines on one database, each with a clock of its own (the lease is judged by the clock of
// the engine that looks): two connections to one file on SQLite, two nodes on PostgreSQL.
#include "helpers.hh"

#include <atomic>
#include <set>
#include <thread>

using namespace parkway::engine;

namespace {

constexpr Millis kLease = 5000;

struct OwnNode {
    FakeClock clock;
    std::unique_ptr<Engine> e;
    OwnNode(const std::string &db, const std::string &name) {
        OpenOptions o;
        o.releaseStaleClaims = false; // several live engines on one database
        e = Engine::open(db, clock, o);
        REQUIRE(e->registerNode(name, "sip:" + name + ".example:5060", kLease).ok);
    }
};

// Three nodes a, b, c on one database; a.example with recall after 60 s, ringing 20 s.
struct Trio {
    TempDir dir;
    std::string db = dir.db("owner.db");
    OwnNode a{db, "a"}, b{db, "b"}, c{db, "c"};
    Trio() {
        DomainSettings d;
        d.name = "a.example";
        d.occupied = OccupiedPolicy::Stack;
        d.maxParkedPerExtension = 0;
        d.recall.recallSeconds = 60;
        d.recall.ringSeconds = 20;
        REQUIRE(a.e->setDomain(d).ok);
    }
    // Every clock forward by `ms`; b and c renew their leases, a is dead (renews nothing).
    void aDiesFor(Millis ms) {
        for (OwnNode *n : {&a, &b, &c})
            n->clock.advanceMs(ms);
        REQUIRE(b.e->heartbeat().ok);
        REQUIRE(c.e->heartbeat().ok);
    }
};

std::vector<CallId> parkSome(Engine &e, int n, const std::string &ext = "701") {
    std::vector<CallId> ids;
    for (int i = 0; i < n; ++i) {
        auto r = e.park(directed(ext));
        REQUIRE(r.ok);
        ids.push_back(r.call.id);
    }
    return ids;
}

} // namespace

TEST_CASE("ownership: calls are owned by the node that parks them, and another node's retrieve claims nothing") {
    Trio t;
    auto ids = parkSome(*t.a.e, 2);
    auto call = t.b.e->get(ids[0]);
    REQUIRE(call);
    CHECK(call->owner == "a");
    CHECK(call->ownerGeneration == 0); // +1 at each takeover (and each registration of its owner)
    auto elsewhere = t.b.e->claimRetrieve(byExt("701"));
    CHECK(elsewhere.error == ErrorCode::NotOwner);
    CHECK(elsewhere.call.owner == "a");
    CHECK(t.b.e->get(ids[0])->state == CallState::Parked); // nothing claimed
    auto node = t.b.e->node("a");
    REQUIRE(node);
    CHECK(node->address == "sip:a.example:5060");
    CHECK(node->live);
    CHECK(t.a.e->claimRetrieve(byExt("701")).ok); // the owner retrieves it
    CHECK(t.b.e->liveCalls().empty());            // b lists only its own calls
    CHECK(t.a.e->liveCalls().size() == 2);
}

TEST_CASE("ownership: a node that heartbeats keeps its calls, and one whose lease ran out loses them to exactly one "
          "survivor") {
    Trio t;
    auto ids = parkSome(*t.a.e, 20);
    // a renews every 2 s for 10 s: nobody takes anything.
    for (int i = 0; i < 5; ++i) {
        for (OwnNode *n : {&t.a, &t.b, &t.c}) {
            n->clock.advanceMs(2000);
            REQUIRE(n->e->heartbeat().ok);
        }
        auto none = t.b.e->takeOver();
        REQUIRE(none.ok);
        CHECK(none.calls.empty());
        CHECK(none.nodes.empty());
    }
    t.aDiesFor(kLease + 1);
    // b and c both look, at the same moment, from two threads.
    TakeoverResult got[2];
    std::atomic<int> ready{0};
    auto run = [&](int who, Engine &e) {
        ++ready;
        while (ready.load() < 2) {
        }
        got[who] = e.takeOver();
    };
    std::thread tb(run, 0, std::ref(*t.b.e)), tc(run, 1, std::ref(*t.c.e));
    tb.join();
    tc.join();
    REQUIRE(got[0].ok);
    REQUIRE(got[1].ok);
    // Exactly one survivor took a's calls, all of them; the other took none.
    CHECK(got[0].calls.size() + got[1].calls.size() == ids.size());
    CHECK((got[0].calls.empty() || got[1].calls.empty()));
    int winner = got[0].calls.empty() ? 1 : 0;
    const std::string name = winner == 0 ? "b" : "c";
    CHECK(got[winner].nodes == std::vector<std::string>{"a"});
    std::set<CallId> taken;
    for (const ParkedCall &c : got[winner].calls) {
        taken.insert(c.id);
        CHECK(c.owner == name);
        CHECK(c.ownerGeneration == 1);
    }
    CHECK(taken == std::set<CallId>(ids.begin(), ids.end()));
    CHECK(!t.b.e->node("a"));
    Engine &w = winner == 0 ? *t.b.e : *t.c.e;
    CHECK(w.liveCalls().size() == ids.size());
    // No call lost: the survivor retrieves every one, once.
    for (size_t i = 0; i < ids.size(); ++i) {
        auto r = w.claimRetrieve(byExt("701"));
        REQUIRE(r.ok);
        REQUIRE(w.completeRetrieve(r.call.id).ok);
    }
    CHECK(w.claimRetrieve(byExt("701")).error == ErrorCode::NotFound);
}

TEST_CASE("ownership: after a takeover the old owner's writes are refused (fencing)") {
    Trio t;
    auto ids = parkSome(*t.a.e, 3);
    REQUIRE(t.a.e->liveCalls().size() == 3);
    t.aDiesFor(61'000); // a's lease and the recall deadlines have passed
    auto took = t.b.e->takeOver();
    REQUIRE(took.ok);
    REQUIRE(took.calls.size() == 3);
    // a wakes up (frozen, not dead): every owner-side write is refused.
    auto step = t.a.e->recallStep(ids[0]);
    CHECK(step.error == ErrorCode::NotOwner);
    CHECK(step.call.owner == "b");
    CHECK(t.a.e->recallNoAnswer(ids[0]).error == ErrorCode::NotOwner);
    CHECK(t.a.e->recallAnswered(ids[0], "100").error == ErrorCode::NotOwner);
    CHECK(t.a.e->abandon(ids[1]).error == ErrorCode::NotOwner);
    CHECK(t.a.e->updateBlob(ids[1], "stale").error == ErrorCode::NotOwner);
    CHECK(t.a.e->claimRetrieve(byExt("701")).error == ErrorCode::NotOwner);
    CHECK(t.a.e->completeRetrieve(ids[2]).error == ErrorCode::NotOwner);
    CHECK(t.a.e->abortRetrieve(ids[2]).error == ErrorCode::NotOwner);
    CHECK(t.b.e->get(ids[1])->blob.empty());
    // Its next heartbeat says the lease lapsed; it owns nothing now, and takes nothing back.
    auto hb = t.a.e->heartbeat();
    REQUIRE(hb.ok);
    CHECK(hb.lapsed);
    CHECK(t.a.e->liveCalls().empty());
    auto back = t.a.e->takeOver();
    REQUIRE(back.ok);
    CHECK(back.calls.empty());
    // The new owner acts.
    CHECK(t.b.e->recallStep(ids[0]).ok);
    CHECK(t.b.e->updateBlob(ids[1], "fresh").ok);
    CHECK(t.b.e->abandon(ids[1]).ok);
}

TEST_CASE("ownership: a second process under the same name fences the first") {
    Trio t;
    auto ids = parkSome(*t.a.e, 1);
    OwnNode again(t.db, "a"); // a restarted (say by a supervisor) while the old process was only frozen
    auto mine = again.e->liveCalls();
    REQUIRE(mine.size() == 1);
    CHECK(mine[0].ownerGeneration == 1);
    CHECK(t.a.e->updateBlob(ids[0], "old").error == ErrorCode::NotOwner);
    CHECK(again.e->updateBlob(ids[0], "new").ok);
}

TEST_CASE("ownership: a recall fires once across a takeover") {
    Trio t;
    auto ids = parkSome(*t.a.e, 1);
    CallId id = ids[0];
    EventLog logA(*t.a.e), logB(*t.b.e);
    // a's recall comes due and a starts ringing attempt 1 (20 s), then dies mid-ring.
    for (OwnNode *n : {&t.a, &t.b, &t.c})
        n->clock.advanceMs(60'000);
    REQUIRE(t.a.e->heartbeat().ok);
    auto first = t.a.e->recallStep(id);
    REQUIRE(first.ok);
    CHECK(first.attempt == 1);
    t.aDiesFor(kLease + 1);
    auto took = t.b.e->takeOver();
    REQUIRE(took.ok);
    REQUIRE(took.calls.size() == 1);
    const ParkedCall &c = took.calls[0];
    CHECK(c.state == CallState::Recalling);
    CHECK(c.recallAt == first.call.recallAt); // the deadline a set: end of its ring time
    // b re-arms at that deadline: before it nothing rings.
    CHECK(t.b.e->recallStep(id).error == ErrorCode::BadState);
    t.b.clock.set(c.recallAt);
    t.a.clock.set(c.recallAt);
    // a wakes up at the same instant and its ring timer fires: refused, it must not ring.
    CHECK(t.a.e->recallNoAnswer(id).error == ErrorCode::NotOwner);
    CHECK(t.a.e->recallStep(id).error == ErrorCode::NotOwner);
    // b re-rings the current attempt, once (the ladder does not advance: attempt 1 was never concluded).
    auto again = t.b.e->recallStep(id);
    REQUIRE(again.ok);
    CHECK(again.attempt == 1);
    CHECK(t.b.e->recallStep(id).error == ErrorCode::BadState); // a second fire in the same window rings nothing
    int startedA = 0, startedB = 0;                            // an engine's listeners see its own commits
    for (const auto &e : logA.events)
        startedA += e.kind == EventKind::RecallStarted;
    for (const auto &e : logB.events)
        startedB += e.kind == EventKind::RecallStarted;
    CHECK(startedA == 1); // a's attempt, before it died
    CHECK(startedB == 1); // b's re-ring of that attempt
}

TEST_CASE("ownership: a claim in flight on the dead node goes back to parked, and calls without an owner are adopted") {
    TempDir dir;
    std::string db = dir.db("adopt.db");
    FakeClock plain;
    OpenOptions o;
    o.releaseStaleClaims = false;
    auto legacy = Engine::open(db, plain, o); // ownership off: owner ''
    auto orphan = legacy->park(directed("702"));
    REQUIRE(orphan.ok);
    CHECK(orphan.call.owner.empty());
    OwnNode a(db, "a"), b(db, "b");
    a.clock.set(plain.nowMs());
    b.clock.set(plain.nowMs());
    REQUIRE(a.e->heartbeat().ok);
    REQUIRE(b.e->heartbeat().ok);
    auto p = a.e->park(directed("701"));
    REQUIRE(p.ok);
    REQUIRE(a.e->claimRetrieve(byExt("701")).ok); // a dies while the retrieve re-INVITE is out
    a.clock.advanceMs(kLease + 1);
    b.clock.advanceMs(kLease + 1);
    REQUIRE(b.e->heartbeat().ok);
    auto took = b.e->takeOver();
    REQUIRE(took.ok);
    REQUIRE(took.calls.size() == 2);
    for (const ParkedCall &c : took.calls) {
        CHECK(c.owner == "b");
        CHECK(c.state == CallState::Parked);
    }
    CHECK(b.e->claimRetrieve(byExt("701")).ok);
    CHECK(b.e->claimRetrieve(byExt("702")).ok);
}

TEST_CASE("ownership: stored watchers follow their node") {
    Trio t;
    REQUIRE(t.a.e->putWatcher("w1", "blob-1").ok);
    REQUIRE(t.b.e->putWatcher("w2", "blob-2").ok);
    CHECK(t.a.e->watchers().size() == 1);
    CHECK(t.b.e->watchers().size() == 1);
    t.aDiesFor(kLease + 1);
    auto took = t.c.e->takeOver();
    REQUIRE(took.ok);
    REQUIRE(took.watchers.size() == 1);
    CHECK(took.watchers[0].id == "w1");
    CHECK(took.watchers[0].blob == "blob-1");
    CHECK(t.c.e->watchers().size() == 1);
    CHECK(t.b.e->takeOver().watchers.empty());
}

TEST_CASE("ownership: bad node settings are refused with a message") {
    FakeClock clock;
    auto e = memEngine(clock);
    CHECK(e->registerNode("", "sip:x", kLease).error == ErrorCode::BadRequest);
    CHECK(e->registerNode("a", "sip:x", 0).error == ErrorCode::BadRequest);
    CHECK(e->heartbeat().error == ErrorCode::BadState);
    CHECK(e->takeOver().error == ErrorCode::BadState);
    CHECK(e->nodeName().empty());
}
