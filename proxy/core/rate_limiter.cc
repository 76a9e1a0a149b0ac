#include "rate_limiter.hh"

#include <algorithm>

namespace parkway::proxy {

RateLimiter::Source *RateLimiter::find(const IpKey &ip, int64_t nowMs) {
    auto it = sources_.find(ip);
    if (it != sources_.end())
        return &it->second;
    if (sources_.size() >= s_.maxSources) {
        sweep(nowMs);
        if (sources_.size() >= s_.maxSources)
            return nullptr;
    }
    Source &src = sources_[ip];
    src.tokens = s_.burst;
    src.lastMs = nowMs;
    return &src;
}

RateLimiter::Verdict RateLimiter::take(Source &src, double cost, int64_t nowMs) {
    if (src.banUntilMs > nowMs)
        return Verdict::Drop;
    if (src.banUntilMs) { // the ban is over: start again with a full bucket
        src.banUntilMs = 0;
        src.tokens = s_.burst;
        src.lastMs = nowMs;
    }
    double elapsed = std::max<int64_t>(0, nowMs - src.lastMs) / 1000.0;
    src.tokens = std::min(s_.burst, src.tokens + elapsed * s_.rate);
    src.lastMs = nowMs;
    src.tokens -= cost;
    if (src.tokens >= 0)
        return Verdict::Pass;
    src.banUntilMs = nowMs + s_.banMs;
    return Verdict::Ban;
}

RateLimiter::Verdict RateLimiter::check(const IpKey &ip, int64_t nowMs) {
    if (!enabled())
        return Verdict::Pass;
    Source *src = find(ip, nowMs);
    return src ? take(*src, 1, nowMs) : Verdict::Pass;
}

RateLimiter::Verdict RateLimiter::penalize(const IpKey &ip, double cost, int64_t nowMs) {
    if (!enabled())
        return Verdict::Pass;
    Source *src = find(ip, nowMs);
    return src ? take(*src, cost, nowMs) : Verdict::Pass;
}

void RateLimiter::ban(const IpKey &ip, int64_t nowMs) {
    if (Source *src = find(ip, nowMs))
        src->banUntilMs = nowMs + s_.banMs;
}

bool RateLimiter::banned(const IpKey &ip, int64_t nowMs) const {
    auto it = sources_.find(ip);
    return it != sources_.end() && it->second.banUntilMs > nowMs;
}

void RateLimiter::sweep(int64_t nowMs) {
    for (auto it = sources_.begin(); it != sources_.end();) {
        const Source &src = it->second;
        double refilled = src.tokens + std::max<int64_t>(0, nowMs - src.lastMs) / 1000.0 * s_.rate;
        bool idle = src.banUntilMs <= nowMs && refilled >= s_.burst;
        it = idle ? sources_.erase(it) : std::next(it);
    }
}

std::vector<std::pair<std::string, int64_t>> RateLimiter::bans(int64_t nowMs) const {
    std::vector<std::pair<std::string, int64_t>> out;
    for (const auto &[ip, src] : sources_)
        if (src.banUntilMs > nowMs)
            out.emplace_back(ip.text(), src.banUntilMs - nowMs);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace parkway::proxy
