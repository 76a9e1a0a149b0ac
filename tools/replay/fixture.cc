// Fixture JSON and message templates (fixture.hh, docs/replay.md "Fixture format").
#include "fixture.hh"

#include <nlohmann/json.hpp>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace parkway::replay {

using ojson = nlohmann::ordered_json;

namespace {

const char *const kFormat = "parkway-replay/1";

std::string stepName(int id) { return "step " + std::to_string(id); }

template <typename T> T field(const ojson &j, const char *key, const std::string &where, T fallback) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null())
        return fallback;
    try {
        return it->get<T>();
    } catch (const nlohmann::json::exception &) {
        throw FixtureError(where + ": field '" + key + "' has the wrong type");
    }
}

Participant participantFrom(const ojson &j, const std::string &where) {
    if (!j.is_object())
        throw FixtureError(where + ": not an object");
    Participant p;
    p.name = field<std::string>(j, "name", where, "");
    p.transport = field<std::string>(j, "transport", where, "udp");
    p.address = field<std::string>(j, "address", where, "");
    p.user = field<std::string>(j, "user", where, "");
    p.password = field<std::string>(j, "password", where, "");
    return p;
}

ojson participantJson(const Participant &p, bool withName) {
    ojson j;
    if (withName)
        j["name"] = p.name;
    j["transport"] = p.transport;
    j["address"] = p.address;
    if (!p.user.empty())
        j["user"] = p.user;
    if (!p.password.empty())
        j["password"] = p.password;
    return j;
}

Step stepFrom(const ojson &j, size_t index) {
    std::string where = "steps[" + std::to_string(index) + "]";
    if (!j.is_object())
        throw FixtureError(where + ": not an object");
    Step s;
    s.id = field<int>(j, "step", where, 0);
    if (s.id <= 0)
        throw FixtureError(where + ": 'step' must be a positive number");
    where = stepName(s.id);
    bool send = j.contains("send"), expect = j.contains("expect");
    if (send == expect)
        throw FixtureError(where + ": needs exactly one of 'send' or 'expect' (the participant)");
    s.kind = send ? StepKind::Send : StepKind::Expect;
    s.participant = field<std::string>(j, send ? "send" : "expect", where, "");
    s.after = field<std::vector<int>>(j, "after", where, {});
    s.delay = field<double>(j, "delay", where, 0.0);
    s.optional = field<bool>(j, "optional", where, false);
    s.note = field<std::string>(j, "note", where, "");
    s.message = field<std::vector<std::string>>(j, "message", where, {});
    s.compare = field<std::vector<std::string>>(j, "compare", where, {});
    s.body = field<std::string>(j, "body", where, "");
    return s;
}

ojson stepJson(const Step &s) {
    ojson j;
    j["step"] = s.id;
    j[s.kind == StepKind::Send ? "send" : "expect"] = s.participant;
    if (!s.note.empty())
        j["note"] = s.note;
    j["after"] = s.after;
    j["delay"] = s.delay;
    if (s.optional)
        j["optional"] = true;
    if (s.kind == StepKind::Expect) {
        j["compare"] = s.compare;
        if (!s.body.empty())
            j["body"] = s.body;
    }
    j["message"] = s.message;
    return j;
}

bool knownSymbol(const Fixture &f, const std::string &name) {
    if (f.symbols.count(name))
        return true;
    auto dot = name.rfind('.');
    if (dot == std::string::npos)
        return false;
    std::string who = name.substr(0, dot), what = name.substr(dot + 1);
    return (what == "host" || what == "port") && (who == "server" || f.findParticipant(who));
}

void checkStep(const Fixture &f, const Step &s, std::set<int> &seen) {
    std::string where = stepName(s.id);
    if (seen.count(s.id))
        throw FixtureError(where + ": the id is used twice");
    if (!f.findParticipant(s.participant))
        throw FixtureError(where + ": unknown participant '" + s.participant + "'");
    for (int a : s.after)
        if (!seen.count(a))
            throw FixtureError(where + ": 'after' names step " + std::to_string(a) +
                               ", which does not come before it");
    if (s.message.empty())
        throw FixtureError(where + ": empty message");
    for (const auto &line : s.message) {
        std::vector<TemplateRef> refs;
        try {
            refs = templateRefs(line);
        } catch (const FixtureError &e) {
            throw FixtureError(where + ": " + e.what());
        }
        for (const auto &r : refs)
            if (!knownSymbol(f, r.symbol))
                throw FixtureError(where + ": unknown symbol {{" + r.symbol + "}}");
    }
    seen.insert(s.id);
}

