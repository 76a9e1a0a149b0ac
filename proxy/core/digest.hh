// HTTP digest for SIP (RFC 3261 §22.4, RFC 7616, RFC 8760): HA1 per algorithm, stateless nonces and the response
// check. Pure functions over OpenSSL; no sofia-sip here, so the arithmetic is tested on its own. docs/auth.md.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parkway::proxy::digest {

enum class Algorithm { Sha256, Md5 };

// "SHA-256" / "MD5", as written in the algorithm parameter (RFC 8760 §2.3: SHA-256 is spelled with the dash).
const char *name(Algorithm a);
// The algorithm parameter of a client's credentials: absent means MD5 (RFC 2617 §3.2.2); "-sess" variants and
// anything else are not offered by us and give nullopt.
std::optional<Algorithm> parse(std::string_view algorithmParam);

// H() as lower-case hex (RFC 7616 §3.4.1).
std::string hash(Algorithm a, std::string_view data);
// HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2). What the store keeps instead of the password.
std::string ha1(Algorithm a, std::string_view user, std::string_view realm, std::string_view password);
// Whether text is a well-formed HA1 of this algorithm (hex of the right length).
bool validHa1(Algorithm a, std::string_view hex);

// What a client sent in Authorization / Proxy-Authorization (unquoted parameter values).
struct Credentials {
    std::string username, realm, nonce, uri, response, algorithm, cnonce, nc, qop, opaque;
};

// The expected response for qop=auth (RFC 7616 §3.4.1): H(HA1:nonce:nc:cnonce:qop:H(method:uri)).
std::string expectedResponse(Algorithm a, std::string_view ha1Hex, std::string_view method, const Credentials &c);
// Constant-time comparison of two hex strings (no early exit on the first difference).
bool sameHex(std::string_view a, std::string_view b);

// Stateless nonces: hex(issued-at seconds, 8 random bytes, HMAC-SHA-256(secret, issued-at | random | realm) cut
// to 16 bytes). Any node that knows the secret checks a nonce another node issued, also after a restart.
class NonceCodec {
public:
    explicit NonceCodec(std::string secret, int64_t ttlS) : secret_(std::move(secret)), ttlS_(ttlS) {}
    std::string make(std::string_view realm, int64_t nowS) const;
    enum class Check { Fresh, Stale, Bad };
    // Bad: not ours (forged, another realm, damaged, from the future); Stale: ours but older than the TTL.
    Check check(std::string_view nonce, std::string_view realm, int64_t nowS, int64_t *issuedAt = nullptr) const;
    int64_t ttlS() const { return ttlS_; }

private:
    std::string mac(uint64_t issued, std::string_view random, std::string_view realm) const;
    std::string secret_;
    int64_t ttlS_;
};

// Random bytes from OpenSSL's generator, as hex (2 * n characters).
std::string randomHex(size_t n);

} // namespace parkway::proxy::digest
