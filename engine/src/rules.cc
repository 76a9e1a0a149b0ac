// Dialplan rules: parsing, compiling and evaluating with Kamailio `dialplan` semantics.
#include "rule_set.hh"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fnmatch.h>
#include <fstream>
#include <set>
#include <sstream>

namespace parkway::engine {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

std::optional<int> toInt(std::string_view s) {
    s = trim(s);
    if (s.empty() || s.size() > 9)
        return std::nullopt;
    bool neg = s.front() == '-';
    if (neg)
        s.remove_prefix(1);
    if (s.empty())
        return std::nullopt;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return neg ? -v : v;
}

bool isNumeric(std::string_view s) {
    return !s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<TransferToSlot> parseTransferToSlot(std::string_view s) {
    if (s == "off")
        return TransferToSlot::Off;
    if (s == "park")
        return TransferToSlot::Park;
    if (s == "park_or_next")
        return TransferToSlot::ParkOrNext;
    return std::nullopt;
}

std::optional<Action> parseAction(std::string_view s) {
    if (s == "park")
        return Action::Park;
    if (s == "group_park")
        return Action::GroupPark;
    if (s == "retrieve")
        return Action::Retrieve;
    if (s == "watch")
        return Action::Watch;
    if (s == "route")
        return Action::Route;
    if (s == "reject")
        return Action::Reject;
    return std::nullopt;
}

// Highest \N in a replacement string (-1 when none).
int maxBackref(std::string_view s) {
    int m = -1;
    for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == '\\' && s[i + 1] >= '0' && s[i + 1] <= '9') {
            m = std::max(m, s[i + 1] - '0');
            ++i;
        }
    return m;
}

// Capture groups of a subst_exp match: [0] the whole match, [1..9] the groups (null data = unmatched).
constexpr int kMaxGroups = 10;
using Groups = re2::StringPiece[kMaxGroups];

// Expand \0..\9 with `groups` (a missing/unmatched group expands to nothing); `\\` is a backslash. This is
// RE2's rewrite-string syntax (RE2::Rewrite), kept by hand so that any other `\x` stays literal as before.
std::string expand(std::string_view repl, const Groups *groups, int groupCount) {
    std::string out;
    out.reserve(repl.size() + 16);
    for (size_t i = 0; i < repl.size(); ++i) {
        char c = repl[i];
        if (c == '\\' && i + 1 < repl.size()) {
            char n = repl[i + 1];
            if (n >= '0' && n <= '9') {
                int g = n - '0';
                if (groups && g < groupCount && (*groups)[g].data())
                    out.append((*groups)[g].data(), (*groups)[g].size());
                ++i;
                continue;
            }
            if (n == '\\') {
                out.push_back('\\');
                ++i;
                continue;
            }
        }
        out.push_back(c);
    }
    return out;
}

// True when the scans below understand every construct of `re`: escapes of a letter or digit only as the
// one-character classes and assertions \d \D \w \W \s \S \b \B \A \z, and no inline flags `(?i)`.
// Anything else (\x41, \pN, \Q...\E, (?i)) could make a plain-looking letter mean something else.
bool simpleSyntax(const std::string &re) {
    for (size_t i = 0; i + 1 < re.size(); ++i) {
        if (re[i] == '\\') {
            char n = re[i + 1];
            if (std::isalnum(static_cast<unsigned char>(n)) && !std::strchr("dDwWsSbBAz", n))
                return false;
            ++i;
        } else if (re[i] == '(' && re[i + 1] == '?' && (i + 2 >= re.size() || re[i + 2] != ':')) {
            return false;
        }
    }
    return true;
}

// A literal the input must contain for a regex to match: the longest run of plain alphanumerics at
// nesting depth 0 that is not made optional by a quantifier, only when the pattern has no top-level `|`.
// Conservative: an empty result means "no prefilter".
std::string requiredLiteral(const std::string &re) {
    if (!simpleSyntax(re))
        return {};
    int depth = 0;
    bool inClass = false;
    for (size_t i = 0; i < re.size(); ++i) {
        char c = re[i];
        if (c == '\\') {
            ++i;
            continue;
        }
        if (inClass) {
            if (c == ']')
                inClass = false;
            continue;
        }
        if (c == '[')
            inClass = true;
        else if (c == '(')
            ++depth;
        else if (c == ')')
            --depth;
        else if (c == '|' && depth == 0)
            return {};
    }
    std::string best, cur;
    depth = 0;
    inClass = false;
    for (size_t i = 0; i < re.size(); ++i) {
        char c = re[i];
        bool literal = false;
        if (c == '\\') {
            // an escaped punctuation char is a literal; \d, \w ... are classes
            if (i + 1 < re.size() && !std::isalnum(static_cast<unsigned char>(re[i + 1])) && depth == 0 && !inClass) {
                char lit = re[i + 1];
                ++i;
                bool quantified = i + 1 < re.size() && std::strchr("?*{", re[i + 1]) != nullptr;
                if (quantified) {
                    if (cur.size() > best.size())
                        best = cur;
                    cur.clear();
                    continue;
                }
                cur.push_back(lit);
                continue;
            }
            ++i;
        } else if (inClass) {
            if (c == ']')
                inClass = false;
        } else if (c == '[') {
            inClass = true;
        } else if (c == '(') {
            ++depth;
        } else if (c == ')') {
            --depth;
        } else if (depth == 0 && std::isalnum(static_cast<unsigned char>(c))) {
            literal = true;
        }
        if (literal) {
            bool quantified = i + 1 < re.size() && std::strchr("?*{", re[i + 1]) != nullptr;
            if (quantified) {
                if (cur.size() > best.size())
                    best = cur;
                cur.clear();
            } else {
                cur.push_back(c);
            }
        } else {
            if (cur.size() > best.size())
                best = cur;
            cur.clear();
        }
    }
    if (cur.size() > best.size())
        best = cur;
    return best;
}

// For a glob, the literal prefix before the first wildcard (`[x]` with one char counts as literal x).
std::string globPrefix(const std::string &g) {
    std::string out;
    for (size_t i = 0; i < g.size(); ++i) {
        char c = g[i];
        if (c == '*' || c == '?')
            break;
        if (c == '\\' && i + 1 < g.size()) {
            out.push_back(g[++i]);
            continue;
        }
        if (c == '[') {
            if (i + 2 < g.size() && g[i + 1] != '!' && g[i + 1] != '^' && g[i + 2] == ']') {
                out.push_back(g[i + 1]);
                i += 2;
                continue;
            }
            break;
        }
        out.push_back(c);
    }
    return out;
}

// The byte every input matched by the rule starts with, or -1 when it is not fixed.
int firstByteOf(const Rule &r) {
    const std::string &e = r.matchExp;
    auto byte = [](char c) { return static_cast<int>(static_cast<unsigned char>(c)); };
    switch (r.matchOp) {
    case MatchOp::Exact:
        return e.empty() ? -1 : byte(e[0]);
    case MatchOp::Glob: {
        std::string p = globPrefix(e);
        return p.empty() ? -1 : byte(p[0]);
    }
    case MatchOp::Regex: {
        // `^X` where X is a plain alphanumeric or an escaped punctuation character, not made optional,
        // and no top-level alternation (requiredLiteral's check).
        if (e.size() < 2 || e[0] != '^' || !simpleSyntax(e))
            return -1;
        int depth = 0;
        bool inClass = false;
        for (size_t i = 0; i < e.size(); ++i) {
            char c = e[i];
            if (c == '\\') {
                ++i;
                continue;
            }
            if (inClass) {
                if (c == ']')
                    inClass = false;
                continue;
            }
            if (c == '[')
                inClass = true;
            else if (c == '(')
                ++depth;
            else if (c == ')')
                --depth;
            else if (c == '|' && depth == 0)
                return -1;
        }
        size_t next = 2;
        char x = e[1];
        if (x == '\\') {
            if (e.size() < 3 || std::isalnum(static_cast<unsigned char>(e[2])))
                return -1;
            x = e[2];
            next = 3;
        } else if (!std::isalnum(static_cast<unsigned char>(x))) {
            return -1;
        }
        if (next < e.size() && std::strchr("?*{", e[next]) != nullptr)
            return -1;
        return byte(x);
    }
    }
    return -1;
}

std::string ruleName(const Rule &r) {
    return r.id < 0 ? fmt::format("default rule {}", r.id) : fmt::format("rule {}", r.id);
}

// Check the attrs of a rule; interpretation happens at evaluation.
std::string checkAttrs(const Attrs &attrs, bool cont, Action &action) {
    bool haveAction = false;
    for (const auto &[k, v] : attrs) {
        if (k == "action") {
            auto a = parseAction(v);
            if (!a)
                return fmt::format("unknown action '{}' (park, group_park, retrieve, watch, route, reject)", v);
            action = *a;
            haveAction = true;
        } else if (k == "recall" || k == "ring" || k == "wait" || k == "retry") {
            auto n = toInt(v);
            int lo = k == "retry" ? 0 : 1;
            if (!n || *n < lo || *n > 3600)
                return fmt::format("{}={} must be a number of seconds {}..3600", k, v, lo);
        } else if (k == "max_park") {
            auto n = toInt(v);
            if (!n || *n < 0 || *n > 86400)
                return fmt::format("max_park={} must be a number of seconds 0..86400", v);
        } else if (k == "mode") {
            if (!parseRecallMode(v))
                return fmt::format("mode={} (parker, parker_then_alternate, alternate_only)", v);
        } else if (k == "occupied") {
            if (!parseOccupiedPolicy(v))
                return fmt::format("occupied={} (reject, stack)", v);
        } else if (k == "transfer") {
            if (!parseTransferToSlot(v))
                return fmt::format("transfer={} (off, park, park_or_next)", v);
        } else if (k == "alternate") {
            if (!RecallTarget::parse(v))
                return fmt::format("alternate='{}' is not a recall target", v);
        } else if (k == "code") {
            auto n = toInt(v);
            if (!n || *n < 400 || *n > 699)
                return fmt::format("code={} must be a SIP status 400..699", v);
        } else if (k == "slot") {
            if (!isNumeric(v) && !(v.size() == 2 && v[0] == '\\' && std::isdigit(static_cast<unsigned char>(v[1]))))
                return fmt::format("slot={} must be a number or a back-reference \\N", v);
        }
    }
    if (!haveAction && !cont)
        return "attrs have no action= (park, group_park, retrieve, watch, route, reject)";
    return {};
}

// Escape a feature code for a regex: `*` raw or %2A, `#` raw or %23 (RFC 3261 §19.1.2: both may arrive
// escaped in a user part).
std::string codeRegex(const std::string &code) {
    std::string out;
    for (char c : code) {
        if (c == '*')
            out += R"((?:\*|%2[Aa]))";
        else if (c == '#')
            out += "(?:#|%23)";
        else
            out += RE2::QuoteMeta(re2::StringPiece(&c, 1));
    }
    return out;
}

// Compile a rule's regex. Latin-1 keeps std::regex's byte-for-byte semantics (a dial string may hold any
// byte); RE2 has no back-references or look-around inside a pattern, and says so by name.
std::shared_ptr<const re2::RE2> compileRegex(const std::string &pattern, std::string &error) {
    RE2::Options o;
    o.set_encoding(RE2::Options::EncodingLatin1);
    o.set_log_errors(false);
    o.set_max_mem(1 << 20); // per expression: bounds the DFA cache a hostile input can grow
    auto re = std::make_shared<const re2::RE2>(pattern, o);
    if (re->ok())
        return re;
    error = re->error();
    if (re->error_code() == RE2::ErrorBadPerlOp || re->error_code() == RE2::ErrorBadEscape)
        error += " (RE2 syntax: no back-references or look-around inside a pattern, see docs/engine.md)";
    return nullptr;
}

} // namespace

