// Recall ladders with a fake clock: parker (retry), parker_then_alternate, alternate_only.
#include "helpers.hh"

using namespace parkway::engine;

namespace {
std::unique_ptr<Engine> engineWith(FakeClock& clock, RecallMode mode, const char* alternate = "group:ops") {
    auto e = memEngine(clock);
    DomainSettings d;
    d.name = "a.example";
    d.recall.recallSeconds = 60;
    d.recall.mode = mode;
    d.recall.ringSeconds = 20;
    d.recall.alternateWaitSeconds = 15;
    d.recall.retrySeconds = 10;
    if (alternate) d.recall.alternate = RecallTarget::parse(alternate);
    REQUIRE(e->setDomain(d).ok);
    REQUIRE(e->setGroup({"a.example", "ops", {"301", "302"}, false, {}, {}}).ok);
    return e;
}
} // namespace

TEST_CASE("recall is not due before the deadline") {
    FakeClock clock;
    auto e = engineWith(clock, RecallMode::Parker);
    auto p = e->park(directed("103", "100"));
    CHECK(e->dueCalls().empty());
    clock.advanceSeconds(59);
    auto early = e->recallStep(p.call.id);
    CHECK(early.error == ErrorCode::BadState);
    CHECK(e->get(p.call.id)->state == CallState::Parked);
    clock.advanceSeconds(1);
    REQUIRE(e->dueCalls().size() == 1);
}

