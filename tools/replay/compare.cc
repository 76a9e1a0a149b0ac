// parkway-replay comparator (compare.hh, docs/replay.md "Comparison").
//
// Messages are split by our own parser, not sofia-sip's msg_make(): the comparator parses the fixture's
// templates as well as the server's messages, and templates carry {{symbols}} exactly where sofia's typed
// header parsers want a number, a token or a URI ("CSeq: {{cseq1+1}} INVITE", "Contact: <sip:{{u}}@{{h}}>"),
// which it would reject or silently move to its error list. One parser for both sides keeps template and
// message symmetric. It follows RFC 3261 §7.3: header names are case-insensitive, compact forms (§7.3.3) are
// expanded, folded lines (§7.3.1) are joined, and comma-separated values (§7.3.1) of the list headers are split
// outside quotes and <...>, so two Via lines and one "Via: a, b" compare alike.
#include "compare.hh"
#include "import_sip.hh"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <set>
#include <sstream>

namespace parkway::replay {

namespace {

using Diffs = std::vector<Difference>;

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Linear white space collapsed to one space (RFC 3261 §7.3.1: LWS is equivalent to one SP).
std::string collapse(const std::string &s) {
    std::string out;
    bool space = false;
    for (char c : trim(s)) {
        bool ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        if (ws && !space)
            out += ' ';
        else if (!ws)
            out += c;
        space = ws;
    }
    return out;
}

std::string xmlUnescape(const std::string &s) {
    static const std::pair<const char *, char> entities[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        bool done = false;
        for (const auto &[ent, c] : entities)
            if (s.compare(i, std::strlen(ent), ent) == 0) {
                out += c;
                i += std::strlen(ent) - 1;
                done = true;
                break;
            }
        if (!done)
            out += s[i];
    }
    return out;
}

bool isNumber(const std::string &s) {
    return !s.empty() && s.size() <= 18 && s.find_first_not_of("0123456789") == std::string::npos;
}

// ---------------------------------------------------------------------------------------------- the matcher

// Matches template text against actual text. A symbol known in `bound` (the runner's) or already learned in
// this message must have its value there; an unknown one matches any non-empty text and is learned. Literal
// text compares case-insensitively when `ci` (tokens, RFC 3261 §7.3.1), symbol values always byte for byte
// (identifiers: Call-IDs, tags, branches are echoed exactly). `decoded`: the actual text was already
// %-unescaped (URI parts) or entity-decoded (XML), so the |uri and |xml filters are the identity.
class Matcher {
public:
    explicit Matcher(const Bindings &bound) : bound_(bound) {}
    Bindings learned;

    bool match(const std::string &templ, const std::string &actual, bool ci = false, bool decoded = false) {
        std::vector<Seg> segs = segments(templ);
        Bindings trial = learned;
        std::string folded = ci ? lower(actual) : actual;
        if (!from(segs, 0, actual, folded, 0, trial, ci, decoded))
            return false;
        learned = std::move(trial);
        return true;
    }

    // The template with every known symbol filled in; unknown ones stay {{name}} (for difference reports).
    std::string fill(const std::string &templ, bool decoded = false) const {
        std::string out;
        size_t last = 0;
        for (const auto &r : refsOf(templ)) {
            out.append(templ, last, r.begin - last);
            auto v = value(r.symbol, learned);
            auto text = v ? render(r, *v, decoded) : std::nullopt;
            out += text ? *text : templ.substr(r.begin, r.end - r.begin);
            last = r.end;
        }
        out.append(templ, last, std::string::npos);
        return out;
    }

    std::optional<std::string> value(const std::string &symbol, const Bindings &trial) const {
        if (auto b = bound_.find(symbol); b != bound_.end())
            return b->second;
        if (auto l = trial.find(symbol); l != trial.end())
            return l->second;
        return std::nullopt;
    }
    const Bindings &bound() const { return bound_; }

private:
    struct Seg {
        bool ref = false;
        std::string literal;
        TemplateRef r;
    };
    const Bindings &bound_;

    static std::vector<TemplateRef> refsOf(const std::string &templ) {
        try {
            return templateRefs(templ);
        } catch (const FixtureError &) {
            return {}; // a malformed {{ is compared as text
        }
    }

    static std::vector<Seg> segments(const std::string &templ) {
        std::vector<Seg> segs;
        size_t last = 0;
        for (const auto &r : refsOf(templ)) {
            if (r.begin > last)
                segs.push_back({false, templ.substr(last, r.begin - last), {}});
            segs.push_back({true, "", r});
            last = r.end;
        }
        if (last < templ.size())
            segs.push_back({false, templ.substr(last), {}});
        return segs;
    }

    static std::optional<std::string> render(const TemplateRef &r, std::string v, bool decoded) {
        if (r.offset) {
            if (!isNumber(v))
                return std::nullopt;
            v = std::to_string(std::stoll(v) + r.offset);
        }
        if (!decoded && r.filter == "uri")
            return uriEscape(v);
        if (!decoded && r.filter == "xml")
            return xmlEscape(v);
        return v;
    }

    // The value an unknown symbol takes when it stands for `text`, or nullopt when it cannot.
    static std::optional<std::string> capture(const TemplateRef &r, const std::string &text, bool decoded) {
        std::string v = text;
        if (!decoded && r.filter == "uri")
            v = uriUnescape(v);
        if (!decoded && r.filter == "xml")
            v = xmlUnescape(v);
        if (r.offset) {
            if (!isNumber(v) || std::stoll(v) < r.offset)
                return std::nullopt;
            v = std::to_string(std::stoll(v) - r.offset);
        }
        return v;
    }

    bool from(const std::vector<Seg> &segs, size_t i, const std::string &a, const std::string &folded, size_t pos,
              Bindings &trial, bool ci, bool decoded) const {
        if (i == segs.size())
            return pos == a.size();
        const Seg &s = segs[i];
        if (!s.ref) {
            const std::string &hay = ci ? folded : a;
            std::string lit = ci ? lower(s.literal) : s.literal;
            return hay.compare(pos, lit.size(), lit) == 0 &&
                   from(segs, i + 1, a, folded, pos + lit.size(), trial, ci, decoded);
        }
        if (auto known = value(s.r.symbol, trial)) {
            auto text = render(s.r, *known, decoded);
            return text && a.compare(pos, text->size(), *text) == 0 &&
                   from(segs, i + 1, a, folded, pos + text->size(), trial, ci, decoded);
        }
        return fromUnknown(segs, i, a, folded, pos, trial, ci, decoded);
    }

