// parkway-replay run (docs/replay.md "Running a fixture"): load the fixture, play it (runner.hh), print the
// outcome, write the JUnit report. Exit 0 when the server behaved as in the trace, 1 on a difference, 2 on bad
// input (the fixture, the options).
#include "commands.hh"
#include "compare.hh"
#include "runner.hh"

#include <fmt/format.h>

#include <iostream>

namespace parkway::replay {

namespace {

void printReport(const Fixture &f, const RunReport &rep) {
    size_t failed = 0, notReached = 0;
    for (const auto &o : rep.outcomes) {
        failed += !o.passed && !o.skipped;
        notReached += !o.passed && o.skipped;
    }
    if (rep.passed()) {
        std::cout << fmt::format("PASS {} ({} steps, {:.1f} s)\n", f.name, f.steps.size(), rep.seconds);
        return;
    }
    for (const auto &text : rep.failures)
        std::cout << text << (text.empty() || text.back() == '\n' ? "" : "\n");
    for (const auto &u : rep.unexpected)
        std::cout << "unexpected: " << u << "\n";
    for (const auto &u : rep.undelivered)
        std::cout << "no answer: " << u << "\n";
    std::cout << fmt::format("FAIL {} ({} of {} steps failed, {} not reached, {} unexpected messages, {:.1f} s)\n",
                             f.name, failed, f.steps.size(), notReached, rep.unexpected.size(), rep.seconds);
}

} // namespace

int runCommand(const RunOptions &o) {
    Fixture f = loadFixture(o.fixture); // FixtureError names the file and the field: exit 2 (main.cc)
    if (f.name.empty())
        f.name = o.fixture;
    RunReport rep;
    try {
        Runner runner(f, o);
        rep = runner.run();
    } catch (const RunInputError &e) {
        std::cerr << "parkway-replay: " << o.fixture << ": " << e.what() << "\n";
        return 2;
    }
    printReport(f, rep);
    if (!o.junit.empty()) {
        auto outcomes = rep.outcomes;
        for (const auto &u : rep.unexpected)
            outcomes.push_back(StepOutcome{0, "unexpected message", false, false, 0, u});
        writeJunit(o.junit, f.name, outcomes, rep.seconds);
    }
    return rep.passed() ? 0 : 1;
}

} // namespace parkway::replay
