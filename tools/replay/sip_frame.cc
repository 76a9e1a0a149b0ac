// parkway-replay readers: SIP start lines and message framing by Content-Length (read_internal.hh).
#include "read_internal.hh"

#include <algorithm>
#include <cctype>
#include <strings.h>

namespace parkway::replay::detail {

namespace {

// RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
bool isTokenChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-.!%*_+`'~").find(c) != std::string::npos;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

constexpr long long kMaxContentLength = 16 * 1024 * 1024;

} // namespace

// RFC 3261 §7.1 Request-Line = Method SP Request-URI SP SIP-Version; §7.2 Status-Line = SIP-Version SP
// Status-Code SP Reason-Phrase. SIP-Version is case-insensitive (§7.1).
bool isSipStartLine(std::string_view line) {
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    if (line.size() >= 12 && iequals(line.substr(0, 8), "SIP/2.0 ")) {
        bool digits = std::all_of(line.begin() + 8, line.begin() + 11, [](char c) { return c >= '0' && c <= '9'; });
        return digits && (line.size() == 11 || line[11] == ' ');
    }
    size_t sp1 = line.find(' ');
    if (sp1 == 0 || sp1 == std::string_view::npos || !std::all_of(line.begin(), line.begin() + sp1, isTokenChar))
        return false;
    size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1)
        return false;
    std::string_view uri = line.substr(sp1 + 1, sp2 - sp1 - 1);
    return uri.find(':') != std::string_view::npos && iequals(line.substr(sp2 + 1), "SIP/2.0");
}

size_t startLineWithin(std::string_view line) {
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    if (line.size() >= 8 && iequals(line.substr(0, 8), "SIP/2.0 ") && isSipStartLine(line))
        return 0;
    // A status line glued to the end of a body: "...SIP/2.0 200 OK".
    for (size_t at = line.find("SIP/2.0 "); at != std::string_view::npos; at = line.find("SIP/2.0 ", at + 1))
        if (isSipStartLine(line.substr(at)))
            return at;
    // A request line: "...INVITE sip:x SIP/2.0"; methods on the wire are upper case (RFC 3261 §7.1).
    // Methods on the wire are upper case (RFC 3261 §7.1): prefer the upper-case tail of the first word.
    if (line.size() < 9 || !iequals(line.substr(line.size() - 8), " SIP/2.0"))
        return std::string_view::npos;
    size_t uriSpace = line.rfind(' ', line.size() - 9);
    if (uriSpace == std::string_view::npos || uriSpace == 0)
        return std::string_view::npos;
    size_t m = uriSpace;
    while (m > 0 && line[m - 1] >= 'A' && line[m - 1] <= 'Z')
        --m;
    if (m < uriSpace && isSipStartLine(line.substr(m)))
        return m;
    return isSipStartLine(line) ? 0 : std::string_view::npos;
}

bool startsWithSip(std::string_view data) {
    size_t eol = data.find('\n');
    return eol != std::string_view::npos && isSipStartLine(data.substr(0, eol));
}

bool onlyLineEnds(std::string_view data) {
    return std::all_of(data.begin(), data.end(), [](char c) { return c == '\r' || c == '\n'; });
}

bool looksLikeTls(std::string_view d) {
    return d.size() >= 3 && static_cast<unsigned char>(d[0]) >= 20 && static_cast<unsigned char>(d[0]) <= 23 &&
           d[1] == 3 && static_cast<unsigned char>(d[2]) <= 4;
}

// RFC 3261 §7: the header section ends with an empty line (CRLF CRLF; a bare LF is accepted as a line end).
size_t bodyStart(std::string_view buf) {
    for (size_t pos = buf.find('\n'); pos != std::string_view::npos; pos = buf.find('\n', pos + 1)) {
        if (pos + 1 < buf.size() && buf[pos + 1] == '\n')
            return pos + 2;
        if (pos + 2 < buf.size() && buf[pos + 1] == '\r' && buf[pos + 2] == '\n')
            return pos + 3;
    }
    return std::string_view::npos;
}

std::string headerValue(std::string_view message, std::string_view name, std::string_view compact) {
    size_t end = bodyStart(message);
    std::string_view head = message.substr(0, end == std::string_view::npos ? message.size() : end);
    size_t pos = head.find('\n'); // skip the start line
    while (pos != std::string_view::npos && pos + 1 < head.size()) {
        size_t next = head.find('\n', pos + 1);
        std::string_view line = head.substr(pos + 1, (next == std::string_view::npos ? head.size() : next) - pos - 1);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string_view n = trimmed(line.substr(0, colon)); // HCOLON allows SP/HTAB before ':' (§25.1)
            if (iequals(n, name) || (!compact.empty() && iequals(n, compact)))
                return std::string(trimmed(line.substr(colon + 1)));
        }
        pos = next;
    }
    return "";
}

long long contentLength(std::string_view headers) {
    size_t end = bodyStart(headers);
    std::string_view head = headers.substr(0, end == std::string_view::npos ? headers.size() : end);
    size_t pos = head.find('\n');
    bool found = false;
    while (pos != std::string_view::npos && pos + 1 < head.size()) {
        size_t next = head.find('\n', pos + 1);
        std::string_view line = head.substr(pos + 1, (next == std::string_view::npos ? head.size() : next) - pos - 1);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string_view n = trimmed(line.substr(0, colon));
            if (iequals(n, "Content-Length") || iequals(n, "l")) { // §7.3.3 compact form
                found = true;
                std::string_view v = trimmed(line.substr(colon + 1));
                if (v.empty() || v.size() > 9 ||
                    !std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; }))
                    return -2;
                long long n2 = std::stoll(std::string(v));
                return n2 > kMaxContentLength ? -2 : n2;
            }
        }
        pos = next;
    }
    return found ? -2 : -1;
}

// RFC 3261 §18.3: on a stream transport, Content-Length tells where the message ends.
Frame frameMessage(std::string_view buf) {
    Frame f;
    size_t body = bodyStart(buf);
    if (body == std::string_view::npos) {
        if (buf.size() > 256 * 1024) {
            f.status = Frame::Bad;
            f.reason = "no end of headers in 256 KB";
        }
        return f;
    }
    long long cl = contentLength(buf.substr(0, body));
    if (cl == -2) {
        f.status = Frame::Bad;
        f.reason = "malformed Content-Length";
        return f;
    }
    f.noLength = cl < 0;
    size_t total = body + static_cast<size_t>(cl < 0 ? 0 : cl);
    if (buf.size() < total)
        return f;
    f.status = Frame::Complete;
    f.length = total;
    return f;
}

std::string datagramMessage(std::string_view data, std::string *note) {
    size_t body = bodyStart(data);
    if (body == std::string_view::npos)
        return std::string(data);
    long long cl = contentLength(data.substr(0, body));
    if (cl < 0)
        return std::string(data);
    if (body + static_cast<size_t>(cl) > data.size()) {
        if (note)
            *note = "Content-Length " + std::to_string(cl) + " is past the end of the datagram";
        return std::string(data);
    }
    return std::string(data.substr(0, body + static_cast<size_t>(cl)));
}

Transport topViaTransport(std::string_view message) {
    std::string via = headerValue(message, "Via", "v");
    // RFC 3261 §20.42: Via = sent-protocol LWS sent-by; sent-protocol = "SIP" SLASH "2.0" SLASH transport.
    size_t slash = via.find('/');
    slash = slash == std::string::npos ? slash : via.find('/', slash + 1);
    if (slash == std::string::npos)
        return Transport::Udp;
    size_t end = via.find_first_of(" \t", slash + 1);
    std::string name = via.substr(slash + 1, end == std::string::npos ? std::string::npos : end - slash - 1);
    try {
        return parseTransport(name);
    } catch (const TraceError &) {
        return Transport::Udp;
    }
}

} // namespace parkway::replay::detail
