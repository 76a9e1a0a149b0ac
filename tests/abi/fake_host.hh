// A fake pw_host_api for testing modules in-process without SIP: requests are built from header lists,
// replies/targets/added headers are recorded, time and timers are controlled by the test.
#pragma once
#include "plugin/loader.hh"

#include <parkway/module.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fakehost {

struct Reply {
    int status = 0;
    std::string reason;
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<std::string> all(const std::string &name) const {
        std::vector<std::string> out;
        for (const auto &[n, v] : headers)
            if (n == name) out.push_back(v);
        return out;
    }
};

// A UAS dialog made by dialog_accept_commit (no SIP: its identity comes from the request's headers).
struct Dialog {
    std::string callId, localTag, remoteTag, localUri, remoteUri, remoteDisplay;
    const pw_dialog_callbacks *cbs = nullptr;
    void *arg = nullptr;
    bool answered = false; // the 2xx "left" (commit returned 0)
    std::deque<std::string> scratch;
};

struct Request {
    std::string method, ruri, source = "udp:127.0.0.1:5062";
    std::vector<std::pair<std::string, std::string>> headers; // one entry per value (already split)
    std::vector<Reply> replies;
    std::vector<std::pair<std::string, std::string>> targets; // (uri, next hop)
    std::vector<std::pair<std::string, std::string>> added;
    std::deque<std::string> scratch; // keeps returned views alive
    std::vector<std::shared_ptr<Dialog>> dialogs; // made by dialog_accept_commit (answered or discarded)
    // request_identity: unset = its From URI as in a domain without authentication; set = this (empty: nobody)
    std::optional<std::string> identity;
    int identitySource = PW_IDENTITY_UNAUTHENTICATED;
    bool final() const;                           // a final response was recorded
};

struct Timer {
    uint64_t id;
    int64_t dueMs;
    pw_timer_fn fn;
    void *arg;
};

struct Host {
    const pw_host_api *api();
    std::map<std::string, std::string> params, core;
    std::vector<std::string> domains{"127.0.0.1", "pbx.example.com"};
    int64_t nowMs = 1'700'000'000'000;
    pw_location_fn provider = nullptr;
    void *providerCtx = nullptr;
    std::vector<Timer> timers;
    uint64_t nextTimer = 1;
    std::vector<std::string> logs;
    std::map<std::string, double> counters;
    std::vector<std::pair<std::string, std::string>> events;
    std::deque<std::string> scratch;

    // Module lifecycle helpers.
    parkway::proxy::LoadedModule mod;
    void *ctx = nullptr;
    int init(const std::string &name, const std::string &dir, const std::map<std::string, std::string> &p);
    void destroy();
    pw_verdict send(Request &req);
    void advance(int64_t ms); // move the clock and fire due timers
    std::pair<int, std::string> command(const std::string &name, const std::string &args);
};

std::string lower(std::string s);

} // namespace fakehost