void checkFixture(const Fixture &f) {
    std::set<std::string> names;
    for (const auto &p : f.participants) {
        if (p.name.empty() || p.name == "server" || p.name.find_first_of(".{}|+ ") != std::string::npos)
            throw FixtureError("participant '" + p.name + "': bad name (non-empty, not 'server', no . { } | +)");
        if (!names.insert(p.name).second)
            throw FixtureError("participant '" + p.name + "' is listed twice");
    }
    for (const auto &[name, sym] : f.symbols)
        if (sym.owner != "server" && !f.findParticipant(sym.owner))
            throw FixtureError("symbol '" + name + "': unknown owner '" + sym.owner + "'");
    std::set<int> seen;
    for (const auto &s : f.steps)
        checkStep(f, s, seen);
}

} // namespace

const Participant *Fixture::findParticipant(const std::string &n) const {
    if (n == "server")
        return &server;
    for (const auto &p : participants)
        if (p.name == n)
            return &p;
    return nullptr;
}

const Step *Fixture::findStep(int id) const {
    for (const auto &s : steps)
        if (s.id == id)
            return &s;
    return nullptr;
}

Fixture parseFixture(const std::string &jsonText, const std::string &name) {
    ojson j;
    try {
        j = ojson::parse(jsonText);
    } catch (const nlohmann::json::parse_error &e) {
        throw FixtureError(name + ": not JSON: " + e.what());
    }
    if (!j.is_object() || field<std::string>(j, "format", name, "") != kFormat)
        throw FixtureError(name + ": not a parkway-replay fixture (\"format\": \"" + kFormat + "\" missing)");
    Fixture f;
    try {
        f.name = field<std::string>(j, "name", name, "");
        f.description = field<std::string>(j, "description", name, "");
        f.source = field<std::string>(j, "source", name, "");
        f.server = participantFrom(j.value("server", ojson::object()), "server");
        f.server.name = "server";
        const ojson participants = j.value("participants", ojson::array());
        for (const auto &p : participants)
            f.participants.push_back(participantFrom(p, "participant"));
        const ojson symbols = j.value("symbols", ojson::object());
        for (const auto &[sym, def] : symbols.items()) {
            std::string where = "symbol '" + sym + "'";
            f.symbols[sym] = Symbol{field<std::string>(def, "kind", where, "token"),
                                    field<std::string>(def, "owner", where, ""),
                                    field<std::string>(def, "original", where, "")};
        }
        size_t i = 0;
        const ojson steps = j.value("steps", ojson::array());
        for (const auto &s : steps)
            f.steps.push_back(stepFrom(s, i++));
        checkFixture(f);
    } catch (const FixtureError &e) {
        throw FixtureError(name + ": " + e.what());
    }
    return f;
}

Fixture loadFixture(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw FixtureError(path + ": cannot open");
    std::stringstream buf;
    buf << in.rdbuf();
    return parseFixture(buf.str(), path);
}

std::string fixtureToJson(const Fixture &f) {
    ojson j;
    j["format"] = kFormat;
    j["name"] = f.name;
    if (!f.description.empty())
        j["description"] = f.description;
    if (!f.source.empty())
        j["source"] = f.source;
    j["server"] = participantJson(f.server, false);
    j["participants"] = ojson::array();
    for (const auto &p : f.participants)
        j["participants"].push_back(participantJson(p, true));
    j["symbols"] = ojson::object();
    for (const auto &[name, s] : f.symbols)
        j["symbols"][name] = ojson{{"kind", s.kind}, {"owner", s.owner}, {"original", s.original}};
    j["steps"] = ojson::array();
    for (const auto &s : f.steps)
        j["steps"].push_back(stepJson(s));
    return j.dump(2) + "\n";
}

void saveFixture(const Fixture &f, const std::string &path) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out)
        throw FixtureError(path + ": cannot write");
    out << fixtureToJson(f);
    if (!out)
        throw FixtureError(path + ": write failed");
}

// ---- templates

