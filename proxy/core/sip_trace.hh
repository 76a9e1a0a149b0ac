// Recording what the SIP stack sends and receives ([proxy] sip_trace, GET/PUT/DELETE /api/trace; docs/replay.md
// "Recording"). Every SIP message sofia-sip's transports write or read (UDP, TCP, TLS as plaintext; requests and
// responses, proxied or made by a module) goes to one file, in Parkway's text trace format or as a pcap with
// IP/UDP/TCP framing on the real addresses and ports. The file is rotated by size.
//
// One trace per process. Everything here runs on the SIP thread (the thread whose su_root drives sofia-sip's
// transports): the hook is called there, and the control functions must be called there too (the admin API posts
// them with Proxy::post; reload and start-up already run there).
#pragma once
#include <sys/stat.h>

#include <cstdint>
#include <string>

namespace parkway::proxy {

struct TraceSettings {
    std::string target;               // "" = off; "pcap:FILE" or "text:FILE", FILE an absolute path
    uint64_t maxBytes = 100ull << 20; // before the record that would make FILE larger, FILE becomes FILE.1
    uint32_t files = 5;               // rotated files kept: FILE.1 (newest) .. FILE.<files>
    bool operator==(const TraceSettings &o) const {
        return target == o.target && maxBytes == o.maxBytes && files == o.files;
    }
};

constexpr uint64_t kTraceMinBytes = 1024, kTraceMaxBytes = 1ull << 40;
constexpr uint32_t kTraceMaxFiles = 1000;

// "" when target is acceptable ("" = off; "pcap:/abs/file" or "text:/abs/file" whose folder exists), else why not.
// (Inline: the config loader uses it without the SIP core.)
inline std::string checkTraceTarget(const std::string &target) {
    if (target.empty())
        return {};
    bool known = target.rfind("pcap:", 0) == 0 || target.rfind("text:", 0) == 0;
    if (!known)
        return "'" + target + "' is not a trace target (expected \"pcap:FILE\" or \"text:FILE\", or \"\" for off)";
    std::string file = target.substr(5);
    if (file.empty() || file[0] != '/')
        return "'" + target + "': FILE must be an absolute path";
    std::string dir = file.substr(0, file.rfind('/'));
    if (dir.empty())
        dir = "/";
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return "'" + target + "': folder " + dir + " does not exist";
    if (file.back() == '/' || (stat(file.c_str(), &st) == 0 && S_ISDIR(st.st_mode)))
        return "'" + target + "': FILE is a folder";
    return {};
}

// SIP thread. Makes the trace what s says: nothing happens when it already is (a reload with the same setting
// keeps writing the same file); otherwise the running trace is closed and, unless s.target is empty, a new one
// starts (an existing non-empty FILE is first rotated to FILE.1). Returns "" or why it could not start (then no
// trace runs).
std::string traceApply(const TraceSettings &s);
// SIP thread: {"enabled":bool,"target":..,"format":..,"file":..,"max_bytes":N,"max_files":N,"bytes":N
// (current file),"bytes_total":N,"records":N,"rotations":N,"files":[FILE, FILE.1, ...] (those that exist)}
std::string traceStatusJson();
// The settings in effect (target "" when off).
TraceSettings traceSettings();
// Whether our tport_dump_iovec() is the one sofia-sip calls (the program exports its symbols, as for
// sofia_fixes.cc). The core refuses to start a trace otherwise.
bool traceHookActive();

} // namespace parkway::proxy
