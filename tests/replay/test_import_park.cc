// The fixture builder (tools/replay/importer.hh) on a park by REFER: participants, dialogs, symbols, the
// partial order, compare lists, retransmissions and determinism.
#include "commands.hh"
#include "importer.hh"
#include "test_import_flows.hh"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace parkway::replay;
using replaytest::cap;

namespace {

Fixture importFlow(const std::vector<Captured> &msgs, ImportSummary *summary = nullptr,
                   ImportOptions o = ImportOptions{}) {
    ReadResult r;
    r.messages = msgs;
    if (o.trace.empty())
        o.trace = "/tmp/park_refer.pcap";
    return buildFixture(r, o, summary);
}

std::string parkSymbolNamed(const Fixture &f, const std::string &original) {
    for (const auto &[name, s] : f.symbols)
        if (s.original == original)
            return name;
    return "";
}

std::string parkLine(const Step &s, const std::string &prefix) {
    for (const auto &l : s.message)
        if (l.rfind(prefix, 0) == 0)
            return l;
    return "";
}

} // namespace

TEST_CASE("import: a park by REFER gives two phones, two dialogs and symbols owned by their first sender") {
    ImportSummary sum;
    Fixture f = importFlow(replaytest::parkByRefer(), &sum);
    CHECK(f.name == "park_refer");
    CHECK(f.source == "park_refer.pcap");
    CHECK(f.server.address == "127.0.0.1:5060");
    REQUIRE(f.participants.size() == 2);
    CHECK(f.participants[0].name == "u1001");
    CHECK(f.participants[0].user == "1001");
    CHECK(f.participants[0].address == "127.0.0.1:5062");
    CHECK(f.participants[1].name == "u1002");
    CHECK(sum.dialogs == 2);
    CHECK(sum.callIds == 2);
    CHECK(sum.sends == 12);
    CHECK(sum.expects == 11);
    REQUIRE(f.steps.size() == 23);

    std::string call1 = parkSymbolNamed(f, "call-one-xyz@127.0.0.1"),
                call2 = parkSymbolNamed(f, "park-call-2@127.0.0.1");
    CHECK(call1 == "call1");
    CHECK(call2 == "call2");
    CHECK(f.symbols.at(call1).owner == "u1001");
    CHECK(f.symbols.at(parkSymbolNamed(f, "bob-tag-1")).owner == "u1002");
    CHECK(f.symbols.at(parkSymbolNamed(f, "pw-srv-tag-9")).owner == "server"); // learned at run time
    CHECK(f.symbols.at(parkSymbolNamed(f, "z9hG4bK-s-inv1")).owner == "server");
    CHECK(f.symbols.at(parkSymbolNamed(f, "z9hG4bK-s-inv1")).kind == "branch");

    // Step 1: Alice's INVITE, every identifier symbolic, the rest kept as she sent it.
    const Step &inv = f.steps[0];
    CHECK(inv.kind == StepKind::Send);
    CHECK(inv.participant == "u1001");
    CHECK(inv.message[0] == "INVITE sip:1002@pbx.example.com SIP/2.0");
    CHECK(parkLine(inv, "Via:") == "Via: SIP/2.0/UDP {{u1001.host}}:{{u1001.port}};branch={{branch1}};rport");
    CHECK(parkLine(inv, "From:") == "From: \"Alice\" <sip:1001@pbx.example.com>;tag={{tag1}}");
    CHECK(parkLine(inv, "Call-ID:") == "Call-ID: {{call1}}");
    CHECK(parkLine(inv, "CSeq:") == "CSeq: {{cseq1}} INVITE");
    CHECK(parkLine(inv, "Contact:") == "Contact: <sip:1001@{{u1001.host}}:{{u1001.port}}>");
    CHECK(parkLine(inv, "Max-Forwards:") == "Max-Forwards: 70");
    CHECK(parkLine(inv, "o=") == "o=1001 {{sdpsess1}} {{sdpver1}} IN IP4 {{u1001.host}}");
    CHECK(parkLine(inv, "c=") == "c=IN IP4 {{u1001.host}}");
    CHECK(parkLine(inv, "m=") == "m=audio {{mport1}} RTP/AVP 0");
    CHECK(inv.message.back() == "a=sendrecv");

    // The relayed INVITE to Bob: the server's Via and Record-Route are the server's.
    const Step &relayed = f.steps[2];
    CHECK(relayed.kind == StepKind::Expect);
    CHECK(relayed.participant == "u1002");
    CHECK(relayed.message[0] == "INVITE sip:1002@{{u1002.host}}:{{u1002.port}} SIP/2.0");
    CHECK(parkLine(relayed, "Record-Route:") == "Record-Route: <sip:{{server.host}}:{{server.port}};lr>");
    CHECK(relayed.body == "sdp");
    CHECK(relayed.compare == std::vector<std::string>{"CSeq", "Content-Type"});

    // Bob's REFER: his own CSeq sequence; Alice's NOTIFYs continue hers and name the REFER by its CSeq.
    const Step &refer = f.steps[7];
    CHECK(refer.note == "REFER 1001 (Refer-To *68103) [call1]");
    std::string referCseq = parkLine(refer, "CSeq:");
    CHECK(referCseq == "CSeq: {{cseq2}} REFER");
    CHECK(f.symbols.at("cseq2").owner == "u1002");
    CHECK(parkLine(refer, "Refer-To:") == "Refer-To: <sip:*68103@pbx.example.com>");
    CHECK(f.steps[8].compare == std::vector<std::string>{"CSeq", "Refer-To", "Referred-By"});
    const Step &notify = f.steps[11];
    CHECK(notify.message[0] == "NOTIFY sip:1002@{{u1002.host}}:{{u1002.port}} SIP/2.0");
    CHECK(parkLine(notify, "CSeq:") == "CSeq: {{cseq1+1}} NOTIFY");
    CHECK(parkLine(notify, "Event:") == "Event: refer;id={{cseq2}}");
    CHECK(notify.message.back() == "SIP/2.0 100 Trying");
    const Step &relayedNotify = f.steps[12];
    CHECK(relayedNotify.body == "sipfrag");
    CHECK(relayedNotify.compare == std::vector<std::string>{"CSeq", "Event", "Subscription-State", "Content-Type"});

    // The INVITE *68103 the REFER caused: a new dialog; Parkway's To-tag and SDP are the server's.
    const Step &park = f.steps[15];
    CHECK(park.note == "INVITE *68103 [call2]");
    CHECK(parkLine(park, "Call-ID:") == "Call-ID: {{call2}}");
    CHECK(parkLine(park, "CSeq:") == "CSeq: {{cseq3}} INVITE");
    CHECK(parkLine(park, "o=") == "o=1001 {{sdpsess1}} {{sdpver1+1}} IN IP4 {{u1001.host}}");
    const Step &answer = f.steps[16];
    CHECK(parkLine(answer, "To:") ==
          "To: <sip:*68103@pbx.example.com>;tag={{" + parkSymbolNamed(f, "pw-srv-tag-9") + "}}");
    CHECK(parkLine(answer, "Contact:") == "Contact: <sip:{{server.host}}:{{server.port}}>");
    CHECK(f.symbols.at(parkSymbolNamed(f, "30000")).owner == "server");
    CHECK(f.symbols.at(parkSymbolNamed(f, "30000")).kind == "media-port");

    // What an expect step compares and the 100 Trying that may not come.
    CHECK(f.steps[1].optional);
    auto ringing = importFlow([] {
        auto v = replaytest::parkByRefer();
        Captured r = v[4]; // the 200 to Alice, as a 180 just before it
        r.data.replace(0, 14, "SIP/2.0 180 Ringing");
        r.time -= 0.0005;
        v.insert(v.begin() + 4, r);
        return v;
    }());
    CHECK(ringing.steps[4].message[0] == "SIP/2.0 180 Ringing");
    CHECK(ringing.steps[4].optional);
    CHECK(f.steps[1].message[0] == "SIP/2.0 100 Trying");
    CHECK_FALSE(f.steps[4].optional);
    // The whole fixture is valid: JSON round trip, every symbol known.
    CHECK(fixtureToJson(parseFixture(fixtureToJson(f), "mem")) == fixtureToJson(f));
}

