// parkway-replay import: just enough SIP text parsing for the fixture builder (importer.hh). Works on the
// message text as captured; nothing here validates SIP beyond what grouping and symbolizing need.
#pragma once
#include <string>
#include <vector>

namespace parkway::replay::importer {

std::string lower(std::string s);
std::string trim(const std::string &s);
// Lower-case name with RFC 3261 §7.3.3 compact forms expanded ("i" -> "call-id").
std::string canonicalHeader(const std::string &name);

struct HeaderLine {
    std::string name;  // canonical (lower case, long form)
    std::string value; // trimmed
};

struct SipText {
    std::string startLine;
    bool request = false;
    std::string method;              // requests
    int status = 0;                  // responses
    std::string ruri;                // requests
    std::vector<std::string> lines;  // header lines as sent (continuation lines joined, RFC 3261 §7.3.1)
    std::vector<HeaderLine> headers; // parallel to `lines`
    std::string body;

    // The first header of that (canonical) name, or nullptr.
    const std::string *header(const std::string &name) const;
    // Every value of that header: comma-separated values and repeated lines, in order (Via, Route ...).
    std::vector<std::string> values(const std::string &name) const;
};

// Parses one whole message; false (with `why`) when the start line is not SIP.
bool parseSip(const std::string &data, SipText &out, std::string &why);

// Splits a header value at commas outside quotes and <>.
std::vector<std::string> splitComma(const std::string &value);
// A header parameter (";tag=x" after the URI, outside quotes and <>), unquoted; "" when absent.
std::string headerParam(const std::string &value, const std::string &name);

struct UriInfo {
    bool ok = false;
    std::string scheme, user, host; // user %-unescaped; host without brackets
    int port = 0;                   // 0 = not given
};
// The URI of a name-addr / addr-spec header value ("Bob" <sip:u@h:5060;lr>;tag=x), or a bare URI.
UriInfo uriOf(const std::string &value);

struct ViaInfo {
    std::string transport, host, branch;
    int port = 0; // 0 = not given
};
ViaInfo parseVia(const std::string &oneValue);

long cseqNumber(const SipText &m); // -1 when absent or bad
std::string cseqMethod(const SipText &m);
std::string tagOf(const SipText &m, const char *header); // "from" / "to"
std::string contentType(const SipText &m);               // lower case, without parameters

// Body split into lines (CRLF or LF), without the final line end.
std::vector<std::string> bodyLines(const std::string &body);

bool isIpv4(const std::string &s);
bool isIpLiteral(const std::string &s); // IPv4 or IPv6 (without brackets)

} // namespace parkway::replay::importer
