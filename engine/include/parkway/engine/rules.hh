// parkway/engine/rules.hh — dialplan rules in the shape of Kamailio's `dialplan` table (docs/engine.md "Dialplan
// rules").
//
// Semantics (Kamailio src/modules/dialplan, plus OpenSIPS' `disabled` and our `continue`):
//  * A domain uses the rules whose `dpid` equals the domain's DomainSettings::dpid and whose `domain` is
//    empty (every domain) or equals the domain.
//  * Rules with match_len > 0 only apply when the dial string has exactly that length; the group whose
//    length equals the input is tried first, then the match_len = 0 rules. Inside a group lower `pr`
//    first, ties by lower id.
//  * match_op 0 = exact (bytes equal), 1 = regex (RE2 syntax, bytes as Latin-1, compiled once at load;
//    linear time in the input, so no back-references or look-around inside a pattern: such a rule is
//    refused at load, naming it), 2 = glob (POSIX fnmatch(3), flags 0).
//  * The first match wins — unless it has `continue`: then its attrs are remembered (later rules' attrs
//    override key by key) and matching goes on with the *translated* string; the last match decides.
//  * Translation: when `subst_exp` is set it must also match (regex, whole string); the output is
//    `repl_exp` with \0..\9 expanded (text outside the groups is not carried over). Without `subst_exp`
//    `repl_exp` is copied verbatim; with both empty the output is the input. A back-reference beyond the
//    group count is a load-time error. An output over 127 characters fails the translation (Kamailio).
//  * Dial strings longer than 256 characters, or holding a NUL byte, match no rule (they come from the
//    network; normal routing).
//  * attrs: `key=value;key=value`. Known keys:
//      action=park|group_park|retrieve|watch|route|reject   (required)
//      ext=<extension>  target extension (default: the translated output; empty output = own extension)
//      lot=<name> slot=<n>  lot park/retrieve/watch (slot default: the translated output when numeric,
//                           else 0 = pick a free slot for park)
//      recall=<1..3600> mode=parker|parker_then_alternate|alternate_only wait=<s> retry=<s> ring=<s>
//      alternate=<recall target, see RecallTarget>  occupied=reject|stack
//      max_park=<0..86400> maximum park time in seconds (0 = no limit), see RecallSettings::maxParkSeconds
//      transfer=off|park|park_or_next  a blind transfer to a lot slot that classifies as retrieve (orbit
//                           parking by transfer to `702`): park into it (default `park`; occupied -> Occupied),
//                           into the next free slot when occupied (`park_or_next`), or retrieve (`off`);
//                           see transferToSlot()
//      code=<400..699> (reject: SIP status)   route=<uri> (route: where to send; default the output)
//    Unknown keys are kept (integrators' own data) and shown by explain.
//  * Default rules: for every domain with defaultRules=true the engine generates (not stored) rules from
//    the domain's feature codes at pr 1000..1002 with negative ids, after any stored rule of the same pr
//    range; they accept the code's `*` raw or as %2A and an optional trailing `#` raw or as %23:
//      park `*68[ext][#]`, group park `*58[#]`, retrieve `*88[ext][#]`.
#pragma once

#include "parkway/engine/types.hh"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parkway::engine {

enum class MatchOp { Exact = 0, Regex = 1, Glob = 2 };

struct Rule {
    std::int64_t id = 0; // > 0 for stored rules; < 0 for generated default rules; 0 = "assign one"
    std::string domain;  // empty = every domain
    int dpid = 0;
    int pr = 0;
    MatchOp matchOp = MatchOp::Exact;
    std::string matchExp;
    int matchLen = 0;
    std::string substExp;
    std::string replExp;
    std::string attrs;
    bool disabled = false;
    bool cont = false; // `continue`
};

enum class Action { None, Park, GroupPark, Retrieve, Watch, Route, Reject };
const char *toString(Action a); // "none", "park", "group_park", "retrieve", "watch", "route", "reject"

// What a blind transfer to a lot slot does (attr `transfer=`): `Park` (default) parks into the slot and fails
// with Occupied when it is taken; `ParkOrNext` takes the next free slot of the lot then; `Off` leaves it a
// retrieve (a transfer to an empty slot then finds nothing).
enum class TransferToSlot { Off, Park, ParkOrNext };
const char *toString(TransferToSlot t); // "off", "park", "park_or_next"

using Attrs = std::vector<std::pair<std::string, std::string>>; // in rule order

// Parse `key=value;...` (whitespace around keys/values trimmed, empty items skipped). Returns an empty
// string on success, else a message naming the bad item.
std::string parseAttrs(std::string_view text, Attrs &out);

// The outcome of classifying a dial string (Request-URI or Refer-To user part).
struct Classification {
    Action action = Action::None;      // None: no rule matched; the request is not ours (normal routing)
    std::int64_t ruleId = 0;           // the deciding rule
    std::vector<std::int64_t> matched; // every rule that matched, in order (more than one with continue)
    std::string output;                // the translated string
    Attrs attrs;                       // merged attrs of the matched rules
    // Interpreted fields:
    std::string extension;                          // park/retrieve/watch target extension; empty = the caller's own
    std::string lot;                                // lot for orbit style
    int slot = 0;                                   // lot slot (0 = choose one on park)
    std::string group;                              // watch a group (attr group=)
    RecallOverrides overrides;                      // recall=, mode=, wait=, retry=, ring=, alternate=, occupied=
    int rejectCode = 0;                             // action=reject: SIP status (default 403)
    std::string route;                              // action=route: destination (attr route= or the output)
    TransferToSlot transfer = TransferToSlot::Park; // transfer= (only meaningful for a lot slot)

