// SIP text helpers of the fixture builder (import_sip.hh).
#include "import_sip.hh"

#include "fixture.hh"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <map>

namespace parkway::replay::importer {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// RFC 3261 §7.3.3 compact forms, plus RFC 3515 (r Refer-To), RFC 3892 (b Referred-By), RFC 6665 (o Event,
// u Allow-Events), RFC 4028 (x Session-Expires), RFC 3841 (a Accept-Contact, j Reject-Contact, d Request-Disposition).
std::string canonicalHeader(const std::string &name) {
    static const std::map<std::string, std::string> compact = {{"i", "call-id"},
                                                               {"m", "contact"},
                                                               {"e", "content-encoding"},
                                                               {"l", "content-length"},
                                                               {"c", "content-type"},
                                                               {"f", "from"},
                                                               {"s", "subject"},
                                                               {"k", "supported"},
                                                               {"t", "to"},
                                                               {"v", "via"},
                                                               {"o", "event"},
                                                               {"r", "refer-to"},
                                                               {"b", "referred-by"},
                                                               {"u", "allow-events"},
                                                               {"x", "session-expires"},
                                                               {"y", "identity"},
                                                               {"a", "accept-contact"},
                                                               {"j", "reject-contact"},
                                                               {"d", "request-disposition"}};
    std::string n = lower(trim(name));
    auto it = compact.find(n);
    return it == compact.end() ? n : it->second;
}

const std::string *SipText::header(const std::string &name) const {
    for (const auto &h : headers)
        if (h.name == name)
            return &h.value;
    return nullptr;
}

std::vector<std::string> SipText::values(const std::string &name) const {
    std::vector<std::string> out;
    for (const auto &h : headers)
        if (h.name == name)
            for (auto &v : splitComma(h.value))
                out.push_back(v);
    return out;
}

namespace {

bool parseStartLine(SipText &m, std::string &why) {
    const std::string &s = m.startLine;
    if (s.rfind("SIP/2.0 ", 0) == 0) {
        if (s.size() < 11 || !std::isdigit(static_cast<unsigned char>(s[8])))
            return why = "bad status line '" + s + "'", false;
        m.status = std::stoi(s.substr(8, 3));
        return true;
    }
    auto sp1 = s.find(' '), sp2 = s.rfind(' ');
    if (sp1 == std::string::npos || sp2 == sp1 || s.substr(sp2 + 1) != "SIP/2.0")
        return why = "not a SIP start line: '" + s.substr(0, 60) + "'", false;
    m.request = true;
    m.method = s.substr(0, sp1);
    m.ruri = s.substr(sp1 + 1, sp2 - sp1 - 1);
    return true;
}

} // namespace

bool parseSip(const std::string &data, SipText &m, std::string &why) {
    size_t end = data.find("\r\n\r\n"), skip = 4;
    if (end == std::string::npos) {
        end = data.find("\n\n");
        skip = 2;
    }
    std::string head = end == std::string::npos ? data : data.substr(0, end);
    m.body = end == std::string::npos ? "" : data.substr(end + skip);
    size_t pos = 0;
    bool first = true;
    while (pos <= head.size()) {
        size_t nl = head.find('\n', pos);
        std::string line = head.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? head.size() + 1 : nl + 1;
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (first) {
            m.startLine = line;
            first = false;
        } else if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !m.lines.empty()) {
            m.lines.back() += " " + trim(line); // RFC 3261 §7.3.1 folding
            m.headers.back().value += " " + trim(line);
        } else if (auto colon = line.find(':'); colon != std::string::npos) {
            m.lines.push_back(line);
            m.headers.push_back({canonicalHeader(line.substr(0, colon)), trim(line.substr(colon + 1))});
        } else if (!line.empty()) {
            m.lines.push_back(line);
            m.headers.push_back({"", line});
        }
    }
    return parseStartLine(m, why);
}

