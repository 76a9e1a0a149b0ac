// Small SIP text helpers shared by the registrar and router modules (header-only, no sofia-sip: modules see
// only the ABI). Not a full RFC 3261 parser: enough for addr-specs and Contact values.
#pragma once
#include <parkway/module.h>
#include <parkway/module.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <vector>

namespace parkway::modutil {

inline std::string str(pw_str s) { return s.ptr && s.len ? std::string(s.ptr, s.len) : std::string(); }
inline pw_str view(const std::string &s) { return pw_str{s.data(), s.size()}; }

inline std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

inline std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// Parts of a sip:/sips: URI. host is lower-cased, without brackets' content changed.
struct SipUri {
    bool ok = false;
    std::string scheme; // "sip" or "sips"
    std::string user;   // may be empty
    std::string host;   // "example.com", "127.0.0.1", "[::1]"
    std::string port;   // may be empty
    std::string params; // ";transport=udp..." (may be empty)
};

inline SipUri parseSipUri(const std::string &text) {
    SipUri u;
    std::string t = trim(text);
    if (!t.empty() && t.front() == '<' && t.back() == '>') t = t.substr(1, t.size() - 2);
    auto colon = t.find(':');
    if (colon == std::string::npos) return u;
    u.scheme = lower(t.substr(0, colon));
    if (u.scheme != "sip" && u.scheme != "sips") return u;
    std::string rest = t.substr(colon + 1);
    auto headers = rest.find('?');
    if (headers != std::string::npos) rest.resize(headers);
    auto at = rest.rfind('@');
    std::string hostpart = rest;
    if (at != std::string::npos) {
        u.user = rest.substr(0, at);
        auto pw = u.user.find(':'); // user:password
        if (pw != std::string::npos) u.user.resize(pw);
        hostpart = rest.substr(at + 1);
    }
    auto semi = hostpart.find(';');
    if (semi != std::string::npos) {
        u.params = hostpart.substr(semi);
        hostpart.resize(semi);
    }
    if (!hostpart.empty() && hostpart[0] == '[') {
        auto close = hostpart.find(']');
        if (close == std::string::npos) return u;
        u.host = lower(hostpart.substr(0, close + 1));
        if (close + 1 < hostpart.size() && hostpart[close + 1] == ':') u.port = hostpart.substr(close + 2);
    } else {
        auto pc = hostpart.find(':');
        u.host = lower(hostpart.substr(0, pc));
        if (pc != std::string::npos) u.port = hostpart.substr(pc + 1);
    }
    u.ok = !u.host.empty();
    return u;
}

// Address-of-record key: "sip:user@host" (no port, no params; sips folded to sip; the user unescaped and
// re-escaped canonically so two spellings of one user are one AOR, RFC 3261 §19.1.4). "" when not a SIP URI.
// The same form as the host's uri_part(PW_URI_AOR) (module.h, ABI 1.4), which the registrar prefers.
inline std::string canonicalAor(const std::string &uri) {
    SipUri u = parseSipUri(uri);
    if (!u.ok) return "";
    std::string user = sdk::uriEscapeUser(sdk::uriUnescape(u.user));
    return "sip:" + (user.empty() ? std::string() : user + "@") + u.host;
}

// One Contact header value: "*" or [display] <uri> *(;param) or uri *(;param).
struct ContactValue {
    bool ok = false;
    bool wildcard = false;
    std::string uri;
    std::map<std::string, std::string> params; // lower-cased names
};

inline ContactValue parseContactValue(const std::string &text) {
    ContactValue c;
    std::string t = trim(text);
    if (t == "*") {
        c.ok = c.wildcard = true;
        return c;
    }
    std::string paramText;
    auto lt = t.find('<');
    if (lt != std::string::npos) {
        auto gt = t.find('>', lt);
        if (gt == std::string::npos) return c;
        c.uri = trim(t.substr(lt + 1, gt - lt - 1));
        paramText = t.substr(gt + 1);
    } else {
        // Without angle brackets, ';' parameters belong to the header, not the URI (RFC 3261 §20.10).
        auto semi = t.find(';');
        c.uri = trim(t.substr(0, semi));
        if (semi != std::string::npos) paramText = t.substr(semi);
    }
    size_t pos = 0;
    while ((pos = paramText.find(';', pos)) != std::string::npos) {
        size_t next = paramText.find(';', pos + 1);
        std::string p = trim(paramText.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1));
        auto eq = p.find('=');
        std::string name = lower(trim(p.substr(0, eq)));
        std::string value = eq == std::string::npos ? "" : trim(p.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        if (!name.empty()) c.params[name] = value;
        pos = next == std::string::npos ? paramText.size() : next;
    }
    c.ok = parseSipUri(c.uri).ok;
    return c;
}

// "123" -> 123; -1 when not a plain non-negative decimal.
inline long long parseDigits(const std::string &s) {
    std::string t = trim(s);
    if (t.empty() || t.size() > 12 || t.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::stoll(t);
}

// q-value "0.5" -> 500; -1 when malformed (RFC 3261 §20.10: 0 to 1, up to 3 decimals).
inline int parseQ(const std::string &s) {
    std::string t = trim(s);
    if (t.empty() || (t[0] != '0' && t[0] != '1')) return -1;
    int whole = t[0] - '0', milli = 0;
    if (t.size() > 1) {
        if (t[1] != '.' || t.size() > 5) return -1;
        int scale = 100;
        for (size_t i = 2; i < t.size(); ++i, scale /= 10) {
            if (!std::isdigit(static_cast<unsigned char>(t[i]))) return -1;
            milli += (t[i] - '0') * scale;
        }
    }
    int q = whole * 1000 + milli;
    return q > 1000 ? -1 : q;
}

// "udp:127.0.0.1:5062" (msg_source) -> "sip:127.0.0.1:5062;transport=udp"; "" when not in that shape.
inline std::string sourceToUri(const std::string &src) {
    auto colon = src.find(':');
    if (colon == std::string::npos || colon + 1 >= src.size()) return "";
    return "sip:" + src.substr(colon + 1) + ";transport=" + lower(src.substr(0, colon));
}

} // namespace parkway::modutil