std::string parseAttrs(std::string_view text, Attrs &out) {
    out.clear();
    while (!text.empty()) {
        size_t semi = text.find(';');
        std::string_view item = trim(text.substr(0, semi));
        text = semi == std::string_view::npos ? std::string_view{} : text.substr(semi + 1);
        if (item.empty())
            continue;
        size_t eq = item.find('=');
        if (eq == std::string_view::npos)
            return fmt::format("attr '{}' is not key=value", item);
        std::string_view key = trim(item.substr(0, eq));
        if (key.empty())
            return fmt::format("attr '{}' has an empty key", item);
        out.emplace_back(std::string(key), std::string(trim(item.substr(eq + 1))));
    }
    return {};
}

std::shared_ptr<const CompiledRule> compileRule(const Rule &r, std::string &error) {
    auto c = std::make_shared<CompiledRule>();
    c->rule = r;
    c->isDefault = r.id < 0;
    auto fail = [&](const std::string &what) {
        error = fmt::format("{}: {}", ruleName(r), what);
        return nullptr;
    };
    if (r.matchLen < 0)
        return fail("match_len must be >= 0");
    if (r.matchExp.empty())
        return fail("match_exp is empty");
    switch (r.matchOp) {
    case MatchOp::Exact:
        c->required = r.matchExp;
        break;
    case MatchOp::Regex: {
        std::string why;
        c->match = compileRegex(r.matchExp, why);
        if (!c->match)
            return fail(fmt::format("bad regex in match_exp '{}': {}", r.matchExp, why));
        c->required = requiredLiteral(r.matchExp);
        break;
    }
    case MatchOp::Glob:
        c->required = globPrefix(r.matchExp);
        break;
    default:
        return fail(fmt::format("match_op {} (0 exact, 1 regex, 2 glob)", static_cast<int>(r.matchOp)));
    }
    c->firstByte = firstByteOf(r);
    int groups = 0;
    if (!r.substExp.empty()) {
        std::string why;
        c->subst = compileRegex(r.substExp, why);
        if (!c->subst)
            return fail(fmt::format("bad regex in subst_exp '{}': {}", r.substExp, why));
        c->hasSubst = true;
        groups = c->subst->NumberOfCapturingGroups();
    }
    std::string e = parseAttrs(r.attrs, c->attrs);
    if (!e.empty())
        return fail(e);
    e = checkAttrs(c->attrs, r.cont, c->action);
    if (!e.empty())
        return fail(e);
    int refs = maxBackref(r.replExp);
    for (const auto &[k, v] : c->attrs)
        refs = std::max(refs, maxBackref(v));
    if (refs > 0 && !c->hasSubst)
        return fail(fmt::format("repl_exp/attrs use \\{} but there is no subst_exp to capture it", refs));
    if (refs > groups)
        return fail(
            fmt::format("back-reference \\{} but subst_exp '{}' has only {} group(s)", refs, r.substExp, groups));
    return c;
}

