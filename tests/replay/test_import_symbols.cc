// Symbolic rewriting by the fixture builder (tools/replay/importer.hh, symbolizer.hh): a Replaces inside a
// Refer-To follows its dialog at run time, dialog-info XML ids, whole-token replacement, phone grouping.
#include "fixture.hh"
#include "importer.hh"
#include "test_import_flows.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;
using replaytest::cap;

namespace {

constexpr const char *C = "127.0.0.1:5066"; // carol, user 1003

Fixture importMsgs(const std::vector<Captured> &msgs) {
    ReadResult r;
    r.messages = msgs;
    ImportOptions o;
    o.trace = "t.pcap";
    return buildFixture(r, o);
}

std::string symbolsLine(const Step &s, const std::string &prefix) {
    for (const auto &l : s.message)
        if (l.rfind(prefix, 0) == 0)
            return l;
    return "";
}

std::string symbolNamed(const Fixture &f, const std::string &original, const std::string &kind) {
    for (const auto &[name, s] : f.symbols)
        if (s.original == original && s.kind == kind)
            return name;
    return "";
}

// Fresh run-time values: every symbol gets a value unlike its original.
SymbolLookup fresh(const Fixture &f) {
    return [&f](const std::string &n) -> std::optional<std::string> {
        if (n.size() > 5 && n.substr(n.size() - 5) == ".host")
            return std::string("10.1.1.1");
        if (n.size() > 5 && n.substr(n.size() - 5) == ".port")
            return std::string("7777");
        auto it = f.symbols.find(n);
        if (it == f.symbols.end())
            return std::nullopt;
        if (it->second.kind == "cseq" || it->second.kind.rfind("sdp", 0) == 0 || it->second.kind == "media-port")
            return std::string("500");
        if (it->second.kind == "call-id")
            return "NEW;" + n + "@fresh.example";
        return "new-" + n;
    };
}

// Carol picks up the parked call of parkByRefer: an attended-transfer REFER whose Refer-To carries the park
// dialog in an escaped Replaces, an INVITE with Replaces, and a BLF NOTIFY about that dialog.
std::vector<Captured> pickupFlow() {
    auto v = replaytest::parkByRefer();
    v.push_back(cap(104.0, C, replaytest::S,
                    "REFER sip:1001@pbx.example.com SIP/2.0\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5066;branch=z9hG4bK-c-ref\n"
                    "From: <sip:1003@pbx.example.com>;tag=carol-1\nTo: <sip:1001@pbx.example.com>\n"
                    "Call-ID: carol-refer@127.0.0.1\nCSeq: 1 REFER\nContact: <sip:1003@127.0.0.1:5066>\n"
                    "Refer-To: <sip:1003@pbx.example.com?Replaces=park-call-2%40127.0.0.1%3Bto-tag%3Dpw-srv-tag-9"
                    "%3Bfrom-tag%3Dalice-park-tag>\n"
                    "Target-Dialog: park-call-2@127.0.0.1;local-tag=alice-park-tag;remote-tag=pw-srv-tag-9\n"
                    "Content-Length: 0\n\n"));
    v.push_back(cap(104.1, C, replaytest::S,
                    "INVITE sip:1001@pbx.example.com SIP/2.0\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5066;branch=z9hG4bK-c-inv\n"
                    "From: <sip:1003@pbx.example.com>;tag=carol-2\nTo: <sip:1001@pbx.example.com>\n"
                    "Call-ID: carol-pickup@127.0.0.1\nCSeq: 1 INVITE\nContact: <sip:1003@127.0.0.1:5066>\n"
                    "Replaces: park-call-2@127.0.0.1;to-tag=pw-srv-tag-9;from-tag=alice-park-tag\n"
                    "Content-Length: 0\n\n"));
    v.push_back(cap(104.2, replaytest::S, C,
                    "NOTIFY sip:1003@127.0.0.1:5066 SIP/2.0\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s-blf\n"
                    "From: <sip:*88103@pbx.example.com>;tag=blf-srv\nTo: <sip:1003@pbx.example.com>;tag=carol-3\n"
                    "Call-ID: blf-sub@127.0.0.1\nCSeq: 4 NOTIFY\nEvent: dialog;id=77ab\n"
                    "Subscription-State: active;expires=300\nContent-Type: application/dialog-info+xml\n"
                    "Content-Length: ?\n\n"
                    "<?xml version=\"1.0\"?>\n"
                    "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"3\" state=\"full\" "
                    "entity=\"sip:*88103@pbx.example.com\">\n"
                    "  <dialog id=\"d1\" call-id=\"park-call-2@127.0.0.1\" local-tag=\"pw-srv-tag-9\" "
                    "remote-tag=\"alice-park-tag\" direction=\"recipient\"><state>confirmed</state></dialog>\n"
                    "</dialog-info>\n"));
    return v;
}

} // namespace

