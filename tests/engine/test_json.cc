// JSON views and parsers used by the admin plane.
#include "helpers.hh"

#include "parkway/engine/json.hh"

#include <nlohmann/json.hpp>

using namespace parkway::engine;
using nlohmann::json;

TEST_CASE("calls, events and explanations serialise with stable snake_case keys") {
    FakeClock clock;
    auto e = memEngine(clock);
    std::vector<ChangeEvent> events;
    e->addListener([&](const ChangeEvent& ev) { events.push_back(ev); });
    auto req = directed("103");
    req.blob = std::string("\x01\x02 secret sdp", 13);
    auto p = e->park(req);
    auto j = json::parse(toJson(p.call));
    CHECK(j["id"] == p.call.id);
    CHECK(j["extension"] == "103");
    CHECK(j["state"] == "parked");
    CHECK(j["recall_at"] == p.call.recallAt);
    CHECK(j["recall"]["mode"] == "parker");
    CHECK_FALSE(j.contains("blob"));
    auto ev = json::parse(toJson(events.at(0)));
    CHECK(ev["event"] == "parked");
    CHECK(ev["targets"][0]["key"] == "ext:103");
    CHECK(ev["targets"][0]["version"] == 1);
    auto x = json::parse(toJson(e->explain("a.example", "100", "*88103")));
    CHECK(x["result"]["action"] == "retrieve");
    CHECK(x["would_retrieve"]["id"] == p.call.id);
    CHECK(x["ladder"][0]["target"] == "parker");
    auto r = json::parse(toJson(e->claimRetrieve(byExt("999"))));
    CHECK(r["ok"] == false);
    CHECK(r["error"] == "not_found");
}

TEST_CASE("admin JSON parsers fill the structs and name the bad field") {
    Group g;
    CHECK(groupFromJson(R"({"domain":"a.example","name":"sales","members":["201","202"],"notify_parker":true,
                            "settings":{"recall_seconds":60,"mode":"alternate_only","alternate":"group:ops"}})",
                        g)
              .empty());
    CHECK(g.members == std::vector<std::string>{"201", "202"});
    CHECK(g.notifyParker);
    CHECK(*g.settings.recallSeconds == 60);
    CHECK(g.settings.alternate->value == "ops");
    Group bad;
    CHECK(groupFromJson(R"({"name":"x","members":"201"})", bad).find("members") != std::string::npos);
    CHECK(groupFromJson(R"({"name":"x","settings":{"mode":"sometimes"}})", bad).find("mode") != std::string::npos);
    CHECK(groupFromJson("{nope", bad).find("invalid JSON") != std::string::npos);

    DomainSettings d;
    d.name = "a.example";
    CHECK(domainFromJson(R"({"park_code":"#70","occupied":"reject","recall":{"recall_seconds":120}})", d).empty());
    CHECK(d.parkCode == "#70");
    CHECK(d.occupied == OccupiedPolicy::Reject);
    CHECK(d.recall.recallSeconds == 120);
    CHECK(d.retrieveCode == "*88"); // untouched fields keep their value
    CHECK(domainFromJson(R"({"dpid":"zero"})", d).find("dpid") != std::string::npos);
    DomainSettings caps;
    caps.name = "a.example";
    CHECK(domainFromJson(R"({"max_parked":50,"max_parked_per_extension":3})", caps).empty());
    CHECK(caps.maxParked == 50);
    CHECK(caps.maxParkedPerExtension == 3);
    auto cj = json::parse(toJson(caps));
    CHECK(cj["max_parked"] == 50);
    CHECK(cj["max_parked_per_extension"] == 3);

    Lot l;
    CHECK(lotFromJson(R"({"domain":"a.example","name":"main","first_slot":701,"last_slot":720,"choice":"next"})", l)
              .empty());
    CHECK(l.choice == SlotChoice::Next);
    CHECK(lotFromJson(R"({"choice":"random"})", l).find("choice") != std::string::npos);

    Rule r;
    CHECK(ruleFromJson(R"({"pr":5,"match_op":"regex","match_exp":"^7","attrs":"action=watch","continue":true})", r)
              .empty());
    CHECK(r.matchOp == MatchOp::Regex);
    CHECK(r.cont);
    CHECK(ruleFromJson(R"({"match_op":7})", r).find("match_op") != std::string::npos);
    auto back = json::parse(toJson(r));
    CHECK(back["match_exp"] == "^7");
}

TEST_CASE("JSON views are valid UTF-8 even when the stored text is not (invalid bytes become U+FFFD)") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto req = directed("103");
    req.parkedDisplay = "Jos\xe9";          // ISO-8859-1, as a phone may send it
    req.parkedUri = "sip:\xff\xfe@a.example"; // not UTF-8 at all
    auto p = e->park(req);
    REQUIRE(p.ok);
    std::string text = toJson(e->list({}));
    auto j = json::parse(text); // throws if the writer let invalid UTF-8 through
    CHECK(j[0]["parked_display"] == "Jos\xef\xbf\xbd");
    CHECK(j[0]["parked_uri"].get<std::string>().find("\xef\xbf\xbd") != std::string::npos);
    CHECK_NOTHROW(json::parse(toJson(p)));
    CHECK_NOTHROW(json::parse(toJson(e->targetState(Target{TargetKind::Extension, "a.example", "103", 0}))));
}
