// Parking: directed, own, stack vs reject, group hunting, lots, idempotency, domain isolation, events.
#include "helpers.hh"

using namespace parkway::engine;

TEST_CASE("directed park stores the call with an absolute recall deadline") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto r = e->park(directed("103"));
    REQUIRE(r.ok);
    CHECK(r.call.id > 0);
    CHECK(r.call.extension == "103");
    CHECK(r.call.parker == "100");
    CHECK(r.call.state == CallState::Parked);
    CHECK(r.call.parkedAt == clock.nowMs());
    CHECK(r.call.recallAt == clock.nowMs() + 300'000); // default recall 300 s (docs/engine.md "Recall ladder")
    auto got = e->get(r.call.id);
    REQUIRE(got);
    CHECK(got->parkedUri == "sip:caller@pstn.example");
    CHECK(got->parkedDisplay == "Caller");
}

TEST_CASE("own-extension park lands on the parker, without a parker it is a bad request") {
    FakeClock clock;
    auto e = memEngine(clock);
    ParkRequest own;
    own.domain = "a.example";
    own.how = ParkHow::Own;
    own.parker = "105";
    auto r = e->park(own);
    REQUIRE(r.ok);
    CHECK(r.call.extension == "105");
    own.parker.clear();
    auto bad = e->park(own);
    CHECK_FALSE(bad.ok);
    CHECK(bad.error == ErrorCode::BadRequest);
}

TEST_CASE("occupied extension: stack (default) parks a second call, reject refuses it") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->park(directed("103")).ok);
    SECTION("stack") {
        auto second = e->park(directed("103"));
        REQUIRE(second.ok);
        ListFilter f;
        f.domain = "a.example";
        f.extension = "103";
        CHECK(e->list(f).size() == 2);
    }
    SECTION("reject by domain policy") {
        DomainSettings d = e->domain("a.example");
        d.occupied = OccupiedPolicy::Reject;
        REQUIRE(e->setDomain(d).ok);
        auto second = e->park(directed("103"));
        CHECK_FALSE(second.ok);
        CHECK(second.error == ErrorCode::Occupied);
        CHECK(e->list({}).size() == 1);
    }
    SECTION("reject by rule override beats a stacking domain") {
        auto req = directed("103");
        req.overrides.occupied = OccupiedPolicy::Reject;
        CHECK(e->park(req).error == ErrorCode::Occupied);
    }
}

TEST_CASE("unknown extension is refused only when the domain lists its extensions") {
    FakeClock clock;
    auto e = memEngine(clock);
    CHECK(e->park(directed("999")).ok); // open extensions by default
    DomainSettings d;
    d.name = "a.example";
    d.openExtensions = false;
    REQUIRE(e->setDomain(d).ok);
    REQUIRE(e->setExtension({"a.example", "103", "Bob"}).ok);
    auto r = e->park(directed("998"));
    CHECK(r.error == ErrorCode::UnknownExtension);
    CHECK(r.message.find("998") != std::string::npos);
    CHECK(e->park(directed("103")).ok);
}

