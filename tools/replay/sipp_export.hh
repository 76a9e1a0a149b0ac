// parkway-replay: a fixture as a SIPp scenario (docs/replay.md "Exporting to SIPp"), used by `export`.
#pragma once
#include "fixture.hh"

#include <string>
#include <vector>

namespace parkway::replay {

// Why SIPp cannot play this fixture, one sentence each ("3 participants act together (alice, bob, carol);
// SIPp runs one UA per scenario"); empty when it can (one participant, one dialog and its transactions).
std::vector<std::string> sippExportProblems(const Fixture &f);

struct SippExport {
    std::string participant; // who the scenario plays
    std::string fileName;    // "<fixture>_<participant>.xml"
    std::string scenario;    // the SIPp XML
    std::string readme;      // README.txt: what it is and the sipp command line
    // What SIPp checks less strictly than `run` would, one sentence each ("steps 2 and 3 may come in either
    // order ...": SIPp waits for them in the trace's order).
    std::vector<std::string> warnings;
};
// Precondition: sippExportProblems(f) is empty (throws FixtureError otherwise).
SippExport sippExport(const Fixture &f);

} // namespace parkway::replay
