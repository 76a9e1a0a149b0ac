// The comparator's bodies (tools/replay/compare.hh, docs/replay.md "Comparison"): SDP by media, codecs and
// direction; dialog-info, park-info and pidf XML by elements and attributes; sipfrag by status line; text.
#include "compare.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;

namespace {

std::vector<std::string> lines(const std::string &text) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos)
            nl = text.size();
        out.push_back(text.substr(pos, nl - pos));
        pos = nl + 1;
    }
    while (!out.empty() && out.back().empty())
        out.pop_back();
    return out;
}

Step notify(const std::string &kind, const std::string &body, const std::string &event) {
    Step e;
    e.id = 21;
    e.kind = StepKind::Expect;
    e.participant = "carol";
    e.body = kind;
    e.message = {"NOTIFY sip:carol@{{carol.host}} SIP/2.0", "Call-ID: {{call4}}", "Event: " + event, ""};
    for (const auto &l : lines(body))
        e.message.push_back(l);
    return e;
}

std::string message(const std::string &body, const std::string &event) {
    std::string b;
    for (const auto &l : lines(body))
        b += l + "\r\n";
    return "NOTIFY sip:carol@127.0.0.12 SIP/2.0\r\nCall-ID: c4@pbx\r\nEvent: " + event +
           "\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b;
}

const Bindings kBodyBound{{"call4", "c4@pbx"}, {"carol.host", "127.0.0.12"}, {"server.host", "127.0.0.1"}};

std::string bodyWhats(const MatchResult &r) {
    std::string out;
    for (const auto &d : r.differences)
        out += d.what + " [" + d.expected + " | " + d.actual + "]; ";
    return out;
}

bool bodyHasDifference(const MatchResult &r, const std::string &what) {
    for (const auto &d : r.differences)
        if (d.what == what)
            return true;
    return false;
}

const std::string kSdp = R"(v=0
o=- {{sdp1}} {{sdpv1}} IN IP4 {{server.host}}
s=-
c=IN IP4 {{server.host}}
t=0 0
m=audio {{port1}} RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16)";

Step answer(const std::string &sdp) {
    Step e;
    e.id = 3;
    e.kind = StepKind::Expect;
    e.participant = "alice";
    e.body = "sdp";
    e.message = {"SIP/2.0 200 OK", "Call-ID: {{call4}}", "CSeq: 1 INVITE", "Content-Type: application/sdp", ""};
    for (const auto &l : lines(sdp))
        e.message.push_back(l);
    return e;
}

std::string answerMessage(const std::string &sdp) {
    std::string b;
    for (const auto &l : lines(sdp))
        b += l + "\r\n";
    return "SIP/2.0 200 OK\r\nCall-ID: c4@pbx\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\r\n" + b;
}

} // namespace

TEST_CASE("SDP with another port and origin but the same codecs and direction matches") {
    std::string actual = "v=0\no=parkway 99 100 IN IP4 10.1.1.1\ns=moh\nc=IN IP4 10.1.1.1\nt=0 0\n"
                         "m=audio 40002 RTP/AVP 101 8 0\na=rtpmap:0 pcmu/8000\na=rtpmap:101 TELEPHONE-EVENT/8000\n"
                         "a=sendrecv\n";
    MatchResult r = compareMessage(answer(kSdp), Fixture{}, answerMessage(actual), Bindings{{"call4", "c4@pbx"}});
    INFO(bodyWhats(r));
    REQUIRE(r.matched);
    CHECK(r.learned.at("port1") == "40002"); // bound (usable later), never compared literally
    CHECK(r.learned.at("sdp1") == "99");
    // Another o= and port than an already bound value is still no difference.
    r = compareMessage(answer(kSdp), Fixture{}, answerMessage(actual),
                       Bindings{{"call4", "c4@pbx"}, {"port1", "5000"}, {"server.host", "127.0.0.1"}});
    CHECK(r.matched);
}