std::vector<std::string> splitComma(const std::string &value) {
    std::vector<std::string> out;
    std::string cur;
    bool quote = false;
    int angle = 0;
    for (size_t i = 0; i < value.size(); ++i) {
        char c = value[i];
        if (quote && c == '\\' && i + 1 < value.size()) {
            cur += c;
            cur += value[++i];
            continue;
        }
        if (c == '"')
            quote = !quote;
        else if (!quote && c == '<')
            ++angle;
        else if (!quote && c == '>' && angle > 0)
            --angle;
        if (c == ',' && !quote && angle == 0) {
            out.push_back(trim(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!trim(cur).empty())
        out.push_back(trim(cur));
    return out;
}

std::string headerParam(const std::string &value, const std::string &name) {
    bool quote = false;
    int angle = 0;
    std::string want = lower(name);
    for (size_t i = 0; i < value.size(); ++i) {
        char c = value[i];
        if (c == '"')
            quote = !quote;
        if (quote)
            continue;
        if (c == '<')
            ++angle;
        else if (c == '>' && angle > 0)
            --angle;
        if (c != ';' || angle)
            continue;
        size_t e = value.find_first_of(";,", i + 1);
        std::string p = value.substr(i + 1, e == std::string::npos ? std::string::npos : e - i - 1);
        auto eq = p.find('=');
        if (lower(trim(p.substr(0, eq))) == want) {
            std::string v = eq == std::string::npos ? "" : trim(p.substr(eq + 1));
            if (v.size() >= 2 && v.front() == '"' && v.back() == '"')
                v = v.substr(1, v.size() - 2);
            return v;
        }
    }
    return "";
}

namespace {
void splitHostPort(const std::string &hp, std::string &host, int &port) {
    std::string p;
    if (!hp.empty() && hp[0] == '[') {
        auto close = hp.find(']');
        host = hp.substr(1, close == std::string::npos ? std::string::npos : close - 1);
        if (close != std::string::npos && close + 1 < hp.size() && hp[close + 1] == ':')
            p = hp.substr(close + 2);
    } else {
        auto colon = hp.find(':');
        host = hp.substr(0, colon);
        if (colon != std::string::npos)
            p = hp.substr(colon + 1);
    }
    port = 0;
    if (!p.empty() && p.size() <= 5 && p.find_first_not_of("0123456789") == std::string::npos)
        port = std::stoi(p);
}
} // namespace

UriInfo uriOf(const std::string &value) {
    UriInfo u;
    std::string v = value;
    auto lt = v.find('<');
    if (lt != std::string::npos) {
        auto gt = v.find('>', lt);
        v = v.substr(lt + 1, gt == std::string::npos ? std::string::npos : gt - lt - 1);
    }
    v = trim(v);
    auto colon = v.find(':');
    if (colon == std::string::npos)
        return u;
    u.scheme = lower(v.substr(0, colon));
    if (u.scheme != "sip" && u.scheme != "sips" && u.scheme != "tel")
        return u;
    std::string rest = v.substr(colon + 1);
    if (u.scheme == "tel") {
        u.user = uriUnescape(rest.substr(0, rest.find_first_of(";?>")));
        u.ok = true;
        return u;
    }
    auto at = rest.find('@'), stop = rest.find_first_of("?>");
    if (at != std::string::npos && (stop == std::string::npos || at < stop)) {
        std::string user = rest.substr(0, at);
        u.user = uriUnescape(user.substr(0, user.find(':'))); // user:password
        rest = rest.substr(at + 1);
    }
    splitHostPort(rest.substr(0, rest.find_first_of(";?>")), u.host, u.port);
    u.ok = !u.host.empty();
    return u;
}

ViaInfo parseVia(const std::string &v) {
    ViaInfo via;
    auto sp = v.find_first_of(" \t");
    if (sp == std::string::npos)
        return via;
    std::string proto = v.substr(0, sp);
    via.transport = lower(proto.substr(proto.rfind('/') + 1));
    std::string rest = trim(v.substr(sp));
    splitHostPort(trim(rest.substr(0, rest.find(';'))), via.host, via.port);
    via.branch = headerParam(rest, "branch");
    return via;
}

long cseqNumber(const SipText &m) {
    const std::string *c = m.header("cseq");
    if (!c || c->empty() || !std::isdigit(static_cast<unsigned char>((*c)[0])))
        return -1;
    std::string n = c->substr(0, c->find_first_not_of("0123456789"));
    return n.size() > 10 ? -1 : std::stol(n);
}

std::string cseqMethod(const SipText &m) {
    const std::string *c = m.header("cseq");
    if (!c)
        return "";
    auto sp = c->find_last_of(" \t");
    return sp == std::string::npos ? "" : c->substr(sp + 1);
}

std::string tagOf(const SipText &m, const char *name) {
    const std::string *h = m.header(name);
    return h ? headerParam(*h, "tag") : "";
}

std::string contentType(const SipText &m) {
    const std::string *c = m.header("content-type");
    return c ? lower(trim(c->substr(0, c->find(';')))) : "";
}

std::vector<std::string> bodyLines(const std::string &body) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < body.size()) {
        size_t nl = body.find('\n', pos);
        std::string line = body.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        out.push_back(line);
        pos = nl == std::string::npos ? body.size() : nl + 1;
    }
    return out;
}

bool isIpv4(const std::string &s) {
    in_addr a;
    return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool isIpLiteral(const std::string &s) {
    in6_addr a;
    return isIpv4(s) || inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

} // namespace parkway::replay::importer
