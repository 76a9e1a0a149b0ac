// Park engine benchmark: prints figures, asserts nothing.
//   bench_engine [seconds-per-figure (default 2)] [directory for the database (default /tmp)] [--postgres URL]
#include "parkway/engine/engine.hh"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace parkway::engine;
using Steady = std::chrono::steady_clock;

namespace {

double seconds(Steady::time_point a, Steady::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// Park + retrieve cycles (3 commits each) on `e` for `budget` seconds; extensions from `base` (two engines on one
// database use different ones). Returns the cycles; counts failed ones in *failures.
long cycleFor(Engine &e, double budget, int base, long *failures) {
    ParkRequest p;
    p.domain = "bench.example";
    p.how = ParkHow::Directed;
    p.parker = "100";
    p.parkedUri = "sip:caller@pstn.example";
    p.parkedDisplay = "Caller";
    p.blob = std::string(600, 'x'); // dialog state + SDP is a few hundred bytes
    RetrieveRequest r;
    r.domain = p.domain;
    r.by = RetrieveRequest::By::Extension;
    r.retriever = "200";
    long cycles = 0;
    auto t0 = Steady::now();
    auto t1 = t0;
    while (seconds(t0, t1) < budget) {
        for (int i = 0; i < 50; ++i, ++cycles) {
            p.extension = r.extension = std::to_string(base + cycles % 500);
            p.requestKey = fmt::format("call-{}-{}@bench;cseq=1", base, cycles);
            auto parked = e.park(p);
            auto claimed = e.claimRetrieve(r);
            auto done = claimed.ok ? e.completeRetrieve(claimed.call.id) : claimed;
            *failures += !(parked.ok && claimed.ok && done.ok);
        }
        t1 = Steady::now();
    }
    return cycles;
}

void parkRetrieve(const std::string &dir, double budget, bool fsync) {
    std::string path = fmt::format("{}/parkway-bench-{}-{}.db", dir, ::getpid(), fsync ? "full" : "normal");
    for (auto suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path + suffix);
    SystemClock clock;
    OpenOptions o;
    o.fsyncEveryCommit = fsync;
    auto e = Engine::open(path, clock, o);
    long failures = 0;
    auto t0 = Steady::now();
    long cycles = cycleFor(*e, budget, 1000, &failures);
    double s = seconds(t0, Steady::now());
    fmt::print("park+retrieve cycles/s (WAL file, synchronous={}): {:>10.0f}   ({} cycles in {:.2f} s, 3 commits "
               "each, {} failures)\n",
               fsync ? "FULL  " : "NORMAL", cycles / s, cycles, s, failures);
    e.reset();
    for (auto suffix : {"", "-wal", "-shm"})
        std::filesystem::remove(path + suffix);
}

// The same on PostgreSQL (docs/cluster.md): one engine, then two engines on two threads (two nodes' worth of
// writers on one database; write transactions are serial cluster-wide, so this shows what a second node adds).
void parkRetrievePostgres(const std::string &url, double budget) {
    SystemClock clock;
    OpenOptions o;
    o.releaseStaleClaims = false;
    auto a = Engine::open(url, clock, o);
    auto b = Engine::open(url, clock, o);
    for (int engines : {1, 2}) {
        long failures[2] = {0, 0}, cycles[2] = {0, 0};
        auto t0 = Steady::now();
        std::thread second;
        if (engines == 2)
            second = std::thread([&] { cycles[1] = cycleFor(*b, budget, 3000, &failures[1]); });
        cycles[0] = cycleFor(*a, budget, 1000, &failures[0]);
        if (second.joinable())
            second.join();
        double s = seconds(t0, Steady::now());
        fmt::print("park+retrieve cycles/s (PostgreSQL, {} engine{}):     {:>10.0f}   ({} cycles in {:.2f} s, 3 "
                   "commits each, {} failures)\n",
                   engines, engines == 1 ? " " : "s", (cycles[0] + cycles[1]) / s, cycles[0] + cycles[1], s,
                   failures[0] + failures[1]);
    }
}

void evals(const char *label, Engine &e, const std::vector<std::string> &inputs, double budget) {
    long n = 0, hits = 0;
    auto t0 = Steady::now();
    auto t1 = t0;
    while (seconds(t0, t1) < budget) {
        for (int i = 0; i < 1000; ++i, ++n) {
            auto c = e.classify("bench.example", "100", inputs[static_cast<size_t>(n) % inputs.size()]);
            hits += c.action != Action::None;
        }
        t1 = Steady::now();
    }
    double s = seconds(t0, t1);
    fmt::print("rule evaluations/s ({}): {:>12.0f}   ({} evals, {:.0f}% matched)\n", label, n / s, n,
               100.0 * static_cast<double>(hits) / static_cast<double>(n));
}

// Provisioning many domains (a multi-tenant start-up): each setDomain() should cost the same whatever number
// of domains exist already. Prints the time of the first and the last 100 and their ratio (1 = linear).
void provisionDomains(Engine &e, int count) {
    std::vector<double> per100;
    auto t0 = Steady::now();
    auto lap = t0;
    for (int i = 0; i < count; ++i) {
        DomainSettings d;
        d.name = fmt::format("tenant{}.example", i);
        auto st = e.setDomain(d);
        if (!st.ok)
            throw std::runtime_error("setDomain " + d.name + ": " + st.message);
        if ((i + 1) % 100 == 0) {
            auto now = Steady::now();
            per100.push_back(seconds(lap, now));
            lap = now;
        }
    }
    double total = seconds(t0, Steady::now());
    fmt::print("domains provisioned/s ({} domains, 1,000 rules stored): {:>8.0f}   (first 100: {:.3f} s, last 100: "
               "{:.3f} s, ratio {:.1f})\n",
               count, count / total, per100.front(), per100.back(), per100.back() / per100.front());
}

} // namespace

static int run(double budget, const std::string &dir, const std::string &postgres);

int main(int argc, char **argv) {
    CLI::App app{"bench_engine: park engine figures (park+retrieve cycles/s, rule evaluations/s)"};
    double budget = 2.0;
    std::string dir = "/tmp";
    app.add_option("seconds", budget, "seconds spent on each figure")
        ->capture_default_str()
        ->check(CLI::Range(0.01, 3600.0));
    app.add_option("directory", dir, "where the benchmark's SQLite files go")
        ->capture_default_str()
        ->check(CLI::ExistingDirectory);
    std::string postgres;
    app.add_option("--postgres", postgres, "also park+retrieve on this PostgreSQL URL (postgresql://...)");
    app.failure_message(CLI::FailureMessage::help);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 2; // --help: 0; a bad argument: what was wrong, then the usage, exit 2
    }
    try {
        return run(budget, dir, postgres);
    } catch (const std::exception &e) {
        fmt::print(stderr, "bench_engine: {}\n", e.what());
        return 1;
    }
}

