// fuzz_dialplan: the park engine's dialplan rules (engine/src/rules.cc) through the engine's public API:
// the rules file parser, rule compilation (regular expressions written by an operator or uploaded through
// the admin API), and classify/explain over dial strings that come from the network (Request-URI and
// Refer-To user parts).
// Input: rules in the rules-file format (docs/engine.md), then a line "%%", then dial strings, one per line
// ("caller<TAB>dial" or just "dial"); without "%%" a fixed set of dial strings is used.
// Invariants: no crash, exception or hang; stored rules written with formatRules() read back the same; the
// stand-alone RuleMatcher (tools) accepts exactly the rule sets the engine accepts and classifies every dial
// string as the engine does.
#include "fuzz_common.hh"

#include <parkway/engine/engine.hh>

#include <memory>
#include <optional>
#include <string>

namespace eng = parkway::engine;
using parkway::fuzz::fail;

namespace {

constexpr const char *kDomain = "pbx.example.com";
constexpr size_t kMaxDials = 8;

eng::SystemClock gClock;
std::unique_ptr<eng::Engine> gEngine;

void provision(eng::Engine &e) {
    eng::DomainSettings d;
    d.name = kDomain;
    e.setDomain(d);
    eng::Lot lot;
    lot.domain = kDomain;
    lot.name = "main";
    lot.firstSlot = 701;
    lot.lastSlot = 720;
    e.setLot(lot);
    eng::Group g;
    g.domain = kDomain;
    g.name = "sales";
    g.members = {"1001", "1002", "1003"};
    e.setGroup(g);
}

bool sameRule(const eng::Rule &a, const eng::Rule &b) {
    return a.id == b.id && a.domain == b.domain && a.dpid == b.dpid && a.pr == b.pr && a.matchOp == b.matchOp &&
           a.matchExp == b.matchExp && a.matchLen == b.matchLen && a.substExp == b.substExp && a.replExp == b.replExp &&
           a.attrs == b.attrs && a.disabled == b.disabled && a.cont == b.cont;
}

void checkRoundTrip(const eng::Engine &e) {
    auto stored = e.rules();
    std::string text = eng::formatRules(stored);
    std::vector<eng::RuleError> errors;
    auto back = eng::parseRulesText(text, "formatted", errors);
    if (!errors.empty())
        fail(("formatRules output does not parse: " + errors[0].message).c_str(), text);
    if (back.size() != stored.size())
        fail("formatRules output has another rule count", text);
    for (size_t i = 0; i < back.size(); ++i)
        if (!sameRule(back[i], stored[i]))
            fail("formatRules output reads back a different rule", text);
}

std::string describe(const eng::Classification &c) {
    std::string out =
        std::string(eng::toString(c.action)) + " rule " + std::to_string(c.ruleId) + " -> '" + c.output + "'";
    for (const auto &[k, v] : c.attrs)
        out += " " + k + "=" + v;
    return out;
}

void classify(eng::Engine &e, const eng::RuleMatcher *matcher, std::string_view line, bool explain) {
    std::string caller = "1001", dial(line);
    if (auto tab = line.find('\t'); tab != std::string_view::npos) {
        caller = std::string(line.substr(0, tab));
        dial = std::string(line.substr(tab + 1));
    }
    for (const char *domain : {kDomain, "other.example.net"}) {
        auto c = e.classify(domain, caller, dial);
        if (matcher) {
            auto m = matcher->classify(domain, caller, dial);
            if (describe(c) != describe(m))
                fail(("RuleMatcher and Engine disagree: engine " + describe(c) + ", matcher " + describe(m)).c_str(),
                     dial);
        }
        if (explain)
            (void)e.explain(domain, caller, dial);
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    gEngine = eng::Engine::open(":memory:", gClock);
    provision(*gEngine);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view input(reinterpret_cast<const char *>(data), size);
    std::string_view rulesText = input, dials;
    bool haveDials = false;
    if (size_t sep = input.find("\n%%\n"); sep != std::string_view::npos) {
        rulesText = input.substr(0, sep + 1);
        dials = input.substr(sep + 4);
        haveDials = true;
    }
    std::vector<eng::RuleError> errors;
    auto rules = eng::parseRulesText(rulesText, "fuzz", errors);
    std::optional<eng::RuleMatcher> matcher;
    if (errors.empty()) {
        (void)gEngine->checkRules(rules);
        bool engineOk = gEngine->replaceRules(rules).empty();
        std::vector<eng::RuleError> merrors;
        (void)eng::RuleMatcher::compile(rules, gEngine->domains(), merrors);
        if (engineOk != merrors.empty())
            fail("RuleMatcher and Engine disagree on whether the rules load", rulesText);
        if (engineOk) {
            checkRoundTrip(*gEngine);
            matcher = eng::RuleMatcher::compile(gEngine->rules(), gEngine->domains(), merrors);
        }
    }
    const eng::RuleMatcher *m = matcher ? &*matcher : nullptr;
    if (!haveDials) {
        for (const char *d : {"*68103", "*68%23", "*58", "*88103#", "700", "713", "+441234567", "9123", ""})
            classify(*gEngine, m, d, false);
        return 0;
    }
    size_t n = 0;
    for (auto line : parkway::fuzz::split(dials, '\n', kMaxDials))
        classify(*gEngine, m, line, n++ == 0);
    return 0;
}
