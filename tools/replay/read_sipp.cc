// parkway-replay readers: SIPp's -trace_msg log (read_internal.hh). Each entry is
//   ----------------------------------------------- 2026-12-01 14:54:21.890918
//   UDP message sent (505 bytes):            or   UDP message received [307] bytes :
//   <empty line>
//   <the message>\n
// The log names no addresses. SIPp talks to one remote address, so: the local address is the sent-by of the Via
// SIPp puts in the first request it sends (else the Contact of the first message it sends); the remote address is
// the Request-URI of the first request it sends (SIPp sends to its remote host, normally the same), else the top
// Via (received/rport first, RFC 3261 §18.2.2, RFC 3581 §4) of the first request it receives. A warning says
// what was inferred.
#include "read_internal.hh"

#include <cstdio>
#include <regex>
#include <strings.h>

namespace parkway::replay::detail {

namespace {

const std::string kDashes(47, '-');

struct Entry {
    double time = 0;
    bool sent = false;
    Transport transport = Transport::Udp;
    std::vector<std::string> messages;
    size_t line = 0;
};

bool parseSippTime(const std::string &s, double &out) {
    int y, mo, d, h, mi, sec, n = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*[ \t]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return false;
    double frac = 0;
    std::string rest = s.substr(size_t(n));
    if (!rest.empty() && rest[0] == '.') {
        size_t end = rest.find_first_not_of("0123456789", 1);
        frac = std::stod("0" + rest.substr(0, end));
        rest = end == std::string::npos ? "" : rest.substr(end);
    }
    double epoch = 0;
    if (!rest.empty() && rest[0] == '\t' && std::sscanf(rest.c_str() + 1, "%lf", &epoch) == 1 && epoch > 0) {
        out = epoch; // older SIPp versions also write seconds since the epoch
        return true;
    }
    out = utcSeconds(y, mo, d, h, mi, sec, frac);
    return true;
}

bool isSeparator(std::string_view line) {
    return line.size() > kDashes.size() + 1 && line.compare(0, kDashes.size(), kDashes) == 0 &&
           line[kDashes.size()] == ' ';
}

uint16_t portNumber(const std::string &s, size_t at) {
    size_t end = s.find_first_not_of("0123456789", at);
    std::string digits = s.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (digits.empty() || digits.size() > 5 || std::stoul(digits) > 65535)
        return 0;
    return static_cast<uint16_t>(std::stoul(digits));
}

// host[:port] at the start of `s` (ends at ';', '?', '>', ',', blank); port 0 when absent.
Address hostPort(std::string s) {
    size_t end = s.find_first_of(";?>, \t");
    s = s.substr(0, end);
    Address a;
    if (!s.empty() && s[0] == '[') {
        size_t close = s.find(']');
        a.ip = s.substr(1, close == std::string::npos ? std::string::npos : close - 1);
        if (close != std::string::npos && close + 1 < s.size() && s[close + 1] == ':')
            a.port = portNumber(s, close + 2);
        return a;
    }
    size_t colon = s.find(':');
    a.ip = s.substr(0, colon);
    if (colon != std::string::npos)
        a.port = portNumber(s, colon + 1);
    return a;
}

// The host:port of a SIP URI ("sip:1001@127.0.0.1:5060;transport=udp", in angle brackets or not).
Address uriHostPort(std::string uri) {
    size_t lt = uri.find('<');
    if (lt != std::string::npos)
        uri = uri.substr(lt + 1);
    size_t colon = uri.find(':');
    if (colon == std::string::npos)
        return {};
    bool sips = uri.compare(0, 4, "sips") == 0 || uri.compare(0, 4, "SIPS") == 0;
    uri = uri.substr(colon + 1);
    size_t params = uri.find_first_of(";?>");
    size_t at = uri.rfind('@', params);
    if (at != std::string::npos)
        uri = uri.substr(at + 1);
    Address a = hostPort(uri);
    if (a.port == 0)
        a.port = sips ? 5061 : 5060; // RFC 3261 §19.1.2 default ports
    return a;
}

// The value of ";name=value" in a Via (case-insensitive name; RFC 3261 §20.42 via-params).
std::string paramValue(const std::string &via, const std::string &name) {
    for (size_t semi = via.find(';'); semi != std::string::npos; semi = via.find(';', semi + 1)) {
        size_t at = via.find_first_not_of(" \t", semi + 1);
        if (at == std::string::npos || strncasecmp(via.c_str() + at, name.c_str(), name.size()) != 0)
            continue;
        size_t eq = via.find_first_not_of(" \t", at + name.size());
        if (eq == std::string::npos || via[eq] != '=')
            continue;
        size_t v = via.find_first_not_of(" \t", eq + 1);
        if (v == std::string::npos)
            return "";
        return via.substr(v, via.find_first_of(";, \t", v) - v);
    }
    return "";
}

// sent-by of a Via value ("SIP/2.0/UDP 127.0.0.1:5060;branch=..."), honouring received= and rport=.
Address viaSentBy(const std::string &via, bool useReceived) {
    size_t sp = via.find_first_of(" \t");
    if (sp == std::string::npos)
        return {};
    Address a = hostPort(via.substr(via.find_first_not_of(" \t", sp)));
    if (a.port == 0)
        a.port = 5060;
    if (useReceived) {
        std::string received = paramValue(via, "received"), rport = paramValue(via, "rport");
        if (!received.empty())
            a.ip = received;
        if (!rport.empty() && portNumber(rport, 0) != 0)
            a.port = portNumber(rport, 0);
    }
    return a;
}

std::vector<std::string> splitMessages(std::string_view block, Transport t) {
    if (t == Transport::Udp)
        return {datagramMessage(block, nullptr)};
    std::vector<std::string> out; // a stream read may hold several messages (older SIPp logged raw reads)
    while (!block.empty()) {
        while (!block.empty() && (block[0] == '\r' || block[0] == '\n'))
            block.remove_prefix(1);
        if (block.empty())
            break;
        Frame f = frameMessage(block);
        size_t n = f.status == Frame::Complete ? f.length : block.size();
        out.emplace_back(block.substr(0, n));
        block.remove_prefix(n);
    }
    return out;
}

std::vector<Entry> parseEntries(std::string_view b, Collector &out) {
    static const std::regex kind(
        R"(([A-Za-z0-9]+) (control )?message (sent \(([0-9]+) bytes\):|received \[([0-9]+)\] bytes :))");
    std::vector<Entry> entries;
    size_t pos = 0, line = 1;
    auto nextLine = [&](size_t p) {
        size_t e = b.find('\n', p);
        return e == std::string_view::npos ? b.size() : e + 1;
    };
    while (pos < b.size() && !isSeparator(b.substr(pos, nextLine(pos) - pos))) { // SIPp's diagnostics first
        pos = nextLine(pos);
        ++line;
    }
    while (pos < b.size()) {
        size_t headEnd = nextLine(pos);
        std::string_view head = b.substr(pos, headEnd - pos);
        size_t kindEnd = nextLine(headEnd);
        std::string kindLine(b.substr(headEnd, kindEnd - headEnd));
        while (!kindLine.empty() && (kindLine.back() == '\n' || kindLine.back() == '\r'))
            kindLine.pop_back();
        // The message runs to the line before the next separator.
        size_t end = kindEnd;
        while (end < b.size() && !isSeparator(b.substr(end, nextLine(end) - end)))
            end = nextLine(end);
        Entry e;
        e.line = line;
        std::smatch m;
        std::string time(head.substr(kDashes.size() + 1));
        while (!time.empty() && (time.back() == '\n' || time.back() == '\r'))
            time.pop_back();
        if (kindLine.size() > 200 || time.size() > 100 || !std::regex_match(kindLine, m, kind) ||
            !parseSippTime(time, e.time)) {
            out.warn(out.name() + ": line " + std::to_string(line) + ": not a SIPp message entry, skipped");
        } else {
            e.sent = m[4].matched;
            try {
                e.transport = parseTransport(m[1]);
            } catch (const TraceError &) {
                e.transport = Transport::Udp;
            }
            size_t dataAt = std::min(nextLine(kindEnd), end); // the empty line after the kind line
            std::string_view block = b.substr(dataAt, end - dataAt);
            std::string count = m[4].matched ? m[4].str() : m[5].str();
            size_t n = count.size() <= 9 ? std::stoul(count) : block.size() + 1;
            // SIPp may write its own diagnostics after a message; the byte count says where the message ends.
            if (n <= block.size())
                block = block.substr(0, n);
            else if (!block.empty() && block.back() == '\n')
                block.remove_suffix(1);
            e.messages = splitMessages(block, e.transport);
            entries.push_back(std::move(e));
        }
        line += size_t(std::count(b.begin() + pos, b.begin() + end, '\n'));
        pos = end;
    }
    return entries;
}

struct Peers {
    Address local, remote;
    std::string localFrom = "nothing (0.0.0.0:0)", remoteFrom = "nothing (0.0.0.0:0)";
};

Peers inferPeers(const std::vector<Entry> &entries) {
    Peers p;
    p.local = Address{"0.0.0.0", 0};
    p.remote = p.local;
    bool haveLocal = false, haveRemote = false;
    for (int pass = 0; pass < 2; ++pass)
        for (const auto &e : entries)
            for (const auto &msg : e.messages) {
                bool request = msg.compare(0, 4, "SIP/") != 0;
                if (pass == 0 && e.sent && request && !haveLocal) {
                    p.local = viaSentBy(headerValue(msg, "Via", "v"), false);
                    p.localFrom = "the Via of the first request it sent";
                    haveLocal = !p.local.ip.empty();
                }
                if (pass == 0 && e.sent && request && !haveRemote) {
                    size_t sp = msg.find(' ');
                    p.remote = uriHostPort(msg.substr(sp + 1, msg.find(' ', sp + 1) - sp - 1));
                    p.remoteFrom = "the Request-URI of the first request it sent";
                    haveRemote = !p.remote.ip.empty();
                }
                if (pass == 1 && e.sent && !haveLocal && !headerValue(msg, "Contact", "m").empty()) {
                    p.local = uriHostPort(headerValue(msg, "Contact", "m"));
                    p.localFrom = "the Contact of the first message it sent";
                    haveLocal = !p.local.ip.empty();
                }
                if (pass == 1 && !e.sent && request && !haveRemote) {
                    p.remote = viaSentBy(headerValue(msg, "Via", "v"), true);
                    p.remoteFrom = "the top Via of the first request it received";
                    haveRemote = !p.remote.ip.empty();
                }
            }
    return p;
}

} // namespace

// A separator line among the first lines, followed by a message kind line.
bool isSippLog(std::string_view b) {
    static const std::regex kind(R"([A-Za-z0-9]+ (control )?message (sent|received) .*)");
    size_t pos = 0;
    for (int i = 0; i < 10 && pos < b.size(); ++i) {
        size_t eol = b.find('\n', pos);
        if (eol == std::string_view::npos)
            return false;
        if (isSeparator(b.substr(pos, eol - pos))) {
            size_t kindEnd = b.find('\n', eol + 1);
            std::string next(
                b.substr(eol + 1, std::min<size_t>(kindEnd == std::string_view::npos ? b.size() : kindEnd, eol + 200) -
                                      eol - 1));
            return std::regex_match(next, kind);
        }
        pos = eol + 1;
    }
    return false;
}

void readSippLog(const std::string &bytes, Collector &out) {
    std::vector<Entry> entries = parseEntries(bytes, out);
    Peers peers = inferPeers(entries);
    uint64_t n = 0;
    for (auto &e : entries)
        for (auto &msg : e.messages) {
            if (!startsWithSip(msg)) {
                if (!onlyLineEnds(msg))
                    out.warn(out.name() + ": line " + std::to_string(e.line) + ": not a SIP message, skipped");
                continue;
            }
            Captured c;
            c.time = e.time;
            c.transport = e.transport;
            c.src = e.sent ? peers.local : peers.remote;
            c.dst = e.sent ? peers.remote : peers.local;
            c.data = std::move(msg);
            out.message(std::move(c), ++n);
        }
    out.warn(out.name() + ": SIPp log without addresses: SIPp taken as " + peers.local.str() + " (" + peers.localFrom +
             "), its peer as " + peers.remote.str() + " (" + peers.remoteFrom + "); times read as UTC");
}

} // namespace parkway::replay::detail
