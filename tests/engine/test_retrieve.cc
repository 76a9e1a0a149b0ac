// Retrieving: oldest first, own, slot, by id, the claim (two retrievers), complete/abort/abandon.
#include "helpers.hh"

using namespace parkway::engine;

TEST_CASE("retrieve by extension takes the oldest call first") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto first = e->park(directed("103"));
    clock.advanceSeconds(5);
    auto second = e->park(directed("103"));
    auto r = e->claimRetrieve(byExt("103"));
    REQUIRE(r.ok);
    CHECK(r.call.id == first.call.id);
    CHECK(r.call.state == CallState::Retrieving);
    CHECK(r.call.retriever == "200");
    // The oldest is claimed, so the next retriever gets the second one.
    auto r2 = e->claimRetrieve(byExt("103", "201"));
    REQUIRE(r2.ok);
    CHECK(r2.call.id == second.call.id);
    // Both claimed: a third retriever is told Busy, not NotFound.
    CHECK(e->claimRetrieve(byExt("103", "202")).error == ErrorCode::Busy);
}

TEST_CASE("retrieve with nothing parked is NotFound, own extension retrieve") {
    FakeClock clock;
    auto e = memEngine(clock);
    CHECK(e->claimRetrieve(byExt("103")).error == ErrorCode::NotFound);
    REQUIRE(e->park(directed("200")).ok);
    RetrieveRequest own;
    own.domain = "a.example";
    own.by = RetrieveRequest::By::Own;
    own.retriever = "200";
    auto r = e->claimRetrieve(own);
    REQUIRE(r.ok);
    CHECK(r.call.extension == "200");
}

TEST_CASE("two retrievers on two connections: exactly one wins the claim") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.db("park.db");
    auto e1 = Engine::open(path, clock);
    auto e2 = Engine::open(path, clock, [] {
        OpenOptions o;
        o.releaseStaleClaims = false;
        return o;
    }());
    auto p = e1->park(directed("103"));
    REQUIRE(p.ok);
    auto a = e1->claimRetrieve(byExt("103", "201"));
    auto b = e2->claimRetrieve(byExt("103", "202"));
    CHECK(a.ok != b.ok);
    CHECK(a.ok);
    CHECK(b.error == ErrorCode::Busy);
    // The loser can see who holds it.
    CHECK(e2->get(p.call.id)->retriever == "201");
}

TEST_CASE("retrieve by slot and by id") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->setLot({"a.example", "main", 701, 720, SlotChoice::First, {}, {}}).ok);
    ParkRequest lp;
    lp.domain = "a.example";
    lp.how = ParkHow::Lot;
    lp.lot = "main";
    lp.slot = 705;
    auto p = e->park(lp);
    REQUIRE(p.ok);
    RetrieveRequest rs;
    rs.domain = "a.example";
    rs.by = RetrieveRequest::By::Slot;
    rs.lot = "main";
    rs.slot = 704;
    CHECK(e->claimRetrieve(rs).error == ErrorCode::NotFound);
    rs.slot = 705;
    auto r = e->claimRetrieve(rs);
    REQUIRE(r.ok);
    CHECK(r.call.id == p.call.id);
    RetrieveRequest ri;
    ri.domain = "a.example";
    ri.by = RetrieveRequest::By::Id;
    ri.id = p.call.id;
    CHECK(e->claimRetrieve(ri).error == ErrorCode::Busy);
    ri.id = 4242;
    CHECK(e->claimRetrieve(ri).error == ErrorCode::NotFound);
}

TEST_CASE("complete removes the call, abort puts it back, abandon frees the slot") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto p = e->park(directed("103"));
    CHECK(e->completeRetrieve(p.call.id).error == ErrorCode::BadState); // no claim yet
    REQUIRE(e->claimRetrieve(byExt("103")).ok);
    auto ab = e->abortRetrieve(p.call.id);
    REQUIRE(ab.ok);
    CHECK(ab.call.state == CallState::Parked);
    CHECK(ab.call.recallAt == p.call.recallAt); // deadline unchanged
    CHECK(ab.call.retriever.empty());
    REQUIRE(e->claimRetrieve(byExt("103")).ok);
    auto done = e->completeRetrieve(p.call.id);
    REQUIRE(done.ok);
    CHECK(done.call.state == CallState::Gone);
    CHECK_FALSE(e->get(p.call.id));
    CHECK(e->claimRetrieve(byExt("103")).error == ErrorCode::NotFound);
    CHECK(e->completeRetrieve(p.call.id).error == ErrorCode::NotFound);

    auto q = e->park(directed("104"));
    EventLog log(*e);
    auto gone = e->abandon(q.call.id);
    REQUIRE(gone.ok);
    CHECK(log.kinds() == std::vector<EventKind>{EventKind::Abandoned});
    CHECK(e->list({}).empty());
    CHECK(e->abandon(q.call.id).error == ErrorCode::NotFound);
}

TEST_CASE("a request key can be reused once the call has left") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto req = directed("103");
    req.requestKey = "k";
    auto a = e->park(req);
    REQUIRE(e->abandon(a.call.id).ok);
    auto b = e->park(req);
    REQUIRE(b.ok);
    CHECK_FALSE(b.duplicate);
    CHECK(b.call.id != a.call.id); // ids are never reused
    CHECK(e->getByRequestKey("a.example", "k")->id == b.call.id);
}

TEST_CASE("optional access lists on lots and groups") {
    FakeClock clock;
    auto e = memEngine(clock);
    Lot vip{"a.example", "vip", 801, 805, SlotChoice::First, {}, {"100", "200"}};
    REQUIRE(e->setLot(vip).ok);
    REQUIRE(e->lot("a.example", "vip")->access == std::vector<std::string>{"100", "200"});
    ParkRequest lp;
    lp.domain = "a.example";
    lp.how = ParkHow::Lot;
    lp.lot = "vip";
    lp.parker = "300";
    auto denied = e->park(lp);
    CHECK(denied.error == ErrorCode::Forbidden);
    CHECK(denied.message.find("300") != std::string::npos);
    lp.parker = "100";
    auto p = e->park(lp);
    REQUIRE(p.ok);
    RetrieveRequest rs;
    rs.domain = "a.example";
    rs.by = RetrieveRequest::By::Slot;
    rs.lot = "vip";
    rs.slot = 801;
    rs.retriever = "300";
    CHECK(e->claimRetrieve(rs).error == ErrorCode::Forbidden);
    rs.retriever = "200";
    CHECK(e->claimRetrieve(rs).ok);

    Group g{"a.example", "sales", {"201", "202"}, false, {}, {"201", "202", "250"}};
    REQUIRE(e->setGroup(g).ok);
    ParkRequest gp;
    gp.domain = "a.example";
    gp.how = ParkHow::Group;
    gp.parker = "202";
    auto gpr = e->park(gp);
    REQUIRE(gpr.ok);
    CHECK(e->claimRetrieve(byExt("201", "999")).error == ErrorCode::Forbidden);
    // A directed park on the same member is not a group park: anyone may take it, and it is the one
    // an outsider gets although the group-parked call is older.
    clock.advanceSeconds(1);
    auto direct = e->park(directed("201"));
    auto outsider = e->claimRetrieve(byExt("201", "999"));
    REQUIRE(outsider.ok);
    CHECK(outsider.call.id == direct.call.id);
    auto member = e->claimRetrieve(byExt("201", "250"));
    REQUIRE(member.ok);
    CHECK(member.call.id == gpr.call.id);
    CHECK_FALSE(e->setGroup({"a.example", "bad", {"401"}, false, {}, {"a,b"}}).ok);
}