TEST_CASE("import: after-lists follow the partial order of the shared design") {
    Fixture f = importFlow(replaytest::parkByRefer());
    auto after = [&](int id) { return f.findStep(id)->after; };
    using V = std::vector<int>;
    CHECK(after(1) == V{});
    CHECK(after(2) == V{1}); // the 100 Trying
    CHECK(after(3) == V{1});
    CHECK(after(4) == V{1, 3}); // Bob's 200 waits for the INVITE he got, not for the optional 100
    CHECK(after(5) == V{4});
    CHECK(after(6) == V{4, 5});
    CHECK(after(8) == V{6, 7}); // the REFER, after the ACK reached Bob
    CHECK(after(9) == V{8});
    CHECK(after(10) == V{8, 9});
    CHECK(after(13) == V{12});
    CHECK(after(16) == V{14, 15});
    CHECK(after(23) == V{21, 22});
    CHECK(f.findStep(4)->delay == Approx(0.498));
    CHECK(f.findStep(8)->delay == Approx(1.489));
    CHECK(f.findStep(3)->delay == Approx(0.002));
    CHECK(f.findStep(1)->delay == 0);
}

TEST_CASE("import: retransmissions are dropped, the steps stay the same") {
    auto msgs = replaytest::parkByRefer();
    Fixture clean = importFlow(msgs);
    auto noisy = msgs;
    Captured again = msgs[0]; // Alice's INVITE retransmitted (Timer A)
    again.time += 0.5;
    Captured ok = msgs[4]; // the 200 to Alice retransmitted before her ACK
    ok.time += 0.004;
    noisy.insert(noisy.begin() + 5, ok);
    noisy.insert(noisy.begin() + 2, again);
    ImportSummary sum;
    Fixture f = importFlow(noisy, &sum);
    CHECK(sum.retransmissions == 2);
    REQUIRE(f.steps.size() == clean.steps.size());
    for (size_t i = 0; i < f.steps.size(); ++i)
        CHECK(f.steps[i].message == clean.steps[i].message);
}