    // An unknown symbol: try the shortest text first; when a literal follows, only the places it occurs.
    bool fromUnknown(const std::vector<Seg> &segs, size_t i, const std::string &a, const std::string &folded,
                     size_t pos, Bindings &trial, bool ci, bool decoded) const {
        const Seg &s = segs[i];
        std::string next = i + 1 < segs.size() && !segs[i + 1].ref ? segs[i + 1].literal : "";
        if (ci)
            next = lower(next);
        const std::string &hay = ci ? folded : a;
        for (size_t end = pos + 1; end <= a.size(); ++end) {
            if (!next.empty()) {
                end = hay.find(next, end);
                if (end == std::string::npos)
                    return false;
            } else if (i + 1 == segs.size()) {
                end = a.size();
            }
            auto v = capture(s.r, a.substr(pos, end - pos), decoded);
            if (v) {
                Bindings t2 = trial;
                t2[s.r.symbol] = *v;
                if (from(segs, i + 1, a, folded, end, t2, ci, decoded)) {
                    trial = std::move(t2);
                    return true;
                }
            }
        }
        return false;
    }
};

// Compares; on a mismatch records one difference. Returns whether it matched.
bool check(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a, bool ci = false,
           bool decoded = false) {
    if (m.match(t, a, ci, decoded))
        return true;
    d.push_back({what, m.fill(t, decoded), a});
    return false;
}

// Unescapes the literal parts of a template (RFC 3261 §19.1.4: an unreserved character and its %HH form are
// equivalent), leaving {{symbols}} as they are; the matcher then runs in decoded mode.
std::string unescapeTemplate(const std::string &t) {
    std::vector<TemplateRef> refs;
    try {
        refs = templateRefs(t);
    } catch (const FixtureError &) {
        return uriUnescape(t);
    }
    std::string out;
    size_t last = 0;
    for (const auto &r : refs) {
        out += uriUnescape(t.substr(last, r.begin - last));
        out += t.substr(r.begin, r.end - r.begin);
        last = r.end;
    }
    return out + uriUnescape(t.substr(last));
}

// ---------------------------------------------------------------------------------------------- message split

// RFC 3261 §7.3.3 compact forms, plus RFC 3515 (r Refer-To), RFC 3892 (b Referred-By), RFC 6665 (o Event,
// u Allow-Events), RFC 4028 (x Session-Expires), RFC 3841 (a Accept-Contact, j Reject-Contact, d Request-Disposition).
std::string canonicalName(const std::string &name) {
    return parkway::replay::importer::canonicalHeader(name);
}

struct Parsed {
    std::string startLine;
    std::vector<std::pair<std::string, std::string>> headers; // canonical lower-case name, value
    std::string body;
};

Parsed parseText(const std::string &text) {
    Parsed p;
    size_t end = text.find("\r\n\r\n"), skip = 4;
    if (size_t lf = text.find("\n\n"); lf != std::string::npos && (end == std::string::npos || lf < end))
        end = lf, skip = 2;
    std::string head = end == std::string::npos ? text : text.substr(0, end);
    p.body = end == std::string::npos ? "" : text.substr(end + skip);
    std::istringstream in(head);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (first) {
            p.startLine = trim(line);
            first = false;
        } else if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !p.headers.empty()) {
            p.headers.back().second += " " + trim(line); // RFC 3261 §7.3.1 folding
        } else if (auto colon = line.find(':'); colon != std::string::npos) {
            p.headers.emplace_back(canonicalName(line.substr(0, colon)), trim(line.substr(colon + 1)));
        }
    }
    return p;
}

Parsed parseTemplate(const std::vector<std::string> &lines) {
    std::string text;
    bool body = false;
    for (const auto &l : lines) {
        text += l + (body ? "\n" : "\r\n");
        body = body || l.empty();
    }
    return parseText(text);
}

