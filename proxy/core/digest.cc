#include "digest.hh"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>
#include <strings.h>

namespace parkway::proxy::digest {

namespace {

std::string toHex(const unsigned char *p, size_t n) {
    static const char *digits = "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    return out;
}

bool isHex(std::string_view s) {
    for (char ch : s)
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
    return true;
}

uint64_t parseHex64(std::string_view s) {
    uint64_t v = 0;
    for (char ch : s)
        v = v * 16 + static_cast<uint64_t>(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
    return v;
}

} // namespace

const char *name(Algorithm a) {
    return a == Algorithm::Sha256 ? "SHA-256" : "MD5";
}

std::optional<Algorithm> parse(std::string_view p) {
    if (p.empty() || (p.size() == 3 && !strncasecmp(p.data(), "MD5", 3)))
        return Algorithm::Md5;
    if (p.size() == 7 && !strncasecmp(p.data(), "SHA-256", 7))
        return Algorithm::Sha256;
    return std::nullopt;
}

std::string hash(Algorithm a, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    const EVP_MD *md = a == Algorithm::Sha256 ? EVP_sha256() : EVP_md5();
    if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1)
        throw std::runtime_error("digest: OpenSSL hash failed");
    return toHex(out, len);
}

std::string ha1(Algorithm a, std::string_view user, std::string_view realm, std::string_view password) {
    std::string s;
    s.reserve(user.size() + realm.size() + password.size() + 2);
    s.append(user).append(":").append(realm).append(":").append(password);
    std::string h = hash(a, s);
    OPENSSL_cleanse(s.data(), s.size());
    return h;
}

bool validHa1(Algorithm a, std::string_view hex) {
    return hex.size() == (a == Algorithm::Sha256 ? 64u : 32u) && isHex(hex);
}

std::string expectedResponse(Algorithm a, std::string_view ha1Hex, std::string_view method, const Credentials &c) {
    std::string a2;
    a2.append(method).append(":").append(c.uri);
    std::string kd;
    kd.append(ha1Hex).append(":").append(c.nonce).append(":").append(c.nc).append(":").append(c.cnonce);
    kd.append(":").append(c.qop).append(":").append(hash(a, a2));
    return hash(a, kd);
}

bool sameHex(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    std::string la(a), lb(b);
    for (auto &ch : la)
        ch = static_cast<char>(ch | 0x20);
    for (auto &ch : lb)
        ch = static_cast<char>(ch | 0x20);
    return CRYPTO_memcmp(la.data(), lb.data(), la.size()) == 0;
}

std::string randomHex(size_t n) {
    std::string bytes(n, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char *>(bytes.data()), static_cast<int>(n)) != 1)
        throw std::runtime_error("digest: OpenSSL random generator failed");
    return toHex(reinterpret_cast<const unsigned char *>(bytes.data()), n);
}

std::string NonceCodec::mac(uint64_t issued, std::string_view random, std::string_view realm) const {
    std::string data = std::to_string(issued);
    data.append("|").append(random).append("|").append(realm);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
              reinterpret_cast<const unsigned char *>(data.data()), data.size(), out, &len))
        throw std::runtime_error("digest: OpenSSL HMAC failed");
    return toHex(out, 16);
}

// Layout: 16 hex digits issued-at, 16 hex digits random, 32 hex digits MAC.
std::string NonceCodec::make(std::string_view realm, int64_t nowS) const {
    char issued[17];
    snprintf(issued, sizeof issued, "%016llx", static_cast<unsigned long long>(nowS));
    std::string random = randomHex(8);
    return std::string(issued) + random + mac(static_cast<uint64_t>(nowS), random, realm);
}

NonceCodec::Check NonceCodec::check(std::string_view nonce, std::string_view realm, int64_t nowS,
                                    int64_t *issuedAt) const {
    if (nonce.size() != 64 || !isHex(nonce))
        return Check::Bad;
    uint64_t issued = parseHex64(nonce.substr(0, 16));
    if (!sameHex(nonce.substr(32), mac(issued, nonce.substr(16, 16), realm)))
        return Check::Bad;
    auto at = static_cast<int64_t>(issued);
    if (issuedAt)
        *issuedAt = at;
    if (at > nowS + 60)
        return Check::Bad; // from the future beyond clock skew between nodes
    return nowS - at > ttlS_ ? Check::Stale : Check::Fresh;
}

} // namespace parkway::proxy::digest
