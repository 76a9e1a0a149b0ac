// parkway-replay import (docs/replay.md). PLACEHOLDER until the import command is written.
#include "commands.hh"

#include <stdexcept>

namespace parkway::replay {

int importCommand(const ImportOptions &) { throw std::runtime_error("import: not written yet"); }

} // namespace parkway::replay