// Splits at `sep` outside "quoted strings" and <...> (RFC 3261 §7.3.1, §25.1).
std::vector<std::string> splitTop(const std::string &s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    bool quoted = false;
    int angle = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (quoted && c == '\\' && i + 1 < s.size()) {
            cur += c;
            cur += s[++i];
            continue;
        }
        if (c == '"')
            quoted = !quoted;
        else if (!quoted && c == '<')
            ++angle;
        else if (!quoted && c == '>' && angle > 0)
            --angle;
        if (c == sep && !quoted && angle == 0) {
            out.push_back(trim(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(trim(cur));
    return out;
}

// Headers whose grammar is a comma-separated list (RFC 3261 §7.3.1, §20).
bool isListHeader(const std::string &n) {
    static const std::set<std::string> lists = {"via",
                                                "route",
                                                "record-route",
                                                "contact",
                                                "allow",
                                                "supported",
                                                "require",
                                                "proxy-require",
                                                "unsupported",
                                                "allow-events",
                                                "accept",
                                                "accept-encoding",
                                                "accept-language",
                                                "content-encoding",
                                                "p-asserted-identity",
                                                "p-preferred-identity",
                                                "path",
                                                "service-route",
                                                "history-info",
                                                "diversion",
                                                "reason",
                                                "warning",
                                                "call-info",
                                                "alert-info",
                                                "error-info",
                                                "in-reply-to",
                                                "accept-contact",
                                                "reject-contact",
                                                "security-client",
                                                "security-server"};
    return lists.count(n) > 0;
}

std::vector<std::string> headerValues(const Parsed &p, const std::string &name) {
    std::string n = canonicalName(name);
    std::vector<std::string> out;
    for (const auto &[k, v] : p.headers) {
        if (k != n)
            continue;
        if (!isListHeader(n) || (n == "contact" && trim(v) == "*"))
            out.push_back(v);
        else
            for (auto &part : splitTop(v, ','))
                if (!part.empty())
                    out.push_back(part);
    }
    return out;
}

const std::string *firstHeader(const Parsed &p, const std::string &name) {
    std::string n = canonicalName(name);
    for (const auto &[k, v] : p.headers)
        if (k == n)
            return &v;
    return nullptr;
}

bool isResponse(const Parsed &p) {
    return p.startLine.rfind("SIP/2.0 ", 0) == 0;
}
std::string statusCode(const Parsed &p) {
    return p.startLine.size() >= 11 ? p.startLine.substr(8, 3) : "";
}
std::string method(const Parsed &p) {
    return p.startLine.substr(0, p.startLine.find(' '));
}
std::string requestUri(const Parsed &p) {
    auto a = p.startLine.find(' '), b = p.startLine.rfind(' ');
    return a == std::string::npos || b <= a ? "" : p.startLine.substr(a + 1, b - a - 1);
}

std::string cseqMethod(const Parsed &p) {
    const std::string *c = firstHeader(p, "CSeq");
    if (!c)
        return "";
    auto sp = trim(*c).find_last_of(" \t");
    return sp == std::string::npos ? "" : trim(*c).substr(sp + 1);
}

// ---------------------------------------------------------------------------------------------- parameters

struct Param {
    std::string name; // lower case
    std::string value;
    bool quoted = false;
    bool hasValue = false;
};

std::string unquote(const std::string &v, bool *quoted = nullptr) {
    std::string t = trim(v);
    if (t.size() >= 2 && t.front() == '"' && t.back() == '"') {
        if (quoted)
            *quoted = true;
        std::string out;
        for (size_t i = 1; i + 1 < t.size(); ++i) {
            if (t[i] == '\\' && i + 2 < t.size())
                ++i;
            out += t[i];
        }
        return out;
    }
    if (quoted)
        *quoted = false;
    return t;
}

std::vector<Param> parseParams(const std::vector<std::string> &parts) {
    std::vector<Param> out;
    for (const auto &p : parts) {
        if (trim(p).empty())
            continue;
        Param x;
        auto eq = p.find('=');
        x.name = lower(trim(p.substr(0, eq)));
        if (eq != std::string::npos) {
            x.hasValue = true;
            x.value = unquote(p.substr(eq + 1), &x.quoted);
        }
        out.push_back(x);
    }
    return out;
}

// "value;a=1;b" -> value and its parameters.
std::pair<std::string, std::vector<Param>> valueAndParams(const std::string &v) {
    auto parts = splitTop(v, ';');
    std::string value = parts.front();
    parts.erase(parts.begin());
    return {value, parseParams(parts)};
}

const Param *findParam(const std::vector<Param> &ps, const std::string &name) {
    for (const auto &p : ps)
        if (p.name == name)
            return &p;
    return nullptr;
}

std::string paramText(const Param &p) {
    return p.name + (p.hasValue ? "=" + (p.quoted ? "\"" + p.value + "\"" : p.value) : "");
}

// One parameter value: a token compares case-insensitively, a quoted string byte for byte, and a token equals
// the same text quoted (RFC 3261 §7.3.1: "Tokens are always case-insensitive ... quoted strings are
// case-sensitive").
bool checkParamValue(Matcher &m, Diffs &d, const std::string &what, const Param &t, const Param &a) {
    return check(m, d, what, t.value, a.value, !t.quoted && !a.quoted);
}

// Header parameters compared as an unordered set (RFC 3261 §7.3.1: their order is not significant). Every
// parameter on one side must be on the other, except the `ignore` ones.
void compareParams(Matcher &m, Diffs &d, const std::string &what, const std::vector<Param> &t,
                   const std::vector<Param> &a, const std::set<std::string> &ignore = {}) {
    for (const auto &tp : t) {
        if (ignore.count(tp.name))
            continue;
        const Param *ap = findParam(a, tp.name);
        if (!ap)
            d.push_back({what + ";" + tp.name, m.fill(paramText(tp)), "(missing)"});
        else
            checkParamValue(m, d, what + ";" + tp.name, tp, *ap);
    }
    for (const auto &ap : a)
        if (!ignore.count(ap.name) && !findParam(t, ap.name))
            d.push_back({what + ";" + ap.name, "(absent)", paramText(ap)});
}

// ---------------------------------------------------------------------------------------------- URIs

struct Uri {
    bool sip = false; // sip: or sips: (else compared as text)
    std::string scheme, user, password, host, port;
    std::vector<Param> params;
    std::vector<std::pair<std::string, std::string>> headers; // name lower, value (still escaped)
    std::string raw;
};

Uri parseUri(const std::string &text) {
    Uri u;
    u.raw = trim(text);
    auto colon = u.raw.find(':');
    u.scheme = lower(u.raw.substr(0, colon));
    if (colon == std::string::npos || (u.scheme != "sip" && u.scheme != "sips"))
        return u;
    u.sip = true;
    std::string rest = u.raw.substr(colon + 1);
    if (auto q = rest.find('?'); q != std::string::npos) {
        for (const auto &h : splitTop(rest.substr(q + 1), '&')) {
            auto eq = h.find('=');
            u.headers.emplace_back(lower(h.substr(0, eq)), eq == std::string::npos ? "" : h.substr(eq + 1));
        }
        rest.resize(q);
    }
    if (auto at = rest.rfind('@'); at != std::string::npos) {
        std::string userinfo = rest.substr(0, at);
        auto pc = userinfo.find(':');
        u.user = userinfo.substr(0, pc);
        u.password = pc == std::string::npos ? "" : userinfo.substr(pc + 1);
        rest = rest.substr(at + 1);
    }
    auto parts = splitTop(rest, ';');
    std::string hostport = parts.front();
    parts.erase(parts.begin());
    u.params = parseParams(parts);
    size_t portColon = hostport.rfind(':');
    if (!hostport.empty() && hostport[0] == '[')
        portColon = hostport.find("]:") == std::string::npos ? std::string::npos : hostport.find("]:") + 1;
    u.host = hostport.substr(0, portColon);
    u.port = portColon == std::string::npos ? "" : hostport.substr(portColon + 1);
    return u;
}

void compareReplaces(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a);

void compareUriHeaders(Matcher &m, Diffs &d, const std::string &what, const Uri &t, const Uri &a) {
    // RFC 3261 §19.1.4: "URI header components are never ignored"; their order does not matter.
    for (const auto &header : t.headers) {
        const std::string &name = header.first, &tv = header.second; // C++17: a lambda cannot capture a binding
        auto it = std::find_if(a.headers.begin(), a.headers.end(), [&](const auto &h) { return h.first == name; });
        std::string w = what + " ?" + name;
        if (it == a.headers.end())
            d.push_back({w, m.fill(tv), "(missing)"});
        else if (name == "replaces")
            compareReplaces(m, d, w, unescapeTemplate(tv), uriUnescape(it->second));
        else
            check(m, d, w, unescapeTemplate(tv), uriUnescape(it->second), false, true);
    }
    for (const auto &header : a.headers)
        if (std::none_of(t.headers.begin(), t.headers.end(), [&](const auto &h) { return h.first == header.first; }))
            d.push_back({what + " ?" + header.first, "(absent)", header.second});
}

// RFC 3261 §19.1.4 URI comparison: user and password case-sensitive (after %-decoding), scheme, host and
// parameters case-insensitive, a port or a user/ttl/method/maddr parameter present on one side only never
// matches, other parameters present on one side only are ignored, URI headers must all match.
void compareUri(Matcher &m, Diffs &d, const std::string &what, const std::string &tText, const std::string &aText) {
    Uri t = parseUri(tText), a = parseUri(aText);
    if (!t.sip || !a.sip) {
        check(m, d, what, trim(tText), trim(aText));
        return;
    }
    check(m, d, what + " scheme", t.scheme, a.scheme, true);
    check(m, d, what + " user", unescapeTemplate(t.user), uriUnescape(a.user), false, true);
    check(m, d, what + " password", unescapeTemplate(t.password), uriUnescape(a.password), false, true);
    check(m, d, what + " host", t.host, a.host, true);
    if (t.port.empty() != a.port.empty())
        d.push_back({what + " port", t.port.empty() ? "(none)" : m.fill(t.port), a.port.empty() ? "(none)" : a.port});
    else
        check(m, d, what + " port", t.port, a.port);
    static const std::set<std::string> mustBoth = {"user", "ttl", "method", "maddr"};
    for (const auto &tp : t.params) {
        const Param *ap = findParam(a.params, tp.name);
        if (ap)
            check(m, d, what + " ;" + tp.name, unescapeTemplate(tp.value), uriUnescape(ap->value), true, true);
        else if (mustBoth.count(tp.name))
            d.push_back({what + " ;" + tp.name, m.fill(paramText(tp)), "(missing)"});
    }
    for (const auto &ap : a.params)
        if (mustBoth.count(ap.name) && !findParam(t.params, ap.name))
            d.push_back({what + " ;" + ap.name, "(absent)", paramText(ap)});
    compareUriHeaders(m, d, what, t, a);
}

// ---------------------------------------------------------------------------------------------- header kinds

struct NameAddr {
    std::string display, uri;
    std::vector<Param> params;
};

NameAddr parseNameAddr(const std::string &v) {
    NameAddr n;
    std::string s = trim(v);
    bool inQuote = false;
    size_t lt = std::string::npos; // the first '<' outside a quoted display name
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '"' && (i == 0 || s[i - 1] != '\\'))
            inQuote = !inQuote;
        if (s[i] == '<' && !inQuote) {
            lt = i;
            break;
        }
    }
    if (lt != std::string::npos) {
        auto gt = s.find('>', lt);
        n.display = collapse(unquote(s.substr(0, lt)));
        n.uri = s.substr(lt + 1, gt == std::string::npos ? std::string::npos : gt - lt - 1);
        std::string rest = gt == std::string::npos ? "" : s.substr(gt + 1);
        auto parts = splitTop(rest, ';');
        parts.erase(parts.begin());
        n.params = parseParams(parts);
    } else {
        // addr-spec without <>: parameters after the URI are header parameters (RFC 3261 §20.10).
        auto parts = splitTop(s, ';');
        n.uri = parts.front();
        parts.erase(parts.begin());
        n.params = parseParams(parts);
    }
    return n;
}

void compareNameAddr(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a) {
    NameAddr tn = parseNameAddr(t), an = parseNameAddr(a);
    if (!tn.display.empty() || !an.display.empty())
        check(m, d, what + " display name", tn.display, an.display);
    compareUri(m, d, what + " URI", tn.uri, an.uri);
    compareParams(m, d, what, tn.params, an.params);
}

void compareVia(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a) {
    auto [tv, tp] = valueAndParams(t);
    auto [av, ap] = valueAndParams(a);
    std::string tt = collapse(tv), at = collapse(av);
    auto tsp = tt.find(' '), asp = at.find(' ');
    check(m, d, what + " protocol", tt.substr(0, tsp), at.substr(0, asp), true);
    check(m, d, what + " sent-by", tsp == std::string::npos ? "" : tt.substr(tsp + 1),
          asp == std::string::npos ? "" : at.substr(asp + 1), true);
    compareParams(m, d, what, tp, ap);
}

void compareCSeq(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a) {
    std::string tt = collapse(t), at = collapse(a);
    auto tsp = tt.find(' '), asp = at.find(' ');
    check(m, d, what + " number", tt.substr(0, tsp), at.substr(0, asp));
    // RFC 3261 §7.1: the method is case-sensitive.
    check(m, d, what + " method", tsp == std::string::npos ? "" : tt.substr(tsp + 1),
          asp == std::string::npos ? "" : at.substr(asp + 1));
}

// RFC 6665 §8.2.3 / §4.1.3: the state and the reason, not expires or retry-after (timers the server may round).
void compareSubscriptionState(Matcher &m, Diffs &d, const std::string &what, const std::string &t,
                              const std::string &a) {
    auto [tv, tp] = valueAndParams(t);
    auto [av, ap] = valueAndParams(a);
    check(m, d, what + " state", tv, av, true);
    const Param *tr = findParam(tp, "reason"), *ar = findParam(ap, "reason");
    if (tr && ar)
        checkParamValue(m, d, what + ";reason", *tr, *ar);
    else if (tr || ar)
        d.push_back({what + ";reason", tr ? m.fill(tr->value) : "(none)", ar ? ar->value : "(none)"});
}

// RFC 6665 §8.2.1 / §7.2.1: the package (with its template, "dialog", "refer") and the id; other parameters
// (filters of a package) are not compared.
void compareEvent(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a) {
    auto [tv, tp] = valueAndParams(t);
    auto [av, ap] = valueAndParams(a);
    check(m, d, what + " package", tv, av, true);
    const Param *ti = findParam(tp, "id"), *ai = findParam(ap, "id");
    if (ti && ai)
        check(m, d, what + ";id", ti->value, ai->value);
    else if (ti || ai)
        d.push_back({what + ";id", ti ? m.fill(ti->value) : "(none)", ai ? ai->value : "(none)"});
}

// Replaces (RFC 3891 §6.1), Target-Dialog (RFC 4538), Join (RFC 3911): a Call-ID (byte for byte, RFC 3261
// §8.1.1.4) and tags as parameters in any order.
void compareReplaces(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a) {
    auto [tv, tp] = valueAndParams(t);
    auto [av, ap] = valueAndParams(a);
    check(m, d, what + " call-id", tv, av, false, true);
    compareParams(m, d, what, tp, ap);
}

void compareGeneric(Matcher &m, Diffs &d, const std::string &what, const std::string &t, const std::string &a) {
    auto [tv, tp] = valueAndParams(t);
    auto [av, ap] = valueAndParams(a);
    check(m, d, what, collapse(tv), collapse(av), true);
    compareParams(m, d, what, tp, ap);
}

bool isNameAddrHeader(const std::string &n) {
    static const std::set<std::string> names = {"from",
                                                "to",
                                                "contact",
                                                "route",
                                                "record-route",
                                                "refer-to",
                                                "referred-by",
                                                "p-asserted-identity",
                                                "p-preferred-identity",
                                                "reply-to",
                                                "path",
                                                "service-route",
                                                "diversion",
                                                "history-info",
                                                "p-called-party-id"};
    return names.count(n) > 0;
}

bool isTokenSetHeader(const std::string &n) {
    static const std::set<std::string> names = {"allow",           "supported",       "require",
                                                "proxy-require",   "unsupported",     "allow-events",
                                                "accept-encoding", "accept-language", "content-encoding"};
    return names.count(n) > 0;
}

void compareOne(Matcher &m, Diffs &d, const std::string &n, const std::string &what, const std::string &t,
                const std::string &a) {
    if (n == "call-id")
        check(m, d, what, trim(t), trim(a)); // RFC 3261 §8.1.1.4: byte for byte
    else if (n == "cseq")
        compareCSeq(m, d, what, t, a);
    else if (n == "via")
        compareVia(m, d, what, t, a);
    else if (n == "subscription-state")
        compareSubscriptionState(m, d, what, t, a);
    else if (n == "event")
        compareEvent(m, d, what, t, a);
    else if (n == "replaces" || n == "target-dialog" || n == "join")
        compareReplaces(m, d, what, t, a);
    else if (isNameAddrHeader(n) && trim(t) != "*")
        compareNameAddr(m, d, what, t, a);
    else
        compareGeneric(m, d, what, t, a);
}

std::string joined(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &x : v)
        out += (out.empty() ? "" : ", ") + x;
    return out;
}

