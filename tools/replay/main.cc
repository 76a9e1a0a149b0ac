// parkway-replay: record-and-replay SIP regression tests (docs/replay.md).
//   parkway-replay import TRACE -o FIXTURE [--server ADDR]... [--anonymize] [--password USER=SECRET]...
//   parkway-replay run FIXTURE --server udp:127.0.0.1:5060 [--speed N] [--timeout S] [--junit FILE]
//   parkway-replay export FIXTURE --sipp DIR
#include "commands.hh"

#include <CLI/CLI.hpp>

#include <iostream>

using namespace parkway::replay;

namespace {

std::map<std::string, std::string> passwordMap(const std::vector<std::string> &pairs) {
    std::map<std::string, std::string> out;
    for (const auto &p : pairs) {
        auto eq = p.find('=');
        if (eq == std::string::npos || eq == 0)
            throw CLI::ValidationError("--password", "'" + p + "' is not USER=SECRET");
        out[p.substr(0, eq)] = p.substr(eq + 1);
    }
    return out;
}

} // namespace

int main(int argc, char **argv) {
    CLI::App app{"parkway-replay: turn SIP traces into regression tests and replay them (docs/replay.md)"};
    app.set_version_flag("--version", std::string(PARKWAY_VERSION));
    app.require_subcommand(1);

    ImportOptions imp;
    std::vector<std::string> impPasswords;
    auto *importCmd = app.add_subcommand("import", "read a pcap/pcapng or text trace and write a fixture");
    importCmd->add_option("trace", imp.trace, "the trace file")->required();
    importCmd->add_option("-o,--output", imp.output, "the fixture to write (- for stdout)")->required();
    importCmd->add_option("--server", imp.servers, "the server's address IP:PORT (repeatable; default: guessed)");
    importCmd->add_option("--name", imp.name, "the fixture's name");
    importCmd->add_flag("--anonymize", imp.anonymize, "map user parts and drop credentials");
    importCmd->add_option("--password", impPasswords, "USER=SECRET kept in the fixture for digest answers");

    RunOptions run;
    std::vector<std::string> runPasswords;
    auto *runCmd = app.add_subcommand("run", "replay a fixture against a server and compare its behaviour");
    runCmd->add_option("fixture", run.fixture, "the fixture file")->required();
    runCmd->add_option("--server", run.server, "the server, TRANSPORT:HOST:PORT")->capture_default_str();
    runCmd->add_option("--speed", run.speed, "divide the trace's waits by N")->capture_default_str()
        ->check(CLI::PositiveNumber);
    runCmd->add_option("--timeout", run.timeout, "seconds to wait for one expected message")
        ->capture_default_str()->check(CLI::PositiveNumber);
    runCmd->add_option("--junit", run.junit, "write a JUnit XML report");
    runCmd->add_option("--bind", run.bindBase, "first loopback address for the phones")->capture_default_str();
    runCmd->add_option("--password", runPasswords, "USER=SECRET for digest answers");
    runCmd->add_flag("-v,--verbose", run.verbose, "print every step");

    ExportOptions exp;
    auto *exportCmd = app.add_subcommand("export", "write SIPp scenarios for a fixture");
    exportCmd->add_option("fixture", exp.fixture, "the fixture file")->required();
    exportCmd->add_option("--sipp", exp.sippDir, "the folder to write the scenarios into")->required();

    try {
        app.parse(argc, argv);
        imp.passwords = passwordMap(impPasswords);
        run.passwords = passwordMap(runPasswords);
    } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    try {
        if (*importCmd)
            return importCommand(imp);
        if (*runCmd)
            return runCommand(run);
        return exportCommand(exp);
    } catch (const std::exception &e) {
        std::cerr << "parkway-replay: " << e.what() << "\n";
        return 2;
    }
}