TEST_CASE("group park hunts members in order, always from the first") {
    FakeClock clock;
    auto e = memEngine(clock);
    Group g;
    g.domain = "a.example";
    g.name = "sales";
    g.members = {"201", "202", "203"};
    REQUIRE(e->setGroup(g).ok);
    ParkRequest gp;
    gp.domain = "a.example";
    gp.how = ParkHow::Group;
    gp.parker = "202";

    SECTION("none occupied -> first member") {
        auto r = e->park(gp);
        REQUIRE(r.ok);
        CHECK(r.call.extension == "201");
        CHECK(r.call.group == "sales");
    }
    SECTION("some occupied -> first free member, even when an earlier member frees up later") {
        REQUIRE(e->park(directed("201")).ok);
        auto r = e->park(gp);
        REQUIRE(r.ok);
        CHECK(r.call.extension == "202");
        auto r3 = e->park(gp);
        REQUIRE(r3.ok);
        CHECK(r3.call.extension == "203");
    }
    SECTION("all occupied with stacking -> first member with the fewest calls") {
        for (auto m : {"201", "202", "203"}) REQUIRE(e->park(directed(m)).ok);
        REQUIRE(e->park(directed("201")).ok); // 201 has 2, 202 and 203 have 1
        auto r = e->park(gp);
        REQUIRE(r.ok);
        CHECK(r.call.extension == "202");
    }
    SECTION("all occupied, stacking off -> GroupFull and nothing parked") {
        g.settings.occupied = OccupiedPolicy::Reject;
        REQUIRE(e->setGroup(g).ok);
        for (auto m : {"201", "202", "203"}) REQUIRE(e->park(directed(m)).ok);
        auto r = e->park(gp);
        CHECK_FALSE(r.ok);
        CHECK(r.error == ErrorCode::GroupFull);
        CHECK(e->list({}).size() == 3);
    }
    SECTION("parker in no group -> NoGroup") {
        gp.parker = "999";
        CHECK(e->park(gp).error == ErrorCode::NoGroup);
    }
    SECTION("group recall settings override the domain, rule overrides the group") {
        g.settings.recallSeconds = 60;
        REQUIRE(e->setGroup(g).ok);
        auto r = e->park(gp);
        CHECK(r.call.recall.recallSeconds == 60);
        CHECK(r.call.recallAt == clock.nowMs() + 60'000);
        gp.overrides.recallSeconds = 20;
        gp.requestKey = "k2";
        auto r2 = e->park(gp);
        CHECK(r2.call.recall.recallSeconds == 20);
    }
}

TEST_CASE("a user is in at most one call-park group per domain") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->setGroup({"a.example", "sales", {"201", "202"}, false, {}, {}}).ok);
    auto s = e->setGroup({"a.example", "support", {"202", "301"}, false, {}, {}});
    CHECK_FALSE(s.ok);
    CHECK(s.message.find("202") != std::string::npos);
    CHECK(s.message.find("sales") != std::string::npos);
    CHECK(e->setGroup({"b.example", "support", {"202"}, false, {}, {}}).ok); // another domain is fine
    CHECK_FALSE(e->setGroup({"a.example", "dup", {"401", "401"}, false, {}, {}}).ok);
    REQUIRE(e->groupOf("a.example", "202"));
    CHECK(e->groupOf("a.example", "202")->name == "sales");
    CHECK(e->groupOf("a.example", "202")->members == std::vector<std::string>{"201", "202"});
}

TEST_CASE("lot park: first free slot, given slot, next choice, full lot") {
    FakeClock clock;
    auto e = memEngine(clock);
    Lot lot;
    lot.domain = "a.example";
    lot.name = "main";
    lot.firstSlot = 701;
    lot.lastSlot = 703;
    REQUIRE(e->setLot(lot).ok);
    ParkRequest lp;
    lp.domain = "a.example";
    lp.how = ParkHow::Lot;
    lp.lot = "main";
    auto a = e->park(lp);
    REQUIRE(a.ok);
    CHECK(a.call.slot == 701);
    CHECK(a.call.extension.empty());
    lp.slot = 703;
    auto b = e->park(lp);
    REQUIRE(b.ok);
    CHECK(b.call.slot == 703);
    CHECK(e->park(lp).error == ErrorCode::Occupied); // a slot never stacks
    lp.slot = 799;
    CHECK(e->park(lp).error == ErrorCode::BadSlot);
    lp.slot = 0;
    auto c = e->park(lp);
    CHECK(c.call.slot == 702);
    CHECK(e->park(lp).error == ErrorCode::LotFull);
    lp.slot = 703;
    lp.slotOrNext = true; // a transfer to an occupied slot with transfer=park_or_next: full lot
    CHECK(e->park(lp).error == ErrorCode::LotFull);
    lp.slotOrNext = false;
    lp.slot = 0;
    lp.lot = "nope";
    CHECK(e->park(lp).error == ErrorCode::UnknownLot);

    SECTION("slotOrNext: an occupied slot gives the next free one after it, wrapping inside the lot") {
        REQUIRE(e->abandon(a.call.id).ok); // 701 free; 702, 703 taken
        ParkRequest t;
        t.domain = "a.example";
        t.how = ParkHow::Lot;
        t.lot = "main";
        t.slot = 702;
        t.slotOrNext = true;
        auto w = e->park(t);
        REQUIRE(w.ok);
        CHECK(w.call.slot == 701);         // 703 taken, wraps to 701
        REQUIRE(e->abandon(b.call.id).ok); // 703 free
        auto x = e->park(t);
        REQUIRE(x.ok);
        CHECK(x.call.slot == 703);
    }

    SECTION("choice next continues after the last slot used, wrapping") {
        Lot n = lot;
        n.name = "round";
        n.firstSlot = 801;
        n.lastSlot = 803;
        n.choice = SlotChoice::Next;
        REQUIRE(e->setLot(n).ok);
        ParkRequest rp;
        rp.domain = "a.example";
        rp.how = ParkHow::Lot;
        rp.lot = "round";
        auto s1 = e->park(rp);
        CHECK(s1.call.slot == 801);
        REQUIRE(e->abandon(s1.call.id).ok);
        CHECK(e->park(rp).call.slot == 802); // not 801 again
        CHECK(e->park(rp).call.slot == 803);
        CHECK(e->park(rp).call.slot == 801); // wrapped
    }
    SECTION("lots of a domain cannot overlap") {
        Lot o = lot;
        o.name = "other";
        o.firstSlot = 703;
        o.lastSlot = 710;
        CHECK_FALSE(e->setLot(o).ok);
    }
}

