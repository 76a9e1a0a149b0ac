// parkway-replay import: identifiers -> {{symbols}} (symbolizer.hh).
#include "symbolizer.hh"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>
#include <regex>
#include <set>
#include <sstream>

namespace parkway::replay::importer {

bool tokenChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || (c && std::strchr("-.!%*_+`'~", c));
}

std::string Owners::ownerOf(const std::string &ip, int port, const std::string &sender, bool *exact) const {
    if (exact)
        *exact = false;
    if (port) {
        auto it = byAddress.find(Address{ip, static_cast<uint16_t>(port)});
        if (it != byAddress.end()) {
            if (exact)
                *exact = true;
            return it->second;
        }
    }
    auto it = byIp.find(ip);
    if (it == byIp.end() || it->second.empty())
        return "";
    const auto &names = it->second;
    if (std::find(names.begin(), names.end(), sender) != names.end())
        return sender;
    if (std::find(names.begin(), names.end(), "server") != names.end())
        return "server";
    return names.front();
}

namespace {

constexpr size_t kPrefix = 16;

std::string withOffset(const std::string &name, long offset) {
    return "{{" + name + (offset ? "+" + std::to_string(offset) : "") + "}}";
}

bool isHex(char c) {
    return std::isxdigit(static_cast<unsigned char>(c));
}

bool boundaryBefore(const std::string &s, size_t i) {
    if (i == 0 || !tokenChar(s[i - 1]))
        return true;
    return i >= 3 && s[i - 3] == '%' && isHex(s[i - 2]) && isHex(s[i - 1]); // after an escaped separator
}

bool boundaryAfter(const std::string &s, size_t j) {
    return j >= s.size() || !tokenChar(s[j]) || s[j] == '%';
}

// Short or short-numeric values (a tag "1", "5062") are replaced only where they are a parameter value or
// the whole header value, never in free text where they could be a port or a count.
bool shortValue(const std::string &v) {
    bool digits = v.find_first_not_of("0123456789") == std::string::npos;
    return v.size() < 4 || (digits && v.size() < 8);
}

// Where a short value may stand: the whole value of a Call-ID/Replaces/... header, or the value of a parameter
// that carries an identifier (tag=, to-tag=, from-tag=, local-tag=, remote-tag=, branch=, call-id=, also
// %3D-escaped inside a Refer-To and quoted in XML). Never rport=5062 or expires=60.
bool paramContext(const std::string &s, size_t i, size_t contextStart) {
    if (i == contextStart)
        return true;
    size_t j = i;
    if (j >= 1 && s[j - 1] == '"')
        --j;
    if (j >= 1 && s[j - 1] == '=')
        j -= 1;
    else if (j >= 3 && s[j - 3] == '%' && s[j - 2] == '3' && (s[j - 1] == 'D' || s[j - 1] == 'd'))
        j -= 3;
    else
        return false;
    size_t k = j;
    while (k > 0 && (std::isalnum(static_cast<unsigned char>(s[k - 1])) || s[k - 1] == '-'))
        --k;
    std::string name = lower(s.substr(k, j - k));
    return name == "branch" || name == "call-id" || name == "callid" ||
           (name.size() >= 3 && name.compare(name.size() - 3, 3, "tag") == 0);
}

// Position of `value` inside `line` after the header name's colon (to rewrite one header's value in place).
std::string replaceValue(const std::string &line, const std::string &value, const std::string &with) {
    auto colon = line.find(':');
    auto pos = line.find(value, colon == std::string::npos ? 0 : colon);
    if (pos == std::string::npos)
        return line;
    return line.substr(0, pos) + with + line.substr(pos + value.size());
}

std::string dialogRefCallId(const std::string &v) {
    return trim(v.substr(0, v.find(';')));
}

} // namespace

std::string Symbolizer::newSymbol(const std::string &prefix, const std::string &kind, const std::string &original,
                                  const std::string &owner) {
    std::string name = prefix + std::to_string(++counters_[prefix]);
    symbols_[name] = Symbol{kind, owner, original};
    return name;
}

