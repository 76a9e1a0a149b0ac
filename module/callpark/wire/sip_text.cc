#include "wire/sip_text.hh"

#include <fmt/format.h>

#include <cctype>

namespace parkway::callpark {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool setErr(std::string* err, std::string msg) {
    if (err) *err = std::move(msg);
    return false;
}

int hexVal(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool isUnreserved(char c) {
    // RFC 3261 §25.1 unreserved = alphanum / mark
    if (std::isalnum(static_cast<unsigned char>(c))) return true;
    switch (c) {
        case '-': case '_': case '.': case '!': case '~': case '*': case '\'': case '(': case ')': return true;
        default: return false;
    }
}

std::string escapeExcept(std::string_view text, std::string_view allowed) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (isUnreserved(c) || allowed.find(c) != std::string_view::npos) {
            out += c;
        } else {
            out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
        }
    }
    return out;
}

// Tokens in Call-ID / tags must not carry whitespace or separators that would break the header.
bool plausibleToken(std::string_view s) {
    if (s.empty()) return false;
    for (char c : s)
        if (std::isspace(static_cast<unsigned char>(c)) || c == ';' || c == ',' || c == '<' || c == '>' ||
            c == '"' || static_cast<unsigned char>(c) < 0x20)
            return false;
    return true;
}

}  // namespace

std::optional<ReplacesValue> parseReplaces(std::string_view value, std::string* err) {
    value = trim(value);
    ReplacesValue r;
    size_t semi = value.find(';');
    std::string_view callId = trim(value.substr(0, semi));
    if (!plausibleToken(callId)) {
        setErr(err, fmt::format("Replaces '{}': missing or bad call-id", value));
        return std::nullopt;
    }
    r.callId = std::string(callId);
    bool haveTo = false, haveFrom = false;
    while (semi != std::string_view::npos) {
        size_t next = value.find(';', semi + 1);
        std::string_view param = trim(value.substr(semi + 1, next == std::string_view::npos ? next : next - semi - 1));
        semi = next;
        if (param.empty()) {
            setErr(err, fmt::format("Replaces '{}': empty parameter", value));
            return std::nullopt;
        }
        size_t eq = param.find('=');
        std::string name = lower(trim(param.substr(0, eq)));
        std::string_view val = eq == std::string_view::npos ? std::string_view() : trim(param.substr(eq + 1));
        if (name == "to-tag" || name == "from-tag") {
            bool& have = name == "to-tag" ? haveTo : haveFrom;
            if (eq == std::string_view::npos || !plausibleToken(val) || have) {
                setErr(err, fmt::format("Replaces '{}': bad or repeated {}", value, name));
                return std::nullopt;
            }
            have = true;
            (name == "to-tag" ? r.toTag : r.fromTag) = std::string(val);
        } else if (name == "early-only") {
            r.earlyOnly = true;
        }
        // Other generic parameters are allowed by the grammar and ignored (RFC 3891 §6.1).
    }
    // RFC 3891 §6.1: to-tag and from-tag are mandatory.
    if (!haveTo || !haveFrom) {
        setErr(err, fmt::format("Replaces '{}': needs both to-tag and from-tag (RFC 3891 §6.1)", value));
        return std::nullopt;
    }
    return r;
}

std::string formatReplaces(const ReplacesValue& r) {
    return fmt::format("{};to-tag={};from-tag={}{}", r.callId, r.toTag, r.fromTag, r.earlyOnly ? ";early-only" : "");
}