TEST_CASE("the same request key parks once and returns the same call") {
    FakeClock clock;
    auto e = memEngine(clock);
    EventLog log(*e);
    auto req = directed("103");
    req.requestKey = "call-1@host;cseq=2";
    auto a = e->park(req);
    REQUIRE(a.ok);
    CHECK_FALSE(a.duplicate);
    clock.advanceSeconds(1);
    auto b = e->park(req);
    REQUIRE(b.ok);
    CHECK(b.duplicate);
    CHECK(b.call.id == a.call.id);
    CHECK(e->list({}).size() == 1);
    CHECK(log.events.size() == 1);
    // The key is per domain.
    auto other = req;
    other.domain = "b.example";
    auto c = e->park(other);
    CHECK_FALSE(c.duplicate);
    CHECK(c.call.id != a.call.id);
}

TEST_CASE("domain isolation: B can neither see nor retrieve A's calls") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto a = e->park(directed("103"));
    REQUIRE(a.ok);
    ListFilter fb;
    fb.domain = "b.example";
    CHECK(e->list(fb).empty());
    CHECK_FALSE(e->get("b.example", a.call.id));
    CHECK(e->get("a.example", a.call.id));
    auto r = e->claimRetrieve(byExt("103", "200", "b.example"));
    CHECK(r.error == ErrorCode::NotFound);
    RetrieveRequest byId;
    byId.domain = "b.example";
    byId.by = RetrieveRequest::By::Id;
    byId.id = a.call.id;
    CHECK(e->claimRetrieve(byId).error == ErrorCode::Forbidden);
    Target t{TargetKind::Extension, "b.example", "103", 0};
    CHECK(e->targetState(t).calls.empty());
    CHECK(e->move(a.call.id, Target{TargetKind::Extension, "b.example", "104", 0}).error == ErrorCode::Forbidden);
    CHECK(e->get(a.call.id)->state == CallState::Parked);
}