std::vector<Rule> defaultRules(const DomainSettings &d) {
    const std::string hash = "(?:#|%23)?"; // optional trailing `#`, raw or escaped
    const std::string ext = "([^#%]*)";    // the extension (may be empty: own extension)
    auto make = [&](std::int64_t id, int pr, const std::string &code, bool withExt, const char *action) {
        Rule r;
        r.id = id;
        r.domain = d.name;
        r.dpid = d.dpid;
        r.pr = pr;
        r.matchOp = MatchOp::Regex;
        r.matchExp = "^" + codeRegex(code) + (withExt ? ext : "") + hash + "$";
        if (withExt) {
            r.substExp = r.matchExp;
            r.replExp = "\\1";
        }
        r.attrs = fmt::format("action={}", action);
        return r;
    };
    return {make(-1, 1000, d.parkCode, true, "park"), make(-2, 1001, d.groupParkCode, false, "group_park"),
            make(-3, 1002, d.retrieveCode, true, "retrieve")};
}

namespace {

bool ruleOrder(const std::shared_ptr<const CompiledRule> &a, const std::shared_ptr<const CompiledRule> &b) {
    if (a->rule.pr != b->rule.pr)
        return a->rule.pr < b->rule.pr;
    if (a->isDefault != b->isDefault)
        return !a->isDefault;
    if (a->isDefault)
        return a->rule.id > b->rule.id; // -1, -2, -3
    return a->rule.id < b->rule.id;
}

DomainPlan makePlan(const DomainSettings &s, const std::vector<std::shared_ptr<const CompiledRule>> &stored,
                    std::vector<RuleError> &errors) {
    DomainPlan p;
    p.settings = s;
    for (const auto &r : stored)
        if (r->rule.dpid == s.dpid && (r->rule.domain.empty() || r->rule.domain == s.name))
            p.rules.push_back(r);
    if (s.defaultRules) {
        for (const Rule &d : defaultRules(s)) {
            std::string e;
            auto c = compileRule(d, e);
            if (!c)
                errors.push_back({d.id, 0, fmt::format("domain {}: {}", s.name, e)});
            else
                p.rules.push_back(c);
        }
    }
    std::stable_sort(p.rules.begin(), p.rules.end(), ruleOrder);
    p.byFirstByte.assign(256, {});
    for (std::uint32_t i = 0; i < p.rules.size(); ++i) {
        const CompiledRule &r = *p.rules[i];
        if (r.rule.cont)
            p.hasContinue = true;
        if (r.firstByte < 0) {
            for (auto &list : p.byFirstByte)
                list.push_back(i);
            p.forEmpty.push_back(i);
        } else {
            p.byFirstByte[static_cast<size_t>(r.firstByte)].push_back(i);
        }
    }
    return p;
}

} // namespace