TEST_CASE("SDP direction (with the session default) and codecs are differences") {
    std::string sendonly = "v=0\no=- 1 1 IN IP4 10.1.1.1\ns=-\nc=IN IP4 10.1.1.1\nt=0 0\na=sendonly\n"
                           "m=audio 4000 RTP/AVP 0 8 101\na=rtpmap:101 telephone-event/8000\n";
    MatchResult r = compareMessage(answer(kSdp), Fixture{}, answerMessage(sendonly), kBodyBound);
    INFO(bodyWhats(r));
    REQUIRE(r.differences.size() == 1);
    CHECK(r.differences[0].what == "body sdp: m=audio direction");
    CHECK(r.differences[0].expected == "sendrecv");
    CHECK(r.differences[0].actual == "sendonly");
    std::string g722 = "v=0\no=- 1 1 IN IP4 10.1.1.1\ns=-\nc=IN IP4 10.1.1.1\nt=0 0\nm=audio 4000 RTP/AVP 9 101\n"
                       "a=rtpmap:101 telephone-event/8000\na=sendrecv\n";
    r = compareMessage(answer(kSdp), Fixture{}, answerMessage(g722), kBodyBound);
    REQUIRE(bodyHasDifference(r, "body sdp: m=audio codecs"));
    CHECK(r.differences[0].actual == "G722/8000 TELEPHONE-EVENT/8000");
    std::string rejected = "v=0\no=- 1 1 IN IP4 10.1.1.1\ns=-\nt=0 0\nm=audio 0 RTP/AVP 0 8 101\n"
                           "a=rtpmap:101 telephone-event/8000\n";
    CHECK(bodyHasDifference(compareMessage(answer(kSdp), Fixture{}, answerMessage(rejected), kBodyBound),
                            "body sdp: m=audio port"));
    CHECK(bodyHasDifference(compareMessage(answer(kSdp), Fixture{}, answerMessage(""), kBodyBound), "body sdp"));
}

namespace {
const std::string kDialogInfo = R"(<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" entity="sip:101@{{server.host}}">
  <dialog id="{{dlg1}}" call-id="{{call1|xml}}" local-tag="{{tag1}}" direction="initiator">
    <state>confirmed</state>
    <local><identity>sip:101@{{server.host}}</identity><target uri="sip:101@{{alice.host}}"/></local>
    <remote><identity display="Bob">sip:102@{{server.host}}</identity></remote>
  </dialog>
</dialog-info>)";

std::string dialogInfo(const std::string &version, const std::string &state, const std::string &callId = "a&amp;b@h") {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" entity="sip:101@127.0.0.1" state="full" version=")" +
           version + R"(">
  <dialog id="xyz" direction="initiator" local-tag="lt1" call-id=")" +
           callId + R"(">
    <state event="remote-bye">)" +
           state + R"(</state>
    <duration>12</duration>
    <local><target uri="sip:101@127.0.0.10;transport=udp"/><identity>SIP:101@127.0.0.1</identity></local>
    <remote><identity display="Bob">sip:102@127.0.0.1</identity></remote>
  </dialog>
</dialog-info>)";
}
} // namespace

