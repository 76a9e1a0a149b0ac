// parkway-replay: the messages of a SIP trace, whatever file they came from (docs/replay.md).
// A reader turns a pcap/pcapng capture or a text trace into one list of whole SIP messages, each with the
// transport and the real addresses it travelled between. Nothing here knows about dialogs or fixtures.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace parkway::replay {

enum class Transport { Udp, Tcp, Tls, Ws, Wss, Sctp };
// "udp", "tcp", ... (lower case, as in Parkway's text trace); parseTransport is case-insensitive and
// throws TraceError on an unknown name.
const char *transportName(Transport t);
Transport parseTransport(const std::string &name);

struct Address {
    std::string ip; // textual, without brackets: "127.0.0.1", "::1"
    uint16_t port = 0;
    // "127.0.0.1:5060" or "[::1]:5060"
    std::string str() const;
    bool operator==(const Address &o) const { return ip == o.ip && port == o.port; }
    bool operator!=(const Address &o) const { return !(*this == o); }
    bool operator<(const Address &o) const { return ip != o.ip ? ip < o.ip : port < o.port; }
};
// Parses "127.0.0.1:5060", "[::1]:5060"; throws TraceError naming the text on failure.
Address parseAddress(const std::string &text);

struct Captured {
    double time = 0;       // seconds since the Unix epoch (UTC), microsecond precision
    Transport transport = Transport::Udp;
    Address src, dst;
    std::string data;      // exactly one whole SIP message (start line, headers, blank line, body)
};

struct ReadResult {
    std::vector<Captured> messages; // in capture order
    std::vector<std::string> warnings; // what was skipped and why ("frame 12: not SIP", "TCP 1.2.3.4:5 -> ...: gap")
};

class TraceError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Reads a trace, format detected from its content: pcap (any byte order, µs or ns), pcapng, Parkway's text
// trace, Kamailio's sipdump text, sngrep's text export, SIPp's -trace_msg log. Throws TraceError naming the
// file and the position (frame/line) when the file cannot be read at all.
ReadResult readTrace(const std::string &path);
ReadResult readTraceBytes(const std::string &bytes, const std::string &name);

// Parkway's own text trace ([proxy] sip_trace = "text:FILE"; docs/replay.md "Recording"):
//   # parkway sip trace 1
//   --- 2026-12-01T14:50:00.123456Z recv udp 127.0.0.1:5062 -> 127.0.0.1:5060 512
//   <exactly 512 bytes of the message>
//   <one "\n">
// Direction is "recv" or "send" as seen by Parkway; src/dst are the real addresses; the count is in bytes.
// The writer is the daemon's (proxy/, [proxy] sip_trace); readTrace reads it back.

} // namespace parkway::replay