void evaluateRules(const DomainPlan &plan, const std::string &dial, Classification &out, std::vector<RuleTrace> *trace);

std::shared_ptr<const RuleSet> buildRuleSet(const std::vector<Rule> &stored, const std::vector<DomainSettings> &domains,
                                            std::vector<RuleError> &errors) {
    auto set = std::make_shared<RuleSet>();
    size_t before = errors.size();
    std::set<std::int64_t> ids;
    for (const Rule &r : stored) {
        if (r.id > 0 && !ids.insert(r.id).second) {
            errors.push_back({r.id, 0, fmt::format("rule {}: duplicate id", r.id)});
            continue;
        }
        std::string e;
        auto c = compileRule(r, e);
        if (!c)
            errors.push_back({r.id, 0, e});
        else
            set->stored.push_back(c);
    }
    std::map<std::string, DomainSettings> all;
    for (const auto &d : domains)
        all[d.name] = d;
    for (const auto &r : set->stored)
        if (!r->rule.domain.empty() && !all.count(r->rule.domain)) {
            DomainSettings d;
            d.name = r->rule.domain;
            all[d.name] = d;
        }
    for (const auto &[name, d] : all)
        set->plans.emplace(name, std::make_shared<const DomainPlan>(makePlan(d, set->stored, errors)));
    DomainSettings generic;
    set->generic = std::make_shared<const DomainPlan>(makePlan(generic, set->stored, errors));
    if (errors.size() != before)
        return nullptr;
    return set;
}