void Symbolizer::addId(const std::string &kind, const std::string &prefix, const std::string &value,
                       const std::string &owner) {
    if (value.empty() || ids_.count(value) || value.find("{{") != std::string::npos)
        return;
    std::string name = newSymbol(prefix, kind, value, owner);
    ids_[value] = name;
    addVariant(value, "{{" + name + "}}");
    if (uriEscape(value) != value)
        addVariant(uriEscape(value), "{{" + name + "|uri}}");
    if (xmlEscape(value) != value)
        addVariant(xmlEscape(value), "{{" + name + "|xml}}");
}

// Indexed by their first kPrefix characters (branches share "z9hG4bK"); each bucket longest first, so a tag that is a
// substring of a Call-ID never matches inside it.
void Symbolizer::addVariant(const std::string &text, const std::string &replacement) {
    if (!variantTexts_.insert(text).second)
        return; // the first symbol with that text keeps it
    variants_.emplace_back(text, replacement);
    std::string_view stored = variants_.back().first; // a deque: the characters never move
    for (size_t n = 1; n <= std::min(kPrefix, stored.size()); ++n)
        prefixes_.insert(stored.substr(0, n));
    auto &bucket = byPrefix_[stored.substr(0, kPrefix)];
    auto at =
        std::find_if(bucket.begin(), bucket.end(), [&](size_t k) { return variants_[k].first.size() < text.size(); });
    bucket.insert(at, variants_.size() - 1);
}

// The longest variant that starts at `i` and may be replaced there, or nullptr.
const std::pair<std::string, std::string> *Symbolizer::variantAt(const std::string &line, size_t i,
                                                                 size_t contextStart) const {
    const std::pair<std::string, std::string> *best = nullptr;
    std::string_view view(line);
    for (size_t n = 1; n <= kPrefix && i + n <= line.size(); ++n) {
        if (!prefixes_.count(view.substr(i, n)))
            break;
        auto it = byPrefix_.find(view.substr(i, n));
        if (it == byPrefix_.end())
            continue;
        for (size_t k : it->second) {
            const auto &v = variants_[k];
            if (best && best->first.size() >= v.first.size())
                break; // sorted longest first
            if (line.compare(i, v.first.size(), v.first) == 0 && boundaryAfter(line, i + v.first.size()) &&
                (!shortValue(v.first) || paramContext(line, i, contextStart))) {
                best = &v;
                break;
            }
        }
    }
    return best;
}

std::string Symbolizer::symbolOf(const std::string &value) const {
    auto it = ids_.find(value);
    return it == ids_.end() ? "" : it->second;
}

// Replaces: callid;to-tag=x;from-tag=y (RFC 3891 §6.1), Join (RFC 3911 §7.1), Target-Dialog:
// callid;local-tag=x;remote-tag=y (RFC 4538 §7).
void Symbolizer::registerDialogRef(const std::string &value, const std::string &owner) {
    addId("call-id", "call", dialogRefCallId(value), owner);
    for (const char *p : {"to-tag", "from-tag", "local-tag", "remote-tag"})
        addId("tag", "tag", headerParam(value, p), owner);
}