TEST_CASE("dialog-info compares per dialog its ids, state and identities, versions must increase") {
    Step e = notify("dialog-info", kDialogInfo, "dialog");
    Bindings b = kBodyBound;
    b["alice.host"] = "127.0.0.10";
    b["call1"] = "a&b@h";
    MatchResult r = compareMessage(e, Fixture{}, message(dialogInfo("4", "confirmed"), "dialog"), b);
    INFO(bodyWhats(r));
    // The template's <state> has no event attribute; the actual one does.
    REQUIRE(r.differences.size() == 1);
    CHECK(r.differences[0].what == "body dialog-info: dialog[@id=xyz]/state@event");
    e.message[e.message.size() - 5] = "    <state event=\"remote-bye\">confirmed</state>";
    r = compareMessage(e, Fixture{}, message(dialogInfo("4", "confirmed"), "dialog"), b);
    INFO(bodyWhats(r));
    REQUIRE(r.matched);
    CHECK(r.learned.at("dlg1") == "xyz");
    CHECK(r.learned.at("~dialog-info-version c4@pbx sip:101@127.0.0.1 4") == "4");

    b.insert(r.learned.begin(), r.learned.end()); // the runner adds what was learned (std::map::emplace)
    r = compareMessage(e, Fixture{}, message(dialogInfo("5", "terminated"), "dialog"), b);
    REQUIRE(r.differences.size() == 1);
    CHECK(r.differences[0].what == "body dialog-info: dialog[@id=xyz]/state");
    CHECK(r.differences[0].expected == "confirmed");
    CHECK(r.differences[0].actual == "terminated");
    r = compareMessage(e, Fixture{}, message(dialogInfo("4", "confirmed"), "dialog"), b);
    CHECK(bodyHasDifference(r, "body dialog-info: @version"));
    // Version 5 came and was added: 5 again is old, 6 is new.
    r = compareMessage(e, Fixture{}, message(dialogInfo("5", "confirmed"), "dialog"), b);
    REQUIRE(r.matched);
    for (const auto &[k, v] : r.learned)
        b.emplace(k, v);
    CHECK(bodyHasDifference(compareMessage(e, Fixture{}, message(dialogInfo("5", "confirmed"), "dialog"), b),
                            "body dialog-info: @version"));
    CHECK(compareMessage(e, Fixture{}, message(dialogInfo("6", "confirmed"), "dialog"), b).matched);
    r = compareMessage(e, Fixture{}, message(dialogInfo("6", "confirmed", "other@h"), "dialog"), b);
    CHECK(bodyHasDifference(r, "body dialog-info: dialog[@id=xyz]@call-id"));
    r = compareMessage(e, Fixture{}, message("<dialog-info><dialog", "dialog"), b);
    REQUIRE(bodyHasDifference(r, "body dialog-info:"));
}

namespace {
std::string parkInfo(const std::string &version, const std::string &state, bool recall) {
    return R"(<?xml version="1.0" encoding="UTF-8"?>
<park-info xmlns="urn:parkway:params:xml:ns:park-info" version=")" +
           version + R"(" entity="sip:103@pbx.example.com">
  <parked id="42" state=")" +
           state + R"(">
    <parked-on>sip:103@pbx.example.com</parked-on>
    <parked-party display="Alice &quot;Al&quot;">sip:2001@pbx.example.com</parked-party>
    <retrieve>sip:*88103@pbx.example.com</retrieve>
    <parked-at>2026-12-01T15:00:00Z</parked-at>)" +
           (recall ? "\n    <recall-at>2026-12-01T15:05:00Z</recall-at>" : "") + R"(
    <changed-at>2026-12-01T15:00:01Z</changed-at>
  </parked>
</park-info>)";
}
} // namespace

TEST_CASE("park-info compares the parked call's state and parties, not its times") {
    std::string templ = parkInfo("1", "parked", true);
    templ.replace(templ.find("id=\"42\""), 7, "id=\"{{park1}}\"");
    Step e = notify("park-info", templ, "park-info");
    MatchResult r = compareMessage(e, Fixture{}, message(parkInfo("9", "parked", true), "park-info"), kBodyBound);
    INFO(bodyWhats(r));
    REQUIRE(r.matched);
    CHECK(r.learned.at("park1") == "42");
    r = compareMessage(e, Fixture{}, message(parkInfo("9", "retrieved", false), "park-info"), kBodyBound);
    INFO(bodyWhats(r));
    CHECK(bodyHasDifference(r, "body park-info: parked[@id=42]@state"));
    CHECK(bodyHasDifference(r, "body park-info: parked[@id=42]/recall-at"));
    std::string otherNs = parkInfo("10", "parked", true);
    otherNs.replace(otherNs.find("urn:parkway"), 11, "urn:example");
    CHECK(bodyHasDifference(compareMessage(e, Fixture{}, message(otherNs, "park-info"), kBodyBound),
                            "body park-info: namespace"));
}