TEST_CASE("import: the same trace imported twice gives the same JSON") {
    std::string one = fixtureToJson(importFlow(replaytest::parkByRefer()));
    std::string two = fixtureToJson(importFlow(replaytest::parkByRefer()));
    CHECK(one == two);
    CHECK(one.find("\"u1001\"") != std::string::npos);
}

TEST_CASE("import: the server is the address that answers most, or the one given") {
    auto msgs = replaytest::parkByRefer();
    ImportOptions o;
    o.servers = {"udp:127.0.0.1:5060"};
    CHECK(importFlow(msgs, nullptr, o).server.address == "127.0.0.1:5060");
    o.servers = {"127.0.0.1:9"};
    CHECK_THROWS_WITH(importFlow(msgs, nullptr, o),
                      "--server 127.0.0.1:9: no message of the trace was sent from or to it");
    CHECK_THROWS_AS(importFlow({}), ImportError);
}

TEST_CASE("import: --password stores the secret on the participant with that user") {
    ImportOptions o;
    o.passwords = {{"1002", "s3cret"}, {"9999", "x"}};
    ImportSummary sum;
    Fixture f = importFlow(replaytest::parkByRefer(), &sum, o);
    CHECK(f.participants[1].password == "s3cret");
    CHECK(f.participants[0].password.empty());
    CHECK(std::count(sum.warnings.begin(), sum.warnings.end(), "--password 9999: no participant has that user") == 1);
}

