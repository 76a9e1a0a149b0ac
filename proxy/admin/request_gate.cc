#include "request_gate.hh"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace parkway::proxy {

namespace {

constexpr const char *kAllowedMethods = "GET, POST, PUT, DELETE, HEAD";

std::string lower(std::string_view s) {
    std::string out(s);
    for (char &c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// The lines of a head, without their LF/CRLF; stops at the empty line.
std::vector<std::string_view> headLines(std::string_view head) {
    std::vector<std::string_view> lines;
    size_t pos = 0;
    while (pos < head.size()) {
        size_t nl = head.find('\n', pos);
        if (nl == std::string_view::npos)
            nl = head.size();
        std::string_view line = head.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty())
            break;
        lines.push_back(line);
        pos = nl + 1;
    }
    return lines;
}

// RFC 7230 §3.2.6 token characters (method and header names).
bool isToken(std::string_view s) {
    if (s.empty())
        return false;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F || std::string_view("\"(),/:;<=>?@[\\]{}").find(c) != std::string_view::npos)
            return false;
    }
    return true;
}

int hexValue(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

std::string percentDecode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
            out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

Refusal refusal(int status, const char *reason, std::string message) {
    Refusal r;
    r.status = status;
    r.reason = reason;
    r.message = std::move(message);
    return r;
}

// RFC 7230 §3.3.2: one decimal value; repeated headers must agree (else the length is ambiguous, §3.3.3).
bool contentLength(const RequestHead &head, uint64_t &length, std::string &error) {
    length = 0;
    const std::string *first = nullptr;
    for (const auto &[name, value] : head.headers) {
        if (name != "content-length")
            continue;
        if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string::npos) {
            error = fmt::format("Content-Length \"{}\" is not a decimal number", value.substr(0, 40));
            return false;
        }
        if (first && *first != value) {
            error = "conflicting Content-Length headers";
            return false;
        }
        first = &value;
        length = std::stoull(value);
    }
    return true;
}

} // namespace

const std::string *RequestHead::find(std::string_view lowerName) const {
    for (const auto &[name, value] : headers)
        if (name == lowerName)
            return &value;
    return nullptr;
}

size_t headLength(std::string_view bytes) {
    size_t pos = 0;
    while (pos < bytes.size()) {
        size_t nl = bytes.find('\n', pos);
        if (nl == std::string_view::npos)
            return 0;
        size_t len = nl - pos;
        if (len == 0 || (len == 1 && bytes[pos] == '\r'))
            return pos == 0 ? 0 : nl + 1;
        pos = nl + 1;
    }
    return 0;
}

bool parseHead(std::string_view head, RequestHead &out, std::string &error) {
    std::vector<std::string_view> lines = headLines(head);
    if (lines.empty()) {
        error = "empty request";
        return false;
    }
    // Request line: method SP request-target SP HTTP-version (RFC 7230 §3.1.1).
    std::string_view rl = lines[0];
    size_t sp1 = rl.find(' '), sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos) {
        error = "request line is not \"METHOD /path HTTP/1.1\"";
        return false;
    }
    out.method = std::string(rl.substr(0, sp1));
    out.target = std::string(rl.substr(sp1 + 1, sp2 - sp1 - 1));
    out.version = std::string(rl.substr(sp2 + 1));
    if (!isToken(out.method)) {
        error = "request method is not a token";
        return false;
    }
    if (out.version != "HTTP/1.1" && out.version != "HTTP/1.0") {
        error = "only HTTP/1.0 and HTTP/1.1 are served";
        return false;
    }
    std::string_view path = out.target;
    // absolute-form (RFC 7230 §5.3.2): a server must accept it; the path is what follows the authority.
    for (std::string_view scheme : {"http://", "https://"})
        if (path.size() >= scheme.size() && lower(path.substr(0, scheme.size())) == scheme) {
            size_t slash = path.find('/', scheme.size());
            path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
        }
    if (path.empty() || path[0] != '/') {
        error = "request target must be a path starting with '/'";
        return false;
    }
    out.path = std::string(path.substr(0, path.find_first_of("?#")));
    out.headers.clear();
    for (size_t i = 1; i < lines.size(); ++i) {
        std::string_view line = lines[i];
        if (line[0] == ' ' || line[0] == '\t') { // obsolete line folding (RFC 7230 §3.2.4): part of the last value
            if (out.headers.empty()) {
                error = "header continuation before any header";
                return false;
            }
            out.headers.back().second += " " + std::string(trim(line));
            continue;
        }
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || !isToken(line.substr(0, colon))) {
            error = fmt::format("malformed header line {}", i + 1);
            return false;
        }
        out.headers.emplace_back(lower(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
    }
    return true;
}

