// Randomized test: thousands of random operations against the engine and a simple in-memory model.
// Invariants: a call sits in at most one slot; no slot holds another domain's call; every live call has a
// deadline; per-target versions only grow; and the engine agrees with the model on every outcome.
#include "helpers.hh"

#include <map>

using namespace parkway::engine;

namespace {

struct MCall {
    std::string domain, ext, lot;
    int slot = 0;
    CallState state = CallState::Parked;
    Millis parkedAt = 0;
    int stage = 0;
};

const char* kDomains[] = {"a.example", "b.example"}; // a stacks, b rejects

} // namespace

TEST_CASE("randomized operations agree with a model and keep the invariants") {
    FakeClock clock;
    auto e = memEngine(clock);
    for (const char* d : kDomains) {
        DomainSettings s;
        s.name = d;
        s.occupied = std::string(d) == "a.example" ? OccupiedPolicy::Stack : OccupiedPolicy::Reject;
        s.recall.recallSeconds = 30;
        s.maxParked = 0; // the model knows no caps (tested in test_park.cc)
        s.maxParkedPerExtension = 0;
        REQUIRE(e->setDomain(s).ok);
        REQUIRE(e->setLot({d, "main", 701, 705, SlotChoice::First, {}, {}}).ok);
        REQUIRE(e->setGroup({d, "g", {"101", "102", "103"}, false, {}, {}}).ok);
    }
    std::map<CallId, MCall> model;
    std::map<std::string, std::int64_t> versions; // domain|target -> last version seen
    bool versionsGrow = true;
    e->addListener([&](const ChangeEvent& ev) {
        for (const auto& tv : ev.targets) {
            auto& v = versions[tv.target.domain + "|" + tv.target.key()];
            if (tv.version <= v) versionsGrow = false;
            v = tv.version;
        }
    });

    std::mt19937 rng(20261124);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    auto liveOn = [&](const std::string& d, const std::string& ext) {
        int n = 0;
        for (auto& [id, c] : model) n += c.domain == d && c.ext == ext;
        return n;
    };
    auto randomLive = [&]() -> CallId {
        if (model.empty()) return 4'000'000 + pick(5);
        auto it = model.begin();
        std::advance(it, pick(static_cast<int>(model.size())));
        return it->first;
    };

    const int kOps = onPostgres() ? 500 : 4000; // PostgreSQL: a round trip per statement; the logic is the same
    for (int op = 0; op < kOps; ++op) {
        std::string d = kDomains[pick(2)];
        bool stack = d == "a.example";
        std::string ext = std::to_string(101 + pick(5));
        int what = pick(10);
        INFO("op " << op << " kind " << what);
        if (what == 0 || what == 1) { // directed park
            bool occupied = liveOn(d, ext) > 0;
            auto r = e->park(directed(ext, "100", d));
            if (!stack && occupied) {
                REQUIRE(r.error == ErrorCode::Occupied);
            } else {
                REQUIRE(r.ok);
                model[r.call.id] = {d, ext, "", 0, CallState::Parked, clock.nowMs(), 0};
            }
        } else if (what == 2) { // group park
            ParkRequest g;
            g.domain = d;
            g.how = ParkHow::Group;
            g.parker = "102";
            std::string expect;
            int best = -1;
            for (auto m : {"101", "102", "103"}) {
                int n = liveOn(d, m);
                if (best < 0 || n < best) best = n, expect = m;
                if (n == 0) break;
            }
            auto r = e->park(g);
            if (!stack && best > 0) {
                REQUIRE(r.error == ErrorCode::GroupFull);
            } else {
                REQUIRE(r.ok);
                REQUIRE(r.call.extension == expect);
                model[r.call.id] = {d, expect, "", 0, CallState::Parked, clock.nowMs(), 0};
            }
        } else if (what == 3) { // lot park, first free slot
            ParkRequest l;
            l.domain = d;
            l.how = ParkHow::Lot;
            l.lot = "main";
            int expect = 0;
            for (int s = 701; s <= 705 && !expect; ++s) {
                bool taken = false;
                for (auto& [id, c] : model) taken = taken || (c.domain == d && c.lot == "main" && c.slot == s);
                if (!taken) expect = s;
            }
            auto r = e->park(l);
            if (!expect) {
                REQUIRE(r.error == ErrorCode::LotFull);
            } else {
                REQUIRE(r.ok);
                REQUIRE(r.call.slot == expect);
                model[r.call.id] = {d, "", "main", expect, CallState::Parked, clock.nowMs(), 0};
            }
        } else if (what == 4) { // claim by extension: oldest parked/recalling
            CallId expect = 0;
            bool any = false;
            Millis best = 0;
            for (auto& [id, c] : model) {
                if (c.domain != d || c.ext != ext) continue;
                any = true;
                if (c.state == CallState::Retrieving) continue;
                if (!expect || c.parkedAt < best) expect = id, best = c.parkedAt;
            }
            auto r = e->claimRetrieve(byExt(ext, "200", d));
            if (!any) REQUIRE(r.error == ErrorCode::NotFound);
            else if (!expect) REQUIRE(r.error == ErrorCode::Busy);
            else {
                REQUIRE(r.ok);
                REQUIRE(r.call.id == expect);
                model[expect].state = CallState::Retrieving;
            }
        } else if (what == 5) { // complete or abort a claim
            CallId id = randomLive();
            bool claimed = model.count(id) && model[id].state == CallState::Retrieving;
            if (pick(2)) {
                auto r = e->completeRetrieve(id);
                REQUIRE(r.ok == claimed);
                if (claimed) model.erase(id);
            } else {
                auto r = e->abortRetrieve(id);
                REQUIRE(r.ok == claimed);
                if (claimed) model[id].state = model[id].stage > 0 ? CallState::Recalling : CallState::Parked;
            }
        } else if (what == 6) { // abandon
            CallId id = randomLive();
            auto r = e->abandon(id);
            REQUIRE(r.ok == (model.count(id) > 0));
            model.erase(id);
        } else if (what == 7) { // time passes; due recalls step, some ring out
            clock.advanceMs(1000 + pick(20000));
            for (const auto& c : e->dueCalls()) {
                auto s = e->recallStep(c.id);
                REQUIRE(s.ok);
                model[c.id].state = CallState::Recalling;
                model[c.id].stage = s.attempt;
                if (pick(2)) {
                    clock.advanceMs(1);
                    REQUIRE(e->recallNoAnswer(c.id).ok);
                    model[c.id].stage += 1;
                }
            }
        } else if (what == 8) { // move to another extension of the same domain
            CallId id = randomLive();
            auto r = e->move(id, Target{TargetKind::Extension, "", ext, 0});
            if (!model.count(id)) {
                REQUIRE(r.error == ErrorCode::NotFound);
            } else {
                auto& c = model[id];
                bool same = c.ext == ext && c.lot.empty();
                if (c.state == CallState::Retrieving) REQUIRE(r.error == ErrorCode::Busy);
                else if (same) REQUIRE(r.error == ErrorCode::BadRequest);
                else if (c.domain == "b.example" && liveOn(c.domain, ext) > 0) REQUIRE(r.error == ErrorCode::Occupied);
                else {
                    REQUIRE(r.ok);
                    c.ext = ext;
                    c.lot.clear();
                    c.slot = 0;
                }
            }
        } else { // idempotent re-park with a key
            auto req = directed(ext, "100", d);
            req.requestKey = "k" + std::to_string(pick(8));
            auto existing = e->getByRequestKey(d, req.requestKey);
            bool occupied = liveOn(d, ext) > 0;
            auto r = e->park(req);
            if (existing) {
                REQUIRE(r.duplicate);
                REQUIRE(r.call.id == existing->id);
            } else if (!stack && occupied) {
                REQUIRE(r.error == ErrorCode::Occupied);
            } else {
                REQUIRE(r.ok);
                REQUIRE_FALSE(r.duplicate);
                model[r.call.id] = {d, ext, "", 0, CallState::Parked, clock.nowMs(), 0};
            }
        }

        // Invariants, checked against the engine's own view.
        auto all = e->list({});
        REQUIRE(all.size() == model.size());
        std::map<std::string, CallId> slots;
        for (const auto& c : all) {
            REQUIRE(model.count(c.id));
            const MCall& m = model[c.id];
            REQUIRE(c.domain == m.domain);
            REQUIRE(c.extension == m.ext);
            REQUIRE(c.lot == m.lot);
            REQUIRE(c.slot == m.slot);
            REQUIRE(c.state == m.state);
            REQUIRE(c.recallAt > 0); // every live call has a deadline
            REQUIRE((c.extension.empty() != c.lot.empty())); // exactly one place
            if (!c.lot.empty()) {
                // one call per slot; the slot key includes the domain, so no slot holds another domain's call
                auto key = c.domain + "/" + c.lot + "/" + std::to_string(c.slot);
                REQUIRE(slots.emplace(key, c.id).second);
                auto st = e->targetState(Target{TargetKind::Slot, c.domain, c.lot, c.slot});
                REQUIRE(st.calls.size() == 1);
                REQUIRE(st.calls[0].domain == c.domain);
            }
        }
        REQUIRE(versionsGrow);
    }
}
