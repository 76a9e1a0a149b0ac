// parkway-replay: readTrace. PLACEHOLDER until the readers (pcap, pcapng, text formats) are written.
#include "trace.hh"

namespace parkway::replay {

ReadResult readTraceBytes(const std::string &, const std::string &name) {
    throw TraceError(name + ": trace readers are not written yet");
}

ReadResult readTrace(const std::string &path) { return readTraceBytes("", path); }

} // namespace parkway::replay
