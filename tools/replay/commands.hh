// The three subcommands of parkway-replay (docs/replay.md). Each returns the process exit code:
// 0 success, 1 the replay found a difference (run only), 2 bad input (a message naming the file/thing on
// stderr).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace parkway::replay {

struct ImportOptions {
    std::string trace;                  // pcap, pcapng or text trace
    std::string output;                 // fixture path ("-" = stdout)
    std::vector<std::string> servers;   // "127.0.0.1:5060" (any transport); empty = the address that answers most
    std::string name;                   // fixture name (default: the trace's file name without extension)
    bool anonymize = false;             // map user parts, drop passwords (docs/replay.md "Privacy")
    std::map<std::string, std::string> passwords; // user -> password, stored in the fixture for digest
};
int importCommand(const ImportOptions &o);

struct RunOptions {
    std::string fixture;
    std::string server = "udp:127.0.0.1:5060"; // transport:host:port
    double speed = 1.0;         // delays in the fixture are divided by this
    double timeout = 10.0;      // seconds to wait for one expected message, at most
    std::string junit;          // JUnit XML report path, if any
    std::string bindBase = "127.0.0.10"; // first loopback address for participants (each gets the next)
    std::map<std::string, std::string> passwords; // user -> password (overrides the fixture's)
    bool verbose = false;       // print every step as it passes
};
int runCommand(const RunOptions &o);

struct ExportOptions {
    std::string fixture;
    std::string sippDir;        // writes one scenario per participant + a README of how to run them
};
int exportCommand(const ExportOptions &o);

} // namespace parkway::replay
