// Per-source request rate limiting with a temporary ban (in the spirit of Kamailio's pike module).
// Each source address has a token bucket: `rate` requests per second sustained, `burst` at once. A source that
// runs its bucket dry is banned for `banMs`: its requests are dropped without an answer (answering a flood
// would amplify it). Trusted peers are never limited (the caller checks them first). SIP thread only.
#pragma once
#include "address_set.hh"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace parkway::proxy {

class RateLimiter {
public:
    struct Settings {
        double rate = 0;           // requests per second per source; 0 disables the limiter
        double burst = 0;          // bucket size (requests)
        int64_t banMs = 60000;     // how long a source stays banned
        size_t maxSources = 65536; // sources tracked at once (memory bound); beyond, new ones are not tracked
    };
    enum class Verdict { Pass, Drop, Ban }; // Ban: this request started a ban (log it once)

    RateLimiter() = default;
    explicit RateLimiter(Settings s) : s_(s) {}
    bool enabled() const { return s_.rate > 0; }
    // One request from ip at nowMs.
    Verdict check(const IpKey &ip, int64_t nowMs);
    // Charge `cost` extra requests to ip (e.g. a failed authentication), which may start a ban.
    Verdict penalize(const IpKey &ip, double cost, int64_t nowMs);
    bool banned(const IpKey &ip, int64_t nowMs) const;
    // Ban ip now for banMs (e.g. too many failed authentications), also when the limiter is off.
    void ban(const IpKey &ip, int64_t nowMs);
    // Forget sources whose bucket is full again and that are not banned. Call every few seconds.
    void sweep(int64_t nowMs);
    size_t tracked() const { return sources_.size(); }
    std::vector<std::pair<std::string, int64_t>> bans(int64_t nowMs) const; // address, ms left

private:
    struct Source {
        double tokens = 0;
        int64_t lastMs = 0, banUntilMs = 0;
    };
    Source *find(const IpKey &ip, int64_t nowMs);
    Verdict take(Source &src, double cost, int64_t nowMs);

    Settings s_;
    std::unordered_map<IpKey, Source, IpKeyHash> sources_;
};

} // namespace parkway::proxy