TEST_CASE("import: a Replaces inside a Refer-To follows the dialog's ids at run time") {
    Fixture f = importMsgs(pickupFlow());
    REQUIRE(f.steps.size() == 26);
    std::string call = symbolNamed(f, "park-call-2@127.0.0.1", "call-id");
    std::string srvTag = symbolNamed(f, "pw-srv-tag-9", "tag"), aliceTag = symbolNamed(f, "alice-park-tag", "tag");
    REQUIRE(call == "call2");
    const Step &refer = f.steps[23];
    CHECK(refer.participant == "u1003");
    CHECK(symbolsLine(refer, "Refer-To:") ==
          "Refer-To: <sip:1003@pbx.example.com?Replaces={{call2|uri}}%3Bto-tag%3D{{" + srvTag + "}}%3Bfrom-tag%3D{{" +
              aliceTag + "}}>");
    CHECK(symbolsLine(refer, "Target-Dialog:") ==
          "Target-Dialog: {{call2}};local-tag={{" + aliceTag + "}};remote-tag={{" + srvTag + "}}");
    // Rendered with fresh values, the Refer-To names the park dialog's new Call-ID, escaped (RFC 3261 §19.1.1).
    std::string wire = renderMessage(refer.message, fresh(f));
    CHECK(wire.find("Replaces=NEW%3Bcall2%40fresh.example%3Bto-tag%3Dnew-" + srvTag + "%3Bfrom-tag%3Dnew-" + aliceTag +
                    ">") != std::string::npos);
    CHECK(wire.find("park-call-2") == std::string::npos);
    // ... and so does the Replaces header of the pickup INVITE, unescaped.
    const Step &pickup = f.steps[24];
    CHECK(symbolsLine(pickup, "Replaces:") ==
          "Replaces: {{call2}};to-tag={{" + srvTag + "}};from-tag={{" + aliceTag + "}}");
    CHECK(renderMessage(pickup.message, fresh(f)).find("Replaces: NEW;call2@fresh.example;to-tag=new-") !=
          std::string::npos);
    CHECK(pickup.note == "INVITE 1001 with Replaces [call4]");
}

TEST_CASE("import: dialog-info XML names dialogs by their symbols, event ids become symbols") {
    Fixture f = importMsgs(pickupFlow());
    const Step &blf = f.steps[25];
    CHECK(blf.kind == StepKind::Expect);
    CHECK(blf.participant == "u1003");
    CHECK(blf.body == "dialog-info");
    std::string srvTag = symbolNamed(f, "pw-srv-tag-9", "tag"), aliceTag = symbolNamed(f, "alice-park-tag", "tag");
    CHECK(blf.message[blf.message.size() - 2] == "  <dialog id=\"d1\" call-id=\"{{call2}}\" local-tag=\"{{" + srvTag +
                                                     "}}\" remote-tag=\"{{" + aliceTag +
                                                     "}}\" direction=\"recipient\"><state>confirmed</state></dialog>");
    std::string evid = symbolNamed(f, "77ab", "token");
    REQUIRE_FALSE(evid.empty());
    CHECK(f.symbols.at(evid).owner == "server");
    CHECK(symbolsLine(blf, "Event:") == "Event: dialog;id={{" + evid + "}}");
    CHECK(blf.message[0] == "NOTIFY sip:1003@{{u1003.host}}:{{u1003.port}} SIP/2.0");
}

