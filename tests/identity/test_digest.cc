// The digest arithmetic (RFC 7616) against the RFC's own example, and the stateless nonces.
#include <core/digest.hh>

#include <catch2/catch.hpp>

using namespace parkway::proxy;

namespace {

// RFC 7616 §3.9.1: Mufasa / "Circle of Life" in realm http-auth@example.org
digest::Credentials rfcExample() {
    digest::Credentials c;
    c.username = "Mufasa";
    c.realm = "http-auth@example.org";
    c.nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    c.uri = "/dir/index.html";
    c.cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    c.nc = "00000001";
    c.qop = "auth";
    return c;
}

} // namespace

TEST_CASE("digest responses match RFC 7616 section 3.9.1 for SHA-256 and MD5", "[digest]") {
    auto c = rfcExample();
    std::string sha = digest::ha1(digest::Algorithm::Sha256, c.username, c.realm, "Circle of Life");
    std::string md5 = digest::ha1(digest::Algorithm::Md5, c.username, c.realm, "Circle of Life");
    CHECK(digest::expectedResponse(digest::Algorithm::Sha256, sha, "GET", c) ==
          "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    CHECK(digest::expectedResponse(digest::Algorithm::Md5, md5, "GET", c) == "8ca523f5e9506fed4657c9700eebdbec");
    CHECK(digest::validHa1(digest::Algorithm::Sha256, sha));
    CHECK(digest::validHa1(digest::Algorithm::Md5, md5));
    CHECK_FALSE(digest::validHa1(digest::Algorithm::Md5, sha));
}

TEST_CASE("algorithm names: absent is MD5, sess variants and unknown ones are refused", "[digest]") {
    CHECK(digest::parse("") == digest::Algorithm::Md5);
    CHECK(digest::parse("md5") == digest::Algorithm::Md5);
    CHECK(digest::parse("SHA-256") == digest::Algorithm::Sha256);
    CHECK_FALSE(digest::parse("SHA-256-sess").has_value());
    CHECK_FALSE(digest::parse("SHA-512-256").has_value());
}

TEST_CASE("nonces: fresh, stale after the TTL, bad when forged or for another realm or secret", "[digest]") {
    digest::NonceCodec codec("a-secret-of-sixteen+", 300);
    std::string n = codec.make("pbx.example.com", 1000000);
    CHECK(n.size() == 64);
    CHECK(codec.check(n, "pbx.example.com", 1000000 + 10) == digest::NonceCodec::Check::Fresh);
    CHECK(codec.check(n, "pbx.example.com", 1000000 + 301) == digest::NonceCodec::Check::Stale);
    CHECK(codec.check(n, "other.example.com", 1000000) == digest::NonceCodec::Check::Bad);
    CHECK(digest::NonceCodec("another-secret-xyz", 300).check(n, "pbx.example.com", 1000000) ==
          digest::NonceCodec::Check::Bad);
    std::string forged = n;
    forged[3] = forged[3] == '0' ? '1' : '0'; // move the issue time: the MAC no longer matches
    CHECK(codec.check(forged, "pbx.example.com", 1000000) == digest::NonceCodec::Check::Bad);
    CHECK(codec.check("short", "pbx.example.com", 1000000) == digest::NonceCodec::Check::Bad);
    // from the future (beyond a minute of clock skew between nodes)
    CHECK(codec.check(codec.make("pbx.example.com", 1000000 + 120), "pbx.example.com", 1000000) ==
          digest::NonceCodec::Check::Bad);
    // two nonces differ (random part)
    CHECK(codec.make("pbx.example.com", 1000000) != codec.make("pbx.example.com", 1000000));
}

TEST_CASE("sameHex compares case-insensitively and by length", "[digest]") {
    CHECK(digest::sameHex("abcdef", "ABCDEF"));
    CHECK_FALSE(digest::sameHex("abcdef", "abcdee"));
    CHECK_FALSE(digest::sameHex("abc", "abcd"));
}
