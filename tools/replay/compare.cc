// parkway-replay comparator (compare.hh). A first, textual version: start line, the compared headers matched
// against their templates with symbol binding, and symbols learned from every header the template shares with
// the message. Bodies are not compared yet.
#include "compare.hh"

#include <algorithm>
#include <cctype>
#include <regex>
#include <sstream>

namespace parkway::replay {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// RFC 3261 §7.3.3 compact forms.
std::string canonicalName(const std::string &name) {
    static const std::map<std::string, std::string> compact = {
        {"i", "call-id"}, {"m", "contact"},        {"e", "content-encoding"}, {"l", "content-length"},
        {"c", "content-type"}, {"f", "from"},      {"s", "subject"},          {"k", "supported"},
        {"t", "to"},      {"v", "via"},            {"o", "event"},            {"r", "refer-to"},
        {"b", "referred-by"}, {"u", "allow-events"}, {"x", "session-expires"}, {"y", "identity"}};
    std::string n = lower(trim(name));
    auto it = compact.find(n);
    return it == compact.end() ? n : it->second;
}

struct Parsed {
    std::string startLine;
    std::vector<std::pair<std::string, std::string>> headers; // canonical lower-case name, value
    std::string body;
};

Parsed parseText(const std::string &text) {
    Parsed p;
    size_t pos = 0, end = text.find("\r\n\r\n");
    std::string head = end == std::string::npos ? text : text.substr(0, end);
    p.body = end == std::string::npos ? "" : text.substr(end + 4);
    std::istringstream in(head);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (first) {
            p.startLine = line;
            first = false;
        } else if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !p.headers.empty()) {
            p.headers.back().second += " " + trim(line); // RFC 3261 §7.3.1 folding
        } else if (auto colon = line.find(':'); colon != std::string::npos) {
            p.headers.emplace_back(canonicalName(line.substr(0, colon)), trim(line.substr(colon + 1)));
        }
    }
    (void)pos;
    return p;
}

Parsed parseTemplate(const std::vector<std::string> &lines) {
    std::string text;
    for (const auto &l : lines)
        text += l + "\r\n";
    return parseText(text);
}

const std::string *header(const Parsed &p, const std::string &name) {
    std::string n = canonicalName(name);
    for (const auto &[k, v] : p.headers)
        if (k == n)
            return &v;
    return nullptr;
}

std::string regexEscape(const std::string &s) {
    static const std::string special = R"(\^$.|?*+()[]{}/)";
    std::string out;
    for (char c : s) {
        if (special.find(c) != std::string::npos)
            out += '\\';
        out += c;
    }
    return out;
}

// Matches one template value against an actual value. Bound symbols must have their value; unbound ones
// match anything and are returned in `learned`. Returns false when the text differs.
bool matchValue(const std::string &templ, const std::string &actual, const Bindings &bound, Bindings &learned) {
    std::vector<TemplateRef> refs = templateRefs(templ);
    std::string pattern;
    std::vector<const TemplateRef *> groups;
    size_t last = 0;
    for (const auto &r : refs) {
        pattern += regexEscape(templ.substr(last, r.begin - last));
        last = r.end;
        auto b = bound.find(r.symbol);
        auto l = learned.find(r.symbol);
        if (b != bound.end() || l != learned.end()) {
            const std::string &v = b != bound.end() ? b->second : l->second;
            pattern += regexEscape(fillTemplate(templ.substr(r.begin, r.end - r.begin),
                                                [&](const std::string &) { return std::optional<std::string>(v); }));
        } else {
            pattern += "(.+?)";
            groups.push_back(&r);
        }
    }
    pattern += regexEscape(templ.substr(last));
    std::smatch m;
    std::regex re(pattern, std::regex::icase);
    if (!std::regex_match(actual, m, re))
        return false;
    for (size_t i = 0; i < groups.size(); ++i) {
        const TemplateRef &r = *groups[i];
        std::string v = m[i + 1].str();
        if (r.filter == "uri")
            v = uriUnescape(v);
        if (r.offset) {
            if (v.find_first_not_of("0123456789") != std::string::npos)
                return false;
            v = std::to_string(std::stoll(v) - r.offset);
        }
        auto it = learned.find(r.symbol);
        if (it != learned.end() && it->second != v)
            return false;
        learned[r.symbol] = v;
    }
    return true;
}

