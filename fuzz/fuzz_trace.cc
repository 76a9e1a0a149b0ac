// fuzz_trace: parkway-replay's trace readers (tools/replay/read_*.cc, trace_read.cc) through readTraceBytes.
// Input: any file a QA engineer might hand to `parkway-replay import` — pcap/pcapng (libpcap, link layers, IPv4/IPv6
// fragments, UDP, TCP reassembly) or a text trace (Parkway, Kamailio sipdump, sngrep, SIPp -trace_msg).
// Invariants: only TraceError escapes; every message read is non-empty and starts with a SIP start line ended by a
// line end (readers hand out whole SIP messages only); a second read of the same bytes gives the same result.
#include "fuzz_common.hh"

#include <trace.hh>

#include <algorithm>
#include <cctype>
#include <string>

using namespace parkway::replay;
using parkway::fuzz::fail;

namespace {

std::string lower(std::string s) {
    for (auto &c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// RFC 3261 §7.1/§7.2, checked independently of the readers: "SIP/2.0 DDD ..." or "METHOD URI SIP/2.0".
bool startsWithStartLine(const std::string &m) {
    size_t eol = m.find('\n');
    if (eol == std::string::npos)
        return false;
    std::string line = lower(m.substr(0, eol));
    if (!line.empty() && line.back() == '\r')
        line.pop_back();
    if (line.compare(0, 8, "sip/2.0 ") == 0)
        return line.size() >= 11 && std::isdigit(static_cast<unsigned char>(line[8])) &&
               std::isdigit(static_cast<unsigned char>(line[9])) && std::isdigit(static_cast<unsigned char>(line[10]));
    return line.size() > 10 && line[0] != ' ' && std::count(line.begin(), line.end(), ' ') == 2 &&
           line.compare(line.size() - 8, 8, " sip/2.0") == 0;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string bytes(reinterpret_cast<const char *>(data), size);
    ReadResult first;
    try {
        first = readTraceBytes(bytes, "fuzz-input");
    } catch (const TraceError &) {
        return 0;
    }
    for (const auto &m : first.messages) {
        if (m.data.empty())
            fail("an empty message was read", bytes);
        if (!startsWithStartLine(m.data))
            fail("a message read does not start with a SIP start line", m.data);
    }
    ReadResult again = readTraceBytes(bytes, "fuzz-input");
    if (again.messages.size() != first.messages.size() || again.warnings != first.warnings)
        fail("reading the same bytes twice gave different results", bytes);
    return 0;
}