std::vector<std::string> pathSegments(std::string_view path) {
    path = path.substr(0, path.find_first_of("?#"));
    std::vector<std::string> seg;
    size_t pos = 0;
    while (pos <= path.size()) {
        size_t slash = path.find('/', pos);
        if (slash == std::string_view::npos)
            slash = path.size();
        if (slash > pos)
            seg.push_back(percentDecode(path.substr(pos, slash - pos)));
        pos = slash + 1;
    }
    return seg;
}

bool bearerMatches(const std::string *authorization, const std::string &token) {
    if (!authorization || authorization->size() < 7 || lower(authorization->substr(0, 7)) != "bearer ")
        return false;
    std::string_view given = trim(std::string_view(*authorization).substr(7));
    // Without an early exit, so the time taken does not tell how much of the token matched.
    size_t n = std::max(given.size(), token.size());
    unsigned char diff = given.size() == token.size() ? 0 : 1;
    for (size_t i = 0; i < n; ++i) {
        auto x = static_cast<unsigned char>(i < given.size() ? given[i] : 0);
        auto y = static_cast<unsigned char>(i < token.size() ? token[i] : 0);
        diff |= static_cast<unsigned char>(x ^ y);
    }
    return diff == 0;
}

GateDecision inspectHead(std::string_view headBytes, const GatePolicy &policy) {
    GateDecision d;
    RequestHead head;
    std::string error;
    if (!parseHead(headBytes, head, error)) {
        d.refusal = refusal(400, "bad_request", "malformed request: " + error);
        return d;
    }
    static const char *const kServed[] = {"GET", "POST", "PUT", "DELETE", "HEAD"};
    static const char *const kKnown[] = {"OPTIONS", "PATCH", "TRACE", "CONNECT"};
    auto in = [&](const auto &list) {
        return std::find(std::begin(list), std::end(list), head.method) != std::end(list);
    };
    if (!in(kServed)) {
        // RFC 7231 §6.5.5 / §6.6.2: 405 for a method we know but do not serve, 501 for one we do not know.
        d.refusal = in(kKnown) ? refusal(405, "method_not_allowed", head.method + " is not served by the admin API")
                               : refusal(501, "method_not_allowed", "unknown request method");
        d.refusal->headers.emplace_back("Allow", kAllowedMethods);
        return d;
    }
    if (head.find("transfer-encoding")) {
        d.refusal = refusal(411, "length_required",
                            "send the request body with a Content-Length (Transfer-Encoding is not accepted)");
        return d;
    }
    if (const std::string *expect = head.find("expect"); expect && lower(*expect) != "100-continue") {
        d.refusal = refusal(417, "bad_request", "only \"Expect: 100-continue\" is understood");
        return d;
    }
    uint64_t length = 0;
    if (!contentLength(head, length, error)) {
        d.refusal = refusal(400, "bad_request", error);
        return d;
    }
    bool needsToken = policy.requireToken && (!policy.needsToken || policy.needsToken(pathSegments(head.path)));
    if (needsToken && !bearerMatches(head.find("authorization"), policy.token)) {
        d.refusal = refusal(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <admin.token>)");
        d.refusal->headers.emplace_back("WWW-Authenticate", "Bearer realm=\"parkway\"");
        return d;
    }
    if (length > policy.maxBodyBytes) {
        d.refusal = refusal(413, "body_too_large",
                            fmt::format("request body of {} bytes is over the limit of {} (admin.max_body_bytes)",
                                        length, policy.maxBodyBytes));
        return d;
    }
    d.bodyBytes = head.method == "HEAD" ? 0 : length; // evhttp reads no body for HEAD
    return d;
}

Refusal tooManyConnections(size_t cap) {
    Refusal r = refusal(503, "too_many_connections",
                        fmt::format("too many admin connections (admin.max_connections = {}); try again later", cap));
    r.headers.emplace_back("Retry-After", "1");
    return r;
}

Refusal headTooLarge(size_t cap) {
    return refusal(
        431, "header_too_large",
        fmt::format("request head (request line and headers) is over {} bytes (admin.max_header_bytes)", cap));
}

} // namespace parkway::proxy