// Allow, Supported, Require ...: sets of tokens, order and case do not matter.
void compareTokenSet(Matcher &m, Diffs &d, const std::string &what, const std::vector<std::string> &t,
                     const std::vector<std::string> &a) {
    std::set<std::string> ts, as;
    for (const auto &x : t)
        ts.insert(lower(m.fill(x)));
    for (const auto &x : a)
        as.insert(lower(x));
    if (ts != as)
        d.push_back({what, joined(std::vector<std::string>(ts.begin(), ts.end())),
                     joined(std::vector<std::string>(as.begin(), as.end()))});
}

std::string displayName(const std::string &canonical, const std::string &given) {
    return given.size() > 1 ? given : canonical; // "CSeq" as the fixture spells it, "call-id" for "i"
}

void compareHeader(Matcher &m, Diffs &d, const std::string &name, const Parsed &t, const Parsed &a) {
    std::string n = canonicalName(name), what = "header " + displayName(n, name);
    auto tv = headerValues(t, n), av = headerValues(a, n);
    if (tv.empty())
        return;
    if (av.empty()) {
        d.push_back({what, m.fill(joined(tv)), "(missing)"});
        return;
    }
    if (isTokenSetHeader(n))
        return compareTokenSet(m, d, what, tv, av);
    if (tv.size() != av.size()) {
        d.push_back({what + " (" + std::to_string(tv.size()) + " values, got " + std::to_string(av.size()) + ")",
                     m.fill(joined(tv)), joined(av)});
        return;
    }
    for (size_t i = 0; i < tv.size(); ++i)
        compareOne(m, d, n, tv.size() > 1 ? what + "[" + std::to_string(i + 1) + "]" : what, tv[i], av[i]);
}

