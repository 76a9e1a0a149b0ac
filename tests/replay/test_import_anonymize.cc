// import --anonymize (tools/replay/anonymize.hh): user parts and display names mapped the same everywhere,
// feature codes kept, digest values scrubbed, passwords not stored, the mapping reported.
#include "anonymize.hh"
#include "importer.hh"
#include "test_import_flows.hh"

#include <catch2/catch.hpp>

using namespace parkway::replay;
using replaytest::cap;

namespace {

// Alice registers (challenged with digest), then the park by REFER.
std::vector<Captured> registerAndPark() {
    const char *A = replaytest::A, *S = replaytest::S;
    std::string reg = "REGISTER sip:pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-reg1\n"
                      "From: \"Alice\" <sip:1001@pbx.example.com>;tag=reg-tag\nTo: <sip:1001@pbx.example.com>\n"
                      "Call-ID: reg-call@127.0.0.1\nCSeq: 1 REGISTER\nContact: <sip:1001@127.0.0.1:5062>\n"
                      "Content-Length: 0\n\n";
    std::vector<Captured> v;
    v.push_back(cap(90.0, A, S, reg));
    v.push_back(cap(90.01, S, A,
                    "SIP/2.0 401 Unauthorized\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-reg1\n"
                    "From: \"Alice\" <sip:1001@pbx.example.com>;tag=reg-tag\n"
                    "To: <sip:1001@pbx.example.com>;tag=srv-401\nCall-ID: reg-call@127.0.0.1\nCSeq: 1 REGISTER\n"
                    "WWW-Authenticate: Digest realm=\"pbx.example.com\", nonce=\"n0nce-secret\", "
                    "algorithm=SHA-256, qop=\"auth\"\nContent-Length: 0\n\n"));
    std::string authed = reg;
    authed.replace(authed.find("branch=z9hG4bK-reg1"), 19, "branch=z9hG4bK-reg2");
    authed.replace(authed.find("CSeq: 1"), 7, "CSeq: 2");
    authed.insert(authed.find("Content-Length"),
                  "Authorization: Digest username=\"1001\", realm=\"pbx.example.com\", nonce=\"n0nce-secret\", "
                  "uri=\"sip:pbx.example.com\", response=\"6629fae49393a05397450978507c4ef1\", "
                  "algorithm=SHA-256, cnonce=\"0a4f113b\", qop=auth, nc=00000001\n");
    v.push_back(cap(90.02, A, S, authed));
    auto park = replaytest::parkByRefer();
    v.insert(v.end(), park.begin(), park.end());
    return v;
}

Fixture importAnon(ImportSummary &sum, std::map<std::string, std::string> passwords = {}) {
    ReadResult r;
    r.messages = registerAndPark();
    ImportOptions o;
    o.trace = "anon.pcap";
    o.anonymize = true;
    o.passwords = std::move(passwords);
    return buildFixture(r, o, &sum);
}

bool anyLineHas(const Fixture &f, const std::string &what) {
    for (const auto &s : f.steps)
        for (const auto &l : s.message)
            if (l.find(what) != std::string::npos)
                return true;
    return false;
}

std::string line(const Step &s, const std::string &prefix) {
    for (const auto &l : s.message)
        if (l.rfind(prefix, 0) == 0)
            return l;
    return "";
}

} // namespace