// Every figure, one after the other.
static int run(double budget, const std::string &dir, const std::string &postgres) {
    fmt::print("parkway park engine benchmark ({:.1f} s per figure, database in {})\n", budget, dir);
    parkRetrieve(dir, budget, false);
    parkRetrieve(dir, budget, true);
    if (!postgres.empty())
        parkRetrievePostgres(postgres, budget);

    SystemClock clock;
    auto e = Engine::open(":memory:", clock);
    // Typical INVITE targets: feature codes in their spellings, plus ordinary calls that match nothing.
    std::vector<std::string> typical = {"*68103", "*68", "*68%23", "%2A68103%23",  "*58#", "*88103",
                                        "*88",    "103", "2001",   "+15551234567", "*69",  "alice"};
    evals("default rules, mixed dial strings", *e, typical, budget);

    // 1,000 integrator rules: exact, regex and glob, spread over priorities; defaults come after them.
    std::vector<Rule> rules;
    for (int i = 0; i < 1000; ++i) {
        Rule r;
        r.pr = i;
        switch (i % 3) {
        case 0:
            r.matchOp = MatchOp::Exact;
            r.matchExp = fmt::format("{}", 50000 + i);
            r.attrs = "action=route";
            break;
        case 1:
            r.matchOp = MatchOp::Regex;
            r.matchExp = fmt::format("^{}([0-9]{{2}})$", 600 + i);
            r.substExp = r.matchExp;
            r.replExp = "\\1";
            r.attrs = "action=retrieve;lot=main";
            break;
        default:
            r.matchOp = MatchOp::Glob;
            r.matchExp = fmt::format("{}*", 70000 + i);
            r.attrs = "action=reject;code=403";
            break;
        }
        rules.push_back(r);
    }
    auto errors = e->replaceRules(rules);
    if (!errors.empty()) {
        fmt::print(stderr, "rule load failed: {}\n", errors.front().message);
        return 1;
    }
    evals("1,000 rules + defaults, mixed dial strings", *e, typical, budget);
    std::vector<std::string> lateHits = {"50999", "159801", "70998123", "*68103"};
    evals("1,000 rules + defaults, late matches", *e, lateHits, budget);
    provisionDomains(*e, 2000);
    return 0;
}
