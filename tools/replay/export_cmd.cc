// parkway-replay export FIXTURE --sipp DIR (docs/replay.md "Exporting to SIPp").
//
// SIPp plays one user agent per scenario and follows one Call-ID per call, with one strictly sequential list of
// <send>/<recv>. So only a fixture where one participant acts, on one dialog (and its transactions), can become a
// scenario; for any other the command writes nothing and says why (exit 1). The scenario keeps what SIPp can
// check: the order of messages, status codes and methods. Headers and bodies are compared by `parkway-replay
// run`, not by SIPp.
#include "commands.hh"
#include "fixture.hh"
#include "sipp_export.hh"

#include <filesystem>
#include <fstream>
#include <iostream>

namespace parkway::replay {

namespace {

void writeFile(const std::filesystem::path &path, const std::string &text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out || !(out << text) || !out.flush())
        throw std::runtime_error(path.string() + ": cannot write");
}

} // namespace

int exportCommand(const ExportOptions &o) {
    Fixture f = loadFixture(o.fixture);
    std::vector<std::string> reasons = sippExportProblems(f);
    if (!reasons.empty()) {
        for (const auto &r : reasons)
            std::cerr << "cannot export: " << r << "\n";
        std::cerr << o.fixture << ": no SIPp scenario written; replay it with `parkway-replay run`\n";
        return 1;
    }
    SippExport e = sippExport(f);
    std::filesystem::create_directories(o.sippDir);
    std::filesystem::path dir(o.sippDir);
    writeFile(dir / e.fileName, e.scenario);
    writeFile(dir / "README.txt", e.readme);
    for (const auto &w : e.warnings)
        std::cerr << "warning: " << w << "\n";
    std::cout << (dir / e.fileName).string() << "\n" << (dir / "README.txt").string() << "\n";
    return 0;
}

} // namespace parkway::replay
