// Shared pieces of the libFuzzer targets: a private temp folder, a network namespace for the SIP targets,
// keeping dlopen()ed modules mapped, splitting an input into text fields. See fuzz/README.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::fuzz {

// A folder of our own under $TMPDIR (or /tmp), removed with its files at exit.
const std::string &tempDir();

// Write `data` to `path` (truncating). Aborts on failure: a harness that cannot write its file is broken.
void writeFile(const std::string &path, std::string_view data);

// Move this process into a network namespace of its own with only loopback up, so nothing a fuzzed
// message names (Request-URI hosts, Contacts, DNS servers) is ever reached on the real network. Tries a
// plain CLONE_NEWNET (root) and then a user namespace; prints a warning and carries on when neither works
// (PARKWAY_FUZZ_NO_NETNS=1 skips it on purpose). Call before creating any socket or thread.
void isolateNetwork();

// dlopen(RTLD_NODELETE) every module the targets load, so the proxy's dlclose() on a reset never unmaps
// code whose coverage counters libFuzzer still reads.
void pinModules(const std::vector<std::string> &names);

// The built module folder (PARKWAY_MODULE_DIR of the build tree).
std::string moduleDir();

// A log sink that drops everything unless PARKWAY_FUZZ_VERBOSE is set (then lines go to stderr).
void fuzzLog(int level, const std::string &module, const std::string &text);
bool verbose();

// Split on a separator byte (kept out of the pieces), at most `max` pieces (the last takes the rest).
std::vector<std::string_view> split(std::string_view data, char sep, size_t max);

// Print `what` and the offending text (escaped) to stderr, then abort: an invariant of the target broke.
[[noreturn]] void fail(const char *what, std::string_view text);

} // namespace parkway::fuzz
