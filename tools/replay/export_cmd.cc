// parkway-replay export (docs/replay.md). PLACEHOLDER until the export command is written.
#include "commands.hh"

#include <stdexcept>

namespace parkway::replay {

int exportCommand(const ExportOptions &) { throw std::runtime_error("export: not written yet"); }

} // namespace parkway::replay