std::shared_ptr<const RuleSet> withDomain(const RuleSet &base, const DomainSettings &domain,
                                          std::vector<RuleError> &errors) {
    size_t before = errors.size();
    auto plan = std::make_shared<const DomainPlan>(makePlan(domain, base.stored, errors));
    if (errors.size() != before)
        return nullptr;
    auto set = std::make_shared<RuleSet>(base);
    set->plans[domain.name] = std::move(plan);
    return set;
}

void evaluate(const DomainPlan &plan, const std::string &caller, const std::string &dial, Classification &out,
              std::vector<RuleTrace> *trace) {
    (void)caller; // reserved for caller-dependent rules (e.g. per-caller attrs); the caller is resolved later
    // Dial strings come from the network. RE2 is linear in the input, but the work still is bounded: an
    // over-long Request-URI user part, or one holding a NUL byte (never valid in a SIP URI, RFC 3261
    // §25.1), matches no rule (normal routing).
    if (dial.size() > kMaxDialLength || dial.find('\0') != std::string::npos) {
        out.output = dial;
        return;
    }
    evaluateRules(plan, dial, out, trace);
}

void evaluateRules(const DomainPlan &plan, const std::string &dial, Classification &out,
                   std::vector<RuleTrace> *trace) {
    std::string input = dial;
    const size_t origLen = dial.size();
    bool any = false;
    Groups m;
    int groupCount = 0;
    // Kamailio: rules whose match_len equals the input length first, then the match_len = 0 rules.
    // Fast path: only the rules that can match the input's first byte (same relative order).
    const std::vector<std::uint32_t> *candidates = nullptr;
    if (!trace && !plan.hasContinue && !plan.byFirstByte.empty())
        candidates = input.empty() ? &plan.forEmpty : &plan.byFirstByte[static_cast<unsigned char>(input[0])];
    const size_t count = candidates ? candidates->size() : plan.rules.size();
    for (int pass = 0; pass < 2; ++pass) {
        for (size_t k = 0; k < count; ++k) {
            const auto &cr = plan.rules[candidates ? (*candidates)[k] : k];
            const Rule &r = cr->rule;
            if (r.disabled)
                continue;
            if (pass == 0 ? (r.matchLen == 0 || static_cast<size_t>(r.matchLen) != origLen) : r.matchLen != 0) {
                if (trace && pass == 1 && r.matchLen != 0 && static_cast<size_t>(r.matchLen) != origLen) {
                    RuleTrace t;
                    t.rule = r;
                    t.lengthSkipped = true;
                    trace->push_back(std::move(t));
                }
                continue;
            }
            if (r.matchLen != 0 && static_cast<size_t>(r.matchLen) != input.size())
                continue; // changed by continue
            bool hit = false;
            if (!cr->required.empty() && input.find(cr->required) == std::string::npos) {
                hit = false;
            } else {
                switch (r.matchOp) {
                case MatchOp::Exact:
                    hit = input == r.matchExp;
                    break;
                case MatchOp::Regex:
                    hit = RE2::PartialMatch(input, *cr->match);
                    break;
                case MatchOp::Glob:
                    hit = fnmatch(r.matchExp.c_str(), input.c_str(), 0) == 0;
                    break;
                }
            }
            if (!hit) {
                if (trace) {
                    RuleTrace t;
                    t.rule = r;
                    trace->push_back(std::move(t));
                }
                continue;
            }
            // Translation (Kamailio dp_translate): subst_exp must match too, else the translation fails;
            // so does an output longer than Kamailio's 127-character buffer (never silently truncated).
            std::string output;
            bool haveMatch = false;
            if (cr->hasSubst) {
                groupCount = std::min(kMaxGroups, 1 + cr->subst->NumberOfCapturingGroups());
                haveMatch = cr->subst->Match(input, 0, input.size(), RE2::ANCHOR_BOTH, m, groupCount);
                if (haveMatch)
                    output = r.replExp.empty() ? input : expand(r.replExp, &m, groupCount);
                if (!haveMatch || output.size() > kMaxOutputLength) {
                    if (trace) {
                        RuleTrace t;
                        t.rule = r;
                        t.matched = true;
                        t.substFailed = true;
                        trace->push_back(std::move(t));
                    }
                    out.action = Action::None;
                    out.ruleId = r.id;
                    out.matched.push_back(r.id);
                    return;
                }
            } else {
                output = r.replExp.empty() ? input : r.replExp;
            }
            any = true;
            out.matched.push_back(r.id);
            out.ruleId = r.id;
            for (const auto &[k, v] : cr->attrs) {
                std::string val = haveMatch ? expand(v, &m, groupCount) : v;
                auto it =
                    std::find_if(out.attrs.begin(), out.attrs.end(), [&k = k](const auto &a) { return a.first == k; });
                if (it != out.attrs.end())
                    it->second = std::move(val);
                else
                    out.attrs.emplace_back(k, std::move(val));
            }
            if (trace) {
                RuleTrace t;
                t.rule = r;
                t.matched = true;
                t.output = output;
                trace->push_back(std::move(t));
            }
            input = std::move(output);
            if (!r.cont) {
                pass = 2;
                break;
            }
        }
    }
    out.output = input;
    if (!any)
        return;
    // Interpret the merged attrs.
    out.action = Action::None;
    for (const auto &[k, v] : out.attrs) {
        if (k == "action")
            out.action = parseAction(v).value_or(Action::None);
        else if (k == "ext")
            out.extension = v;
        else if (k == "lot")
            out.lot = v;
        else if (k == "group")
            out.group = v;
        else if (k == "slot")
            out.slot = toInt(v).value_or(0);
        else if (k == "recall")
            out.overrides.recallSeconds = toInt(v);
        else if (k == "ring")
            out.overrides.ringSeconds = toInt(v);
        else if (k == "wait")
            out.overrides.alternateWaitSeconds = toInt(v);
        else if (k == "retry")
            out.overrides.retrySeconds = toInt(v);
        else if (k == "max_park")
            out.overrides.maxParkSeconds = toInt(v);
        else if (k == "mode")
            out.overrides.mode = parseRecallMode(v);
        else if (k == "occupied")
            out.overrides.occupied = parseOccupiedPolicy(v);
        else if (k == "alternate")
            out.overrides.alternate = RecallTarget::parse(v);
        else if (k == "code")
            out.rejectCode = toInt(v).value_or(403);
        else if (k == "route")
            out.route = v;
        else if (k == "transfer")
            out.transfer = parseTransferToSlot(v).value_or(TransferToSlot::Park);
    }
    bool hasExt = out.attr("ext") != nullptr;
    bool hasSlot = out.attr("slot") != nullptr;
    switch (out.action) {
    case Action::Park:
    case Action::Retrieve:
    case Action::Watch:
        if (!out.lot.empty()) {
            // Orbit style: retrieve/watch take the slot from the output when no slot= was given;
            // park picks a free slot unless slot= says which.
            if (!hasSlot && out.action != Action::Park && isNumeric(out.output))
                out.slot = *toInt(out.output);
        } else if (!hasExt && out.group.empty()) {
            out.extension = out.output;
        }
        break;
    case Action::Reject:
        if (out.rejectCode == 0)
            out.rejectCode = 403;
        break;
    case Action::Route:
        if (out.route.empty())
            out.route = out.output;
        break;
    default:
        break;
    }
}