TEST_CASE("events carry per-target versions that only grow, delivered after commit") {
    FakeClock clock;
    auto e = memEngine(clock);
    Lot lot{"a.example", "main", 701, 720, SlotChoice::First, {}, {}};
    REQUIRE(e->setLot(lot).ok);
    EventLog log(*e);
    bool sawCommitted = false;
    e->addListener([&](const ChangeEvent& ev) {
        // After the commit the engine already shows the new state.
        if (ev.kind == EventKind::Parked) sawCommitted = e->get(ev.call.id).has_value();
    });
    auto a = e->park(directed("103"));
    CHECK(sawCommitted);
    REQUIRE(log.events.size() == 1);
    const auto& ev = log.events[0];
    CHECK(ev.kind == EventKind::Parked);
    REQUIRE(ev.targets.size() == 1);
    CHECK(ev.targets[0].target.key() == "ext:103");
    CHECK(ev.targets[0].version == 1);
    REQUIRE(e->claimRetrieve(byExt("103")).ok);
    REQUIRE(e->completeRetrieve(a.call.id).ok);
    CHECK(log.kinds() == std::vector<EventKind>{EventKind::Parked, EventKind::RetrieveStarted, EventKind::Retrieved});
    CHECK(log.events[2].targets[0].version == 3);
    CHECK(log.events[2].call.state == CallState::Gone);
    Target ext{TargetKind::Extension, "a.example", "103", 0};
    CHECK(e->targetVersion(ext) == 3);
    CHECK(e->lastEventSequence() == 3);

    ParkRequest lp;
    lp.domain = "a.example";
    lp.how = ParkHow::Lot;
    lp.lot = "main";
    auto s = e->park(lp);
    auto keys = std::vector<std::string>{};
    for (auto& tv : log.events.back().targets) keys.push_back(tv.target.key());
    CHECK(keys == std::vector<std::string>{"slot:main/701", "lot:main"});
    auto st = e->targetState(Target{TargetKind::Slot, "a.example", "main", 701});
    CHECK(st.version == 1);
    REQUIRE(st.calls.size() == 1);
    CHECK(st.calls[0].id == s.call.id);
    CHECK(e->targetState(Target{TargetKind::Lot, "a.example", "main", 0}).calls.size() == 1);
    // A failed operation emits nothing.
    size_t n = log.events.size();
    lp.slot = 701;
    CHECK_FALSE(e->park(lp).ok);
    CHECK(log.events.size() == n);
}

TEST_CASE("move to another extension or slot emits Moved with both places") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->setLot({"a.example", "main", 701, 702, SlotChoice::First, {}, {}}).ok);
    auto a = e->park(directed("103"));
    EventLog log(*e);
    auto m = e->move(a.call.id, Target{TargetKind::Extension, "a.example", "104", 0});
    REQUIRE(m.ok);
    CHECK(m.call.extension == "104");
    REQUIRE(log.events.size() == 1);
    CHECK(log.events[0].kind == EventKind::Moved);
    REQUIRE(log.events[0].previous);
    CHECK(log.events[0].previous->extension == "103");
    CHECK(log.events[0].targets.size() == 2);
    auto s = e->move(a.call.id, Target{TargetKind::Slot, "a.example", "main", 702});
    REQUIRE(s.ok);
    CHECK(s.call.lot == "main");
    CHECK(s.call.slot == 702);
    CHECK(s.call.extension.empty());
    auto b = e->park(directed("105"));
    CHECK(e->move(b.call.id, Target{TargetKind::Slot, "a.example", "main", 702}).error == ErrorCode::Occupied);
    CHECK(e->move(999, Target{TargetKind::Extension, "a.example", "1", 0}).error == ErrorCode::NotFound);
}

TEST_CASE("blob is opaque bytes and can be updated") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto req = directed("103");
    req.blob = std::string("dialog\0state", 12);
    auto a = e->park(req);
    CHECK(e->get(a.call.id)->blob == req.blob);
    auto u = e->updateBlob(a.call.id, "v=0 new sdp");
    REQUIRE(u.ok);
    CHECK(u.call.version > a.call.version);
    CHECK(e->get(a.call.id)->blob == "v=0 new sdp");
    CHECK(e->updateBlob(12345, "x").error == ErrorCode::NotFound);
}