// Learns symbols from a header the step does not compare. Each part (a URI user, a tag, a parameter) binds
// only when that part agrees, so a header that differs elsewhere (another display name, an extra parameter)
// still yields its To-tag; differences here are not reported.
void learnFromHeader(Matcher &m, const std::string &n, const Parsed &t, const Parsed &a) {
    auto tv = headerValues(t, n), av = headerValues(a, n);
    if (isTokenSetHeader(n))
        return;
    Diffs ignored;
    for (size_t i = 0; i < std::min(tv.size(), av.size()); ++i)
        compareOne(m, ignored, n, n, tv[i], av[i]);
}

void compareStartLine(Matcher &m, Diffs &d, const Parsed &t, const Parsed &a) {
    if (isResponse(t)) {
        if (!isResponse(a) || statusCode(a) != statusCode(t))
            d.push_back({"status", t.startLine, a.startLine});
        return;
    }
    if (isResponse(a) || method(a) != method(t)) {
        d.push_back({"method", method(t), isResponse(a) ? a.startLine : method(a)});
        return;
    }
    // The Request-URI's user is compared; the rest (the phone's own address) only binds symbols.
    Uri tu = parseUri(requestUri(t)), au = parseUri(requestUri(a));
    check(m, d, "Request-URI user", unescapeTemplate(tu.user), uriUnescape(au.user), false, true);
    Matcher trial = m;
    Diffs scratch;
    compareUri(trial, scratch, "Request-URI", requestUri(t), requestUri(a));
    if (scratch.empty())
        m.learned = trial.learned;
}

} // namespace

// ---------------------------------------------------------------------------------------------- bodies
// (kept in this file with the matcher they use)

namespace {

std::vector<std::string> bodyLines(const std::string &body) {
    std::vector<std::string> out;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (!trim(line).empty())
            out.push_back(line);
    }
    return out;
}

// ---- SDP (RFC 4566), compared as an offer/answer would see it (RFC 3264)

struct SdpMedia {
    std::string type, port, proto, direction, c;
    std::vector<std::string> formats;
    std::map<std::string, std::string> rtpmap; // payload type -> "PCMU/8000"
};

struct Sdp {
    std::string o, c, direction;
    std::vector<SdpMedia> media;
};

bool isDirection(const std::string &a) {
    return a == "sendrecv" || a == "sendonly" || a == "recvonly" || a == "inactive";
}

Sdp parseSdp(const std::string &body) {
    Sdp s;
    for (const auto &line : bodyLines(body)) {
        if (line.size() < 2 || line[1] != '=')
            continue;
        char k = line[0];
        std::string v = trim(line.substr(2));
        SdpMedia *m = s.media.empty() ? nullptr : &s.media.back();
        if (k == 'm') {
            std::istringstream in(v);
            SdpMedia x;
            in >> x.type >> x.port >> x.proto;
            for (std::string f; in >> f;)
                x.formats.push_back(f);
            s.media.push_back(x);
        } else if (k == 'o' && !m) {
            s.o = v;
        } else if (k == 'c') {
            (m ? m->c : s.c) = v;
        } else if (k == 'a' && isDirection(lower(v))) {
            (m ? m->direction : s.direction) = lower(v);
        } else if (k == 'a' && m && v.rfind("rtpmap:", 0) == 0) {
            auto sp = v.find(' ');
            if (sp != std::string::npos)
                m->rtpmap[trim(v.substr(7, sp - 7))] = trim(v.substr(sp + 1));
        }
    }
    return s;
}

// RFC 3551 §6 static payload types (no rtpmap needed).
std::string staticCodec(const std::string &pt) {
    static const std::map<std::string, std::string> names = {
        {"0", "PCMU/8000"},   {"3", "GSM/8000"},   {"4", "G723/8000"},   {"5", "DVI4/8000"},    {"6", "DVI4/16000"},
        {"7", "LPC/8000"},    {"8", "PCMA/8000"},  {"9", "G722/8000"},   {"10", "L16/44100/2"}, {"11", "L16/44100"},
        {"12", "QCELP/8000"}, {"13", "CN/8000"},   {"14", "MPA/90000"},  {"15", "G728/8000"},   {"16", "DVI4/11025"},
        {"17", "DVI4/22050"}, {"18", "G729/8000"}, {"25", "CELB/90000"}, {"26", "JPEG/90000"},  {"28", "NV/90000"},
        {"31", "H261/90000"}, {"32", "MPV/90000"}, {"33", "MP2T/90000"}, {"34", "H263/90000"}};
    auto it = names.find(pt);
    return it == names.end() ? "payload " + pt : it->second;
}