TEST_CASE("pidf compares the basic status per tuple, sipfrag the status code, text exactly") {
    auto pidf = [](const std::string &basic) {
        return "<?xml version=\"1.0\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:101@127.0.0.1\">"
               "<tuple id=\"t1\"><status><basic>" +
               basic +
               "</basic></status><timestamp>x</timestamp></tuple>"
               "</presence>";
    };
    Step e = notify("pidf", pidf("open"), "presence");
    CHECK(compareMessage(e, Fixture{}, message(pidf("open"), "presence"), kBodyBound).matched);
    MatchResult closed = compareMessage(e, Fixture{}, message(pidf("closed"), "presence"), kBodyBound);
    INFO(bodyWhats(closed));
    CHECK(bodyHasDifference(closed, "body pidf: tuple[@id=t1]/status/basic"));

    Step frag = notify("sipfrag", "SIP/2.0 200 OK", "refer");
    CHECK(compareMessage(frag, Fixture{}, message("SIP/2.0 200 Ok\n", "refer"), kBodyBound).matched);
    MatchResult r = compareMessage(frag, Fixture{}, message("SIP/2.0 180 Ringing\n", "refer"), kBodyBound);
    REQUIRE(bodyHasDifference(r, "body sipfrag: status line"));

    Step text = notify("text", "hello {{who}}\nbye", "x");
    r = compareMessage(text, Fixture{}, message("hello world\nbye", "x"), kBodyBound);
    REQUIRE(r.matched);
    CHECK(r.learned.at("who") == "world");
    CHECK(
        bodyHasDifference(compareMessage(text, Fixture{}, message("hello world\nBye", "x"), kBodyBound), "body text"));
    Step ignored = notify("ignore", "anything", "x");
    CHECK(compareMessage(ignored, Fixture{}, message("something else", "x"), kBodyBound).matched);
}

namespace {
// A NOTIFY as today's daemon sends it to a BLF key watching an empty park slot (captured on loopback).
std::string realNotify(const std::string &state, const std::string &version, const std::string &cseq) {
    std::string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<dialog-info "
                       "xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"" +
                       version + "\" state=\"full\" entity=\"sip:*88103@pbx.example.com\">\n</dialog-info>\n";
    return "NOTIFY sip:1010@127.0.0.1:45964 SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:30989;rport;branch=z9hG4bKKBe9yHmaa9ggp\r\nMax-Forwards: 70\r\n"
           "From: <sip:*88103@pbx.example.com>;tag=KKg8jFQUHcHNa\r\nTo: <sip:1010@pbx.example.com>;tag=a1\r\n"
           "Call-ID: probe1@127.0.0.1\r\nCSeq: " +
           cseq +
           " NOTIFY\r\nContact: <sip:127.0.0.1:30989>\r\n"
           "Event: dialog\r\nSubscription-State: " +
           state +
           "\r\n"
           "Content-Type: application/dialog-info+xml\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}
} // namespace

TEST_CASE("a fixture's expect steps match the daemon's real NOTIFYs, and see what changed") {
    Fixture f = loadFixture(std::string(REPLAY_TEST_DATA) + "/export/blf_watch.json");
    const Step &first = *f.findStep(3), &last = *f.findStep(7);
    Bindings b{{"call1", "probe1@127.0.0.1"}, {"alice.host", "127.0.0.1"},
               {"alice.port", "45964"},       {"server.host", "127.0.0.1"},
               {"server.port", "30989"},      {"tag1", "a1"},
               {"tag2", "KKg8jFQUHcHNa"},     {"cseq1", "1"}};
    REQUIRE(couldMatch(first, realNotify("active;expires=600", "0", "2"), b));
    MatchResult r = compareMessage(first, f, realNotify("active;expires=600", "0", "2"), b);
    INFO(bodyWhats(r));
    REQUIRE(r.matched);
    CHECK(r.learned.at("cseq2") == "2");
    for (const auto &[k, v] : r.learned)
        b[k] = v;
    r = compareMessage(last, f, realNotify("terminated;reason=timeout", "1", "3"), b);
    INFO(bodyWhats(r));
    REQUIRE(r.matched);
    for (const auto &[k, v] : r.learned)
        b[k] = v;
    // The same NOTIFY again: its version no longer increases, and a daemon that kept the subscription active.
    r = compareMessage(last, f, realNotify("active;expires=600", "1", "3"), b);
    CHECK(bodyHasDifference(r, "header Subscription-State state"));
    CHECK(bodyHasDifference(r, "header Subscription-State;reason"));
    CHECK(bodyHasDifference(r, "body dialog-info: @version"));
    CHECK(formatDifferences(last, f, r.differences)
              .rfind("step 7 alice: expect NOTIFY (dialog {{call1}}, Event dialog) -- final NOTIFY\n", 0) == 0);
}
