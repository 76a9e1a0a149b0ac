// parkway-replay run (docs/replay.md). PLACEHOLDER until the run command is written.
#include "commands.hh"

#include <stdexcept>

namespace parkway::replay {

int runCommand(const RunOptions &) { throw std::runtime_error("run: not written yet"); }

} // namespace parkway::replay