std::optional<Classification> transferToSlot(const Classification &c) {
    if (c.action != Action::Retrieve || c.lot.empty() || c.slot == 0 || c.transfer == TransferToSlot::Off)
        return std::nullopt;
    Classification p = c;
    p.action = Action::Park;
    return p;
}

ParkRequest makeParkRequest(const Classification &c, std::string domain, std::string caller) {
    ParkRequest r;
    r.domain = std::move(domain);
    r.parker = std::move(caller);
    r.overrides = c.overrides;
    if (c.action == Action::GroupPark) {
        r.how = ParkHow::Group;
    } else if (!c.lot.empty()) {
        r.how = ParkHow::Lot;
        r.lot = c.lot;
        r.slot = c.slot;
        r.slotOrNext = c.slot != 0 && c.transfer == TransferToSlot::ParkOrNext;
    } else if (c.extension.empty()) {
        r.how = ParkHow::Own;
    } else {
        r.how = ParkHow::Directed;
        r.extension = c.extension;
    }
    return r;
}

RetrieveRequest makeRetrieveRequest(const Classification &c, std::string domain, std::string caller) {
    RetrieveRequest r;
    r.domain = std::move(domain);
    r.retriever = std::move(caller);
    if (!c.lot.empty()) {
        r.by = RetrieveRequest::By::Slot;
        r.lot = c.lot;
        r.slot = c.slot;
    } else if (c.extension.empty()) {
        r.by = RetrieveRequest::By::Own;
    } else {
        r.by = RetrieveRequest::By::Extension;
        r.extension = c.extension;
    }
    return r;
}