std::optional<NameAddr> parseNameAddr(std::string_view value, std::string* err) {
    std::string_view v = trim(value);
    NameAddr na;
    if (v.empty()) {
        setErr(err, "empty address");
        return std::nullopt;
    }
    size_t i = 0;
    bool angled = false;
    if (v[0] == '"') {
        // quoted-string display name with \-escapes (RFC 3261 §25.1)
        std::string disp;
        i = 1;
        bool closed = false;
        while (i < v.size()) {
            char c = v[i++];
            if (c == '\\' && i < v.size()) {
                disp += v[i++];
            } else if (c == '"') {
                closed = true;
                break;
            } else {
                disp += c;
            }
        }
        if (!closed) {
            setErr(err, fmt::format("address '{}': unterminated quoted display name", v));
            return std::nullopt;
        }
        na.display = disp;
        while (i < v.size() && std::isspace(static_cast<unsigned char>(v[i]))) ++i;
        if (i >= v.size() || v[i] != '<') {
            setErr(err, fmt::format("address '{}': display name without <uri>", v));
            return std::nullopt;
        }
        angled = true;
    } else {
        size_t lt = v.find('<');
        if (lt != std::string_view::npos) {
            na.display = std::string(trim(v.substr(0, lt)));
            i = lt;
            angled = true;
        }
    }
    std::string_view rest;
    if (angled) {
        size_t gt = v.find('>', i);
        if (gt == std::string_view::npos) {
            setErr(err, fmt::format("address '{}': missing '>'", v));
            return std::nullopt;
        }
        na.uri = std::string(trim(v.substr(i + 1, gt - i - 1)));
        rest = trim(v.substr(gt + 1));
    } else {
        // addr-spec: parameters after ';' belong to the header, not the URI (RFC 3261 §20)
        size_t semi = v.find(';');
        na.uri = std::string(trim(v.substr(0, semi)));
        rest = semi == std::string_view::npos ? std::string_view() : v.substr(semi);
    }
    if (!rest.empty()) {
        if (rest[0] != ';') {
            setErr(err, fmt::format("address '{}': unexpected text after the URI", v));
            return std::nullopt;
        }
        na.params = std::string(trim(rest.substr(1)));
    }
    size_t colon = na.uri.find(':');
    if (na.uri.empty() || colon == std::string::npos || colon == 0) {
        setErr(err, fmt::format("address '{}': no URI scheme", v));
        return std::nullopt;
    }
    return na;
}

std::optional<UriParts> parseUri(std::string_view uri, std::string* err) {
    uri = trim(uri);
    UriParts p;
    size_t colon = uri.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        setErr(err, fmt::format("URI '{}': no scheme", uri));
        return std::nullopt;
    }
    for (char c : uri.substr(0, colon))
        if (!std::isalpha(static_cast<unsigned char>(c))) {
            setErr(err, fmt::format("URI '{}': bad scheme", uri));
            return std::nullopt;
        }
    p.scheme = lower(uri.substr(0, colon));
    std::string_view rest = uri.substr(colon + 1);
    if (p.scheme == "tel") {
        size_t semi = rest.find(';');
        p.user = std::string(rest.substr(0, semi));
        if (semi != std::string_view::npos) p.params = std::string(rest.substr(semi + 1));
        if (p.user.empty()) {
            setErr(err, fmt::format("URI '{}': empty telephone number", uri));
            return std::nullopt;
        }
        return p;
    }
    if (p.scheme != "sip" && p.scheme != "sips") {
        setErr(err, fmt::format("URI '{}': unsupported scheme '{}'", uri, p.scheme));
        return std::nullopt;
    }
    size_t at = rest.find('@');
    size_t q = rest.find('?');
    if (at != std::string_view::npos && (q == std::string_view::npos || at < q)) {
        std::string_view userinfo = rest.substr(0, at);
        p.user = std::string(userinfo.substr(0, userinfo.find(':')));  // drop a password
        if (p.user.empty()) {
            setErr(err, fmt::format("URI '{}': empty user part", uri));
            return std::nullopt;
        }
        rest = rest.substr(at + 1);
    }
    size_t hostEnd;
    if (!rest.empty() && rest[0] == '[') {
        size_t close = rest.find(']');
        if (close == std::string_view::npos) {
            setErr(err, fmt::format("URI '{}': unterminated IPv6 reference", uri));
            return std::nullopt;
        }
        hostEnd = close + 1;
    } else {
        hostEnd = rest.find_first_of(":;?");
        if (hostEnd == std::string_view::npos) hostEnd = rest.size();
    }
    p.host = lower(rest.substr(0, hostEnd));
    if (p.host.empty()) {
        setErr(err, fmt::format("URI '{}': empty host", uri));
        return std::nullopt;
    }
    for (char c : p.host)
        if (std::isspace(static_cast<unsigned char>(c)) || c == '<' || c == '>' || c == '"' || c == '@') {
            setErr(err, fmt::format("URI '{}': bad host", uri));
            return std::nullopt;
        }
    rest = rest.substr(hostEnd);
    if (!rest.empty() && rest[0] == ':') {
        size_t end = rest.find_first_of(";?");
        std::string_view portText = rest.substr(1, end == std::string_view::npos ? end : end - 1);
        unsigned long port = 0;
        bool ok = !portText.empty() && portText.size() <= 5;
        for (char c : portText) {
            if (!std::isdigit(static_cast<unsigned char>(c))) ok = false;
            else port = port * 10 + static_cast<unsigned long>(c - '0');
        }
        if (!ok || port == 0 || port > 65535) {
            setErr(err, fmt::format("URI '{}': bad port", uri));
            return std::nullopt;
        }
        p.port = static_cast<uint16_t>(port);
        rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    }
    if (!rest.empty() && rest[0] == ';') {
        size_t qq = rest.find('?');
        p.params = std::string(rest.substr(1, qq == std::string_view::npos ? qq : qq - 1));
        rest = qq == std::string_view::npos ? std::string_view() : rest.substr(qq);
    }
    if (!rest.empty() && rest[0] == '?') p.headers = std::string(rest.substr(1));
    return p;
}

