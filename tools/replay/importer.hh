// parkway-replay import: the fixture builder (docs/replay.md "Importing a trace"). From the messages of a
// trace (trace.hh) to a fixture (fixture.hh): finds the server, groups the other addresses into phones, drops
// retransmissions, turns every identifier into a {{symbol}}, and writes one step per message with the
// partial order of the shared design (`after`, `delay`).
#pragma once
#include "commands.hh"
#include "fixture.hh"
#include "trace.hh"

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace parkway::replay {

// Bad input to the builder: a --server address not in the trace, a trace without SIP messages ...
class ImportError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct ImportSummary {
    std::vector<std::string> warnings;                           // the reader's, then the builder's
    std::vector<std::pair<std::string, std::string>> userMap;    // --anonymize: original -> new user part
    std::vector<std::pair<std::string, std::string>> displayMap; // --anonymize: original -> new display name
    int dialogs = 0;                                             // distinct Call-ID + both tags
    int callIds = 0;                                             // distinct Call-IDs
    int retransmissions = 0;                                     // messages dropped as retransmissions
    int sends = 0, expects = 0;
};

// Throws ImportError naming the problem (no SIP message, an unknown --server address).
Fixture buildFixture(const ReadResult &trace, const ImportOptions &options, ImportSummary *summary = nullptr);

// The summary printed on stderr by `parkway-replay import`: participants, dialogs, steps, the anonymization
// mapping and the warnings.
std::string summaryText(const Fixture &f, const ImportSummary &s);

} // namespace parkway::replay
