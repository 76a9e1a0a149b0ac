// Fixture JSON round trip, structure checks and message templates (tools/replay/fixture.hh).
#include "fixture.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;

namespace {

Fixture small() {
    Fixture f;
    f.name = "t";
    f.server.name = "server";
    f.server.address = "127.0.0.1:5060";
    f.participants.push_back({"alice", "udp", "127.0.0.1:5062", "101", ""});
    f.symbols["call1"] = {"call-id", "alice", "abc@h"};
    f.symbols["cseq1"] = {"cseq", "alice", "10"};
    Step s;
    s.id = 1;
    s.participant = "alice";
    s.message = {"OPTIONS sip:{{server.host}}:{{server.port}} SIP/2.0", "Call-ID: {{call1}}",
                 "CSeq: {{cseq1+1}} OPTIONS", "Content-Length: 0", "", "x={{call1|uri}}"};
    f.steps.push_back(s);
    Step e;
    e.id = 2;
    e.kind = StepKind::Expect;
    e.participant = "alice";
    e.after = {1};
    e.optional = true;
    e.compare = {"CSeq"};
    e.body = "ignore";
    e.message = {"SIP/2.0 200 OK", "Call-ID: {{call1}}"};
    f.steps.push_back(e);
    return f;
}

SymbolLookup values() {
    return [](const std::string &n) -> std::optional<std::string> {
        if (n == "server.host")
            return "127.0.0.1";
        if (n == "server.port")
            return "5060";
        if (n == "call1")
            return "x;y=z@h";
        if (n == "cseq1")
            return "41";
        return std::nullopt;
    };
}

} // namespace

TEST_CASE("a fixture survives JSON and back unchanged") {
    Fixture f = small();
    std::string json = fixtureToJson(f);
    Fixture g = parseFixture(json, "mem");
    CHECK(fixtureToJson(g) == json);
    REQUIRE(g.steps.size() == 2);
    CHECK(g.steps[1].kind == StepKind::Expect);
    CHECK(g.steps[1].optional);
    CHECK(g.steps[1].after == std::vector<int>{1});
    CHECK(g.symbols.at("call1").owner == "alice");
}

TEST_CASE("structure errors name the step and the thing") {
    Fixture f = small();
    f.steps[1].after = {3};
    CHECK_THROWS_WITH(parseFixture(fixtureToJson(f), "mem"),
                      "mem: step 2: 'after' names step 3, which does not come before it");
    f = small();
    f.steps[0].message.push_back("{{nosuch}}");
    CHECK_THROWS_WITH(parseFixture(fixtureToJson(f), "mem"), "mem: step 1: unknown symbol {{nosuch}}");
    f = small();
    f.steps[0].participant = "carol";
    CHECK_THROWS_WITH(parseFixture(fixtureToJson(f), "mem"), "mem: step 1: unknown participant 'carol'");
    CHECK_THROWS_AS(parseFixture("{\"format\": \"other\"}", "mem"), FixtureError);
    CHECK_THROWS_AS(parseFixture("not json", "mem"), FixtureError);
}

TEST_CASE("templates fill symbols, offsets and filters, Content-Length follows the body") {
    Fixture f = small();
    std::string wire = renderMessage(f.steps[0].message, values());
    CHECK(wire == "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nCall-ID: x;y=z@h\r\nCSeq: 42 OPTIONS\r\n"
                  "Content-Length: 17\r\n\r\nx=x%3By%3Dz%40h\r\n");
    CHECK(fillTemplate("{{call1|xml}}", [](const std::string &) { return std::optional<std::string>("a&\"b"); }) ==
          "a&amp;&quot;b");
    CHECK_THROWS_AS(fillTemplate("{{cseq1+1}}", [](const std::string &) { return std::optional<std::string>("ab"); }),
                    FixtureError);
    CHECK_THROWS_AS(templateRefs("a {{b"), FixtureError);
    CHECK_THROWS_AS(templateRefs("{{b|html}}"), FixtureError);
    CHECK(uriUnescape(uriEscape("a;b=c@d")) == "a;b=c@d");
}