std::string uriUser(std::string_view uri) {
    auto p = parseUri(uri);
    if (!p) return {};
    auto u = urlUnescape(p->user);
    return u ? *u : std::string();
}

std::string uriHost(std::string_view uri) {
    auto p = parseUri(uri);
    return p ? p->host : std::string();
}

std::optional<ReferTarget> parseReferTo(std::string_view value, std::string* err) {
    auto na = parseNameAddr(value, err);
    if (!na) return std::nullopt;
    std::string perr;
    auto parts = parseUri(na->uri, &perr);
    if (!parts) {
        setErr(err, fmt::format("Refer-To: {}", perr));
        return std::nullopt;
    }
    ReferTarget t;
    t.nameAddr = *na;
    t.uri = na->uri;
    if (!parts->headers.empty()) t.uri.resize(t.uri.size() - parts->headers.size() - 1);
    auto user = urlUnescape(parts->user);
    if (!user) {
        setErr(err, fmt::format("Refer-To '{}': bad %-escape in the user part", na->uri));
        return std::nullopt;
    }
    t.user = *user;
    t.host = parts->host;
    // ?h1=v1&h2=v2 ; Replaces is case-insensitive as every header name (RFC 3261 §7.3.1)
    std::string_view headers = parts->headers;
    while (!headers.empty()) {
        size_t amp = headers.find('&');
        std::string_view h = headers.substr(0, amp);
        headers = amp == std::string_view::npos ? std::string_view() : headers.substr(amp + 1);
        size_t eq = h.find('=');
        if (eq == std::string_view::npos) continue;
        if (lower(h.substr(0, eq)) != "replaces") continue;
        auto raw = urlUnescape(h.substr(eq + 1));
        if (!raw) {
            setErr(err, fmt::format("Refer-To '{}': bad %-escape in Replaces", na->uri));
            return std::nullopt;
        }
        std::string rerr;
        auto r = parseReplaces(*raw, &rerr);
        if (!r) {
            setErr(err, fmt::format("Refer-To: {}", rerr));
            return std::nullopt;
        }
        t.replaces = std::move(*r);
    }
    return t;
}

std::optional<std::string> urlUnescape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size()) return std::nullopt;
        int hi = hexVal(text[i + 1]), lo = hexVal(text[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::string urlEscapeHeaderValue(std::string_view text) {
    return escapeExcept(text, "[]/?:+$");  // hnv-unreserved
}

std::string urlEscapeUser(std::string_view text) {
    return escapeExcept(text, "&=+$,;?/");  // user-unreserved
}

std::string referToWithReplaces(std::string_view targetUri, const ReplacesValue& r) {
    char sep = targetUri.find('?') == std::string_view::npos ? '?' : '&';
    return fmt::format("<{}{}Replaces={}>", targetUri, sep, urlEscapeHeaderValue(formatReplaces(r)));
}

}  // namespace parkway::callpark