TEST_CASE("import --anonymize maps users and display names everywhere, consistently") {
    ImportSummary sum;
    Fixture f = importAnon(sum);
    using P = std::pair<std::string, std::string>;
    CHECK(sum.userMap == std::vector<P>{{"1001", "7001"}, {"1002", "7002"}});
    CHECK(sum.displayMap == std::vector<P>{{"Alice", "Person 1"}});
    REQUIRE(f.participants.size() == 2);
    CHECK(f.participants[0].name == "u7001");
    CHECK(f.participants[0].user == "7001");
    CHECK(f.participants[1].name == "u7002");
    CHECK_FALSE(anyLineHas(f, "1001"));
    CHECK_FALSE(anyLineHas(f, "1002"));
    CHECK_FALSE(anyLineHas(f, "Alice"));
    const Step &invite = f.steps[3];
    CHECK(invite.message[0] == "INVITE sip:7002@pbx.example.com SIP/2.0");
    CHECK(line(invite, "From:") == "From: \"Person 1\" <sip:7001@pbx.example.com>;tag={{tag3}}");
    CHECK(line(invite, "o=") == "o=7001 {{sdpsess1}} {{sdpver1}} IN IP4 {{u7001.host}}");
    // *68103: slot 103 is nobody's user, so the dial string stays as the daemon's config expects it.
    CHECK(line(f.steps[10], "Refer-To:") == "Refer-To: <sip:*68103@pbx.example.com>");
    CHECK(line(f.steps[10], "Referred-By:") == "Referred-By: <sip:7002@pbx.example.com>");
    std::string text = summaryText(f, sum);
    CHECK(text.find("anonymize: user 1001 -> 7001\n") != std::string::npos);
    CHECK(text.find("anonymize: display name \"Alice\" -> \"Person 1\"\n") != std::string::npos);
}

TEST_CASE("import --anonymize scrubs digest values and stores no password") {
    ImportSummary sum;
    Fixture f = importAnon(sum, {{"1001", "secret"}});
    const Step &authed = f.steps[2];
    CHECK(line(authed, "Authorization:") ==
          "Authorization: Digest username=\"7001\", realm=\"pbx.example.com\", nonce=\"x\", "
          "uri=\"sip:pbx.example.com\", response=\"x\", algorithm=SHA-256, cnonce=\"x\", qop=auth, nc=00000001");
    CHECK(line(f.steps[1], "WWW-Authenticate:") ==
          "WWW-Authenticate: Digest realm=\"pbx.example.com\", nonce=\"x\", algorithm=SHA-256, qop=\"auth\"");
    CHECK(f.steps[1].body.empty());
    for (const auto &p : f.participants)
        CHECK(p.password.empty());
    CHECK_FALSE(anyLineHas(f, "secret"));
    CHECK(std::find_if(sum.warnings.begin(), sum.warnings.end(), [](const std::string &w) {
              return w.rfind("--anonymize: passwords are not stored", 0) == 0;
          }) != sum.warnings.end());
    // REGISTER counts CSeq per Call-ID (RFC 3261 §10.2): the second REGISTER is the first plus one.
    CHECK(line(authed, "CSeq:") == "CSeq: {{cseq1+1}} REGISTER");
}

TEST_CASE("anonymize: a feature code keeps its code and maps a user's extension") {
    importer::Anonymizer a;
    a.addSeenUser("7001");
    a.addIdentity("1002");
    a.addIdentity("alice");
    a.addIdentity("*68103"); // never an identity
    a.addDisplay("Bob \"B\" Smith");
    a.plan();
    CHECK(a.mapUser("1002") == "7002"); // 7001 is taken in the trace
    CHECK(a.mapUser("alice") == "user1");
    CHECK(a.mapUser("*681002") == "*687002");
    CHECK(a.mapUser("*68103") == "*68103");
    CHECK(a.mapUser("2999") == "2999");
    std::string msg = "NOTIFY sip:1002@h SIP/2.0\r\nTo: \"Bob \\\"B\\\" Smith\" <sip:1002@h>\r\nFrom: alice "
                      "<sip:alice@h>\r\n\r\n<parker display=\"Bob &quot;B&quot; Smith\">sip:%2A681002@h</parker>\r\n";
    CHECK(a.rewrite(msg) == "NOTIFY sip:7002@h SIP/2.0\r\nTo: \"Person 1\" <sip:7002@h>\r\nFrom: alice "
                            "<sip:user1@h>\r\n\r\n<parker display=\"Person 1\">sip:*687002@h</parker>\r\n");
}
