// Recall ladders with a fake clock: parker (retry), parker_then_alternate, alternate_only.
#include "helpers.hh"

#include <fstream>

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

// ---------------------------------------------------------------- maximum park time (RecallSettings::maxParkSeconds)

namespace {
std::unique_ptr<Engine> engineMaxPark(FakeClock& clock, RecallMode mode, int maxPark) {
    auto e = engineWith(clock, mode, "250");
    DomainSettings d = e->domain("a.example");
    d.recall.maxParkSeconds = maxPark;
    REQUIRE(e->setDomain(d).ok);
    return e;
}
} // namespace

TEST_CASE("max park time: the ladder stops, the final target rings once at once, then the call is expired") {
    FakeClock clock;
    auto e = engineMaxPark(clock, RecallMode::Parker, 100); // recall 60, ring 20, retry 10
    EventLog log(*e);
    auto p = e->park(directed("103", "100"));
    CHECK(p.call.recall.maxParkSeconds == 100);
    clock.advanceSeconds(60);
    auto s1 = e->recallStep(p.call.id);
    REQUIRE(s1.ok);
    CHECK_FALSE(s1.final);
    clock.advanceSeconds(20);
    auto n1 = e->recallNoAnswer(p.call.id); // t=80: below 100, a normal retry after 10 s
    REQUIRE(n1.ok);
    CHECK_FALSE(n1.final);
    CHECK_FALSE(n1.expired);
    CHECK(n1.call.recallAt == clock.nowMs() + 10'000);
    clock.advanceSeconds(10);
    REQUIRE(e->recallStep(p.call.id).ok); // t=90: attempt 2, still not final
    clock.advanceSeconds(20);
    auto n2 = e->recallNoAnswer(p.call.id); // t=110: past 100 -> the final attempt, due now
    REQUIRE(n2.ok);
    CHECK(n2.final);
    CHECK_FALSE(n2.expired);
    CHECK(n2.nextDelaySeconds == 0);
    CHECK(n2.call.recallAt == clock.nowMs());
    CHECK(n2.call.finalRecall);
    auto fin = e->recallStep(p.call.id);
    REQUIRE(fin.ok);
    CHECK(fin.final);
    CHECK(fin.ring == std::vector<std::string>{"100"}); // mode parker: the final target is the parker
    clock.advanceSeconds(20);
    auto over = e->recallNoAnswer(p.call.id);
    REQUIRE(over.ok);
    CHECK(over.expired);
    CHECK(e->get(p.call.id)->state == CallState::Recalling); // the SIP layer hangs up and abandons it
    CHECK(e->recallNoAnswer(p.call.id).expired);          // asked again: still over, never a new attempt
    REQUIRE(e->abandon(p.call.id).ok);
    CHECK(log.kinds().back() == EventKind::Abandoned);
}

TEST_CASE("max park time: parker_then_alternate ends on the alternate, a recall time beyond it is cut to it") {
    FakeClock clock;
    auto e = engineMaxPark(clock, RecallMode::ParkerThenAlternate, 45); // recall 60 > 45
    auto p = e->park(directed("103", "100"));
    CHECK(p.call.recall.recallSeconds == 45);
    CHECK(p.call.recallAt == clock.nowMs() + 45'000);
    clock.advanceSeconds(45);
    auto s = e->recallStep(p.call.id); // the first recall is already the final one: the alternate, once
    REQUIRE(s.ok);
    CHECK(s.final);
    CHECK(s.ring == std::vector<std::string>{"250"});
    CHECK(s.ringSeconds == 20);
    clock.advanceSeconds(20);
    CHECK(e->recallNoAnswer(p.call.id).expired);
}

TEST_CASE("max park time 0: the last rung repeats without end") {
    FakeClock clock;
    auto e = engineMaxPark(clock, RecallMode::Parker, 0);
    auto p = e->park(directed("103", "100"));
    clock.advanceSeconds(60);
    for (int i = 0; i < 200; ++i) { // 200 * 30 s, far beyond the default 1800 s
        auto s = e->recallStep(p.call.id);
        REQUIRE(s.ok);
        REQUIRE_FALSE(s.final);
        clock.advanceSeconds(20);
        auto n = e->recallNoAnswer(p.call.id);
        REQUIRE_FALSE(n.expired);
        clock.advanceSeconds(10);
    }
}

TEST_CASE("max park time: a rule's max_park beats the domain's, the final attempt survives a reopen") {
    FakeClock clock;
    TempDir dir;
    std::string db = dir.db("park.db");
    CallId id = 0;
    {
        auto e = Engine::open(db, clock);
        DomainSettings d;
        d.name = "a.example";
        d.recall.recallSeconds = 60;
        d.recall.ringSeconds = 20;
        d.recall.maxParkSeconds = 3600;
        REQUIRE(e->setDomain(d).ok);
        CHECK(e->domain("a.example").recall.maxParkSeconds == 3600);
        std::string rules = dir.file("rules.tsv");
        {
            std::ofstream f(rules);
            f << "1\t\t0\t10\texact\t777\t0\t\t\taction=park;ext=103;max_park=30\n";
        }
        REQUIRE(e->loadRulesFile(rules).empty());
        auto c = e->classify("a.example", "100", "777");
        REQUIRE(c.overrides.maxParkSeconds == 30);
        ParkRequest r = directed("103", "100");
        r.overrides = c.overrides;
        auto p = e->park(r);
        REQUIRE(p.ok);
        id = p.call.id;
        CHECK(p.call.recall.maxParkSeconds == 30);
        clock.advanceSeconds(30);
        REQUIRE(e->recallStep(id).final);
    }
    auto e = Engine::open(db, clock);
    auto c = e->get(id);
    REQUIRE(c);
    CHECK(c->finalRecall);
    CHECK(c->recall.maxParkSeconds == 30);
    clock.advanceSeconds(20);
    CHECK(e->recallNoAnswer(id).expired);
}

TEST_CASE("max park time is validated where it is set") {
    FakeClock clock;
    auto e = memEngine(clock);
    DomainSettings d;
    d.name = "a.example";
    d.recall.maxParkSeconds = 90000;
    auto st = e->setDomain(d);
    CHECK_FALSE(st.ok);
    CHECK(st.message.find("max_park_seconds") != std::string::npos);
    TempDir dir;
    std::string rules = dir.file("rules.tsv");
    {
        std::ofstream f(rules);
        f << "1\t\t0\t10\texact\t777\t0\t\t\taction=park;max_park=-5\n";
    }
    auto errs = e->loadRulesFile(rules);
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].message.find("max_park") != std::string::npos);
}

TEST_CASE("a parker that is the parked party is not recorded: the recall rings the parked-on extension") {
    FakeClock clock;
    auto e = engineWith(clock, RecallMode::Parker);
    ParkRequest own;
    own.domain = "a.example";
    own.how = ParkHow::Own; // still picks the parker's own extension
    own.parker = "104";
    own.parkedUri = "sip:104@a.example";
    own.parkerIsParked = true;
    auto p = e->park(own);
    REQUIRE(p.ok);
    CHECK(p.call.extension == "104");
    CHECK(p.call.parker.empty());
    auto d = e->park([] {
        auto r = directed("103", "200");
        r.parkerIsParked = true;
        return r;
    }());
    REQUIRE(d.ok);
    CHECK(e->get(d.call.id)->parker.empty());
    clock.advanceSeconds(60);
    auto st = e->recallStep(d.call.id);
    REQUIRE(st.ok);
    CHECK(st.target.kind == RecallTarget::Kind::Parker);
    CHECK(st.ring == std::vector<std::string>{"103"});
}
