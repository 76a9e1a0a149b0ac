// parkway-replay import (docs/replay.md "Importing a trace"): readTrace -> buildFixture -> the fixture JSON
// (a file, or stdout for "-"), and a summary on stderr.
#include "commands.hh"
#include "fixture.hh"
#include "importer.hh"
#include "trace.hh"

#include <iostream>

namespace parkway::replay {

int importCommand(const ImportOptions &o) {
    try {
        ReadResult trace = readTrace(o.trace);
        ImportSummary summary;
        Fixture f = buildFixture(trace, o, &summary);
        if (o.output == "-")
            std::cout << fixtureToJson(f) << std::flush;
        else
            saveFixture(f, o.output);
        std::cerr << summaryText(f, summary);
        if (o.output != "-")
            std::cerr << "wrote " << o.output << "\n";
        return 0;
    } catch (const TraceError &e) {
        std::cerr << "parkway-replay import: " << e.what() << "\n";
    } catch (const ImportError &e) {
        std::cerr << "parkway-replay import: " << o.trace << ": " << e.what() << "\n";
    } catch (const FixtureError &e) {
        std::cerr << "parkway-replay import: " << e.what() << "\n";
    }
    return 2;
}

} // namespace parkway::replay
