// parkway-replay: readTrace (trace.hh). Detects the format from the content and hands it to its reader:
// pcap/pcapng (read_pcap.cc), Parkway/Kamailio/sngrep text (read_text.cc), SIPp -trace_msg (read_sipp.cc).
#include "read_internal.hh"
#include "trace.hh"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace parkway::replay {

namespace detail {

void Collector::message(Captured c, uint64_t frame) {
    messages_.emplace_back(frame, std::move(c));
}

void Collector::warn(std::string text) {
    warnings_.push_back(std::move(text));
}

ReadResult Collector::finish() {
    std::stable_sort(messages_.begin(), messages_.end(),
                     [](const auto &a, const auto &b) { return a.first < b.first; });
    ReadResult r;
    r.messages.reserve(messages_.size());
    for (auto &m : messages_)
        r.messages.push_back(std::move(m.second));
    r.warnings = std::move(warnings_);
    messages_.clear();
    return r;
}

} // namespace detail

ReadResult readTraceBytes(const std::string &bytes, const std::string &name) {
    detail::Collector out(name);
    if (detail::isPcapMagic(bytes))
        detail::readPcap(bytes, out);
    else if (!detail::readTextTrace(bytes, out))
        throw TraceError(name + ": not a pcap, pcapng or known text trace");
    return out.finish();
}

ReadResult readTrace(const std::string &path) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        throw TraceError(path + ": is a directory, not a trace");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw TraceError(path + ": cannot open: " + std::strerror(errno));
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (in.bad())
        throw TraceError(path + ": cannot read: " + std::strerror(errno));
    return readTraceBytes(bytes.str(), path);
}

} // namespace parkway::replay
