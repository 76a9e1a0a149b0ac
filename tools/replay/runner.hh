// parkway-replay run: plays every phone of a fixture against a server and checks what the server sends
// (docs/replay.md "Running a fixture"). One thread, one su_root, one nta agent per phone.
#pragma once
#include "commands.hh"
#include "compare.hh"
#include "fixture.hh"

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace parkway::replay {

// Bad input found while running (no password for a challenge, an address that cannot be bound): exit code 2.
class RunInputError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct ServerAddress {
    std::string transport = "udp", host = "127.0.0.1";
    int port = 5060;
};
// "udp:127.0.0.1:5060", "tcp:127.0.0.1:5070", "127.0.0.1:5060" (udp), "127.0.0.1" (5060). Throws RunInputError.
ServerAddress parseServerAddress(const std::string &text);

// What one run found: the outcome of every step and the messages nobody expected.
struct RunReport {
    std::vector<StepOutcome> outcomes;    // one per step, in step order
    std::vector<std::string> failures;    // one readable block per failing step
    std::vector<std::string> unexpected;  // messages from the server no step expected (one summary line each)
    std::vector<std::string> undelivered; // requests the server never answered (nta's own 408/503), for the reader
    double seconds = 0;
    bool passed() const { return failures.empty() && unexpected.empty(); }
};

class Runner {
public:
    Runner(const Fixture &fixture, const RunOptions &options);
    ~Runner();
    Runner(const Runner &) = delete;
    Runner &operator=(const Runner &) = delete;
    // Plays the fixture to its end (every step done, failed or blocked) and closes every socket.
    RunReport run();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace parkway::replay
