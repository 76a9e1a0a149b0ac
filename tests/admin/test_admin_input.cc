// What the admin API decides from a request's bytes alone: the head gate (request_gate) and the body parser
// with its limits (request_body). No server: these are the functions the fuzz targets call too.
#include "admin/request_body.hh"
#include "admin/request_gate.hh"

#include <catch2/catch.hpp>

#include <string>

using namespace parkway::proxy;
using json = nlohmann::json;

namespace {

GatePolicy policy(size_t maxBody = 1000) {
    GatePolicy p;
    p.maxBodyBytes = maxBody;
    p.token = "s3cret";
    p.needsToken = [](const std::vector<std::string> &seg) { return !(seg.size() == 1 && seg[0] == "health"); };
    return p;
}

int statusOf(const std::string &head, const GatePolicy &p = policy()) {
    GateDecision d = inspectHead(head, p);
    return d.refusal ? d.refusal->status : 0;
}

} // namespace

TEST_CASE("gate: the head ends at the first empty line (LF or CRLF)", "[admin-input]") {
    CHECK(headLength("GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY") == 27);
    CHECK(headLength("GET / HTTP/1.1\nHost: x\n\nBODY") == 24);
    CHECK(headLength("GET / HTTP/1.1\r\nHost: x\r\n") == 0);
    CHECK(headLength("GET / HTTP/1.1\r\nHost: x\r\n\r") == 0);
    CHECK(headLength("") == 0);
}

TEST_CASE("gate: heads are parsed as evhttp reads them", "[admin-input]") {
    RequestHead h;
    std::string err;
    REQUIRE(parseHead("PUT http://h:1/api/x?y=1 HTTP/1.0\r\nContent-Length:  12 \r\nX-A: b\r\n  c\r\n\r\n", h, err));
    CHECK(h.method == "PUT");
    CHECK(h.path == "/api/x");
    CHECK(*h.find("content-length") == "12");
    CHECK(*h.find("x-a") == "b c"); // folded continuation (RFC 7230 §3.2.4)
    CHECK_FALSE(parseHead("GET /\r\n\r\n", h, err));
    CHECK(err.find("request line") != std::string::npos);
    CHECK_FALSE(parseHead("GET / HTTP/2\r\n\r\n", h, err));
    CHECK_FALSE(parseHead("GET / HTTP/1.1\r\nno colon\r\n\r\n", h, err));
    CHECK_FALSE(parseHead("GET x HTTP/1.1\r\n\r\n", h, err));
}

TEST_CASE("gate: path segments are percent-decoded one by one", "[admin-input]") {
    CHECK(pathSegments("/api//parked/a%2Fb/?x=1") == std::vector<std::string>{"api", "parked", "a/b"});
    CHECK(pathSegments("/%61pi/%zz/%4") == std::vector<std::string>{"api", "%zz", "%4"});
    CHECK(pathSegments("/").empty());
}

TEST_CASE("gate: refusals in order, token before size", "[admin-input]") {
    const std::string auth = "Authorization: Bearer s3cret\r\n";
    CHECK(statusOf("GET /api/stats HTTP/1.1\r\n" + auth + "\r\n") == 0);
    CHECK(statusOf("GET /health HTTP/1.1\r\n\r\n") == 0);
    CHECK(statusOf("GET /api/stats HTTP/1.1\r\n\r\n") == 401);
    CHECK(statusOf("GET /api/stats HTTP/1.1\r\nAuthorization: Bearer s3cre\r\n\r\n") == 401);
    CHECK(statusOf("GET /api/stats HTTP/1.1\r\nAuthorization: bearer   s3cret \r\n\r\n") == 0);
    CHECK(statusOf("GET /%61pi/stats HTTP/1.1\r\n\r\n") == 401); // decoded like the router decodes it
    // No token and too big: 401 (a stranger learns nothing about limits).
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\nContent-Length: 99999\r\n\r\n") == 401);
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\n" + auth + "Content-Length: 99999\r\n\r\n") == 413);
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\n" + auth + "Content-Length: 1000\r\n\r\n") == 0);
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\n" + auth + "Content-Length: 99999999999999999999999\r\n\r\n") == 400);
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\n" + auth + "Content-Length: -1\r\n\r\n") == 400);
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n") == 411);
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\n" + auth + "Expect: 100-continue\r\n\r\n") == 0);
    CHECK(statusOf("POST /api/rules HTTP/1.1\r\n" + auth + "Expect: something\r\n\r\n") == 417);
    CHECK(statusOf("OPTIONS /api HTTP/1.1\r\n\r\n") == 405);
    CHECK(statusOf("BREW /api HTTP/1.1\r\n\r\n") == 501);
    GatePolicy open = policy();
    open.requireToken = false;
    CHECK(statusOf("GET /api/stats HTTP/1.1\r\n\r\n", open) == 0);
}

