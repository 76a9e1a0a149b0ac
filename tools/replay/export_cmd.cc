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
#include <sstream>

namespace parkway::replay {

namespace {

void writeFile(const std::filesystem::path &path, const std::string &text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out || !(out << text) || !out.flush())
        throw std::runtime_error(path.string() + ": cannot write");
}

std::string readFile(const std::filesystem::path &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    return buf.str();
}

// Several fixtures exported into one folder share README.txt: one section per scenario, the section of this
// scenario replaced, the others kept.
std::string mergedReadme(const std::string &old, const SippExport &e) {
    const std::string mark = "==== ";
    std::string out, section = mark + e.fileName + "\n" + e.readme + "\n"; // each section ends with a blank line
    bool replaced = false;
    // Text before the first section (a README the user wrote) is kept as it is.
    size_t pos = old.rfind(mark, 0) == 0 ? 0 : old.find("\n" + mark);
    if (pos != 0)
        pos = pos == std::string::npos ? pos : pos + 1;
    out = old.substr(0, pos == std::string::npos ? old.size() : pos);
    if (!out.empty() && out.back() != '\n')
        out += "\n";
    while (pos != std::string::npos) {
        size_t next = old.find("\n" + mark, pos);
        std::string part = old.substr(pos, next == std::string::npos ? std::string::npos : next + 1 - pos);
        bool mine = part.rfind(mark + e.fileName + "\n", 0) == 0;
        out += mine ? section : part;
        replaced = replaced || mine;
        pos = next == std::string::npos ? next : next + 1;
    }
    if (!replaced)
        out += section;
    return out;
}

} // namespace

int exportCommand(const ExportOptions &o) {
    Fixture f = loadFixture(o.fixture);
    // The scenario is named after the fixture: its name, else its file name; never a path.
    if (f.name.empty())
        f.name = std::filesystem::path(o.fixture).stem().string();
    for (char &c : f.name)
        if (c == '/' || c == '\\' || c == ' ')
            c = '_';
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
    writeFile(dir / "README.txt", mergedReadme(readFile(dir / "README.txt"), e));
    for (const auto &w : e.warnings)
        std::cerr << "warning: " << w << "\n";
    std::cout << (dir / e.fileName).string() << "\n" << (dir / "README.txt").string() << "\n";
    return 0;
}

} // namespace parkway::replay
