// Message-text and digest helpers of the runner (run_text.hh).
#include "run_text.hh"

#include "import_sip.hh"

#include <core/digest.hh>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

namespace parkway::replay::runtext {

namespace digest = parkway::proxy::digest;

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string canonical(const std::string &name) {
    return parkway::replay::importer::canonicalHeader(name);
} // compact forms expanded

std::vector<std::string> headLines(const std::string &text) {
    std::vector<std::string> out;
    size_t end = text.find("\r\n\r\n");
    std::istringstream in(end == std::string::npos ? text : text.substr(0, end));
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !out.empty())
            out.back() += " " + trim(line); // RFC 3261 §7.3.1 folding
        else
            out.push_back(line);
    }
    return out;
}

} // namespace

std::string startLine(const std::string &text) {
    return text.substr(0, text.find_first_of("\r\n"));
}

bool isResponse(const std::string &text) {
    return text.rfind("SIP/2.0 ", 0) == 0;
}

int status(const std::string &text) {
    if (!isResponse(text) || text.size() < 11)
        return 0;
    return std::atoi(text.substr(8, 3).c_str());
}

std::string method(const std::string &text) {
    if (!isResponse(text))
        return text.substr(0, text.find(' '));
    std::string cseq = header(text, "CSeq");
    auto sp = cseq.find_last_of(" \t");
    return sp == std::string::npos ? "" : cseq.substr(sp + 1);
}

std::string requestUri(const std::string &text) {
    std::string s = startLine(text);
    size_t a = s.find(' '), b = s.rfind(' ');
    return a == std::string::npos || b <= a ? "" : s.substr(a + 1, b - a - 1);
}

std::vector<std::string> headers(const std::string &text, const std::string &name) {
    std::vector<std::string> out;
    std::vector<std::string> lines = headLines(text);
    std::string want = canonical(name);
    for (size_t i = 1; i < lines.size(); ++i) {
        auto colon = lines[i].find(':');
        if (colon != std::string::npos && canonical(lines[i].substr(0, colon)) == want)
            out.push_back(trim(lines[i].substr(colon + 1)));
    }
    return out;
}

std::string header(const std::string &text, const std::string &name) {
    std::vector<std::string> all = headers(text, name);
    return all.empty() ? "" : all.front();
}

long cseqNumber(const std::string &text) {
    std::string c = header(text, "CSeq");
    if (c.empty() || !std::isdigit(static_cast<unsigned char>(c[0])))
        return -1;
    return std::atol(c.c_str());
}

std::string body(const std::string &text) {
    size_t end = text.find("\r\n\r\n");
    return end == std::string::npos ? "" : text.substr(end + 4);
}

std::string param(const std::string &value, const std::string &name) {
    std::string v = lower(value), key = ";" + lower(name) + "=";
    // Parameters of the header itself follow the URI's closing '>' when there is one.
    size_t from = value.find('>');
    size_t at = v.find(key, from == std::string::npos ? 0 : from);
    if (at == std::string::npos)
        return "";
    size_t b = at + key.size(), e = value.find_first_of(";,> \t", b);
    return value.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

bool isHeaderLine(const std::string &line, const std::string &name) {
    auto colon = line.find(':');
    return colon != std::string::npos && canonical(line.substr(0, colon)) == canonical(name);
}

std::string shiftCSeq(const std::string &text, long delta) {
    if (delta == 0)
        return text;
    size_t end = text.find("\r\n\r\n");
    size_t pos = 0;
    while (pos < end && pos != std::string::npos) {
        size_t eol = text.find("\r\n", pos);
        std::string line = text.substr(pos, eol - pos);
        if (isHeaderLine(line, "CSeq")) {
            size_t colon = line.find(':'), b = line.find_first_of("0123456789", colon);
            if (b == std::string::npos)
                return text;
            size_t e = line.find_first_not_of("0123456789", b);
            long n = std::atol(line.substr(b, e - b).c_str()) + delta;
            return text.substr(0, pos + b) + std::to_string(n) + text.substr(pos + e);
        }
        pos = eol == std::string::npos ? eol : eol + 2;
    }
    return text;
}

std::string summary(const std::string &text) {
    std::string s = startLine(text);
    if (!isResponse(text))
        s = s.substr(0, s.rfind(' '));
    std::string extra = isResponse(text) ? "CSeq " + header(text, "CSeq") + ", " : "";
    return s + " (" + extra + "Call-ID " + header(text, "Call-ID") + ")";
}

// ---- digest

std::string authParam(const std::string &value, const std::string &name) {
    std::string v = lower(value), key = lower(name) + "=";
    size_t at = 0;
    while ((at = v.find(key, at)) != std::string::npos) {
        if (at == 0 || v[at - 1] == ' ' || v[at - 1] == ',' || v[at - 1] == '\t')
            break;
        at += key.size();
    }
    if (at == std::string::npos)
        return "";
    size_t b = at + key.size();
    if (b < value.size() && value[b] == '"') {
        size_t e = value.find('"', b + 1);
        return value.substr(b + 1, e == std::string::npos ? std::string::npos : e - b - 1);
    }
    size_t e = value.find_first_of(", \t", b);
    return value.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

std::optional<Challenge> pickChallenge(const std::vector<std::string> &values) {
    for (const auto &v : values) {
        if (lower(v).rfind("digest", 0) != 0)
            continue;
        Challenge c{authParam(v, "realm"), authParam(v, "nonce"), authParam(v, "opaque"), authParam(v, "algorithm"),
                    authParam(v, "qop")};
        if (digest::parse(c.algorithm))
            return c;
    }
    return std::nullopt;
}

std::string credentials(const Challenge &c, const std::string &user, const std::string &password,
                        const std::string &method, const std::string &uri, unsigned nc) {
    digest::Algorithm alg = digest::parse(c.algorithm).value_or(digest::Algorithm::Md5);
    std::string ha1 = digest::ha1(alg, user, c.realm, password);
    std::string out =
        fmt::format("Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"", user, c.realm, c.nonce, uri);
    bool qopAuth = false;
    std::istringstream qops(c.qop);
    for (std::string q; std::getline(qops, q, ',');)
        qopAuth = qopAuth || trim(q) == "auth";
    if (qopAuth) { // RFC 7616 §3.4.1
        digest::Credentials cr;
        cr.username = user, cr.realm = c.realm, cr.nonce = c.nonce, cr.uri = uri, cr.qop = "auth";
        cr.nc = fmt::format("{:08x}", nc), cr.cnonce = digest::randomHex(8);
        out += fmt::format(", response=\"{}\", qop=auth, nc={}, cnonce=\"{}\"",
                           digest::expectedResponse(alg, ha1, method, cr), cr.nc, cr.cnonce);
    } else { // RFC 2069 compatibility form (RFC 7616 §3.4.1 without qop)
        std::string ha2 = digest::hash(alg, method + ":" + uri);
        out += fmt::format(", response=\"{}\"", digest::hash(alg, ha1 + ":" + c.nonce + ":" + ha2));
    }
    out += fmt::format(", algorithm={}", digest::name(alg));
    if (!c.opaque.empty())
        out += fmt::format(", opaque=\"{}\"", c.opaque);
    return out;
}

} // namespace parkway::replay::runtext