TEST_CASE("gate: evhttp reads no body for HEAD, the body length is what is let through", "[admin-input]") {
    const std::string auth = "Authorization: Bearer s3cret\r\n";
    CHECK(inspectHead("POST /api/rules HTTP/1.1\r\n" + auth + "Content-Length: 12\r\n\r\n", policy()).bodyBytes == 12);
    CHECK(inspectHead("HEAD /health HTTP/1.1\r\nContent-Length: 12\r\n\r\n", policy()).bodyBytes == 0);
    CHECK(inspectHead("GET /api/x HTTP/1.1\r\n" + auth + "\r\n", policy()).bodyBytes == 0);
}

TEST_CASE("body: empty is {}, objects only", "[admin-input]") {
    std::string err;
    CHECK(parseRequestBody("", err) == json::object());
    CHECK(parseRequestBody(" \r\n", err) == json::object());
    CHECK(parseRequestBody(R"({"a":[1,{"b":null}]})", err) == json{{"a", {1, {{"b", nullptr}}}}});
    BodyError why;
    CHECK_FALSE(parseRequestBody("[1]", err, {}, &why));
    CHECK(why == BodyError::NotObject);
    CHECK_FALSE(parseRequestBody(R"({"members": [1001, })", err, {}, &why));
    CHECK(why == BodyError::InvalidJson);
    CHECK(err.find("at byte 20") != std::string::npos);
    // A number no double holds is the client's mistake too (found by fuzz_admin_json: it was a 500).
    CHECK_FALSE(parseRequestBody(R"({"a":1e400})", err, {}, &why));
    CHECK(why == BodyError::InvalidJson);
    CHECK(err.find("1e400") != std::string::npos);
}

TEST_CASE("body: nesting is bounded before the parser runs", "[admin-input]") {
    std::string err;
    BodyError why;
    BodyLimits lim;
    lim.maxBytes = 1u << 20;
    lim.maxDepth = 4;
    CHECK(parseRequestBody(R"({"a":[[["x"]]]})", err, lim)); // 4 levels
    CHECK_FALSE(parseRequestBody(R"({"a":[[[["x"]]]]})", err, lim, &why));
    CHECK(why == BodyError::TooDeep);
    CHECK(err.find("deeper than 4 levels (at byte 8") != std::string::npos);
    // Brackets in strings (and escaped quotes) are not nesting.
    CHECK(parseRequestBody(R"({"a":"[[[[[[\"[[[[[","b":[["]]]]]"]]})", err, lim));
    // 100,000 levels, closed or not: refused by the scan, nothing recursive runs.
    std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
    CHECK_FALSE(parseRequestBody(deep, err, {}, &why));
    CHECK(why == BodyError::TooDeep);
    CHECK_FALSE(parseRequestBody(std::string(100000, '{'), err, {}, &why));
    CHECK(why == BodyError::TooDeep);
}

TEST_CASE("body: size and UTF-8", "[admin-input]") {
    std::string err;
    BodyError why;
    BodyLimits lim;
    lim.maxBytes = 10;
    CHECK_FALSE(parseRequestBody(R"({"a":"0123456789"})", err, lim, &why));
    CHECK(why == BodyError::TooLarge);
    CHECK(err.find("admin.max_body_bytes") != std::string::npos);
    CHECK_FALSE(parseRequestBody("{\"n\":\"Jos\xE9\"}", err, {}, &why));
    CHECK(why == BodyError::InvalidUtf8);
    CHECK(err == "request body is not valid UTF-8 (bad byte 0xE9 at byte 9)");
    CHECK(parseRequestBody("{\"n\":\"Jos\xC3\xA9\"}", err));
}

TEST_CASE("utf-8: RFC 3629 validity and repair", "[admin-input]") {
    size_t at = 99;
    CHECK(isValidUtf8("plain ascii"));
    CHECK(isValidUtf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80")); // é € 😀
    CHECK_FALSE(isValidUtf8("ab\xC0\xAF", &at));                // overlong '/'
    CHECK(at == 2);
    CHECK_FALSE(isValidUtf8("\xED\xA0\x80"));     // UTF-16 surrogate
    CHECK_FALSE(isValidUtf8("\xF4\x90\x80\x80")); // above U+10FFFF
    CHECK_FALSE(isValidUtf8("\xE2\x82"));         // truncated
    CHECK(toValidUtf8("Jos\xE9!") == "Jos\xEF\xBF\xBD!");
    CHECK(toValidUtf8("\xC3\xA9") == "\xC3\xA9");
    CHECK(isValidUtf8(toValidUtf8("\xFF\xFE\xE2\x82\xC3")));
}
