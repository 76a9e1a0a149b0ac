#include "address_set.hh"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>

namespace parkway::proxy {

bool IpKey::operator==(const IpKey &o) const {
    return std::memcmp(b, o.b, sizeof b) == 0;
}

std::string IpKey::text() const {
    char buf[INET6_ADDRSTRLEN] = "";
    static const uint8_t v4prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, v4prefix, 12) == 0)
        inet_ntop(AF_INET, b + 12, buf, sizeof buf);
    else
        inet_ntop(AF_INET6, b, buf, sizeof buf);
    return buf;
}

size_t IpKeyHash::operator()(const IpKey &k) const {
    uint64_t x = 1469598103934665603ull; // FNV-1a
    for (uint8_t c : k.b)
        x = (x ^ c) * 1099511628211ull;
    return static_cast<size_t>(x);
}

bool ipKeyOf(const sockaddr *sa, IpKey &out) {
    out = IpKey{};
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        out.b[10] = out.b[11] = 0xff;
        std::memcpy(out.b + 12, &reinterpret_cast<const sockaddr_in *>(sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        std::memcpy(out.b, &reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

bool parseIp(const std::string &text, IpKey &out) {
    out = IpKey{};
    in_addr a4{};
    if (inet_pton(AF_INET, text.c_str(), &a4) == 1) {
        out.b[10] = out.b[11] = 0xff;
        std::memcpy(out.b + 12, &a4, 4);
        return true;
    }
    std::string t = text;
    if (t.size() > 2 && t.front() == '[' && t.back() == ']')
        t = t.substr(1, t.size() - 2);
    return inet_pton(AF_INET6, t.c_str(), out.b) == 1;
}

void AddressSet::add(const std::string &cidr) {
    auto slash = cidr.find('/');
    std::string ip = cidr.substr(0, slash);
    Net n{};
    if (!parseIp(ip, n.ip))
        throw std::invalid_argument("'" + cidr + "' is not an IP address or address/prefix");
    bool v4 = ip.find(':') == std::string::npos;
    int max = v4 ? 32 : 128, prefix = max;
    if (slash != std::string::npos) {
        std::string p = cidr.substr(slash + 1);
        if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos || std::stoi(p) > max)
            throw std::invalid_argument("'" + cidr + "': bad prefix length (0.." + std::to_string(max) + ")");
        prefix = std::stoi(p);
    }
    n.prefix = v4 ? prefix + 96 : prefix;
    nets_.push_back(n);
}

bool AddressSet::contains(const IpKey &ip) const {
    for (const auto &n : nets_) {
        int full = n.prefix / 8, rest = n.prefix % 8;
        if (std::memcmp(ip.b, n.ip.b, full) != 0)
            continue;
        if (rest) {
            uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
            if ((ip.b[full] & mask) != (n.ip.b[full] & mask))
                continue;
        }
        return true;
    }
    return false;
}

} // namespace parkway::proxy
