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
    CHECK(r.differences[0].what == "header CSeq number");
    std::string busy = k200;
    busy.replace(8, 6, "486 Busy Here");
    bound["cseq1"] = "41";
    r = compareMessage(expect200(), f, busy, bound);
    REQUIRE_FALSE(r.matched);
    CHECK(r.differences[0].what == "status");
    CHECK_FALSE(couldMatch(expect200(), k200, Bindings{{"call1", "other@h"}}));
}

namespace {
Step expectWith(std::vector<std::string> message, std::vector<std::string> compare, std::string body = "") {
    Step e;
    e.id = 14;
    e.kind = StepKind::Expect;
    e.participant = "bob";
    e.message = std::move(message);
    e.compare = std::move(compare);
    e.body = std::move(body);
    return e;
}

std::string wire(const std::vector<std::string> &lines) {
    std::string out;
    bool body = false;
    for (const auto &l : lines) {
        out += l + "\r\n";
        body = body || l.empty();
    }
    return out;
}

const std::vector<std::string> kNotifyHead = {"NOTIFY sip:bob@{{bob.host}}:{{bob.port}} SIP/2.0",
                                              "Call-ID: {{call3}}",
                                              "From: <sip:101@{{server.host}}>;tag={{tag5}}",
                                              "To: <sip:bob@{{server.host}}>;tag={{tag6}}",
                                              "CSeq: {{cseq3+1}} NOTIFY",
                                              "Event: dialog;id={{sub1}}",
                                              "Subscription-State: active;expires=3600"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string> &b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

bool hasDifference(const MatchResult &r, const std::string &what) {
    for (const auto &d : r.differences)
        if (d.what == what)
            return true;
    return false;
}

std::string whats(const MatchResult &r) {
    std::string out;
    for (const auto &d : r.differences)
        out += d.what + " [" + d.expected + " | " + d.actual + "]; ";
    return out;
}

const Bindings kBound{{"call3", "c3@pbx"},          {"bob.host", "127.0.0.11"}, {"bob.port", "5070"},
                      {"server.host", "127.0.0.1"}, {"tag6", "bobtag"},         {"cseq3", "10"}};
} // namespace

TEST_CASE("a header the step compares but the message lacks is a difference") {
    Step e = expectWith(with(kNotifyHead, {"Content-Length: 0", ""}), {"Event", "Subscription-State"});
    std::string msg =
        wire({"NOTIFY sip:bob@127.0.0.11:5070 SIP/2.0", "Call-ID: c3@pbx", "From: <sip:101@127.0.0.1>;tag=s1",
              "To: <sip:bob@127.0.0.1>;tag=bobtag", "CSeq: 11 NOTIFY", "Event: dialog;id=x", "Content-Length: 0", ""});
    MatchResult r = compareMessage(e, Fixture{}, msg, kBound);
    REQUIRE_FALSE(r.matched);
    REQUIRE(r.differences.size() == 1);
    CHECK(r.differences[0].what == "header Subscription-State");
    CHECK(r.differences[0].actual == "(missing)");
}

TEST_CASE("compact forms, header and URI parameters in another order and case still match") {
    Step e = expectWith({"SIP/2.0 200 OK", "Via: SIP/2.0/UDP {{bob.host}}:{{bob.port}};branch={{br1}};rport=5070",
                         "Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx", "Call-ID: {{call3}}",
                         "To: \"Bob\" <sip:bob@{{server.host}}>;tag={{tag7}};x-a=one",
                         "Contact: <sip:park@{{server.host}}:5060;transport=udp;lr>",
                         "Record-Route: <sip:{{server.host}};lr>", "CSeq: {{cseq3}} SUBSCRIBE", ""},
                        {"Via", "To", "Contact", "Record-Route", "CSeq", "Call-ID"});
    std::string msg = wire(
        {"SIP/2.0 200 OK",
         "v: SIP/2.0/udp 127.0.0.11:5070;rport=5070;branch=z9hG4bKabc, SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx",
         "i: c3@pbx", "t: Bob <sip:bob@127.0.0.1>;X-A=ONE;tag=srvtag", "m: <sip:park@127.0.0.1:5060;LR;Transport=UDP>",
         "Record-Route:", "  <sip:127.0.0.1;lr>", "CSeq: 10 SUBSCRIBE", ""});
    MatchResult r = compareMessage(e, Fixture{}, msg, kBound);
    INFO(whats(r));
    REQUIRE(r.matched);
    CHECK(r.learned.at("tag7") == "srvtag");
    CHECK(r.learned.at("br1") == "z9hG4bKabc");
}

TEST_CASE("parameter values: tokens ignore case, quoted strings do not, a token equals its quoted form") {
    Step e = expectWith(
        {"SIP/2.0 486 Busy Here", "Call-ID: {{call3}}", "Reason: SIP;cause=486;text=\"Busy\"", "CSeq: 1 INVITE", ""},
        {"Reason"});
    auto msg = [](const std::string &reason) {
        return wire({"SIP/2.0 486 Busy Here", "Call-ID: c3@pbx", "Reason: " + reason, "CSeq: 1 INVITE", ""});
    };
    CHECK(compareMessage(e, Fixture{}, msg("sip;text=Busy;cause=486"), kBound).matched);
    MatchResult r = compareMessage(e, Fixture{}, msg("SIP;cause=486;text=\"busy\""), kBound);
    CHECK(hasDifference(r, "header Reason;text"));
    r = compareMessage(e, Fixture{}, msg("SIP;cause=486"), kBound);
    CHECK(hasDifference(r, "header Reason;text"));
}

TEST_CASE("Subscription-State compares the state and reason, not expires, Event the package and id") {
    Step e = expectWith(with(kNotifyHead, {""}), {"Event", "Subscription-State"});
    auto msg = [](const std::string &event, const std::string &state) {
        return wire({"NOTIFY sip:bob@127.0.0.11:5070 SIP/2.0", "Call-ID: c3@pbx", "From: <sip:101@127.0.0.1>;tag=s1",
                     "To: <sip:bob@127.0.0.1>;tag=bobtag", "CSeq: 11 NOTIFY", event, state, ""});
    };
    MatchResult r =
        compareMessage(e, Fixture{}, msg("o: Dialog;id=77", "Subscription-State: ACTIVE;expires=1799"), kBound);
    INFO(whats(r));
    REQUIRE(r.matched);
    CHECK(r.learned.at("sub1") == "77");
    CHECK(r.learned.at("tag5") == "s1"); // learned from From, which the step does not compare
    r = compareMessage(e, Fixture{}, msg("Event: dialog;id=77", "Subscription-State: terminated;reason=timeout"),
                       kBound);
    CHECK(hasDifference(r, "header Subscription-State state"));
    CHECK(hasDifference(r, "header Subscription-State;reason"));
    r = compareMessage(e, Fixture{}, msg("Event: presence;id=77", "Subscription-State: active"), kBound);
    CHECK(hasDifference(r, "header Event package"));
    r = compareMessage(e, Fixture{}, msg("Event: dialog;id=77", "Subscription-State: active"),
                       Bindings{{"sub1", "76"}});
    CHECK(hasDifference(r, "header Event;id"));
}

TEST_CASE("CSeq numbers follow {{cseqN+k}} and a method differs by case") {
    Step e = expectWith(with(kNotifyHead, {""}), {"CSeq"});
    auto msg = [](const std::string &cseq) {
        return wire({"NOTIFY sip:bob@127.0.0.11:5070 SIP/2.0", "Call-ID: c3@pbx", "CSeq: " + cseq, ""});
    };
    CHECK(compareMessage(e, Fixture{}, msg("11 NOTIFY"), kBound).matched);
    CHECK(hasDifference(compareMessage(e, Fixture{}, msg("12 NOTIFY"), kBound), "header CSeq number"));
    CHECK(hasDifference(compareMessage(e, Fixture{}, msg("11 notify"), kBound), "header CSeq method"));
    Bindings unbound = kBound;
    unbound.erase("cseq3");
    MatchResult r = compareMessage(e, Fixture{}, msg("8 NOTIFY"), unbound);
    REQUIRE(r.matched);
    CHECK(r.learned.at("cseq3") == "7");
}

TEST_CASE("one symbol with two values in one message fails") {
    Step e = expectWith({"SIP/2.0 200 OK", "Call-ID: {{call3}}", "To: <sip:bob@{{server.host}}>;tag={{tag7}}",
                         "Contact: <sip:{{tag7}}@{{server.host}}>", "CSeq: 1 INVITE", ""},
                        {"To", "Contact"});
    auto msg = [](const std::string &contactUser) {
        return wire({"SIP/2.0 200 OK", "Call-ID: c3@pbx", "To: <sip:bob@127.0.0.1>;tag=T1",
                     "Contact: <sip:" + contactUser + "@127.0.0.1>", "CSeq: 1 INVITE", ""});
    };
    REQUIRE(compareMessage(e, Fixture{}, msg("T1"), kBound).matched);
    MatchResult r = compareMessage(e, Fixture{}, msg("T2"), kBound);
    REQUIRE_FALSE(r.matched);
    REQUIRE(r.differences.size() == 1);
    CHECK(r.differences[0].what == "header Contact URI user");
    CHECK(r.differences[0].expected == "T1"); // filled with the value the To header bound
    CHECK(r.learned.empty());                 // nothing is learned from a message that did not match
}

TEST_CASE("a Replaces inside a Refer-To compares unescaped, its parameters in any order") {
    Step e = expectWith(
        {"REFER sip:bob@{{bob.host}} SIP/2.0", "Call-ID: {{call3}}",
         "Refer-To: <sip:103@{{server.host}}?Replaces={{call9|uri}}%3Bto-tag%3D{{tag8}}%3Bfrom-tag%3D{{tag9}}>",
         "CSeq: 5 REFER", ""},
        {"Refer-To"});
    auto msg = [](const std::string &replaces) {
        return wire({"REFER sip:bob@127.0.0.11 SIP/2.0", "Call-ID: c3@pbx",
                     "r: <sip:103@127.0.0.1?Replaces=" + replaces + ">", "CSeq: 5 REFER", ""});
    };
    MatchResult r = compareMessage(e, Fixture{}, msg("a%40b%3bfrom-tag%3DF%3Bto-tag%3DT"), kBound);
    INFO(whats(r));
    REQUIRE(r.matched);
    CHECK(r.learned.at("call9") == "a@b");
    CHECK(r.learned.at("tag8") == "T");
    Bindings b = kBound;
    b["call9"] = "other@b";
    r = compareMessage(e, Fixture{}, msg("a%40b%3bfrom-tag%3DF%3Bto-tag%3DT"), b);
    CHECK(hasDifference(r, "header Refer-To URI ?replaces call-id"));
}

TEST_CASE("the diff names the step, the participant, the dialog and each difference") {
    Step e = expectWith(with(kNotifyHead, {""}), {"Subscription-State"});
    e.note = "dialog-info after the park";
    std::string text =
        formatDifferences(e, Fixture{}, {{"body dialog-info: dialog[@id=d1]/state", "confirmed", "terminated"}});
    CHECK(text == "step 14 bob: expect NOTIFY (dialog {{call3}}, Event dialog) -- dialog-info after the park\n"
                  "  body dialog-info: dialog[@id=d1]/state: expected 'confirmed', got 'terminated'\n");
    Step ok = expect200();
    CHECK(formatDifferences(ok, Fixture{}, {}).rfind("step 7 alice: expect 200 OK to INVITE (dialog {{call1}})", 0) ==
          0);
}

TEST_CASE("symbols are learned from headers the step does not compare, part by part") {
    Step e = expectWith({"SIP/2.0 200 OK", "Call-ID: {{call3}}", "To: <sip:bob@{{server.host}}>;tag={{tag7}}",
                         "Contact: <sip:{{srv1}}@{{server.host}}:5060>", "CSeq: 1 INVITE", ""},
                        {"CSeq"});
    // Another display name and an extra parameter in To, another port in Contact: not compared, still learned.
    std::string msg = wire({"SIP/2.0 200 OK", "Call-ID: c3@pbx", "To: \"Bob\" <sip:bob@127.0.0.1>;tag=T9;x=1",
                            "Contact: <sip:park-1@127.0.0.1:5080>", "CSeq: 1 INVITE", ""});
    MatchResult r = compareMessage(e, Fixture{}, msg, kBound);
    REQUIRE(r.matched);
    CHECK(r.learned.at("tag7") == "T9");
    CHECK(r.learned.at("srv1") == "park-1");
}

TEST_CASE("URIs compare by RFC 3261 §19.1.4") {
    Step e = expectWith({"SIP/2.0 200 OK", "Call-ID: {{call3}}", "Contact: <sip:Park%2dA@{{server.host}};x-id=1>",
                         "CSeq: 1 INVITE", ""},
                        {"Contact"});
    auto msg = [](const std::string &contact) {
        return wire({"SIP/2.0 200 OK", "Call-ID: c3@pbx", "Contact: " + contact, "CSeq: 1 INVITE", ""});
    };
    // %2d is '-'; the host's case does not matter; a parameter only one side has is ignored ...
    CHECK(compareMessage(e, Fixture{}, msg("<sip:Park-A@127.0.0.1;x-other=2>"), kBound).matched);
    // ... but the user's case does, and so do a port, a maddr/user parameter or a URI header on one side only.
    CHECK(
        hasDifference(compareMessage(e, Fixture{}, msg("<sip:park-a@127.0.0.1>"), kBound), "header Contact URI user"));
    CHECK(hasDifference(compareMessage(e, Fixture{}, msg("<sip:Park-A@127.0.0.1:5060>"), kBound),
                        "header Contact URI port"));
    CHECK(hasDifference(compareMessage(e, Fixture{}, msg("<sip:Park-A@127.0.0.1;maddr=10.0.0.1>"), kBound),
                        "header Contact URI ;maddr"));
    CHECK(hasDifference(compareMessage(e, Fixture{}, msg("<sip:Park-A@127.0.0.1;x-id=2>"), kBound),
                        "header Contact URI ;x-id"));
    CHECK(hasDifference(compareMessage(e, Fixture{}, msg("<sip:Park-A@127.0.0.1?Subject=x>"), kBound),
                        "header Contact URI ?subject"));
}
