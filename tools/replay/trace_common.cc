// Small shared pieces of trace.hh: transport names, addresses and the text-trace record writer.
#include "trace.hh"

#include <strings.h>

namespace parkway::replay {

namespace {
const char *const kTransportNames[] = {"udp", "tcp", "tls", "ws", "wss", "sctp"};
}

const char *transportName(Transport t) { return kTransportNames[static_cast<int>(t)]; }

Transport parseTransport(const std::string &name) {
    for (int i = 0; i < 6; ++i)
        if (strcasecmp(name.c_str(), kTransportNames[i]) == 0)
            return static_cast<Transport>(i);
    throw TraceError("unknown transport '" + name + "'");
}

std::string Address::str() const {
    std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
    return host + ":" + std::to_string(port);
}

Address parseAddress(const std::string &text) {
    Address a;
    std::string port;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw TraceError("bad address '" + text + "'");
        a.ip = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string::npos || colon == 0 || text.find(':') != colon)
            throw TraceError("bad address '" + text + "'");
        a.ip = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) > 65535)
        throw TraceError("bad port in address '" + text + "'");
    a.port = static_cast<uint16_t>(std::stoul(port));
    return a;
}

} // namespace parkway::replay
