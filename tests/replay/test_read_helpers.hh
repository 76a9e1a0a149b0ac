// Test helpers for the trace readers: build pcap files in memory, byte by byte (global header, records, link
// layers, IPv4/IPv6, UDP/TCP). Checksums are left 0: readers do not check them (captures on loopback with
// checksum offload show the same).
#pragma once
#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <vector>

namespace readtest {

inline void put16(std::string &s, uint16_t v, bool big = true) {
    if (big) {
        s += char(v >> 8);
        s += char(v & 0xff);
    } else {
        s += char(v & 0xff);
        s += char(v >> 8);
    }
}
inline void put32(std::string &s, uint32_t v, bool big = true) {
    if (big) {
        put16(s, uint16_t(v >> 16));
        put16(s, uint16_t(v));
    } else {
        put16(s, uint16_t(v), false);
        put16(s, uint16_t(v >> 16), false);
    }
}

// A classic pcap file (libpcap format): little- or big-endian, microsecond or nanosecond timestamps.
struct Pcap {
    std::string bytes;
    bool big, nano;
    explicit Pcap(uint32_t linktype, bool bigEndian = false, bool nanoseconds = false)
        : big(bigEndian), nano(nanoseconds) {
        put32(bytes, nano ? 0xa1b23c4d : 0xa1b2c3d4, big);
        put16(bytes, 2, big);
        put16(bytes, 4, big);
        put32(bytes, 0, big); // thiszone
        put32(bytes, 0, big); // sigfigs
        put32(bytes, 262144, big);
        put32(bytes, linktype, big);
    }
    // time as whole seconds + fraction in microseconds (scaled for nanosecond files).
    Pcap &add(uint32_t sec, uint32_t usec, const std::string &frame) {
        put32(bytes, sec, big);
        put32(bytes, nano ? usec * 1000 : usec, big);
        put32(bytes, uint32_t(frame.size()), big);
        put32(bytes, uint32_t(frame.size()), big);
        bytes += frame;
        return *this;
    }
};

constexpr uint32_t kEthernet = 1, kNull = 0, kRaw = 101, kSll = 113, kSll2 = 276;

inline std::string addr4(const char *ip) {
    in_addr a{};
    inet_pton(AF_INET, ip, &a);
    return std::string(reinterpret_cast<const char *>(&a), 4);
}
inline std::string addr6(const char *ip) {
    in6_addr a{};
    inet_pton(AF_INET6, ip, &a);
    return std::string(reinterpret_cast<const char *>(&a), 16);
}

inline std::string udp(uint16_t sport, uint16_t dport, const std::string &payload) {
    std::string s;
    put16(s, sport);
    put16(s, dport);
    put16(s, uint16_t(8 + payload.size()));
    put16(s, 0);
    return s + payload;
}

enum TcpFlags : uint8_t { FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16 };
inline std::string tcp(uint16_t sport, uint16_t dport, uint32_t seq, uint8_t flags, const std::string &payload) {
    std::string s;
    put16(s, sport);
    put16(s, dport);
    put32(s, seq);
    put32(s, 0); // ack
    s += char(5 << 4);
    s += char(flags);
    put16(s, 65535);
    put32(s, 0); // checksum, urgent
    return s + payload;
}

// IPv4 packet (RFC 791); fragment offset in bytes (multiple of 8).
inline std::string ipv4(const char *src, const char *dst, uint8_t proto, const std::string &payload, uint16_t id = 1,
                        uint32_t fragOffset = 0, bool more = false) {
    std::string s;
    s += char(0x45);
    s += char(0);
    put16(s, uint16_t(20 + payload.size()));
    put16(s, id);
    put16(s, uint16_t((more ? 0x2000 : 0) | (fragOffset / 8)));
    s += char(64);
    s += char(proto);
    put16(s, 0);
    return s + addr4(src) + addr4(dst) + payload;
}

// IPv6 packet (RFC 8200) whose payload starts with header `next` (extension headers already in `payload`).
inline std::string ipv6(const char *src, const char *dst, uint8_t next, const std::string &payload) {
    std::string s;
    put32(s, 0x60000000);
    put16(s, uint16_t(payload.size()));
    s += char(next);
    s += char(64);
    return s + addr6(src) + addr6(dst) + payload;
}
// An 8-byte Fragment header (RFC 8200 §4.5) followed by the fragment's bytes.
inline std::string ipv6Fragment(uint8_t next, uint32_t offset, bool more, uint32_t id, const std::string &data) {
    std::string s;
    s += char(next);
    s += char(0);
    put16(s, uint16_t((offset / 8) << 3 | (more ? 1 : 0)));
    put32(s, id);
    return s + data;
}
// A Hop-by-Hop Options header of 8 bytes (PadN) before `next`.
inline std::string ipv6HopByHop(uint8_t next, const std::string &rest) {
    std::string s;
    s += char(next);
    s += char(0);
    s += char(1); // PadN
    s += char(4);
    s += std::string(4, '\0');
    return s + rest;
}

inline std::string ethernet(const std::string &ip, uint16_t ethertype = 0x0800, bool vlan = false) {
    std::string s = "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02";
    s = std::string(s.data(), 12);
    if (vlan) {
        put16(s, 0x8100);
        put16(s, 42);
    }
    put16(s, ethertype);
    return s + ip;
}
inline std::string sll(const std::string &ip, uint16_t ethertype = 0x0800) {
    std::string s;
    put16(s, 0);   // packet type: to us
    put16(s, 772); // ARPHRD_LOOPBACK
    put16(s, 6);   // address length
    s += std::string(8, '\0');
    put16(s, ethertype);
    return s + ip;
}
inline std::string sll2(const std::string &ip, uint16_t ethertype = 0x0800) {
    std::string s;
    put16(s, ethertype);
    put16(s, 0); // reserved
    put32(s, 1); // interface index
    put16(s, 772);
    s += char(0); // packet type
    s += char(6); // address length
    s += std::string(8, '\0');
    return s + ip;
}
inline std::string bsdNull(const std::string &ip, uint32_t family) {
    std::string s;
    put32(s, family, false); // host byte order of the capturing machine (little-endian here)
    return s + ip;
}

inline std::string sipRequest(const std::string &method, const std::string &callId, const std::string &body = "",
                              const std::string &lengthHeader = "Content-Length") {
    return method +
           " sip:1002@example.com SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-" +
           callId + "\r\nFrom: <sip:1001@example.com>;tag=a1\r\nTo: <sip:1002@example.com>\r\nCall-ID: " + callId +
           "\r\nCSeq: 1 " + method + "\r\n" + lengthHeader + ": " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

inline std::string sipResponse(const std::string &status, const std::string &callId) {
    return "SIP/2.0 " + status + "\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-" + callId +
           "\r\nFrom: <sip:1001@example.com>;tag=a1\r\nTo: <sip:1002@example.com>;tag=b2\r\nCall-ID: " + callId +
           "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
}

} // namespace readtest