Target watchTarget(const Classification &c, std::string domain, std::string caller) {
    Target t;
    t.domain = std::move(domain);
    if (!c.group.empty()) {
        t.kind = TargetKind::Group;
        t.name = c.group;
    } else if (!c.lot.empty()) {
        t.kind = c.slot > 0 ? TargetKind::Slot : TargetKind::Lot;
        t.name = c.lot;
        t.slot = c.slot;
    } else {
        t.kind = TargetKind::Extension;
        t.name = c.extension.empty() ? std::move(caller) : c.extension;
    }
    return t;
}

// ---- RuleMatcher -----------------------------------------------------------------------------------

RuleMatcher::RuleMatcher() = default;

RuleMatcher RuleMatcher::compile(const std::vector<Rule> &rules, const std::vector<DomainSettings> &domains,
                                 std::vector<RuleError> &errors) {
    RuleMatcher m;
    m.set_ = buildRuleSet(rules, domains, errors);
    return m;
}

Classification RuleMatcher::classify(const std::string &domain, const std::string &caller, const std::string &dial,
                                     std::vector<RuleTrace> *trace) const {
    Classification c;
    if (set_)
        evaluate(set_->planFor(domain), caller, dial, c, trace);
    else
        c.output = dial;
    return c;
}

// ---- Rules file ------------------------------------------------------------------------------------

