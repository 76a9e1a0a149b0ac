#include <catch2/catch.hpp>

#include "wire/sip_text.hh"

using namespace parkway::callpark;

TEST_CASE("parseReplaces (RFC 3891 §6.1)") {
    auto r = parseReplaces("98732@sip.example.com ; from-tag=r33th4x0r;to-tag=ff87ff ;early-only");
    REQUIRE(r);
    CHECK(r->callId == "98732@sip.example.com");
    CHECK(r->toTag == "ff87ff");
    CHECK(r->fromTag == "r33th4x0r");
    CHECK(r->earlyOnly);
    CHECK(formatReplaces(*r) == "98732@sip.example.com;to-tag=ff87ff;from-tag=r33th4x0r;early-only");

    auto r2 = parseReplaces("abc;TO-TAG=1;From-Tag=2;foo=bar");
    REQUIRE(r2);
    CHECK(r2->toTag == "1");
    CHECK(r2->fromTag == "2");
    CHECK_FALSE(r2->earlyOnly);
}

TEST_CASE("parseReplaces rejects malformed values with a reason") {
    const char* bad[] = {"",
                         ";to-tag=a;from-tag=b",
                         "cid",
                         "cid;to-tag=a",
                         "cid;from-tag=b",
                         "cid;to-tag=;from-tag=b",
                         "cid;to-tag=a;to-tag=c;from-tag=b",
                         "cid;;to-tag=a;from-tag=b",
                         "c id;to-tag=a;from-tag=b"};
    for (const char* v : bad) {
        std::string err;
        INFO(v);
        CHECK_FALSE(parseReplaces(v, &err));
        CHECK_FALSE(err.empty());
    }
}

TEST_CASE("parseNameAddr handles quoted, token and bare forms") {
    auto a = parseNameAddr("\"Bob \\\"B\\\" Smith\" <sip:1004@pbx.example.net>;tag=abc");
    REQUIRE(a);
    CHECK(a->display == "Bob \"B\" Smith");
    CHECK(a->uri == "sip:1004@pbx.example.net");
    CHECK(a->params == "tag=abc");

    auto b = parseNameAddr("James <sip:1003@pbx.example.net;transport=tcp>");
    REQUIRE(b);
    CHECK(b->display == "James");
    CHECK(b->uri == "sip:1003@pbx.example.net;transport=tcp");

    auto c = parseNameAddr("sip:1003@pbx.example.net;tag=x");
    REQUIRE(c);
    CHECK(c->display.empty());
    CHECK(c->uri == "sip:1003@pbx.example.net");
    CHECK(c->params == "tag=x");

    const char* bad[] = {"", "\"unterminated <sip:a@b>", "\"x\" sip:a@b", "<sip:a@b", "<nocolon>", "<sip:a@b> junk"};
    for (const char* v : bad) {
        INFO(v);
        std::string err;
        CHECK_FALSE(parseNameAddr(v, &err));
        CHECK_FALSE(err.empty());
    }
}

TEST_CASE("parseUri, uriUser, uriHost") {
    auto u = parseUri("sip:*68%23@PBX.Example.NET:5070;transport=udp?Subject=hi");
    REQUIRE(u);
    CHECK(u->scheme == "sip");
    CHECK(u->user == "*68%23");
    CHECK(u->host == "pbx.example.net");
    CHECK(u->port == 5070);
    CHECK(u->params == "transport=udp");
    CHECK(u->headers == "Subject=hi");
    CHECK(uriUser("sip:*68%23@d") == "*68#");
    CHECK(uriUser("sip:%2A88103@d") == "*88103");
    CHECK(uriUser("sip:*68103@d") == "*68103");
    CHECK(uriUser("sip:d") == "");
    CHECK(uriUser("sip:%zz@d") == "");
    CHECK(uriHost("sips:alice:secret@[2001:db8::1]:5061") == "[2001:db8::1]");
    CHECK(uriUser("tel:+15550001111;phone-context=x") == "+15550001111");
    const char* bad[] = {"", "nocolon", ":x", "http://x", "sip:", "sip:@host", "sip:a@", "sip:a@h:0", "sip:a@h:99999",
                         "sip:a@h:12x", "sip:a@[::1"};
    for (const char* v : bad) {
        INFO(v);
        std::string err;
        CHECK_FALSE(parseUri(v, &err));
        CHECK_FALSE(err.empty());
    }
}

TEST_CASE("parseReferTo: plain park code and an embedded escaped Replaces") {
    auto t = parseReferTo("<sip:*68103@pbx.example.net>");
    REQUIRE(t);
    CHECK(t->user == "*68103");
    CHECK(t->host == "pbx.example.net");
    CHECK(t->uri == "sip:*68103@pbx.example.net");
    CHECK_FALSE(t->replaces);

    auto h = parseReferTo("<sip:*68%23@pbx.example.net>");
    REQUIRE(h);
    CHECK(h->user == "*68#");

    auto r = parseReferTo(
        "\"Park\" <sip:park@192.0.2.1:5060;transport=udp?Require=replaces&Replaces=abc%40192.0.2.13%3Bto-tag%3Dpw1%3Bfrom-tag%3Dgs2>");
    REQUIRE(r);
    CHECK(r->uri == "sip:park@192.0.2.1:5060;transport=udp");
    REQUIRE(r->replaces);
    CHECK(r->replaces->callId == "abc@192.0.2.13");
    CHECK(r->replaces->toTag == "pw1");
    CHECK(r->replaces->fromTag == "gs2");

    std::string err;
    CHECK_FALSE(parseReferTo("<sip:x@d?Replaces=abc%3Bto-tag%3Da>", &err));  // from-tag missing
    CHECK_THAT(err, Catch::Contains("from-tag"));
    CHECK_FALSE(parseReferTo("<sip:x@d?Replaces=abc%3>", &err));
    CHECK_FALSE(parseReferTo("<sip:%4@d>", &err));
    CHECK_FALSE(parseReferTo("garbage", &err));
}

TEST_CASE("URL escaping round trips and referToWithReplaces builds a parseable Refer-To") {
    CHECK(urlUnescape("%2A68%23") == std::optional<std::string>("*68#"));
    CHECK_FALSE(urlUnescape("%2"));
    CHECK_FALSE(urlUnescape("abc%"));
    CHECK_FALSE(urlUnescape("%g0"));
    CHECK(urlEscapeHeaderValue("a@b;to-tag=c") == "a%40b%3Bto-tag%3Dc");
    CHECK(urlEscapeUser("*68#") == "*68%23");
    CHECK(urlEscapeUser("a b") == "a%20b");

    ReplacesValue rv{"cid@h", "tt", "ft", true};
    std::string referTo = referToWithReplaces("sip:103@d", rv);
    CHECK(referTo == "<sip:103@d?Replaces=cid%40h%3Bto-tag%3Dtt%3Bfrom-tag%3Dft%3Bearly-only>");
    auto back = parseReferTo(referTo);
    REQUIRE(back);
    REQUIRE(back->replaces);
    CHECK(back->replaces->callId == "cid@h");
    CHECK(back->replaces->earlyOnly);
    CHECK(referToWithReplaces("sip:103@d?X=1", rv).find("?X=1&Replaces=") != std::string::npos);
}