void Symbolizer::registerIds(const SipText &m, const std::string &owner) {
    if (const std::string *c = m.header("call-id"))
        addId("call-id", "call", *c, owner);
    addId("tag", "tag", tagOf(m, "from"), owner);
    addId("tag", "tag", tagOf(m, "to"), owner);
    for (const auto &v : m.values("via"))
        addId("branch", "branch", parseVia(v).branch, owner);
    for (const char *h : {"replaces", "join", "target-dialog"})
        if (const std::string *v = m.header(h))
            registerDialogRef(*v, owner);
    for (const auto &h : m.headers) {
        if (h.name != "refer-to")
            continue;
        std::string low = lower(h.value);
        auto r = low.find("replaces=");
        if (r == std::string::npos)
            continue;
        std::string raw = h.value.substr(r + 9);
        raw = raw.substr(0, raw.find_first_of("&>"));
        std::string ref = uriUnescape(raw);
        registerDialogRef(ref, owner);
        // The Call-ID as this phone escaped it (it may escape more than uriEscape does, ':' as %3A): the same
        // symbol, written back with uriEscape at run time.
        std::string escaped = raw.substr(0, lower(raw).find("%3b"));
        if (uriUnescape(escaped) == dialogRefCallId(ref) && !symbolOf(dialogRefCallId(ref)).empty())
            addVariant(escaped, "{{" + symbolOf(dialogRefCallId(ref)) + "|uri}}");
    }
    if (contentType(m).find("xml") != std::string::npos) { // dialog-info (RFC 4235 §4.1.1) call-id and tags
        static const std::regex attr(R"re(\b(call-id|local-tag|remote-tag)\s*=\s*"([^"]*)")re");
        for (std::sregex_iterator it(m.body.begin(), m.body.end(), attr), end; it != end; ++it) {
            std::string kind = (*it)[1].str() == "call-id" ? "call-id" : "tag";
            std::string v = (*it)[2].str();
            for (const char *e : {"&quot;", "&apos;", "&lt;", "&gt;"})
                if (v.find(e) != std::string::npos)
                    v.clear(); // escaped ids are rare; the raw variant would not match
            addId(kind, kind == "call-id" ? "call" : "tag", std::regex_replace(v, std::regex("&amp;"), "&"), owner);
        }
    }
    if (m.request && lower(m.method) == "refer" && cseqNumber(m) >= 0 && m.header("call-id"))
        refers_[{*m.header("call-id"), cseqNumber(m)}] = tagOf(m, "from");
}

std::string Symbolizer::seqRef(std::vector<Seq> &seqs, const std::string &prefix, const std::string &kind, long n,
                               const std::string &owner) {
    for (const auto &s : seqs)
        if (s.base <= n)
            return withOffset(s.name, n - s.base);
    seqs.push_back({n, newSymbol(prefix, kind, std::to_string(n), owner)});
    return withOffset(seqs.back().name, 0);
}

// CSeq numbers per dialog per sender (RFC 3261 §12.2.1.1): the sequence of one Call-ID and From-tag; REGISTER
// counts per Call-ID (§10.2), whatever its tags.
std::string Symbolizer::cseqRef(const SipText &m, long n, const std::string &owner) {
    const std::string *c = m.header("call-id");
    std::string key = lower(cseqMethod(m)) == "register" ? "REGISTER" : tagOf(m, "from");
    return seqRef(cseqs_[{c ? *c : "", key}], "cseq", "cseq", n, owner);
}

std::string Symbolizer::eventLine(const SipText &m, const std::string &line, const std::string &value,
                                  const std::string &sender) {
    std::string id = headerParam(value, "id");
    if (id.empty())
        return line;
    const std::string *c = m.header("call-id");
    std::string callId = c ? *c : "", package = lower(trim(value.substr(0, value.find(';'))));
    std::string with;
    bool numeric = id.find_first_not_of("0123456789") == std::string::npos && id.size() < 10;
    auto refer = refers_.find({callId, numeric ? std::stol(id) : -1});
    if (package == "refer" && numeric && refer != refers_.end()) {
        // RFC 3515 §2.4.6: the id of a refer subscription is the CSeq number of its REFER.
        with = seqRef(cseqs_[{callId, refer->second}], "cseq", "cseq", std::stol(id), sender);
    } else {
        auto &sym = eventIds_[{callId, id}];
        if (sym.empty())
            sym = newSymbol("evid", "token", id, sender);
        with = "{{" + sym + "}}";
    }
    static const std::regex idParam(R"re((;\s*id\s*=\s*)([^;,\s]+))re", std::regex::icase);
    return std::regex_replace(line, idParam, "$1" + with, std::regex_constants::format_first_only);
}

std::string Symbolizer::header(const SipText &m, size_t i, const std::string &sender) {
    const HeaderLine &h = m.headers[i];
    std::string line = m.lines[i];
    size_t contextStart = std::string::npos;
    if (h.name == "cseq" && cseqNumber(m) >= 0) {
        line = replaceValue(line, std::to_string(cseqNumber(m)), cseqRef(m, cseqNumber(m), sender));
    } else if (h.name == "rack") { // RFC 3262 §7.2: RAck: rseq cseq method
        std::istringstream in(h.value);
        long rseq = -1, n = -1;
        std::string method;
        if (in >> rseq >> n >> method && n >= 0)
            line = line.substr(0, line.find(':') + 1) + " " + std::to_string(rseq) + " " + cseqRef(m, n, sender) + " " +
                   method;
    } else if (h.name == "event") {
        line = eventLine(m, line, h.value, sender);
    } else if (h.name == "call-id" || h.name == "replaces" || h.name == "join" || h.name == "target-dialog" ||
               h.name == "in-reply-to") {
        contextStart = line.find(h.value.substr(0, 1), line.find(':'));
    }
    line = addresses(ids(line, contextStart), sender);
    return h.name == "via" ? rport(line) : line;
}

std::vector<std::string> Symbolizer::symbolize(const SipText &m, const std::string &sender) {
    registerIds(m, sender);
    std::vector<std::string> out;
    out.push_back(addresses(ids(m.startLine, std::string::npos), sender));
    for (size_t i = 0; i < m.lines.size(); ++i)
        out.push_back(header(m, i, sender));
    if (m.body.empty())
        return out;
    out.push_back("");
    std::vector<std::string> body = bodyLines(m.body);
    if (contentType(m) == "application/sdp")
        body = sdp(body, sender);
    for (auto &line : body)
        out.push_back(addresses(ids(line, std::string::npos), sender));
    return out;
}

// RFC 8866 §5.2 o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>, §5.7 c=,
// §5.14 m=<media> <port> ..., RFC 3605 a=rtcp:<port>.
std::vector<std::string> Symbolizer::sdp(const std::vector<std::string> &lines, const std::string &sender) {
    std::string caddr;
    for (const auto &l : lines)
        if (l.rfind("c=", 0) == 0 && caddr.empty())
            caddr = l.substr(l.rfind(' ') + 1);
    std::vector<std::string> out;
    std::string lastPort, lastSym;
    for (std::string l : lines) {
        std::istringstream in(l.size() > 2 ? l.substr(2) : "");
        std::vector<std::string> f{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
        if (l.rfind("o=", 0) == 0 && f.size() == 6 && f[1].size() < 19 && f[2].size() < 19 &&
            f[2].find_first_not_of("0123456789") == std::string::npos) {
            std::string key = f[0] + " " + f[1];
            auto &sess = sdpSessions_[key];
            if (sess.empty())
                sess = newSymbol("sdpsess", "sdp-session", f[1], sender);
            f[1] = "{{" + sess + "}}";
            f[2] = seqRef(sdpVersions_[key], "sdpver", "sdp-version", std::stol(f[2]), sender);
        } else if (l.rfind("m=", 0) == 0 && f.size() >= 2 && f[1] != "0" && f[1].size() < 6) {
            std::string port = f[1].substr(0, f[1].find('/'));
            auto &sym = mediaPorts_[caddr + " " + port];
            if (sym.empty() && port.find_first_not_of("0123456789") == std::string::npos)
                sym = newSymbol("mport", "media-port", port, sender);
            if (!sym.empty())
                f[1] = "{{" + sym + "}}" + f[1].substr(port.size());
            lastPort = port;
            lastSym = sym;
        } else if (l.rfind("a=rtcp:", 0) == 0 && !lastSym.empty()) {
            std::string port = l.substr(7, l.find(' ') == std::string::npos ? std::string::npos : l.find(' ') - 7);
            if (port.find_first_not_of("0123456789") == std::string::npos && !port.empty() &&
                std::stol(port) == std::stol(lastPort) + 1)
                l = "a=rtcp:{{" + lastSym + "+1}}" + l.substr(7 + port.size());
            out.push_back(l);
            continue;
        } else {
            out.push_back(l);
            continue;
        }
        std::string joined = l.substr(0, 2);
        for (size_t i = 0; i < f.size(); ++i)
            joined += (i ? " " : "") + f[i];
        out.push_back(joined);
    }
    for (auto &l : out) // an IPv6 address in o=/c= (RFC 8866 §5.7) is bare; the runner's addresses are IPv4
        if ((l.rfind("o=", 0) == 0 || l.rfind("c=", 0) == 0) && l.find(" IP6 ") != std::string::npos) {
            std::string addr = l.substr(l.rfind(' ') + 1);
            std::string owner = isIpLiteral(addr) ? owners_.ownerOf(addr, 0, sender, nullptr) : "";
            if (!owner.empty())
                l = l.substr(0, l.find(" IP6 ")) + " IP4 {{" + owner + ".host}}";
        }
    return out;
}

// Every known identifier in `line`, longest first, only where it is a whole token (tokenChar); already
// written {{...}} parts are left alone.
std::string Symbolizer::ids(const std::string &line, size_t contextStart) const {
    std::string out;
    size_t i = 0;
    while (i < line.size()) {
        if (line.compare(i, 2, "{{") == 0) {
            size_t close = line.find("}}", i);
            size_t end = close == std::string::npos ? line.size() : close + 2;
            out.append(line, i, end - i);
            i = end;
            continue;
        }
        const std::pair<std::string, std::string> *hit =
            boundaryBefore(line, i) ? variantAt(line, i, contextStart) : nullptr;
        if (hit) {
            out += hit->second;
            i += hit->first.size();
        } else {
            out += line[i++];
        }
    }
    return out;
}

// IP literals (IPv4, [IPv6]) with or without a port -> {{P.host}}[:{{P.port}}].
std::string Symbolizer::addresses(const std::string &line, const std::string &sender) const {
    std::string out;
    size_t i = 0;
    while (i < line.size()) {
        if (line.compare(i, 2, "{{") == 0) {
            size_t close = line.find("}}", i);
            size_t end = close == std::string::npos ? line.size() : close + 2;
            out.append(line, i, end - i);
            i = end;
            continue;
        }
        std::string ip;
        size_t end = i;
        bool before = i == 0 || (!std::isalnum(static_cast<unsigned char>(line[i - 1])) && line[i - 1] != '.');
        if (before && line[i] == '[') {
            size_t close = line.find(']', i);
            if (close != std::string::npos && isIpLiteral(line.substr(i + 1, close - i - 1))) {
                ip = line.substr(i + 1, close - i - 1);
                end = close + 1;
            }
        } else if (before && std::isdigit(static_cast<unsigned char>(line[i]))) {
            end = line.find_first_not_of("0123456789.", i);
            end = end == std::string::npos ? line.size() : end;
            ip = line.substr(i, end - i);
            if (!isIpv4(ip) || (end < line.size() && std::isalnum(static_cast<unsigned char>(line[end]))))
                ip.clear();
        }
        if (ip.empty()) {
            out += line[i++];
            continue;
        }
        int port = 0;
        size_t portEnd = end;
        if (end + 1 < line.size() && line[end] == ':' && std::isdigit(static_cast<unsigned char>(line[end + 1]))) {
            portEnd = line.find_first_not_of("0123456789", end + 1);
            portEnd = portEnd == std::string::npos ? line.size() : portEnd;
            if (portEnd - end - 1 <= 5)
                port = std::stoi(line.substr(end + 1, portEnd - end - 1));
        }
        bool exact = false;
        std::string owner = owners_.ownerOf(ip, port, sender, &exact);
        if (owner.empty()) {
            out.append(line, i, end - i);
        } else {
            out += "{{" + owner + ".host}}";
            if (exact)
                out += ":{{" + owner + ".port}}";
            else
                portEnd = end;
        }
        i = exact ? portEnd : end;
    }
    return out;
}

// Via received=IP;rport=N (RFC 3581 §4): where the server saw the Via's sender; received= is the sent-by's
// owner, rport= a symbol when exactly one participant used that port.
std::string Symbolizer::rport(const std::string &text) const {
    static const std::regex sentBy(R"re(^[^:]*:\s*SIP/2\.0/\S+\s+\{\{([^.}]+)\.host\}\})re", std::regex::icase);
    static const std::regex received(R"re(\breceived=\{\{[^.}]+\.host\}\})re");
    static const std::regex re(R"re(\brport=(\d{1,5})\b)re");
    std::smatch m;
    std::string line = text;
    if (std::regex_search(text, m, sentBy))
        line = std::regex_replace(text, received, "received={{" + m[1].str() + ".host}}");
    if (!std::regex_search(line, m, re))
        return line;
    std::set<std::string> who;
    for (const auto &[addr, name] : owners_.byAddress)
        if (addr.port == std::stoi(m[1].str()))
            who.insert(name);
    if (who.size() != 1)
        return line;
    return m.prefix().str() + "rport={{" + *who.begin() + ".port}}" + m.suffix().str();
}

} // namespace parkway::replay::importer
