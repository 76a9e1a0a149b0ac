// parkway-replay readers: IPv4 and IPv6 fragment reassembly (RFC 791 §3.2 "Fragmentation and Reassembly",
// RFC 8200 §4.5). Fragments are kept per (version, source, destination, protocol, identification) until every
// byte from 0 to the end given by the last fragment (more-fragments clear) is there, in any arrival order.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace parkway::replay::detail {

struct FragmentKey {
    int version = 4;
    std::string src, dst; // textual addresses
    uint8_t protocol = 0; // IPv6: the Next Header of the Fragment header
    uint32_t id = 0;
    bool operator<(const FragmentKey &o) const {
        return std::tie(version, src, dst, protocol, id) < std::tie(o.version, o.src, o.dst, o.protocol, o.id);
    }
};

class IpReassembly {
public:
    // Adds one fragment (offset in bytes into the datagram's payload). Returns the whole payload when this
    // fragment completed it. Overlapping fragments: the bytes that came first win (RFC 8200 §4.5 lets a
    // receiver drop such datagrams; a capture reader keeps what it can and says so).
    std::optional<std::string> add(const FragmentKey &key, uint32_t offset, bool more, std::string data, uint64_t frame,
                                   std::vector<std::string> &warnings);
    // Datagrams never completed: one warning each.
    void finish(std::vector<std::string> &warnings);

private:
    struct Pending {
        std::map<uint32_t, std::string> pieces; // offset -> bytes
        std::optional<uint32_t> total;          // known once the last fragment came
        uint64_t firstFrame = 0;
        bool overlap = false;
    };
    static std::string describe(const FragmentKey &k, const Pending &p);
    static bool complete(const Pending &p);
    static std::string assemble(const Pending &p);
    std::map<FragmentKey, Pending> pending_;
};

} // namespace parkway::replay::detail