TEST_CASE("domain settings are validated with messages naming the field") {
    FakeClock clock;
    auto e = memEngine(clock);
    DomainSettings d;
    d.name = "a.example";
    d.recall.recallSeconds = 0;
    auto s = e->setDomain(d);
    CHECK_FALSE(s.ok);
    CHECK(s.message.find("recall_seconds") != std::string::npos);
    d.recall.recallSeconds = 3601;
    CHECK_FALSE(e->setDomain(d).ok);
    d.recall.recallSeconds = 3600;
    d.parkCode = "68";
    CHECK(e->setDomain(d).message.find("park_code") != std::string::npos);
    d.parkCode = "*88";
    CHECK_FALSE(e->setDomain(d).ok); // same as retrieve: never ambiguous
    d.parkCode = "*68";
    d.recall.mode = RecallMode::AlternateOnly;
    CHECK(e->setDomain(d).message.find("alternate") != std::string::npos);
    d.recall.alternate = RecallTarget::parse("group:ops");
    CHECK(e->setDomain(d).ok);
    CHECK(e->domain("a.example").recall.alternate->value == "ops");
}

TEST_CASE("caps: a domain holds at most max_parked calls, an extension max_parked_per_extension") {
    FakeClock clock;
    auto e = memEngine(clock);
    CHECK(e->domain("a.example").maxParked == 200); // documented defaults (docs/limits.md)
    CHECK(e->domain("a.example").maxParkedPerExtension == 10);
    DomainSettings d = e->domain("a.example");
    d.maxParked = 3;
    d.maxParkedPerExtension = 2;
    REQUIRE(e->setDomain(d).ok);

    SECTION("the extension cap refuses a third call on 103 even with stacking; another extension still parks") {
        REQUIRE(e->park(directed("103")).ok);
        REQUIRE(e->park(directed("103")).ok);
        auto r = e->park(directed("103"));
        CHECK_FALSE(r.ok);
        CHECK(r.error == ErrorCode::ExtensionFull);
        CHECK(r.message.find("max_parked_per_extension") != std::string::npos);
        CHECK(e->park(directed("104")).ok);
    }
    SECTION("the domain cap refuses the next park anywhere in the domain; another domain is not affected") {
        for (auto x : {"101", "102", "103"}) REQUIRE(e->park(directed(x)).ok);
        auto r = e->park(directed("104"));
        CHECK_FALSE(r.ok);
        CHECK(r.error == ErrorCode::DomainFull);
        CHECK(r.message.find("max_parked") != std::string::npos);
        CHECK(e->park(directed("104", "100", "b.example")).ok);
        // a call that leaves makes room again
        ListFilter f;
        f.domain = "a.example";
        REQUIRE(e->abandon(e->list(f).front().id).ok);
        CHECK(e->park(directed("104")).ok);
    }
    SECTION("group park skips members at their cap; all at the cap -> GroupFull") {
        d.maxParked = 0; // no domain cap
        REQUIRE(e->setDomain(d).ok);
        Group g;
        g.domain = "a.example";
        g.name = "sales";
        g.members = {"201", "202"};
        REQUIRE(e->setGroup(g).ok);
        for (int i = 0; i < 2; ++i) REQUIRE(e->park(directed("201")).ok);
        ParkRequest gp;
        gp.domain = "a.example";
        gp.how = ParkHow::Group;
        gp.parker = "201";
        auto r = e->park(gp);
        REQUIRE(r.ok);
        CHECK(r.call.extension == "202");
        gp.requestKey = "second";
        REQUIRE(e->park(gp).ok);
        gp.requestKey = "third";
        CHECK(e->park(gp).error == ErrorCode::GroupFull);
    }
    SECTION("0 means no cap; negative caps are refused naming the field") {
        d.maxParked = 0;
        d.maxParkedPerExtension = 0;
        REQUIRE(e->setDomain(d).ok);
        for (int i = 0; i < 12; ++i) REQUIRE(e->park(directed("103")).ok);
        d.maxParked = -1;
        CHECK(e->setDomain(d).message.find("max_parked") != std::string::npos);
    }
}

TEST_CASE("caps survive a reopen of the database") {
    TempDir dir;
    FakeClock clock;
    {
        auto e = Engine::open(dir.db("p.db"), clock);
        DomainSettings d = e->domain("a.example");
        d.maxParked = 7;
        d.maxParkedPerExtension = 1;
        REQUIRE(e->setDomain(d).ok);
    }
    auto e = Engine::open(dir.db("p.db"), clock);
    CHECK(e->domain("a.example").maxParked == 7);
    CHECK(e->domain("a.example").maxParkedPerExtension == 1);
}
