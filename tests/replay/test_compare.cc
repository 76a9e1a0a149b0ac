// The comparator (tools/replay/compare.hh): start line, compared headers, symbol binding.
#include "compare.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;

namespace {
Step expect200() {
    Step e;
    e.id = 7;
    e.kind = StepKind::Expect;
    e.participant = "alice";
    e.compare = {"CSeq"};
    e.message = {"SIP/2.0 200 OK", "Call-ID: {{call1}}", "To: <sip:102@{{server.host}}>;tag={{tag2}}",
                 "CSeq: {{cseq1+1}} INVITE", "Content-Length: 0", ""};
    return e;
}
const std::string k200 = "SIP/2.0 200 OK\r\ni: abc@h\r\nTo: <sip:102@10.0.0.1>;tag=srv9\r\nCSeq: 42 INVITE\r\n"
                         "Content-Length: 0\r\n\r\n";
} // namespace

TEST_CASE("a matching response binds the server's symbols") {
    Fixture f;
    Bindings bound{{"call1", "abc@h"}, {"cseq1", "41"}, {"server.host", "10.0.0.1"}};
    REQUIRE(couldMatch(expect200(), k200, bound));
    MatchResult r = compareMessage(expect200(), f, k200, bound);
    REQUIRE(r.matched);
    CHECK(r.learned.at("tag2") == "srv9");
}

TEST_CASE("a different status or CSeq is a named difference") {
    Fixture f;
    Bindings bound{{"call1", "abc@h"}, {"cseq1", "40"}, {"server.host", "10.0.0.1"}};
    MatchResult r = compareMessage(expect200(), f, k200, bound);
    REQUIRE_FALSE(r.matched);
    REQUIRE(r.differences.size() == 1);
    CHECK(r.differences[0].what == "header CSeq");
    std::string busy = k200;
    busy.replace(8, 6, "486 Busy Here");
    bound["cseq1"] = "41";
    r = compareMessage(expect200(), f, busy, bound);
    REQUIRE_FALSE(r.matched);
    CHECK(r.differences[0].what == "status");
    CHECK_FALSE(couldMatch(expect200(), k200, Bindings{{"call1", "other@h"}}));
}