TEST_CASE("import: identifiers are replaced as whole tokens only, longest first") {
    // A From-tag that is the Call-ID's local part, a To-tag equal to a port number, a tag inside a branch.
    const char *A = replaytest::A, *S = replaytest::S;
    std::vector<Captured> v;
    v.push_back(cap(1.0, A, S,
                    "OPTIONS sip:pbx.example.com SIP/2.0\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc123\n"
                    "From: <sip:1001@pbx.example.com>;tag=abc123\nTo: <sip:pbx.example.com>\n"
                    "Call-ID: abc123@127.0.0.1\nCSeq: 5062 OPTIONS\nContact: <sip:1001@127.0.0.1:5062>\n"
                    "X-Ref: abc123-old abc123@127.0.0.1 abc123\nContent-Length: 0\n\n"));
    v.push_back(cap(1.1, S, A,
                    "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc123;received=127.0.0.1;"
                    "rport=5062\n"
                    "From: <sip:1001@pbx.example.com>;tag=abc123\nTo: <sip:pbx.example.com>;tag=5062\n"
                    "Call-ID: abc123@127.0.0.1\nCSeq: 5062 OPTIONS\nContact: <sip:127.0.0.1:5060>\n"
                    "Content-Length: 0\n\n"));
    Fixture f = importMsgs(v);
    const Step &o = f.steps[0];
    CHECK(symbolsLine(o, "Via:") == "Via: SIP/2.0/UDP {{u1001.host}}:{{u1001.port}};branch={{branch1}}");
    CHECK(symbolsLine(o, "From:") == "From: <sip:1001@pbx.example.com>;tag={{tag1}}");
    CHECK(symbolsLine(o, "Call-ID:") == "Call-ID: {{call1}}");
    CHECK(symbolsLine(o, "CSeq:") == "CSeq: {{cseq1}} OPTIONS");
    CHECK(symbolsLine(o, "X-Ref:") == "X-Ref: abc123-old {{call1}} {{tag1}}");
    const Step &ok = f.steps[1];
    CHECK(symbolsLine(ok, "To:") == "To: <sip:pbx.example.com>;tag={{tag2}}");
    CHECK(f.symbols.at("tag2").original == "5062");
    CHECK(symbolsLine(ok, "Via:") == "Via: SIP/2.0/UDP {{u1001.host}}:{{u1001.port}};branch={{branch1}};"
                                     "received={{u1001.host}};rport={{u1001.port}}");
    CHECK(symbolsLine(ok, "CSeq:") == "CSeq: {{cseq1}} OPTIONS");
}

