// Settings of the SIP core, filled by the daemon from the [proxy] table of the TOML config
// (proxy/app/config.*) and by tests directly.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace parkway::proxy {

struct CoreConfig {
    // sofia URLs, e.g. "sip:127.0.0.1:5060;transport=udp", "sip:127.0.0.1:5060;transport=tcp",
    // "sip:127.0.0.1:*" (ephemeral, tests). The first is the primary (Record-Route, Contact).
    std::vector<std::string> listen{"sip:127.0.0.1:5060;transport=udp", "sip:127.0.0.1:5060;transport=tcp"};
    std::vector<std::string> domains{"127.0.0.1"}; // local domains (router: -> location)
    std::string database = "parkway.db";            // SQLite file shared by modules ("core_setting database")
    std::string instance = "parkway";
    bool recordRoute = true;
    uint32_t maxForwards = 70; // inserted when a request has none
    uint32_t t1Ms = 500, t2Ms = 4000, t4Ms = 5000;
    uint32_t subMinExpires = 60, subMaxExpires = 3600;
    // Where module and core log lines go (level: 0 error, 1 warn, 2 info, 3 debug, as pw_log_level; module:
    // module name or "core"). Called on the SIP thread. Unset: plain lines on stderr (tests).
    std::function<void(int level, const std::string &module, const std::string &text)> logSink;
    std::string configDir; // folder of the config file: modules resolve their relative file parameters here
};

} // namespace parkway::proxy
