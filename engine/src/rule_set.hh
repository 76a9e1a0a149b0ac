// Compiled dialplan rules (internal). A RuleSet is immutable once built; the engine swaps a
// shared_ptr to a new one on reload, so a reload is atomic and a failed reload changes nothing.
#pragma once

#include "parkway/engine/rules.hh"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace re2 {
class RE2;
}

namespace parkway::engine {

// Regular expressions are RE2 (linear time in the input: dial strings come from the network). The
// pointers carry their deleter, so this header needs no RE2 include.
struct CompiledRule {
    Rule rule;
    std::shared_ptr<const re2::RE2> match; // match_op regex
    std::shared_ptr<const re2::RE2> subst; // when hasSubst
    bool hasSubst = false;
    std::string required; // a literal the input must contain (cheap prefilter), may be empty
    Attrs attrs;
    Action action = Action::None;
    bool isDefault = false;
    int firstByte = -1; // the byte every matching input starts with, or -1 when not fixed
};

// Compile one rule; on error returns nullptr and sets `error` (message names the rule id).
std::shared_ptr<const CompiledRule> compileRule(const Rule &r, std::string &error);

// The rules that apply to one domain, in evaluation order (pr, stored before default, id).
struct DomainPlan {
    DomainSettings settings;
    std::vector<std::shared_ptr<const CompiledRule>> rules;
    // Fast path index: for each possible first byte of the input, the positions (into `rules`, ascending)
    // of the rules that can match an input starting with it (rules with no fixed first byte are in every
    // list). Not used with `continue` rules (the translated input may start differently) or for traces.
    std::vector<std::vector<std::uint32_t>> byFirstByte; // 256 lists
    std::vector<std::uint32_t> forEmpty;                 // rules that can match the empty input
    bool hasContinue = false;
};

// Plans are shared between successive sets: changing one domain's settings makes a new set that reuses every
// other domain's plan (withDomain), so provisioning N domains costs O(N) plan builds, not O(N^2).
struct RuleSet {
    std::vector<std::shared_ptr<const CompiledRule>> stored;                     // all stored rules
    std::map<std::string, std::shared_ptr<const DomainPlan>, std::less<>> plans; // configured and rule domains
    std::shared_ptr<const DomainPlan> generic; // any other domain: defaults + domain '' rules
    const DomainPlan &planFor(const std::string &domain) const {
        auto it = plans.find(domain);
        return it == plans.end() ? *generic : *it->second;
    }
};

// Build the set; errors are appended (one per bad rule). Returns nullptr when any rule failed.
std::shared_ptr<const RuleSet> buildRuleSet(const std::vector<Rule> &stored, const std::vector<DomainSettings> &domains,
                                            std::vector<RuleError> &errors);

// `base` with one domain's settings added or replaced; the stored rules and the other plans are shared.
// Returns nullptr (errors appended) when the domain's default rules do not compile.
std::shared_ptr<const RuleSet> withDomain(const RuleSet &base, const DomainSettings &domain,
                                          std::vector<RuleError> &errors);

// Longer dial strings match no rule (they are routed normally). Every classification (Engine::classify,
// Engine::explain, RuleMatcher::classify) goes through evaluate(), which applies this bound.
constexpr size_t kMaxDialLength = 256;
// A translation longer than this fails (Kamailio's output buffer).
constexpr size_t kMaxOutputLength = 127;

// Run the rules of a plan over `dial`. `trace` may be null (fast path).
void evaluate(const DomainPlan &plan, const std::string &caller, const std::string &dial, Classification &out,
              std::vector<RuleTrace> *trace);

} // namespace parkway::engine