TEST_CASE("import: a TCP phone's ephemeral ports and its listening address are one participant") {
    const char *S = replaytest::S;
    std::vector<Captured> v;
    auto tcp = [](Captured c) {
        c.transport = Transport::Tcp;
        return c;
    };
    v.push_back(tcp(cap(1.0, "127.0.0.1:40001", S,
                        "REGISTER sip:pbx.example.com SIP/2.0\n"
                        "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-r1\n"
                        "From: <sip:1005@pbx.example.com>;tag=r1\nTo: <sip:1005@pbx.example.com>\n"
                        "Call-ID: reg-1@127.0.0.1\nCSeq: 1 REGISTER\nContact: <sip:1005@127.0.0.1:5070;transport=tcp>\n"
                        "Content-Length: 0\n\n")));
    v.push_back(tcp(cap(1.1, S, "127.0.0.1:40001",
                        "SIP/2.0 200 OK\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-r1\n"
                        "From: <sip:1005@pbx.example.com>;tag=r1\nTo: <sip:1005@pbx.example.com>;tag=s1\n"
                        "Call-ID: reg-1@127.0.0.1\nCSeq: 1 REGISTER\n"
                        "Contact: <sip:1005@127.0.0.1:5070;transport=tcp>;expires=300\nContent-Length: 0\n\n")));
    // The server opens its own connection to the phone's Contact (from an ephemeral port of its own).
    v.push_back(tcp(cap(2.0, "127.0.0.1:45000", "127.0.0.1:5070",
                        "OPTIONS sip:1005@127.0.0.1:5070;transport=tcp SIP/2.0\n"
                        "Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-s-opt\n"
                        "From: <sip:pbx.example.com>;tag=s2\nTo: <sip:1005@pbx.example.com>\n"
                        "Call-ID: opt-1@127.0.0.1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")));
    v.push_back(tcp(cap(2.1, "127.0.0.1:5070", "127.0.0.1:45000",
                        "SIP/2.0 200 OK\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-s-opt\n"
                        "From: <sip:pbx.example.com>;tag=s2\nTo: <sip:1005@pbx.example.com>;tag=p3\n"
                        "Call-ID: opt-1@127.0.0.1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n")));
    ImportSummary sum;
    ReadResult r;
    r.messages = v;
    ImportOptions o;
    o.trace = "tcp.pcap";
    Fixture f = buildFixture(r, o, &sum);
    REQUIRE(f.participants.size() == 1);
    CHECK(f.participants[0].name == "u1005");
    CHECK(f.participants[0].transport == "tcp");
    CHECK(f.server.address == "127.0.0.1:5060");
    REQUIRE(f.steps.size() == 4);
    CHECK(f.steps[2].kind == StepKind::Expect);
    CHECK(f.steps[2].message[0] == "OPTIONS sip:1005@{{u1005.host}}:{{u1005.port}};transport=tcp SIP/2.0");
    CHECK(f.steps[3].kind == StepKind::Send);
    CHECK(symbolsLine(f.steps[0], "Contact:") == "Contact: <sip:1005@{{u1005.host}}:{{u1005.port}};transport=tcp>");
    CHECK(sum.warnings.empty());
    std::string text = summaryText(f, sum);
    CHECK(text.find("participants: 1\n  u1005  tcp 127.0.0.1:40001  user 1005\n") != std::string::npos);
}