std::vector<TemplateRef> templateRefs(const std::string &line) {
    std::vector<TemplateRef> refs;
    size_t pos = 0;
    while ((pos = line.find("{{", pos)) != std::string::npos) {
        size_t close = line.find("}}", pos + 2);
        if (close == std::string::npos)
            throw FixtureError("unclosed {{ in '" + line + "'");
        std::string inner = line.substr(pos + 2, close - pos - 2);
        TemplateRef r;
        r.begin = pos;
        r.end = close + 2;
        auto bar = inner.find('|');
        if (bar != std::string::npos) {
            r.filter = inner.substr(bar + 1);
            inner.resize(bar);
            if (r.filter != "uri" && r.filter != "xml")
                throw FixtureError("unknown filter '|" + r.filter + "' in '" + line + "'");
        }
        auto plus = inner.find('+');
        if (plus != std::string::npos) {
            std::string n = inner.substr(plus + 1);
            if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos)
                throw FixtureError("bad offset '+" + n + "' in '" + line + "'");
            r.offset = std::stol(n);
            inner.resize(plus);
        }
        if (inner.empty())
            throw FixtureError("empty {{}} in '" + line + "'");
        r.symbol = inner;
        refs.push_back(r);
        pos = close + 2;
    }
    return refs;
}

namespace {
std::string refValue(const TemplateRef &r, const SymbolLookup &lookup) {
    auto v = lookup(r.symbol);
    if (!v)
        throw FixtureError("unknown symbol {{" + r.symbol + "}}");
    std::string value = *v;
    if (r.offset) {
        if (value.empty() || value.size() > 18 || value.find_first_not_of("0123456789") != std::string::npos)
            throw FixtureError("{{" + r.symbol + "+" + std::to_string(r.offset) + "}}: value '" + value +
                               "' is not a number");
        value = std::to_string(std::stoll(value) + r.offset);
    }
    if (r.filter == "uri")
        return uriEscape(value);
    if (r.filter == "xml")
        return xmlEscape(value);
    return value;
}
} // namespace

std::string fillTemplate(const std::string &line, const SymbolLookup &lookup) {
    std::string out;
    size_t last = 0;
    for (const auto &r : templateRefs(line)) {
        out.append(line, last, r.begin - last);
        out += refValue(r, lookup);
        last = r.end;
    }
    out.append(line, last, std::string::npos);
    return out;
}

namespace {
bool isContentLength(const std::string &line) {
    auto colon = line.find(':');
    if (colon == std::string::npos)
        return false;
    std::string name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
        name.pop_back();
    for (auto &c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return name == "content-length" || name == "l"; // RFC 3261 §7.3.3 compact form
}
} // namespace

std::string renderMessage(const std::vector<std::string> &lines, const SymbolLookup &lookup) {
    std::vector<std::string> head;
    std::string body;
    bool inBody = false, firstBodyLine = true;
    for (const auto &line : lines) {
        std::string filled = fillTemplate(line, lookup);
        if (!inBody && line.empty()) {
            inBody = true;
            continue;
        }
        if (!inBody) {
            head.push_back(std::move(filled));
        } else {
            if (!firstBodyLine)
                body += "\r\n";
            body += filled;
            firstBodyLine = false;
        }
    }
    // Bodies are stored without their final line end; SIP bodies in practice (SDP, XML, sipfrag) end with one.
    if (!body.empty())
        body += "\r\n";
    std::string out;
    for (auto &h : head) {
        if (isContentLength(h))
            h = h.substr(0, h.find(':')) + ": " + std::to_string(body.size());
        out += h + "\r\n";
    }
    out += "\r\n" + body;
    return out;
}

std::string uriEscape(const std::string &value) {
    // RFC 3261 §25.1: in a URI header value only unreserved and a few marks stay as they are.
    static const char *const kKeep = "-_.!~*'()[]/?:+$";
    std::string out;
    for (unsigned char c : value) {
        if (std::isalnum(c) || std::strchr(kKeep, c)) {
            out += static_cast<char>(c);
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

std::string uriUnescape(const std::string &value) {
    std::string out;
    for (size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '%' && i + 2 < value.size() && std::isxdigit(static_cast<unsigned char>(value[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(value[i + 2]))) {
            out += static_cast<char>(std::stoi(value.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += value[i];
        }
    }
    return out;
}

std::string xmlEscape(const std::string &value) {
    std::string out;
    for (char c : value) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        default: out += c;
        }
    }
    return out;
}

} // namespace parkway::replay