TEST_CASE("import: the ACK of a non-2xx and a phone's 100 Trying are marked auto and hold nobody up") {
    const char *A = replaytest::A, *B = replaytest::B, *S = replaytest::S;
    const std::string dlg = "From: <sip:1001@pbx.example.com>;tag=fa\nTo: <sip:1002@pbx.example.com>\n"
                            "Call-ID: busy@127.0.0.1\n";
    const std::string viaA = "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-busy\n";
    const std::string viaS = "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s-busy\n";
    std::vector<Captured> v;
    v.push_back(cap(1.0, A, S,
                    "INVITE sip:1002@pbx.example.com SIP/2.0\n" + viaA + dlg +
                        "CSeq: 1 INVITE\nContact: <sip:1001@127.0.0.1:5062>\nContent-Length: 0\n\n"));
    v.push_back(cap(1.01, S, B,
                    "INVITE sip:1002@127.0.0.1:5064 SIP/2.0\n" + viaS + viaA + dlg +
                        "CSeq: 1 INVITE\nContact: <sip:1001@127.0.0.1:5062>\nContent-Length: 0\n\n"));
    v.push_back(cap(1.02, B, S, "SIP/2.0 100 Trying\n" + viaS + viaA + dlg + "CSeq: 1 INVITE\nContent-Length: 0\n\n"));
    v.push_back(cap(1.03, B, S,
                    "SIP/2.0 486 Busy Here\n" + viaS + viaA + dlg.substr(0, dlg.find("\nCall-ID")) +
                        ";tag=fb\nCall-ID: busy@127.0.0.1\nCSeq: 1 INVITE\nContent-Length: 0\n\n"));
    v.push_back(cap(1.04, S, B,
                    "ACK sip:1002@127.0.0.1:5064 SIP/2.0\n" + viaS + dlg.substr(0, dlg.find("\nCall-ID")) +
                        ";tag=fb\nCall-ID: busy@127.0.0.1\nCSeq: 1 ACK\nContent-Length: 0\n\n"));
    v.push_back(cap(1.05, S, A,
                    "SIP/2.0 486 Busy Here\n" + viaA + dlg.substr(0, dlg.find("\nCall-ID")) +
                        ";tag=fb\nCall-ID: busy@127.0.0.1\nCSeq: 1 INVITE\nContent-Length: 0\n\n"));
    v.push_back(cap(1.06, A, S,
                    "ACK sip:1002@pbx.example.com SIP/2.0\n" + viaA + dlg.substr(0, dlg.find("\nCall-ID")) +
                        ";tag=fb\nCall-ID: busy@127.0.0.1\nCSeq: 1 ACK\nContent-Length: 0\n\n"));
    v.push_back(cap(2.0, A, S,
                    "OPTIONS sip:pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-o\n"
                    "From: <sip:1001@pbx.example.com>;tag=fo\nTo: <sip:pbx.example.com>\nCall-ID: o@h\n"
                    "CSeq: 1 OPTIONS\nContent-Length: 0\n\n"));
    Fixture f = importFlow(v);
    REQUIRE(f.steps.size() == 8);
    CHECK(automaticStep(f.steps[2])); // Bob's 100 Trying
    CHECK_FALSE(automaticStep(f.steps[3]));
    CHECK(automaticStep(f.steps[4])); // the server's ACK of Bob's 486: an optional expect
    CHECK(f.steps[4].optional);
    CHECK(f.steps[4].note == "auto: ACK 1002 [call1]");
    CHECK_FALSE(f.steps[5].optional); // the 486 to Alice
    CHECK(automaticStep(f.steps[6])); // Alice's ACK of the 486
    CHECK(f.steps[6].after == std::vector<int>{4, 6});
    CHECK(f.steps[7].after == std::vector<int>{4, 6}); // the OPTIONS: after Bob's 486 and Alice's 486, not an ACK
    CHECK(f.steps[7].delay == Approx(0.95));
}

TEST_CASE("import command: an unreadable trace is bad input (exit 2)") {
    ImportOptions o;
    o.trace = "/nonexistent/trace.pcap";
    o.output = "-";
    CHECK(importCommand(o) == 2);
}

TEST_CASE("import: with one phone, the server is the side that relays or registers, not the busier answerer") {
    // A BLF phone on 5060 answers many NOTIFYs of a server on 5080 it registered with.
    const char *P = "127.0.0.1:5060", *S = "127.0.0.1:5080";
    std::vector<Captured> v;
    v.push_back(cap(1.0, P, S,
                    "REGISTER sip:pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-r\n"
                    "From: <sip:1001@pbx.example.com>;tag=r\nTo: <sip:1001@pbx.example.com>\nCall-ID: r@h\n"
                    "CSeq: 1 REGISTER\nContact: <sip:1001@127.0.0.1:5060>\nContent-Length: 0\n\n"));
    v.push_back(cap(1.1, S, P,
                    "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-r\n"
                    "From: <sip:1001@pbx.example.com>;tag=r\nTo: <sip:1001@pbx.example.com>;tag=s\nCall-ID: r@h\n"
                    "CSeq: 1 REGISTER\nContent-Length: 0\n\n"));
    for (int i = 1; i <= 3; ++i) {
        std::string n = std::to_string(i);
        v.push_back(cap(2.0 + i, S, P,
                        "NOTIFY sip:1001@127.0.0.1:5060 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-n" + n +
                            "\nFrom: <sip:park@pbx.example.com>;tag=pk" + n +
                            "\nTo: <sip:1001@pbx.example.com>\nCall-ID: pk" + n +
                            "@h\nCSeq: 1 NOTIFY\n"
                            "Event: park-info\nContent-Length: 0\n\n"));
        v.push_back(cap(2.1 + i, P, S,
                        "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-n" + n +
                            "\nFrom: <sip:park@pbx.example.com>;tag=pk" + n + "\nTo: <sip:1001@pbx.example.com>;tag=t" +
                            n + "\nCall-ID: pk" + n + "@h\nCSeq: 1 NOTIFY\nContent-Length: 0\n\n"));
    }
    Fixture f = importFlow(v);
    CHECK(f.server.address == S);
    REQUIRE(f.participants.size() == 1);
    CHECK(f.participants[0].name == "u1001");
}