TEST_CASE("import: two SIPp roles on one host are two phones, a phone with no single user is p<N>") {
    const char *S = replaytest::S;
    auto opt = [&](const char *src, const char *user, const char *id) {
        return cap(1.0, src, S,
                   std::string("OPTIONS sip:pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP ") + src + ";branch=z9hG4bK" +
                       id + "\nFrom: <sip:" + user + "@pbx.example.com>;tag=t" + id +
                       "\nTo: <sip:pbx.example.com>\nCall-ID: " + id + "@h\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    };
    auto ok = [&](const char *dst, const char *id) {
        return cap(1.0, S, dst,
                   std::string("SIP/2.0 200 OK\nVia: SIP/2.0/UDP ") + dst + ";branch=z9hG4bK" + id +
                       "\nFrom: <sip:x@pbx.example.com>;tag=t" + id + "\nTo: <sip:pbx.example.com>;tag=s" + id +
                       "\nCall-ID: " + id + "@h\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    };
    Fixture f = importMsgs({opt("127.0.0.1:6001", "alice", "a1"), ok("127.0.0.1:6001", "a1"),
                            opt("127.0.0.1:6002", "bob", "b1"), ok("127.0.0.1:6002", "b1"),
                            opt("127.0.0.1:6003", "carol", "c1"), opt("127.0.0.1:6003", "dave", "c2"),
                            ok("127.0.0.1:6003", "c1")});
    REQUIRE(f.participants.size() == 3);
    CHECK(f.participants[0].name == "alice");
    CHECK(f.participants[1].name == "bob");
    CHECK(f.participants[2].name == "p3");
    CHECK(f.participants[2].user.empty());
}

TEST_CASE("import: '{{' and bytes that are not UTF-8 in a message still give a valid fixture") {
    const char *A = replaytest::A, *S = replaytest::S;
    std::vector<Captured> v;
    v.push_back(cap(1.0, A, S,
                    "MESSAGE sip:pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-m\n"
                    "From: \"Ren\xE9\" <sip:1001@pbx.example.com>;tag=fm\nTo: <sip:pbx.example.com>\nCall-ID: m@h\n"
                    "CSeq: 1 MESSAGE\nContent-Type: text/plain\nContent-Length: ?\n\nhello {{name}}\n"));
    ReadResult r;
    r.messages = v;
    ImportOptions o;
    o.trace = "m.pcap";
    ImportSummary sum;
    Fixture f = buildFixture(r, o, &sum);
    REQUIRE(sum.warnings.size() == 1);
    CHECK(sum.warnings[0].find("message 1 (127.0.0.1:5062 -> 127.0.0.1:5060): a literal '{{'") == 0);
    CHECK(f.steps[0].message.back() == "hello { {name}}");
    CHECK(symbolsLine(f.steps[0], "From:") == "From: \"Ren\xEF\xBF\xBD\" <sip:1001@pbx.example.com>;tag={{tag1}}");
    CHECK_NOTHROW(parseFixture(fixtureToJson(f), "mem"));
}

TEST_CASE("import: fixtures of the pickup flow are valid for the fixture parser") {
    Fixture f = importMsgs(pickupFlow());
    CHECK(fixtureToJson(parseFixture(fixtureToJson(f), "mem")) == fixtureToJson(f));
}

TEST_CASE("import: one phone's addresses are tied by its tags over one transport, not across transports") {
    // linphone: REGISTER and INVITE over TCP (Via/Contact its TCP port), the ACK over UDP from another port
    // (same From-tag, same +sip.instance): two participants, each with its transport. Then the same ACK over
    // TCP from another port: the tag ties it to the phone.
    const char *S = replaytest::S;
    const std::string inst = ";+sip.instance=\"<urn:uuid:a930b585-4071-0085-9431-f251c24dae9c>\"";
    auto tcp = [](Captured c) {
        c.transport = Transport::Tcp;
        return c;
    };
    std::vector<Captured> v;
    v.push_back(tcp(cap(1.0, "127.0.0.1:41908", S,
                        "REGISTER sip:pbx.example.com SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:41908;branch=z9hG4bK.r\n"
                        "From: <sip:1001@pbx.example.com>;tag=r1\nTo: sip:1001@pbx.example.com\nCall-ID: reg@h\n"
                        "CSeq: 20 REGISTER\nContact: <sip:1001@127.0.0.1:41908;transport=tcp>" +
                            inst + "\nContent-Length: 0\n\n")));
    v.push_back(tcp(cap(1.1, S, "127.0.0.1:41908",
                        "SIP/2.0 200 OK\nVia: SIP/2.0/TCP 127.0.0.1:41908;branch=z9hG4bK.r\n"
                        "From: <sip:1001@pbx.example.com>;tag=r1\nTo: <sip:1001@pbx.example.com>;tag=s\n"
                        "Call-ID: reg@h\nCSeq: 20 REGISTER\nContent-Length: 0\n\n")));
    v.push_back(tcp(cap(2.0, "127.0.0.1:41908", S,
                        "INVITE sip:*68104@pbx.example.com SIP/2.0\nVia: SIP/2.0/TCP 127.0.0.1:41908;branch=z9hG4bK.i\n"
                        "From: <sip:1001@pbx.example.com>;tag=call-tag\nTo: <sip:*68104@pbx.example.com>\n"
                        "Call-ID: inv@h\nCSeq: 20 INVITE\nContact: <sip:1001@127.0.0.1:41908;transport=tcp>" +
                            inst + "\nContent-Length: 0\n\n")));
    v.push_back(tcp(cap(2.1, S, "127.0.0.1:41908",
                        "SIP/2.0 200 OK\nVia: SIP/2.0/TCP 127.0.0.1:41908;branch=z9hG4bK.i\n"
                        "From: <sip:1001@pbx.example.com>;tag=call-tag\nTo: <sip:*68104@pbx.example.com>;tag=pk\n"
                        "Call-ID: inv@h\nCSeq: 20 INVITE\nContact: <sip:127.0.0.1:5060>\nContent-Length: 0\n\n")));
    v.push_back(cap(2.2, "127.0.0.1:40877", S,
                    "ACK sip:127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:40877;rport;branch=z9hG4bK.a\n"
                    "From: <sip:1001@pbx.example.com>;tag=call-tag\nTo: <sip:*68104@pbx.example.com>;tag=pk\n"
                    "Call-ID: inv@h\nCSeq: 20 ACK\nContent-Length: 0\n\n"));
    Fixture f = importMsgs(v);
    REQUIRE(f.participants.size() == 2);
    CHECK(f.participants[0].name == "p1");
    CHECK(f.participants[0].transport == "tcp");
    CHECK(f.participants[1].name == "p2");
    CHECK(f.participants[1].transport == "udp");
    CHECK(symbolsLine(f.steps[4], "Via:") == "Via: SIP/2.0/UDP {{p2.host}}:{{p2.port}};rport;branch={{branch3}}");
    v.back() = tcp(v.back());
    f = importMsgs(v);
    REQUIRE(f.participants.size() == 1);
    CHECK(f.participants[0].name == "u1001");
    CHECK(symbolsLine(f.steps[4], "Via:") == "Via: SIP/2.0/UDP {{u1001.host}}:{{u1001.port}};rport;branch={{branch3}}");
}

TEST_CASE("import: a Replaces escaped more than needed still names its dialog") {
    const char *A = replaytest::A, *S = replaytest::S;
    std::vector<Captured> v;
    v.push_back(cap(1.0, A, S,
                    "INVITE sip:1002@pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-x\n"
                    "From: <sip:1001@pbx.example.com>;tag=ta\nTo: <sip:1002@pbx.example.com>\n"
                    "Call-ID: abc:def/12@host\nCSeq: 1 INVITE\nContent-Length: 0\n\n"));
    v.push_back(cap(1.1, S, A,
                    "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-x\n"
                    "From: <sip:1001@pbx.example.com>;tag=ta\nTo: <sip:1002@pbx.example.com>;tag=tb\n"
                    "Call-ID: abc:def/12@host\nCSeq: 1 INVITE\nContent-Length: 0\n\n"));
    v.push_back(
        cap(2.0, A, S,
            "REFER sip:1002@pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-y\n"
            "From: <sip:1001@pbx.example.com>;tag=ta\nTo: <sip:1002@pbx.example.com>;tag=tb\n"
            "Call-ID: abc:def/12@host\nCSeq: 2 REFER\n"
            "Refer-To: <sip:1003@pbx.example.com?Replaces=abc%3Adef%2F12%40host%3Bto-tag%3Dtb%3Bfrom-tag%3Dta>\n"
            "Content-Length: 0\n\n"));
    Fixture f = importMsgs(v);
    CHECK(symbolsLine(f.steps[2], "Refer-To:") ==
          "Refer-To: <sip:1003@pbx.example.com?Replaces={{call1|uri}}%3Bto-tag%3D{{tag2}}%3Bfrom-tag%3D{{tag1}}>");
}