std::string cseqMethod(const Parsed &p) {
    const std::string *c = header(p, "CSeq");
    if (!c)
        return "";
    auto sp = c->find_last_of(" \t");
    return sp == std::string::npos ? "" : c->substr(sp + 1);
}

bool isResponse(const Parsed &p) { return p.startLine.rfind("SIP/2.0 ", 0) == 0; }

std::string statusCode(const Parsed &p) { return p.startLine.substr(8, 3); }

std::string method(const Parsed &p) { return p.startLine.substr(0, p.startLine.find(' ')); }

std::string describeStart(const Parsed &p) { return isResponse(p) ? p.startLine : method(p); }

} // namespace

bool couldMatch(const Step &expected, const std::string &actual, const Bindings &bound) {
    Parsed a = parseText(actual), t = parseTemplate(expected.message);
    if (isResponse(a) != isResponse(t))
        return false;
    if (isResponse(a) ? cseqMethod(a) != cseqMethod(t) : method(a) != method(t))
        return false;
    const std::string *tc = header(t, "Call-ID"), *ac = header(a, "Call-ID");
    if (tc && ac) {
        Bindings learned;
        auto refs = templateRefs(*tc);
        bool allBound = std::all_of(refs.begin(), refs.end(), [&](const TemplateRef &r) { return bound.count(r.symbol); });
        if (allBound && !matchValue(*tc, *ac, bound, learned))
            return false;
    }
    return true;
}

MatchResult compareMessage(const Step &expected, const Fixture &, const std::string &actual, const Bindings &bound) {
    MatchResult res;
    Parsed a = parseText(actual), t = parseTemplate(expected.message);
    Bindings learned;
    if (isResponse(t) ? statusCode(a) != statusCode(t) : method(a) != method(t))
        res.differences.push_back({isResponse(t) ? "status" : "method", describeStart(t), describeStart(a)});
    for (const auto &name : expected.compare) {
        const std::string *tv = header(t, name), *av = header(a, name);
        if (!tv)
            continue;
        if (!av) {
            res.differences.push_back({"header " + name, *tv, "(missing)"});
            continue;
        }
        Bindings trial = learned;
        if (matchValue(*tv, *av, bound, trial))
            learned = trial;
        else
            res.differences.push_back({"header " + name, *tv, *av});
    }
    // Learn from every other header the two share (the To-tag of a 200, the Contact of a dialog ...).
    for (const auto &[name, tv] : t.headers) {
        if (std::find_if(expected.compare.begin(), expected.compare.end(),
                         [&](const std::string &c) { return canonicalName(c) == name; }) != expected.compare.end())
            continue;
        if (const std::string *av = header(a, name)) {
            Bindings trial = learned;
            if (matchValue(tv, *av, bound, trial))
                learned = trial;
        }
    }
    res.matched = res.differences.empty();
    if (res.matched)
        res.learned = learned;
    return res;
}

std::string formatDifferences(const Step &expected, const Fixture &, const std::vector<Difference> &d) {
    std::string out = "step " + std::to_string(expected.id) + " (" + expected.participant + ", expect " +
                      (expected.message.empty() ? "" : expected.message[0]) + "):\n";
    for (const auto &x : d)
        out += "  " + x.what + ": expected '" + x.expected + "', got '" + x.actual + "'\n";
    return out;
}

void writeJunit(const std::string &, const std::string &, const std::vector<StepOutcome> &, double) {}

} // namespace parkway::replay
