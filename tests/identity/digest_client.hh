// A test phone's side of digest authentication (RFC 7616 §3.4): read a 401/407 challenge, answer it with
// credentials for a chosen algorithm, nonce-count and password. Built on the core's digest arithmetic, which
// test_digest.cc checks against the RFC's own example.
#pragma once
#include <core/digest.hh>
#include <sip_test.hh>

#include <map>
#include <regex>
#include <string>

namespace parkway::test {

// Parameters of one challenge header value: realm, nonce, algorithm, qop, stale.
inline std::map<std::string, std::string> challengeParams(const std::string &value) {
    std::map<std::string, std::string> out;
    static const std::regex param(R"re(([a-zA-Z]+)=("([^"]*)"|[^,\s]+))re");
    for (std::sregex_iterator it(value.begin(), value.end(), param), end; it != end; ++it)
        out[(*it)[1]] = (*it)[3].matched ? (*it)[3].str() : (*it)[2].str();
    return out;
}

struct DigestAnswer {
    DigestAnswer(std::string u, std::string pw, std::string algo = "SHA-256")
        : user(std::move(u)), password(std::move(pw)), algorithm(std::move(algo)) {}
    std::string user, password;
    std::string algorithm; // which of the offered challenges to answer
    unsigned nc = 1;
    std::string cnonce = "0a4f113b";
    std::string realmOverride, nonceOverride;
};

// The Authorization / Proxy-Authorization header line answering the challenge in `resp` (401 or 407) for a
// request `method` to `uri`. Empty when `resp` offers no challenge with that algorithm.
inline std::string authorize(const SipMessage &resp, const std::string &method, const std::string &uri,
                             const DigestAnswer &a) {
    bool www = resp.status() == 401;
    std::string challengeName = www ? "WWW-Authenticate" : "Proxy-Authenticate";
    for (unsigned i = 0; i < resp.headerCount(challengeName); ++i) {
        auto p = challengeParams(resp.header(challengeName, i));
        if (p["algorithm"] != a.algorithm)
            continue;
        auto algo = proxy::digest::parse(a.algorithm);
        proxy::digest::Credentials c;
        c.username = a.user;
        c.realm = a.realmOverride.empty() ? p["realm"] : a.realmOverride;
        c.nonce = a.nonceOverride.empty() ? p["nonce"] : a.nonceOverride;
        c.uri = uri;
        c.cnonce = a.cnonce;
        char nc[9];
        snprintf(nc, sizeof nc, "%08x", a.nc);
        c.nc = nc;
        c.qop = "auth";
        std::string ha1 = proxy::digest::ha1(*algo, c.username, c.realm, a.password);
        std::string response = proxy::digest::expectedResponse(*algo, ha1, method, c);
        return std::string(www ? "Authorization" : "Proxy-Authorization") + ": Digest username=\"" + c.username +
               "\", realm=\"" + c.realm + "\", nonce=\"" + c.nonce + "\", uri=\"" + uri + "\", response=\"" + response +
               "\", algorithm=" + a.algorithm + ", cnonce=\"" + c.cnonce + "\", qop=auth, nc=" + c.nc;
    }
    return {};
}

} // namespace parkway::test
