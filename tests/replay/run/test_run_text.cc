// The runner's pure helpers (tools/replay/run_text.hh, runner.hh): message text, CSeq shifts, --server, digest.
#include "run_text.hh"
#include "runner.hh"

#include <core/digest.hh>

#include <catch2/catch.hpp>

using namespace parkway::replay;
namespace rt = parkway::replay::runtext;
namespace digest = parkway::proxy::digest;

namespace {
const std::string kResponse = "SIP/2.0 200 OK\r\n"
                              "v: SIP/2.0/UDP 127.0.0.10:5062;branch=z9hG4bK1\r\n"
                              "To: <sip:1001@pbx.example.com>;tag=abc\r\n"
                              "i: call@h\r\n"
                              "CSeq: 41 INVITE\r\n"
                              "Content-Length: 3\r\n\r\nv=0";
}

TEST_CASE("message text: start line, compact headers, parameters, body") {
    CHECK(rt::isResponse(kResponse));
    CHECK(rt::status(kResponse) == 200);
    CHECK(rt::method(kResponse) == "INVITE");
    CHECK(rt::header(kResponse, "Call-ID") == "call@h");
    CHECK(rt::header(kResponse, "via") == "SIP/2.0/UDP 127.0.0.10:5062;branch=z9hG4bK1");
    CHECK(rt::param(rt::header(kResponse, "To"), "tag") == "abc");
    CHECK(rt::param("<sip:a@b;tag=uri-param>", "tag").empty()); // a URI parameter is not the header's
    CHECK(rt::cseqNumber(kResponse) == 41);
    CHECK(rt::body(kResponse) == "v=0");
    CHECK(rt::requestUri("BYE sip:1@h:5 SIP/2.0\r\n\r\n") == "sip:1@h:5");
    CHECK(rt::summary(kResponse) == "SIP/2.0 200 OK (CSeq 41 INVITE, Call-ID call@h)");
    CHECK(rt::isHeaderLine("i: x", "Call-ID"));
    CHECK_FALSE(rt::isHeaderLine("Call-Info: x", "Call-ID"));
}

TEST_CASE("CSeq shifts move the number only") {
    std::string up = rt::shiftCSeq(kResponse, 1);
    CHECK(rt::cseqNumber(up) == 42);
    CHECK(rt::method(up) == "INVITE");
    CHECK(rt::shiftCSeq(up, -1) == kResponse);
}

TEST_CASE("server addresses (--server), and bad ones are input errors naming the option") {
    ServerAddress a = parseServerAddress("tcp:127.0.0.1:5070");
    CHECK(a.transport == "tcp");
    CHECK(a.host == "127.0.0.1");
    CHECK(a.port == 5070);
    CHECK(parseServerAddress("127.0.0.2").port == 5060);
    CHECK(parseServerAddress("127.0.0.2:5080").transport == "udp");
    CHECK_THROWS_AS(parseServerAddress("udp:127.0.0.1:x"), RunInputError);
    CHECK_THROWS_WITH(parseServerAddress("udp:127.0.0.1:70000"), Catch::Contains("--server"));
}

TEST_CASE("digest: the first supported challenge, answered as the server checks it") {
    std::vector<std::string> offered = {
        R"(Basic realm="x")",
        R"(Digest realm="pbx.example.com", nonce="n1", algorithm=SHA-256, qop="auth", opaque="o")",
        R"(Digest realm="pbx.example.com", nonce="n1", algorithm=MD5, qop="auth")"};
    auto c = rt::pickChallenge(offered);
    REQUIRE(c);
    CHECK(c->algorithm == "SHA-256");
    CHECK(c->opaque == "o");
    std::string v = rt::credentials(*c, "1001", "secret", "REGISTER", "sip:pbx.example.com", 1);
    digest::Credentials cr;
    cr.username = rt::authParam(v, "username"), cr.realm = rt::authParam(v, "realm");
    cr.nonce = rt::authParam(v, "nonce"), cr.uri = rt::authParam(v, "uri"), cr.qop = rt::authParam(v, "qop");
    cr.nc = rt::authParam(v, "nc"), cr.cnonce = rt::authParam(v, "cnonce");
    CHECK(cr.nc == "00000001");
    CHECK(rt::authParam(v, "opaque") == "o");
    std::string ha1 = digest::ha1(digest::Algorithm::Sha256, "1001", "pbx.example.com", "secret");
    CHECK(rt::authParam(v, "response") == digest::expectedResponse(digest::Algorithm::Sha256, ha1, "REGISTER", cr));
    // Without qop: the RFC 2069 form H(HA1:nonce:H(method:uri)).
    auto old = rt::pickChallenge({R"(Digest realm="r", nonce="n")"});
    REQUIRE(old);
    std::string w = rt::credentials(*old, "u", "p", "INVITE", "sip:x", 1);
    std::string h1 = digest::ha1(digest::Algorithm::Md5, "u", "r", "p");
    CHECK(rt::authParam(w, "response") ==
          digest::hash(digest::Algorithm::Md5, h1 + ":n:" + digest::hash(digest::Algorithm::Md5, "INVITE:sip:x")));
    CHECK_FALSE(rt::pickChallenge({R"(Digest realm="r", nonce="n", algorithm=SHA-512-256)"}));
}