// Codecs by name and rate (RFC 4855 §3: names are case-insensitive; "/1" channels is the default).
std::set<std::string> codecs(const SdpMedia &m) {
    std::set<std::string> out;
    for (const auto &f : m.formats) {
        auto it = m.rtpmap.find(f);
        std::string c = it == m.rtpmap.end() ? staticCodec(f) : it->second;
        std::transform(c.begin(), c.end(), c.begin(), [](unsigned char x) { return std::toupper(x); });
        if (c.size() > 2 && c.compare(c.size() - 2, 2, "/1") == 0 && std::count(c.begin(), c.end(), '/') == 2)
            c.resize(c.size() - 2);
        out.insert(m.proto.find("RTP") == std::string::npos ? f : c);
    }
    return out;
}

std::string setText(const std::set<std::string> &s) {
    std::string out;
    for (const auto &x : s)
        out += (out.empty() ? "" : " ") + x;
    return out;
}

// Binds the symbols of a line (o=, c=, a port) without reporting a difference: the values change per run.
void bindQuietly(Matcher &m, const std::string &t, const std::string &a) {
    Matcher trial = m;
    if (trial.match(t, a))
        m.learned = trial.learned;
}

// o= and c= field by field (RFC 4566 §5.2, §5.7): "- {{sdp1}} {{sdpv1}} IN IP4 {{server.host}}".
void bindFields(Matcher &m, const std::string &t, const std::string &a) {
    std::istringstream ti(t), ai(a);
    std::vector<std::string> tf, af;
    for (std::string x; ti >> x;)
        tf.push_back(x);
    for (std::string x; ai >> x;)
        af.push_back(x);
    if (tf.size() == af.size())
        for (size_t i = 0; i < tf.size(); ++i)
            bindQuietly(m, tf[i], af[i]);
}

void compareSdpMedia(Matcher &m, Diffs &d, const std::string &w, const SdpMedia &t, const SdpMedia &a, const Sdp &ts,
                     const Sdp &as) {
    check(m, d, w + " media", t.type, a.type, true);
    check(m, d, w + " transport", t.proto, a.proto, true);
    bool tZero = t.port == "0", aZero = a.port == "0";
    if (tZero != aZero) // RFC 3264 §6: port 0 rejects the stream
        d.push_back({w + " port", tZero ? "0 (rejected)" : "non-zero", a.port});
    bindQuietly(m, t.port, a.port);
    bindFields(m, t.c.empty() ? ts.c : t.c, a.c.empty() ? as.c : a.c);
    auto tc = codecs(t), ac = codecs(a);
    if (tc != ac)
        d.push_back({w + " codecs", setText(tc), setText(ac)});
    // RFC 3264 §5.1 / §6: the media's direction attribute, else the session's, else sendrecv.
    std::string td = !t.direction.empty() ? t.direction : !ts.direction.empty() ? ts.direction : "sendrecv";
    std::string ad = !a.direction.empty() ? a.direction : !as.direction.empty() ? as.direction : "sendrecv";
    if (td != ad)
        d.push_back({w + " direction", td, ad});
}

void compareSdp(Matcher &m, Diffs &d, const std::string &tb, const std::string &ab) {
    Sdp t = parseSdp(tb), a = parseSdp(ab);
    bindFields(m, t.o, a.o);
    bindFields(m, t.c, a.c);
    if (t.media.size() != a.media.size()) {
        d.push_back({"body sdp: m= lines", std::to_string(t.media.size()), std::to_string(a.media.size())});
        return;
    }
    for (size_t i = 0; i < t.media.size(); ++i)
        compareSdpMedia(m, d,
                        "body sdp: m=" + t.media[i].type + (t.media.size() > 1 ? "#" + std::to_string(i + 1) : ""),
                        t.media[i], a.media[i], t, a);
}

// ---- XML bodies (libxml2)

struct XmlDocFree {
    void operator()(xmlDoc *doc) const { xmlFreeDoc(doc); }
};
using XmlDoc = std::unique_ptr<xmlDoc, XmlDocFree>;

