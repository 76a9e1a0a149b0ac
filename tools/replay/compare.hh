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

// One readable block for a failed step: "step 14 (bob, expect NOTIFY dialog-info): ..." with one line per
// difference, expected vs actual, and the dialog it belongs to.
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
void writeJunit(const std::string &path, const std::string &suite, const std::vector<StepOutcome> &outcomes,
                double seconds);

} // namespace parkway::replay
