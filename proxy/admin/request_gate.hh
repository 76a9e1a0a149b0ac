// The admin API's gate: decides on a request from its head alone (request line + headers), before a single
// body byte is read. The bytes of a connection pass through a libevent filter (admin_server.cc) that holds a
// request's head until it is complete, asks inspectHead(), and then either lets the head and exactly
// Content-Length body bytes through to evhttp or answers the refusal itself. Free of libevent (unit-tested and
// fuzzable on its own). See docs/admin-api.md "Limits".
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parkway::proxy {

struct RequestHead {
    std::string method, target, path, version;
    std::vector<std::pair<std::string, std::string>> headers; // names lower-cased, in order, values trimmed
    // The first header of that (lower-case) name.
    const std::string *find(std::string_view lowerName) const;
};

// Where the head ends in the bytes buffered so far: the offset just past its empty line, or 0 while incomplete.
// Lines end in LF or CRLF (as evhttp reads them).
size_t headLength(std::string_view bytes);

// Parses a complete head (as delimited by headLength). false + error on a malformed one.
bool parseHead(std::string_view head, RequestHead &out, std::string &error);

// "/api//parked/a%2Fb?x" -> {"api", "parked", "a/b"}: empty segments dropped, each one percent-decoded on its own
// (an encoded '/' stays inside its segment); a malformed escape is kept as written.
std::vector<std::string> pathSegments(std::string_view path);

// "Bearer <token>" (scheme case-insensitive, blanks around the token ignored) compared in constant time.
bool bearerMatches(const std::string *authorization, const std::string &token);

struct Refusal {
    int status = 0;
    std::string reason;                                       // metric label: parkway_admin_refused_total{reason}
    std::string message;                                      // the JSON error text
    std::vector<std::pair<std::string, std::string>> headers; // extra response headers (Allow, WWW-Authenticate, ...)
};

struct GatePolicy {
    size_t maxBodyBytes = 1u << 20;
    bool requireToken = true;
    std::string token;
    // Whether this path needs the token (the route table's answer); unknown paths should say yes.
    std::function<bool(const std::vector<std::string> &segments)> needsToken;
};

struct GateDecision {
    std::optional<Refusal> refusal;
    uint64_t bodyBytes = 0; // what evhttp will read after the head (Content-Length; 0 for HEAD)
};

// Order: malformed (400), method (405), Transfer-Encoding (411), Expect (417), Content-Length (400), token
// (401), size (413). The token comes before the size so a stranger learns nothing about limits.
GateDecision inspectHead(std::string_view head, const GatePolicy &policy);

// The refusals the filter makes without a head to inspect.
Refusal tooManyConnections(size_t cap);
Refusal headTooLarge(size_t cap);

} // namespace parkway::proxy