    const std::string *attr(std::string_view key) const; // nullptr when absent
};

// Build the engine request a classification implies (the module fills parked party, key and blob).
ParkRequest makeParkRequest(const Classification &c, std::string domain, std::string caller);
RetrieveRequest makeRetrieveRequest(const Classification &c, std::string domain, std::string caller);
// Orbit parking by transfer: a blind transfer (a REFER, or the transferee's INVITE carrying Referred-By or
// following a REFER the SIP layer saw) whose target classifies as retrieving a lot slot parks into that slot.
// Returns that park classification (action Park, same lot and slot, same overrides; makeParkRequest then sets
// slotOrNext for `transfer=park_or_next`), or nullopt when `c` is not a retrieve of a lot slot or its rule says
// `transfer=off`. An INVITE to the slot that is no transfer stays a retrieve.
std::optional<Classification> transferToSlot(const Classification &c);
// The watched target of a park/retrieve/watch classification (e.g. a SUBSCRIBE to `*88103`).
Target watchTarget(const Classification &c, std::string domain, std::string caller);

// A problem found while loading rules: names the rule id (and file line when loaded from a file).
struct RuleError {
    std::int64_t ruleId = 0;
    int line = 0;        // 0 when not from a file
    std::string message; // e.g. "rule 12: bad regex in match_exp '(': missing )"
};

// Load rules from a text file. Format (documented in docs/engine.md): one rule per line, TAB-separated
//   id  domain  dpid  pr  match_op  match_exp  match_len  subst_exp  repl_exp  attrs  disabled  continue
// Lines starting with `#` (first column) and blank lines are skipped; an optional header line whose first
// field is `id` is skipped; missing trailing columns take defaults (domain empty, ints 0, flags 0); an
// empty id or 0 means "assign". match_op may be written 0/1/2 or exact/regex/glob. Returns the rules, or
// errors (with line numbers) — nothing partial.
std::vector<Rule> readRulesFile(const std::string &path, std::vector<RuleError> &errors);
// The same from text (for tests and the admin plane's upload).
std::vector<Rule> parseRulesText(std::string_view text, const std::string &sourceName, std::vector<RuleError> &errors);
// Write rules in that format (a header line first).
std::string formatRules(const std::vector<Rule> &rules);

// The default rules the engine generates for a domain (ids -1, -2, -3).
std::vector<Rule> defaultRules(const DomainSettings &d);

// One step of an explain trace.
struct RuleTrace {
    Rule rule;
    bool lengthSkipped = false; // match_len did not fit
    bool matched = false;
    bool substFailed = false; // match_exp matched but subst_exp did not (Kamailio: translation fails)
    std::string output;
};

struct RuleSet; // compiled rules (internal)

// The dialplan parser's output compiled and matched on its own, without an Engine or SQLite — for tools,
// tests and fuzz targets (Engine::classify runs the same code). Immutable once compiled; thread-safe.
//   std::vector<RuleError> errs;
//   auto rules = parseRulesText(text, "fuzz", errs);           // the parser (compiles each rule too)
//   auto m = RuleMatcher::compile(rules, {}, errs);            // every domain gets the default rules
//   Classification c = m.classify("example.com", "100", dial); // the matcher
class RuleMatcher {
public:
    RuleMatcher(); // empty: classifies nothing
    // Compile `rules` for `domains` plus the generated defaults of each (and of any other domain). On any
    // error the result is empty and `errors` names each bad rule.
    static RuleMatcher compile(const std::vector<Rule> &rules, const std::vector<DomainSettings> &domains,
                               std::vector<RuleError> &errors);
    bool empty() const { return !set_; }
    // classify() as the Engine does it; with `trace`, every rule tried (explain's trace).
    Classification classify(const std::string &domain, const std::string &caller, const std::string &dial,
                            std::vector<RuleTrace> *trace = nullptr) const;

private:
    std::shared_ptr<const RuleSet> set_;
};

// explain(): what a dial string would do, changing nothing.
struct Explanation {
    std::string domain;
    std::string caller;
    std::string dial;
    Classification result;
    std::vector<RuleTrace> trace;
    // What the action would do right now:
    std::optional<ParkedCall> wouldRetrieve; // retrieve: the call that would be claimed
    std::string wouldParkOn;                 // park/group_park: the extension it would land on
    std::string wouldParkLot;                // lot park: lot and the slot it would pick
    int wouldParkSlot = 0;
    ErrorCode wouldFail = ErrorCode::None; // the error the operation would return (None = succeeds)
    std::string wouldFailMessage;
    RecallSettings recall; // resolved settings (rule > group/lot > domain > default)
    OccupiedPolicy occupied = OccupiedPolicy::Stack;
    std::vector<LadderRung> ladder; // the recall ladder that would apply
};

} // namespace parkway::engine