XmlDoc readXml(const std::string &text, std::string &error) {
    xmlResetLastError();
    XmlDoc doc(xmlReadMemory(text.data(), static_cast<int>(text.size()), "body.xml", nullptr,
                             XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
    if (!doc || !xmlDocGetRootElement(doc.get())) {
        const xmlError *e = xmlGetLastError();
        error = e && e->message ? trim(e->message) : "not well-formed XML";
        if (e)
            error += " (line " + std::to_string(e->line) + ")";
        return nullptr;
    }
    return doc;
}

std::string nodeName(const xmlNode *n) {
    return reinterpret_cast<const char *>(n->name);
}

std::string attr(const xmlNode *n, const char *name) {
    xmlChar *v = xmlGetProp(n, reinterpret_cast<const xmlChar *>(name));
    std::string out = v ? reinterpret_cast<const char *>(v) : "";
    xmlFree(v);
    return out;
}

bool hasAttr(const xmlNode *n, const std::string &name) {
    return xmlHasProp(n, reinterpret_cast<const xmlChar *>(name.c_str())) != nullptr;
}

std::string text(const xmlNode *n) {
    xmlChar *v = xmlNodeGetContent(n);
    std::string out = v ? reinterpret_cast<const char *>(v) : "";
    xmlFree(v);
    return collapse(out);
}

std::vector<const xmlNode *> elements(const xmlNode *n) {
    std::vector<const xmlNode *> out;
    for (const xmlNode *c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            out.push_back(c);
    return out;
}

struct XmlRules {
    std::string kind;
    std::map<std::string, std::string> key; // element -> attribute that identifies it among its siblings
    std::set<std::string> ignore;           // elements not compared at all
    std::set<std::string> presenceOnly;     // elements whose text is not compared (times), only that they are there
    std::set<std::string> uriText;          // elements whose text is a URI
    std::set<std::string> uriAttrs;         // attributes holding a URI
    bool extraIsDifference = true;          // an element the template does not have is a difference
};

const XmlRules *rulesFor(const std::string &kind) {
    // RFC 4235 §4: dialog-info; the version is checked to increase (see checkVersion), <duration> changes
    // with timing, local/remote <target> carry their URI in @uri, <identity> in text.
    static const XmlRules dialogInfo{"dialog-info",
                                     {{"dialog", "id"}},
                                     {"duration", "session-description", "param"},
                                     {},
                                     {"identity", "referred-by"},
                                     {"entity", "uri"},
                                     true};
    // docs/park-info.md: times are not compared, only whether they are there (a recall pending or not).
    static const XmlRules parkInfo{"park-info",
                                   {{"parked", "id"}},
                                   {},
                                   {"parked-at", "recall-at", "changed-at"},
                                   {"parked-on", "parker", "parked-party", "retrieve"},
                                   {"entity"},
                                   true};
    // RFC 3863 §4.1: per tuple the basic status (and the contact); notes, timestamps and extensions are not.
    static const XmlRules pidf{"pidf", {{"tuple", "id"}}, {"note", "timestamp"}, {}, {"contact"}, {"entity"}, false};
    if (kind == "dialog-info")
        return &dialogInfo;
    if (kind == "park-info")
        return &parkInfo;
    if (kind == "pidf")
        return &pidf;
    return nullptr;
}

std::string where(const std::string &kind, const std::string &path) {
    return "body " + kind + ":" + (path.empty() ? "" : " " + path);
}

void compareAttrs(Matcher &m, Diffs &d, const XmlRules &r, const std::string &path, const xmlNode *t,
                  const xmlNode *a) {
    for (const xmlAttr *p = t->properties; p; p = p->next) {
        std::string n = reinterpret_cast<const char *>(p->name);
        if (n == "version")
            continue;
        std::string w = where(r.kind, path + "@" + n);
        if (!hasAttr(a, n))
            d.push_back({w, m.fill(attr(t, n.c_str()), true), "(missing)"});
        else if (r.uriAttrs.count(n))
            compareUri(m, d, w, attr(t, n.c_str()), attr(a, n.c_str()));
        else
            check(m, d, w, attr(t, n.c_str()), attr(a, n.c_str()), false, true);
    }
    for (const xmlAttr *p = a->properties; p; p = p->next) {
        std::string n = reinterpret_cast<const char *>(p->name);
        if (n != "version" && r.extraIsDifference && !hasAttr(t, n))
            d.push_back({where(r.kind, path + "@" + n), "(absent)", attr(a, n.c_str())});
    }
}

void compareElement(Matcher &m, Diffs &d, const XmlRules &r, const std::string &path, const xmlNode *t,
                    const xmlNode *a);

// "dialog[@id=abc]" for keyed elements, "state" otherwise.
std::string step(const XmlRules &r, const xmlNode *actual) {
    std::string n = nodeName(actual);
    auto k = r.key.find(n);
    return k == r.key.end() ? n : n + "[@" + k->second + "=" + attr(actual, k->second.c_str()) + "]";
}

// Finds the actual element for a template element: same name and, for keyed elements, a key that matches
// (an unbound key symbol matches the first unused one, so siblings pair in order).
const xmlNode *partner(Matcher &m, const XmlRules &r, const xmlNode *t, const std::vector<const xmlNode *> &as,
                       std::set<const xmlNode *> &used) {
    auto k = r.key.find(nodeName(t));
    for (const xmlNode *a : as) {
        if (used.count(a) || nodeName(a) != nodeName(t))
            continue;
        if (k != r.key.end()) {
            Matcher trial = m;
            if (!trial.match(attr(t, k->second.c_str()), attr(a, k->second.c_str()), false, true))
                continue;
        }
        used.insert(a);
        return a;
    }
    return nullptr;
}

void compareChildren(Matcher &m, Diffs &d, const XmlRules &r, const std::string &path, const xmlNode *t,
                     const xmlNode *a) {
    auto ts = elements(t), as = elements(a);
    std::set<const xmlNode *> used;
    for (const xmlNode *tc : ts) {
        if (r.ignore.count(nodeName(tc)))
            continue;
        const xmlNode *ac = partner(m, r, tc, as, used);
        if (!ac) {
            std::string n = nodeName(tc);
            auto k = r.key.find(n);
            std::string label =
                k == r.key.end() ? n : n + "[@" + k->second + "=" + m.fill(attr(tc, k->second.c_str()), true) + "]";
            d.push_back({where(r.kind, path + label), "present", "(missing)"});
            continue;
        }
        compareElement(m, d, r, path + step(r, ac), tc, ac);
    }
    for (const xmlNode *ac : as)
        if (!used.count(ac) && !r.ignore.count(nodeName(ac)) && r.extraIsDifference)
            d.push_back({where(r.kind, path + step(r, ac)), "(absent)", "present: " + text(ac)});
}

void compareElement(Matcher &m, Diffs &d, const XmlRules &r, const std::string &path, const xmlNode *t,
                    const xmlNode *a) {
    compareAttrs(m, d, r, path, t, a);
    std::string n = nodeName(t);
    if (elements(t).empty() && elements(a).empty()) {
        std::string w = where(r.kind, path);
        if (r.presenceOnly.count(n))
            return;
        if (r.uriText.count(n))
            compareUri(m, d, w, text(t), text(a));
        else
            check(m, d, w, text(t), text(a), false, true);
        return;
    }
    compareChildren(m, d, r, path.empty() ? "" : path + "/", t, a);
}

// The largest version recorded under `prefix` in the runner's bindings or this message's. Each version seen is
// its own entry ("~dialog-info-version <scope> 4"), so it works whether the runner adds learned entries or
// overwrites them.
std::optional<long long> lastVersion(const Matcher &m, const std::string &prefix) {
    std::optional<long long> best;
    for (const Bindings *b : {&m.bound(), &m.learned})
        for (auto it = b->lower_bound(prefix); it != b->end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
            if (isNumber(it->second) && (!best || std::stoll(it->second) > *best))
                best = std::stoll(it->second);
    return best;
}

// RFC 4235 §4.1.2 (and docs/park-info.md): a version must be larger than the last one seen for the same
// subscription (dialog-info: per Call-ID) or extension (park-info: per entity). The literal value in the
// fixture is not compared: it depends on what happened before the trace started.
void checkVersion(Matcher &m, Diffs &d, const std::string &kind, const std::string &scope, const xmlNode *a) {
    if (!hasAttr(a, "version"))
        return;
    std::string v = attr(a, "version");
    if (!isNumber(v)) {
        d.push_back({where(kind, "@version"), "a number", v});
        return;
    }
    std::string prefix = "~" + kind + "-version " + scope + " ";
    auto last = lastVersion(m, prefix);
    if (last && std::stoll(v) <= *last)
        d.push_back({where(kind, "@version"), "larger than " + std::to_string(*last) + " (the last one)", v});
    m.learned[prefix + v] = v;
}

void compareXml(Matcher &m, Diffs &d, const XmlRules &r, const std::string &tb, const std::string &ab,
                const std::string &callId) {
    std::string terr, aerr;
    XmlDoc t = readXml(tb, terr), a = readXml(ab, aerr);
    if (!t) {
        d.push_back({where(r.kind, "(fixture template)"), "well-formed XML", terr});
        return;
    }
    if (!a) {
        d.push_back({where(r.kind, ""), "well-formed XML", aerr});
        return;
    }
    const xmlNode *tr = xmlDocGetRootElement(t.get()), *ar = xmlDocGetRootElement(a.get());
    if (nodeName(tr) != nodeName(ar)) {
        d.push_back({where(r.kind, "root element"), nodeName(tr), nodeName(ar)});
        return;
    }
    // The document's namespace names the format (RFC 4235 §4.1, RFC 3863 §4.1, docs/park-info.md).
    std::string tns = tr->ns && tr->ns->href ? reinterpret_cast<const char *>(tr->ns->href) : "";
    std::string ans = ar->ns && ar->ns->href ? reinterpret_cast<const char *>(ar->ns->href) : "";
    if (tns != ans)
        d.push_back({where(r.kind, "namespace"), tns, ans});
    std::string entity = attr(ar, "entity");
    checkVersion(m, d, r.kind, r.kind == "dialog-info" ? callId + " " + entity : entity, ar);
    compareElement(m, d, r, "", tr, ar);
}

// RFC 3420: a sipfrag NOTIFY (RFC 3515 §2.4.5) is compared by its status line: the code (and for a request
// line, the method); reason phrases are for humans (RFC 3261 §21).
void compareSipfrag(Matcher &m, Diffs &d, const std::string &tb, const std::string &ab) {
    auto tl = bodyLines(tb), al = bodyLines(ab);
    std::string t = tl.empty() ? "" : collapse(tl[0]), a = al.empty() ? "" : collapse(al[0]);
    bool tResp = t.rfind("SIP/", 0) == 0;
    std::string tk = tResp ? t.substr(0, std::min(t.size(), size_t(11))) : t.substr(0, t.find(' '));
    std::string ak = tResp ? a.substr(0, std::min(a.size(), size_t(11))) : a.substr(0, a.find(' '));
    if (!m.match(tk, ak, true))
        d.push_back({"body sipfrag: status line", m.fill(t), a});
}

void compareText(Matcher &m, Diffs &d, const std::string &tb, const std::string &ab) {
    std::string t, a;
    for (const auto &l : bodyLines(tb))
        t += l + "\n";
    for (const auto &l : bodyLines(ab))
        a += l + "\n";
    check(m, d, "body text", t, a);
}

void compareBody(Matcher &m, Diffs &d, const std::string &kind, const Parsed &t, const Parsed &a) {
    if (kind.empty() || kind == "ignore")
        return;
    if (trim(a.body).empty() && !trim(t.body).empty()) {
        d.push_back({"body " + kind, "a " + kind + " body", "(no body)"});
        return;
    }
    const std::string *cid = firstHeader(a, "Call-ID");
    if (kind == "sdp")
        compareSdp(m, d, t.body, a.body);
    else if (const XmlRules *r = rulesFor(kind))
        compareXml(m, d, *r, t.body, a.body, cid ? trim(*cid) : "");
    else if (kind == "sipfrag")
        compareSipfrag(m, d, t.body, a.body);
    else if (kind == "text")
        compareText(m, d, t.body, a.body);
    else
        d.push_back({"body", "a known body kind (sdp, dialog-info, park-info, pidf, sipfrag, text, ignore)",
                     "the fixture says '" + kind + "'"});
}

} // namespace

// ---------------------------------------------------------------------------------------------- public

bool couldMatch(const Step &expected, const std::string &actual, const Bindings &bound) {
    Parsed a = parseText(actual), t = parseTemplate(expected.message);
    if (isResponse(a) != isResponse(t))
        return false;
    if (isResponse(a) ? cseqMethod(a) != cseqMethod(t) : method(a) != method(t))
        return false;
    const std::string *tc = firstHeader(t, "Call-ID"), *ac = firstHeader(a, "Call-ID");
    if (tc && ac) {
        auto refs = templateRefs(*tc);
        bool allBound =
            std::all_of(refs.begin(), refs.end(), [&](const TemplateRef &r) { return bound.count(r.symbol); });
        Matcher m(bound);
        if (allBound && !m.match(trim(*tc), trim(*ac)))
            return false;
    }
    return true;
}

MatchResult compareMessage(const Step &expected, const Fixture &, const std::string &actual, const Bindings &bound) {
    MatchResult res;
    Parsed a = parseText(actual), t = parseTemplate(expected.message);
    Matcher m(bound);
    compareStartLine(m, res.differences, t, a);
    std::set<std::string> compared;
    for (const auto &name : expected.compare) {
        compared.insert(canonicalName(name));
        compareHeader(m, res.differences, name, t, a);
    }
    // Another status or method: its body is another kind of message; saying so once is enough.
    bool sameKind =
        res.differences.empty() || (res.differences[0].what != "status" && res.differences[0].what != "method");
    if (sameKind)
        compareBody(m, res.differences, expected.body, t, a);
    // Learn from every other header the two share (the To-tag of a 200, the Contact of a dialog ...).
    std::set<std::string> seen;
    for (const auto &[name, value] : t.headers)
        if (!compared.count(name) && seen.insert(name).second)
            learnFromHeader(m, name, t, a);
    res.matched = res.differences.empty();
    if (res.matched)
        for (const auto &[k, v] : m.learned)
            if (!bound.count(k) || bound.at(k) != v)
                res.learned[k] = v;
    return res;
}

namespace {

// "NOTIFY" or "200 OK to INVITE", and what identifies the step's dialog: "(dialog {{call3}}, Event dialog)".
std::string describeStep(const Step &s) {
    Parsed t = parseTemplate(s.message);
    std::string out = isResponse(t)
                          ? t.startLine.substr(std::min(t.startLine.size(), size_t(8))) + " to " + cseqMethod(t)
                          : method(t);
    std::vector<std::string> ids;
    if (const std::string *c = firstHeader(t, "Call-ID"))
        ids.push_back("dialog " + trim(*c));
    if (const std::string *e = firstHeader(t, "Event"))
        ids.push_back("Event " + valueAndParams(*e).first);
    if (!ids.empty())
        out += " (" + joined(ids) + ")";
    return out;
}

std::string indentLines(const std::string &text, const std::string &indent) {
    std::string out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        out += indent + line + "\n";
    return out;
}

std::string formatOne(const Difference &x) {
    bool longForm = x.expected.size() + x.actual.size() > 80 || x.expected.find('\n') != std::string::npos ||
                    x.actual.find('\n') != std::string::npos;
    if (!longForm)
        return "  " + x.what + ": expected '" + x.expected + "', got '" + x.actual + "'\n";
    return "  " + x.what + ":\n    expected:\n" + indentLines(x.expected, "      ") + "    got:\n" +
           indentLines(x.actual, "      ");
}

} // namespace

std::string formatDifferences(const Step &expected, const Fixture &, const std::vector<Difference> &d) {
    std::string out = "step " + std::to_string(expected.id) + " " + expected.participant + ": " +
                      (expected.kind == StepKind::Expect ? "expect " : "send ") + describeStep(expected);
    if (!expected.note.empty())
        out += " -- " + expected.note;
    out += "\n";
    for (const auto &x : d)
        out += formatOne(x);
    return out;
}

} // namespace parkway::replay