TEST_CASE("mode parker: ring the parker, no answer -> retry after 10 s, again and again") {
    FakeClock clock;
    auto e = engineWith(clock, RecallMode::Parker);
    EventLog log(*e);
    auto p = e->park(directed("103", "100"));
    clock.advanceSeconds(60);
    auto s1 = e->recallStep(p.call.id);
    REQUIRE(s1.ok);
    CHECK(s1.attempt == 1);
    CHECK(s1.target.kind == RecallTarget::Kind::Parker);
    CHECK(s1.ring == std::vector<std::string>{"100"});
    CHECK(s1.ringSeconds == 20);
    CHECK(s1.nextDelaySeconds == 10);
    CHECK(s1.call.state == CallState::Recalling);
    CHECK(s1.call.recallAt == clock.nowMs() + 20'000);
    clock.advanceSeconds(20);
    auto n1 = e->recallNoAnswer(p.call.id);
    REQUIRE(n1.ok);
    CHECK(n1.attempt == 2);
    CHECK(n1.nextDelaySeconds == 10);
    CHECK(n1.ring == std::vector<std::string>{"100"});
    CHECK(n1.call.recallAt == clock.nowMs() + 10'000);
    CHECK(e->recallStep(p.call.id).error == ErrorCode::BadState); // the pause is not over
    clock.advanceSeconds(10);
    auto s2 = e->recallStep(p.call.id);
    REQUIRE(s2.ok);
    CHECK(s2.attempt == 2);
    CHECK(s2.ring == std::vector<std::string>{"100"});
    CHECK(log.kinds() == std::vector<EventKind>{EventKind::Parked, EventKind::RecallStarted, EventKind::RecallFailed,
                                                EventKind::RecallStarted});
    // The parker answers the second attempt: the recall becomes a retrieve.
    auto ans = e->recallAnswered(p.call.id, "100");
    REQUIRE(ans.ok);
    CHECK(ans.call.state == CallState::Retrieving);
    CHECK(ans.call.recallAnswered);
    CHECK(e->claimRetrieve(byExt("103")).error == ErrorCode::Busy);
    REQUIRE(e->completeRetrieve(p.call.id).ok);
    CHECK(e->list({}).empty());
}

TEST_CASE("mode parker_then_alternate: parker for wait seconds, then the alternate group, then retries") {
    FakeClock clock;
    auto e = engineWith(clock, RecallMode::ParkerThenAlternate);
    auto p = e->park(directed("103", "100"));
    clock.advanceSeconds(60);
    auto s1 = e->recallStep(p.call.id);
    REQUIRE(s1.ok);
    CHECK(s1.ring == std::vector<std::string>{"100"});
    CHECK(s1.ringSeconds == 15); // alternate wait
    CHECK(s1.nextTarget.kind == RecallTarget::Kind::Group);
    CHECK(s1.nextDelaySeconds == 0);
    clock.advanceSeconds(15);
    auto n1 = e->recallNoAnswer(p.call.id);
    REQUIRE(n1.ok);
    CHECK(n1.nextDelaySeconds == 0);
    CHECK(n1.target.kind == RecallTarget::Kind::Group);
    auto s2 = e->recallStep(p.call.id); // due at once
    REQUIRE(s2.ok);
    CHECK(s2.attempt == 2);
    CHECK(s2.ring == std::vector<std::string>{"301", "302"});
    CHECK(s2.ringSeconds == 20);
    clock.advanceSeconds(20);
    auto n2 = e->recallNoAnswer(p.call.id);
    CHECK(n2.nextDelaySeconds == 10);
    CHECK(n2.target.kind == RecallTarget::Kind::Group); // the last rung repeats
    clock.advanceSeconds(10);
    auto s3 = e->recallStep(p.call.id);
    REQUIRE(s3.ok);
    CHECK(s3.ring == std::vector<std::string>{"301", "302"});
    // Somebody retrieves meanwhile: the recall is cancelled by the claim.
    REQUIRE(e->claimRetrieve(byExt("103")).ok);
    CHECK(e->recallStep(p.call.id).error == ErrorCode::Busy);
    CHECK(e->recallNoAnswer(p.call.id).error == ErrorCode::BadState);
    // ...and if that retrieve fails the call goes back to recalling.
    CHECK(e->abortRetrieve(p.call.id).call.state == CallState::Recalling);
}

TEST_CASE("mode alternate_only: ring the alternate extension, retry after no answer") {
    FakeClock clock;
    auto e = engineWith(clock, RecallMode::AlternateOnly, "250");
    auto p = e->park(directed("103", "100"));
    clock.advanceSeconds(60);
    auto s1 = e->recallStep(p.call.id);
    REQUIRE(s1.ok);
    CHECK(s1.target.kind == RecallTarget::Kind::Extension);
    CHECK(s1.ring == std::vector<std::string>{"250"});
    clock.advanceSeconds(20);
    auto n1 = e->recallNoAnswer(p.call.id);
    CHECK(n1.nextDelaySeconds == 10);
    CHECK(n1.ring == std::vector<std::string>{"250"});
}

TEST_CASE("per-call ladder is a snapshot: later domain changes do not alter a parked call") {
    FakeClock clock;
    auto e = engineWith(clock, RecallMode::Parker);
    auto p = e->park(directed("103", "100"));
    DomainSettings d = e->domain("a.example");
    d.recall.recallSeconds = 900;
    REQUIRE(e->setDomain(d).ok);
    CHECK(e->get(p.call.id)->recallAt == p.call.recallAt);
    CHECK(e->get(p.call.id)->recall.recallSeconds == 60);
}

TEST_CASE("abandon while recalling cancels the recall") {
    FakeClock clock;
    auto e = engineWith(clock, RecallMode::Parker);
    auto p = e->park(directed("103", "100"));
    clock.advanceSeconds(60);
    REQUIRE(e->recallStep(p.call.id).ok);
    REQUIRE(e->abandon(p.call.id).ok);
    CHECK(e->recallNoAnswer(p.call.id).error == ErrorCode::NotFound);
    CHECK(e->recallAnswered(p.call.id, "100").error == ErrorCode::NotFound);
}

TEST_CASE("recall ladder description") {
    RecallSettings s;
    s.mode = RecallMode::ParkerThenAlternate;
    s.alternate = RecallTarget::parse("number:+15551234");
    auto l = recallLadder(s);
    REQUIRE(l.size() == 2);
    CHECK(l[0].target.kind == RecallTarget::Kind::Parker);
    CHECK(l[1].target.toString() == "number:+15551234");
    CHECK(l[1].repeats);
    CHECK(RecallTarget::parse("sip:ops@b.example")->kind == RecallTarget::Kind::Number);
    CHECK_FALSE(RecallTarget::parse("group:"));
}
