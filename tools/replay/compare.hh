// parkway-replay: does a message the server sent match an `expect` step? (docs/replay.md "Comparison")
// Pure functions over message text: the runner calls them, the unit tests call them directly.
#pragma once
#include "fixture.hh"

#include <map>
#include <string>
#include <vector>

namespace parkway::replay {

using Bindings = std::map<std::string, std::string>; // symbol name -> value at run time

struct Difference {
    std::string what;     // "status", "header Event", "body dialog-info: <dialog id=..> state", "method"
    std::string expected; // as the fixture says (symbols filled where known)
    std::string actual;   // what came
};

struct MatchResult {
    bool matched = false;             // start line and every compared part agree
    std::vector<Difference> differences;
    Bindings learned;                 // server-owned symbols first seen in this message (only when matched)
    // `learned` may also hold comparator state under names starting with '~' (never a fixture symbol): each
    // dialog-info/park-info version seen per subscription/extension, which must increase (RFC 4235 §4.1.2).
    // The runner keeps them in `bound` like symbols (one new entry per version, so adding is enough).
};

// Whether `actual` is the kind of message this step waits for: for a response, the same CSeq method (and
// the same Call-ID when its symbol is bound); for a request, the same method (and Call-ID when bound).
// The runner offers a message only to steps that could match it.
bool couldMatch(const Step &expected, const std::string &actual, const Bindings &bound);

// The full comparison: start line (status code / method and Request-URI user), the headers in
// `expected.compare` (symbols bound or learned; parameters compared as sets, header names case-insensitive,
// compact forms accepted), the body by kind (sdp: media, direction, codecs; dialog-info/park-info/pidf:
// elements and attributes; sipfrag: status line; text: exact after filling). A symbol not yet in `bound`
// matches any value and is returned in `learned`; the same symbol twice in one message must have one value.
MatchResult compareMessage(const Step &expected, const Fixture &fixture, const std::string &actual,
                           const Bindings &bound);

// One readable block for a failed step: "step 14 bob: expect NOTIFY (dialog {{call3}}, Event dialog)" then one
// line per difference, "  body dialog-info: dialog[@id=x]/state: expected 'confirmed', got 'terminated'".
std::string formatDifferences(const Step &expected, const Fixture &fixture, const std::vector<Difference> &d);

// JUnit report: one <testsuite> per fixture, one <testcase> per step (failures carry the diff text).
struct StepOutcome {
    int step = 0;
    std::string name;      // "14 bob expect NOTIFY"
    bool passed = false;
    bool skipped = false;  // optional step that did not come
    double seconds = 0;
    std::string failure;   // formatDifferences text, or "timed out after 10 s waiting for ..."
};
// Throws std::runtime_error naming the path when it cannot be written.
void writeJunit(const std::string &path, const std::string &suite, const std::vector<StepOutcome> &outcomes,
                double seconds);
// The same report as text (added for tests and for writing to stdout).
std::string junitXml(const std::string &suite, const std::vector<StepOutcome> &outcomes, double seconds);

} // namespace parkway::replay
