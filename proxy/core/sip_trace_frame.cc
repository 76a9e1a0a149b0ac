#include "sip_trace_frame.hh"

#include <netinet/in.h>

#include <cstring>

namespace parkway::proxy::trace {
namespace {

constexpr uint8_t kUdp = 17, kTcp = 6;

void put16(std::string &b, size_t at, uint16_t v) {
    b[at] = static_cast<char>(v >> 8);
    b[at + 1] = static_cast<char>(v & 0xff);
}

void put32(std::string &b, size_t at, uint32_t v) {
    put16(b, at, static_cast<uint16_t>(v >> 16));
    put16(b, at + 2, static_cast<uint16_t>(v & 0xffff));
}

// The Internet checksum (RFC 1071): one's complement sum of 16-bit words, continued from sum.
uint32_t addWords(uint32_t sum, const unsigned char *p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += static_cast<uint32_t>(p[n - 1] << 8);
    return sum;
}

uint16_t fold(uint32_t sum) {
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum & 0xffff);
}

struct Ends {
    bool v6 = false;
    const unsigned char *src = nullptr, *dst = nullptr;
    uint16_t sport = 0, dport = 0; // host order
};

bool ends(const sockaddr *s, const sockaddr *d, Ends &e) {
    if (!s || !d || s->sa_family != d->sa_family)
        return false;
    if (s->sa_family == AF_INET) {
        auto *a = reinterpret_cast<const sockaddr_in *>(s), *b = reinterpret_cast<const sockaddr_in *>(d);
        e.src = reinterpret_cast<const unsigned char *>(&a->sin_addr);
        e.dst = reinterpret_cast<const unsigned char *>(&b->sin_addr);
        e.sport = ntohs(a->sin_port);
        e.dport = ntohs(b->sin_port);
        return true;
    }
    if (s->sa_family == AF_INET6) {
        auto *a = reinterpret_cast<const sockaddr_in6 *>(s), *b = reinterpret_cast<const sockaddr_in6 *>(d);
        e.v6 = true;
        e.src = reinterpret_cast<const unsigned char *>(&a->sin6_addr);
        e.dst = reinterpret_cast<const unsigned char *>(&b->sin6_addr);
        e.sport = ntohs(a->sin6_port);
        e.dport = ntohs(b->sin6_port);
        return true;
    }
    return false;
}

// The IP header for a transport segment of segLen bytes; the segment follows it in the returned buffer.
std::string ipHeader(const Ends &e, uint8_t proto, size_t segLen) {
    static uint16_t ident = 0;
    if (e.v6) { // RFC 8200 §3
        std::string h(40, '\0');
        h[0] = 0x60;
        put16(h, 4, static_cast<uint16_t>(segLen));
        h[6] = static_cast<char>(proto);
        h[7] = 64;
        memcpy(&h[8], e.src, 16);
        memcpy(&h[24], e.dst, 16);
        return h;
    }
    std::string h(20, '\0'); // RFC 791 §3.1
    h[0] = 0x45;
    put16(h, 2, static_cast<uint16_t>(20 + segLen));
    put16(h, 4, ++ident);
    put16(h, 6, 0x4000); // don't fragment
    h[8] = 64;
    h[9] = static_cast<char>(proto);
    memcpy(&h[12], e.src, 4);
    memcpy(&h[16], e.dst, 4);
    put16(h, 10, fold(addWords(0, reinterpret_cast<const unsigned char *>(h.data()), 20)));
    return h;
}

// Checksum of a UDP/TCP segment with the pseudo-header of RFC 768 / RFC 8200 §8.1.
uint16_t segmentChecksum(const Ends &e, uint8_t proto, const std::string &seg) {
    size_t alen = e.v6 ? 16 : 4;
    uint32_t sum = addWords(0, e.src, alen);
    sum = addWords(sum, e.dst, alen);
    sum += proto;
    sum += static_cast<uint32_t>(seg.size() & 0xffff) + static_cast<uint32_t>(seg.size() >> 16);
    return fold(addWords(sum, reinterpret_cast<const unsigned char *>(seg.data()), seg.size()));
}

std::string frame(const Ends &e, uint8_t proto, std::string seg, size_t csumAt) {
    uint16_t c = segmentChecksum(e, proto, seg);
    if (proto == kUdp && c == 0)
        c = 0xffff; // RFC 768: 0 means "no checksum"
    put16(seg, csumAt, c);
    return ipHeader(e, proto, seg.size()) + seg;
}

} // namespace

std::string udpPacket(const sockaddr *src, const sockaddr *dst, const char *data, size_t len) {
    Ends e;
    if (!ends(src, dst, e) || len > kMaxDatagram)
        return {};
    std::string seg(8, '\0');
    put16(seg, 0, e.sport);
    put16(seg, 2, e.dport);
    put16(seg, 4, static_cast<uint16_t>(8 + len));
    seg.append(data, len);
    return frame(e, kUdp, std::move(seg), 6);
}

std::string tcpPacket(const sockaddr *src, const sockaddr *dst, uint32_t seq, uint32_t ack, const char *data,
                      size_t len) {
    Ends e;
    if (!ends(src, dst, e) || len > kMaxSegment)
        return {};
    std::string seg(20, '\0');
    put16(seg, 0, e.sport);
    put16(seg, 2, e.dport);
    put32(seg, 4, seq);
    put32(seg, 8, ack);
    seg[12] = 5 << 4; // data offset: 5 words, no options
    seg[13] = 0x18;   // PSH, ACK
    put16(seg, 14, 65535);
    seg.append(data, len);
    return frame(e, kTcp, std::move(seg), 16);
}

} // namespace parkway::proxy::trace