std::vector<Rule> parseRulesText(std::string_view text, const std::string &sourceName, std::vector<RuleError> &errors) {
    std::vector<Rule> rules;
    size_t before = errors.size();
    int lineNo = 0;
    while (!text.empty()) {
        size_t nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++lineNo;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (trim(line).empty() || line.front() == '#')
            continue;
        std::vector<std::string_view> f;
        for (size_t start = 0;;) {
            size_t tab = line.find('\t', start);
            f.push_back(line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start));
            if (tab == std::string_view::npos)
                break;
            start = tab + 1;
        }
        if (trim(f[0]) == "id")
            continue; // header
        auto err = [&](std::int64_t id, const std::string &m) {
            errors.push_back({id, lineNo, fmt::format("{}:{}: rule {}: {}", sourceName, lineNo, id, m)});
        };
        if (f.size() < 6 || f.size() > 12) {
            err(0,
                fmt::format("expected 6 to 12 TAB-separated columns (id domain dpid pr match_op match_exp ...), got {}",
                            f.size()));
            continue;
        }
        Rule r;
        auto num = [&](size_t i, const char *name, int &dst) {
            if (i >= f.size() || trim(f[i]).empty())
                return true;
            auto v = toInt(f[i]);
            if (!v) {
                err(r.id, fmt::format("{} '{}' is not a number", name, f[i]));
                return false;
            }
            dst = *v;
            return true;
        };
        int id = 0;
        if (!num(0, "id", id))
            continue;
        r.id = id;
        r.domain = std::string(trim(f[1]));
        if (!num(2, "dpid", r.dpid) || !num(3, "pr", r.pr))
            continue;
        std::string_view op = trim(f[4]);
        if (op == "0" || op == "exact")
            r.matchOp = MatchOp::Exact;
        else if (op == "1" || op == "regex")
            r.matchOp = MatchOp::Regex;
        else if (op == "2" || op == "glob")
            r.matchOp = MatchOp::Glob;
        else {
            err(r.id, fmt::format("match_op '{}' (0/exact, 1/regex, 2/glob)", op));
            continue;
        }
        r.matchExp = std::string(f[5]);
        if (!num(6, "match_len", r.matchLen))
            continue;
        if (f.size() > 7)
            r.substExp = std::string(f[7]);
        if (f.size() > 8)
            r.replExp = std::string(f[8]);
        if (f.size() > 9)
            r.attrs = std::string(f[9]);
        int flag = 0;
        if (!num(10, "disabled", flag))
            continue;
        r.disabled = flag != 0;
        flag = 0;
        if (!num(11, "continue", flag))
            continue;
        r.cont = flag != 0;
        std::string e;
        if (!compileRule(r, e)) {
            errors.push_back({r.id, lineNo, fmt::format("{}:{}: {}", sourceName, lineNo, e)});
            continue;
        }
        rules.push_back(std::move(r));
    }
    if (errors.size() != before)
        return {};
    return rules;
}

std::vector<Rule> readRulesFile(const std::string &path, std::vector<RuleError> &errors) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        errors.push_back({0, 0, fmt::format("{}: cannot open rules file", path)});
        return {};
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return parseRulesText(ss.str(), path, errors);
}

std::string formatRules(const std::vector<Rule> &rules) {
    std::string out =
        "id\tdomain\tdpid\tpr\tmatch_op\tmatch_exp\tmatch_len\tsubst_exp\trepl_exp\tattrs\tdisabled\tcontinue\n";
    for (const Rule &r : rules)
        out += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", r.id, r.domain, r.dpid, r.pr,
                           static_cast<int>(r.matchOp), r.matchExp, r.matchLen, r.substExp, r.replExp, r.attrs,
                           r.disabled ? 1 : 0, r.cont ? 1 : 0);
    return out;
}

} // namespace parkway::engine
