// A set of IPv4/IPv6 networks ("10.0.0.0/8", "192.0.2.7", "::1", "2001:db8::/32"), for trusted peers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

struct sockaddr;

namespace parkway::proxy {

// An address as 16 bytes (IPv4 as ::ffff:a.b.c.d), the form every per-source table uses as its key.
struct IpKey {
    uint8_t b[16] = {};
    bool operator==(const IpKey &o) const;
    std::string text() const;
};
struct IpKeyHash {
    size_t operator()(const IpKey &k) const;
};
// false when the address family is neither IPv4 nor IPv6.
bool ipKeyOf(const sockaddr *sa, IpKey &out);
bool parseIp(const std::string &text, IpKey &out);

class AddressSet {
public:
    // Throws std::invalid_argument naming the entry when one is not an address or address/prefix.
    void add(const std::string &cidr);
    bool contains(const IpKey &ip) const;
    bool empty() const { return nets_.empty(); }

private:
    struct Net {
        IpKey ip;
        int prefix; // over the 128-bit form
    };
    std::vector<Net> nets_;
};

} // namespace parkway::proxy
