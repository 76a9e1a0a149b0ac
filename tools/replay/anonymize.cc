// parkway-replay import --anonymize (anonymize.hh).
#include "anonymize.hh"

#include "fixture.hh"
#include "import_sip.hh"

#include <algorithm>
#include <cctype>
#include <regex>

namespace parkway::replay::importer {

namespace {

bool numericUser(const std::string &u) {
    size_t start = !u.empty() && u[0] == '+' ? 1 : 0;
    return u.size() > start && u.find_first_not_of("0123456789", start) == std::string::npos;
}

bool featureCode(const std::string &u) {
    return !u.empty() && (u[0] == '*' || u[0] == '#');
}

bool startsWithNoCase(const std::string &s, size_t pos, const char *what) {
    for (size_t i = 0; what[i]; ++i)
        if (pos + i >= s.size() || std::tolower(static_cast<unsigned char>(s[pos + i])) != what[i])
            return false;
    return true;
}

// Headers whose value may start with a display name (RFC 3261 §20: name-addr).
bool nameAddrHeader(const std::string &canonical) {
    static const char *const names[] = {
        "from",    "to", "contact", "referred-by", "p-asserted-identity", "p-preferred-identity", "remote-party-id",
        "reply-to"};
    return std::find(std::begin(names), std::end(names), canonical) != std::end(names);
}

std::string quoted(const std::string &s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

void replaceAll(std::string &s, const std::string &from, const std::string &to) {
    if (from.empty())
        return;
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
        s.replace(pos, from.size(), to);
}

} // namespace

std::string displayNameOf(const std::string &value) {
    auto lt = value.find('<');
    if (lt == std::string::npos)
        return "";
    std::string d = trim(value.substr(0, lt));
    if (d.size() >= 2 && d.front() == '"' && d.back() == '"') {
        std::string out;
        for (size_t i = 1; i + 1 < d.size(); ++i) {
            if (d[i] == '\\' && i + 2 < d.size())
                ++i;
            out += d[i];
        }
        return out;
    }
    return d;
}

void Anonymizer::addIdentity(const std::string &user) {
    if (user.empty() || featureCode(user) || users_.count(user))
        return;
    users_[user] = "";
    identities_.push_back(user);
}

void Anonymizer::addDisplay(const std::string &display) {
    if (display.empty() || names_.count(display))
        return;
    names_[display] = "";
    displays_.push_back(display);
}

void Anonymizer::plan() {
    int n = 0, words = 0;
    for (const auto &u : identities_) {
        std::string mapped;
        if (numericUser(u)) {
            do
                mapped = (u[0] == '+' ? "+" : "") + std::to_string(7000 + ++n);
            while (seen_.count(mapped) || users_.count(mapped));
        } else {
            do
                mapped = "user" + std::to_string(++words);
            while (seen_.count(mapped) || users_.count(mapped));
        }
        users_[u] = mapped;
        userOrder_.emplace_back(u, mapped);
    }
    int d = 0;
    for (const auto &name : displays_) {
        names_[name] = "Person " + std::to_string(++d);
        displayOrder_.emplace_back(name, names_[name]);
    }
}

std::string Anonymizer::mapUser(const std::string &user) const {
    auto it = users_.find(user);
    if (it != users_.end())
        return it->second.empty() ? user : it->second;
    if (!featureCode(user))
        return user;
    // "*68102": keep the feature code, map the extension when it is a phone's user (shortest code first).
    for (size_t k = 1; k < user.size(); ++k) {
        std::string code = user.substr(0, k);
        if (code.find_first_not_of("*#0123456789") != std::string::npos)
            break;
        auto ext = users_.find(user.substr(k));
        if (ext != users_.end() && !ext->second.empty())
            return code + ext->second;
    }
    return user;
}

std::string Anonymizer::rewriteUris(const std::string &line) const {
    std::string out;
    size_t i = 0;
    while (i < line.size()) {
        bool boundary = i == 0 || !std::isalnum(static_cast<unsigned char>(line[i - 1]));
        size_t schemeLen = !boundary                            ? 0
                           : startsWithNoCase(line, i, "sips:") ? 5
                           : startsWithNoCase(line, i, "sip:")  ? 4
                           : startsWithNoCase(line, i, "tel:")  ? 4
                                                                : 0;
        if (!schemeLen) {
            out += line[i++];
            continue;
        }
        bool tel = startsWithNoCase(line, i, "tel:");
        out.append(line, i, schemeLen);
        i += schemeLen;
        size_t stop = line.find_first_of(tel ? ";>\" \t,?" : "@>\"< \t,?", i);
        if (stop == std::string::npos)
            stop = line.size();
        if (!tel && (stop == line.size() || line[stop] != '@'))
            continue; // no user part
        std::string raw = line.substr(i, stop - i);
        if (auto colon = raw.find(':'); !tel && colon != std::string::npos)
            raw.resize(colon); // user:password (RFC 3261 §19.1.1, deprecated): the password is dropped
        std::string user = uriUnescape(raw), mapped = mapUser(user);
        out += mapped == user ? raw : mapped;
        i = stop;
    }
    return out;
}

std::string Anonymizer::rewriteDisplays(const std::string &line, bool header) const {
    std::string s = line;
    if (header) {
        auto colon = s.find(':');
        std::string name = colon == std::string::npos ? "" : canonicalHeader(s.substr(0, colon));
        auto lt = s.find('<');
        if (nameAddrHeader(name) && lt != std::string::npos && lt > colon) {
            std::string d = trim(s.substr(colon + 1, lt - colon - 1));
            auto it = names_.find(displayNameOf(s.substr(colon + 1)));
            if (!d.empty() && it != names_.end())
                s = s.substr(0, colon + 1) + " " + quoted(it->second) + " " + s.substr(lt);
        }
    }
    for (const auto &[from, to] : displayOrder_) {
        replaceAll(s, "\"" + xmlEscape(from) + "\"", "\"" + to + "\"");
        replaceAll(s, ">" + xmlEscape(from) + "<", ">" + to + "<");
    }
    return s;
}

std::string Anonymizer::rewriteLine(const std::string &line, bool body) const {
    std::string s = rewriteDisplays(rewriteUris(line), !body);
    auto colon = s.find(':');
    std::string name = body || colon == std::string::npos ? "" : canonicalHeader(s.substr(0, colon));
    if (name == "authorization" || name == "proxy-authorization" || name == "www-authenticate" ||
        name == "proxy-authenticate") {
        // RFC 3261 §22.4 / RFC 7616 §3.4: the digest values are of no use once the nonce is gone.
        static const std::regex secret(R"re(\b(nonce|response|cnonce|opaque)(\s*=\s*)("[^"]*"|[^,\s]+))re",
                                       std::regex::icase);
        s = std::regex_replace(s, secret, "$1$2\"x\"");
        static const std::regex username(R"re(\b(username\s*=\s*)"([^"]*)")re", std::regex::icase);
        std::smatch m;
        if (std::regex_search(s, m, username))
            s = m.prefix().str() + m[1].str() + "\"" + mapUser(m[2].str()) + "\"" + m.suffix().str();
    }
    if (body && s.rfind("o=", 0) == 0) { // RFC 8866 §5.2: o=<username> ...
        auto sp = s.find(' ');
        if (sp != std::string::npos)
            s = "o=" + mapUser(s.substr(2, sp - 2)) + s.substr(sp);
    }
    return s;
}

std::string Anonymizer::rewrite(const std::string &message) const {
    std::string out;
    size_t pos = 0;
    bool body = false;
    while (pos < message.size()) {
        size_t nl = message.find('\n', pos);
        std::string line = message.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        bool cr = !line.empty() && line.back() == '\r';
        if (cr)
            line.pop_back();
        out += (line.empty() || pos == 0) ? line : rewriteLine(line, body);
        if (pos == 0)
            out = rewriteUris(line);
        if (line.empty())
            body = true;
        if (cr)
            out += '\r';
        if (nl != std::string::npos)
            out += '\n';
        pos = nl == std::string::npos ? message.size() : nl + 1;
    }
    return out;
}

} // namespace parkway::replay::importer
