// The admin commands the operator console needs beyond parkctl's (docs/admin-commands.md): parked.move moves a
// live call to another extension or lot slot; rules.check validates a whole rule set and explains a dial string
// against it without storing anything.
#include "park_env.hh"

using namespace parkway::test;
using nlohmann::json;

TEST_CASE("parked.move: to another extension, to a lot slot, and refusals naming the problem",
          "[park][admin][console]") {
    ParkEnv p;
    int st = 0;
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 710}}, &st);
    REQUIRE(st == 200);
    auto &caller = p.ua("mover");
    auto &inv = p.invite(caller, "2001", "*68103", 4700, {}, "Alice");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    int64_t id = list["parked"][0]["id"];

    json r = p.command("parked.move", {{"id", id}, {"extension", "104"}}, &st);
    INFO(r.dump());
    REQUIRE(st == 200);
    CHECK(r["call"]["extension"] == "104");
    CHECK(p.command("parked.get", {{"id", id}})["extension"] == "104");
    CHECK(p.parkedCount({{"extension", "103"}}) == 0);

    r = p.command("parked.move", {{"id", std::to_string(id)}, {"lot", "main"}, {"slot", 705}}, &st);
    INFO(r.dump());
    REQUIRE(st == 200);
    CHECK(r["call"]["lot"] == "main");
    CHECK(r["call"]["slot"] == 705);
    // slot 0 / none: the lot picks (first free).
    r = p.command("parked.move", {{"id", id}, {"lot", "main"}}, &st);
    REQUIRE(st == 200);
    CHECK(r["call"]["slot"] == 701);

    // Refusals: each names what is wrong; the call stays where it was.
    r = p.command("parked.move", {{"id", id}}, &st);
    CHECK(st == 400);
    CHECK(r.dump().find("extension") != std::string::npos);
    r = p.command("parked.move", {{"id", id}, {"extension", "104"}, {"lot", "main"}}, &st);
    CHECK(st == 400);
    r = p.command("parked.move", {{"id", id}, {"lot", "main"}, {"slot", 999}}, &st);
    CHECK(st == 404);
    CHECK_FALSE(r.value("error", "").empty());
    r = p.command("parked.move", {{"id", id}, {"lot", "nolot"}, {"slot", 1}}, &st);
    CHECK(st == 404);
    r = p.command("parked.move", {{"id", id}, {"lot", "main"}, {"slot", "x"}}, &st);
    CHECK(st == 400);
    r = p.command("parked.move", {{"id", 99999}, {"extension", "104"}}, &st);
    CHECK(st == 404);
    CHECK(r["error"] == "no parked call 99999");
    CHECK(p.command("parked.get", {{"id", id}})["slot"] == 701);
}

TEST_CASE("rules.check: validates without storing, explains against the edited set", "[park][admin][console]") {
    ParkEnv p;
    int st = 0;
    const std::string lot = "0\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n";
    json r = p.command("rules.check", {{"text", lot}}, &st);
    INFO(r.dump());
    REQUIRE(st == 200);
    CHECK(r["rules"] == 1);
    CHECK_FALSE(r.contains("explain"));
    CHECK(p.command("rules.list")["rules"].empty()); // nothing stored

    // Explained against the edited set: 700 parks into the lot there, while the rules in force do not know it.
    r = p.command("rules.check", {{"text", lot}, {"domain", kDomain}, {"caller", "1001"}, {"dial", "700"}}, &st);
    INFO(r.dump());
    REQUIRE(st == 200);
    CHECK(r["explain"]["result"]["action"] == "park");
    CHECK(r["explain"]["dial"] == "700");
    bool matched = false;
    for (auto &t : r["explain"]["trace"])
        matched |= t["matched"].get<bool>() && t["rule"]["match_exp"] == "700";
    CHECK(matched);
    json live = p.command("rules.explain", {{"domain", kDomain}, {"caller", "1001"}, {"dial", "700"}});
    CHECK(live["result"]["action"] != "park");
    // The empty set is valid (the generated defaults still apply): *68103 parks.
    r = p.command("rules.check", {{"text", ""}, {"domain", kDomain}, {"dial", "*68103"}}, &st);
    REQUIRE(st == 200);
    CHECK(r["explain"]["result"]["action"] == "park");

    // A bad rule: 400 naming the line, nothing stored.
    r = p.command("rules.check", {{"text", "0\t\t0\t10\tregex\t^7(0\t0\t\t\taction=park;lot=main\n"}}, &st);
    CHECK(st == 400);
    CHECK(r["error"].get<std::string>().find("line 1") != std::string::npos);
    r = p.command("rules.check", {{"text", "0\t\t0\t10\texact\t700\t0\t\t\taction=fly\n"}}, &st);
    CHECK(st == 400);
    r = p.command("rules.check", json::object(), &st);
    CHECK(st == 400);
    CHECK(r["error"].get<std::string>().find("text") != std::string::npos);
    r = p.command("rules.check", {{"text", lot}, {"dial", "700"}}, &st); // a dial needs its domain
    CHECK(st == 400);
    CHECK(r["error"].get<std::string>().find("domain") != std::string::npos);
    CHECK(p.command("rules.list")["rules"].empty());
}

// With the storage thread (the default) an admin command's engine work runs there and the module answers later
// (writer_defer): the SIP thread does not wait on the database (docs/cluster.md "Threads"). Without it (the
// "callpark-inline:" run, storage_thread = "off") the answer comes at once. The answers are the same either way,
// errors included.
TEST_CASE("admin commands: answered later with the storage thread, at once without it, the same answers",
          "[park][admin][console]") {
    const char *mode = std::getenv("PARKWAY_TEST_STORAGE_THREAD");
    const bool threaded = !(mode && std::string(mode) == "off");
    ParkEnv p;
    auto &caller = p.ua("later");
    auto &inv = p.invite(caller, "2001", "*68105", 4710, {}, "Bob");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    int st = 0;
    json list = p.command("parked.list", json::object(), &st);
    REQUIRE(st == 200);
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0].contains("dialog")); // the SIP side's part, added in the continuation
    int64_t id = list["parked"][0]["id"];
    json stats = p.command("stats", json::object(), &st);
    CHECK(st == 200);
    CHECK(stats["parked"] == 1);
    CHECK(stats.contains("moh_streams"));
    json r = p.command("parked.get", {{"id", 99999}}, &st);
    CHECK(st == 404);
    CHECK(r["error"] == "no parked call 99999");
    r = p.command("parked.hangup", {{"id", id}}, &st);
    CHECK(st == 200);
    CHECK(r == json{{"ok", true}, {"id", id}});
    REQUIRE(p.env().runUntil([&] { return caller.count("BYE") == 1; }));
    r = p.command("domains.delete", {{"domain", "nowhere.example"}}, &st);
    CHECK(st == 404);
    CHECK(r["error"] == "domain nowhere.example is not provisioned");
    // A bad body is refused before any engine work: at once in both modes.
    r = p.command("groups.set", json::array(), &st);
    CHECK(st == 400);
    CHECK(p.deferredCommands() == (threaded ? 5 : 0));
}
