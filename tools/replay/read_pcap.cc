// parkway-replay readers: pcap and pcapng files through libpcap; link layers, IPv4/IPv6 (with fragment
// reassembly), UDP datagrams and TCP streams (read_internal.hh, docs/replay.md "Trace formats read").
#include "ip_reassembly.hh"
#include "read_internal.hh"
#include "tcp_reassembly.hh"

#include <arpa/inet.h>
#include <pcap/pcap.h>

#include <cstdio>
#include <cstring>
#include <memory>

namespace parkway::replay::detail {

namespace {

uint16_t be16(const uint8_t *p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t *p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

std::string ipText(int family, const uint8_t *addr) {
    char buf[INET6_ADDRSTRLEN] = {0};
    inet_ntop(family, addr, buf, sizeof buf);
    return buf;
}

// LINKTYPE values (tcpdump.org linktypes) as libpcap reports them through pcap_datalink().
constexpr int kEthernet = DLT_EN10MB, kNull = DLT_NULL, kLoop = DLT_LOOP, kRaw = DLT_RAW, kSll = DLT_LINUX_SLL;
constexpr int kSll2 = 276, kIpv4 = 228, kIpv6 = 229, kLinktypeRaw = 101;
constexpr uint16_t kEtherIpv4 = 0x0800, kEtherIpv6 = 0x86dd, kEtherVlan = 0x8100, kEtherQinQ = 0x88a8;

struct Packet {
    const uint8_t *data;
    size_t size;
};

// Everything below the transport: one frame in, UDP datagrams and TCP segments out.
class Decoder {
public:
    explicit Decoder(Collector &out) : out_(out), tcp_(out) {}
    void frame(int linktype, const uint8_t *data, size_t size, double time, uint64_t frame);
    void finish();

private:
    bool linkPayload(int linktype, Packet &p);
    void ip(Packet p);
    void ipv4(Packet p);
    void ipv6(Packet p);
    void ipv6Headers(const std::string &src, const std::string &dst, uint8_t next, Packet p);
    void transport(const std::string &src, const std::string &dst, uint8_t proto, Packet p);
    void udp(const Address &src, const Address &dst, Packet p);
    void warn(const std::string &text) { out_.warn("frame " + std::to_string(frame_) + ": " + text); }

    Collector &out_;
    TcpReassembly tcp_;
    IpReassembly fragments_;
    double time_ = 0;
    uint64_t frame_ = 0;
    uint64_t nonSip_ = 0, keepAlives_ = 0, otherIp_ = 0;
};

void Decoder::frame(int linktype, const uint8_t *data, size_t size, double time, uint64_t frame) {
    time_ = time;
    frame_ = frame;
    Packet p{data, size};
    if (linkPayload(linktype, p))
        ip(p);
}

// Strips the link-layer header; false when the frame carries no IP.
bool Decoder::linkPayload(int linktype, Packet &p) {
    uint16_t ethertype = 0;
    size_t skip = 0;
    switch (linktype) {
    case kEthernet:
        if (p.size < 14)
            return warn("Ethernet frame too short"), false;
        ethertype = be16(p.data + 12);
        skip = 14;
        while ((ethertype == kEtherVlan || ethertype == kEtherQinQ) && p.size >= skip + 4) { // IEEE 802.1Q tags
            ethertype = be16(p.data + skip + 2);
            skip += 4;
        }
        break;
    case kSll: // Linux cooked v1: 16 bytes, protocol at 14
        if (p.size < 16)
            return warn("Linux cooked (SLL) header too short"), false;
        ethertype = be16(p.data + 14);
        skip = 16;
        break;
    case kSll2: // Linux cooked v2: 20 bytes, protocol at 0
        if (p.size < 20)
            return warn("Linux cooked v2 (SLL2) header too short"), false;
        ethertype = be16(p.data);
        skip = 20;
        break;
    case kNull:
    case kLoop: // BSD loopback: 4 bytes of address family, byte order varies; the IP version tells
        if (p.size < 4)
            return warn("loopback header too short"), false;
        p.data += 4;
        p.size -= 4;
        return true;
    case kRaw:
    case kLinktypeRaw:
    case kIpv4:
    case kIpv6:
        return true;
    default:
        return false; // checked once per file
    }
    p.data += skip;
    p.size -= skip;
    if (ethertype != kEtherIpv4 && ethertype != kEtherIpv6) {
        ++otherIp_;
        return false;
    }
    return true;
}

void Decoder::ip(Packet p) {
    if (p.size < 1)
        return warn("empty IP packet");
    int version = p.data[0] >> 4;
    if (version == 4)
        ipv4(p);
    else if (version == 6)
        ipv6(p);
    else
        ++otherIp_;
}

// RFC 791 §3.1: header length in 32-bit words, total length, fragment offset in 8-byte units, MF flag.
void Decoder::ipv4(Packet p) {
    if (p.size < 20)
        return warn("IPv4 header truncated");
    size_t ihl = size_t(p.data[0] & 0x0f) * 4;
    size_t total = be16(p.data + 2);
    if (ihl < 20 || total < ihl || p.size < ihl)
        return warn("bad IPv4 header");
    if (total > p.size)
        return warn("IPv4 packet truncated (" + std::to_string(p.size) + " of " + std::to_string(total) + " bytes)");
    std::string src = ipText(AF_INET, p.data + 12), dst = ipText(AF_INET, p.data + 16);
    uint16_t flags = be16(p.data + 6);
    uint32_t offset = uint32_t(flags & 0x1fff) * 8;
    bool more = flags & 0x2000;
    uint8_t proto = p.data[9];
    Packet payload{p.data + ihl, total - ihl}; // trailing Ethernet padding is not payload
    if (offset == 0 && !more)
        return transport(src, dst, proto, payload);
    std::vector<std::string> notes;
    auto whole = fragments_.add(FragmentKey{4, src, dst, proto, be16(p.data + 4)}, offset, more,
                                std::string(reinterpret_cast<const char *>(payload.data), payload.size), frame_, notes);
    for (auto &n : notes)
        out_.warn(n);
    if (whole)
        transport(src, dst, proto, Packet{reinterpret_cast<const uint8_t *>(whole->data()), whole->size()});
}

// RFC 8200 §3: fixed 40-byte header; extension headers follow (§4).
void Decoder::ipv6(Packet p) {
    if (p.size < 40)
        return warn("IPv6 header truncated");
    size_t payloadLen = be16(p.data + 4);
    if (40 + payloadLen > p.size)
        return warn("IPv6 packet truncated");
    std::string src = ipText(AF_INET6, p.data + 8), dst = ipText(AF_INET6, p.data + 24);
    ipv6Headers(src, dst, p.data[6], Packet{p.data + 40, payloadLen});
}

void Decoder::ipv6Headers(const std::string &src, const std::string &dst, uint8_t next, Packet p) {
    for (;;) {
        switch (next) {
        case 0:    // Hop-by-Hop Options (RFC 8200 §4.3)
        case 43:   // Routing (§4.4)
        case 60:   // Destination Options (§4.6)
        case 135:  // Mobility
        case 51: { // Authentication Header (RFC 4302 §2.2: length in 4-byte units minus 2)
            if (p.size < 8)
                return warn("IPv6 extension header truncated");
            size_t len = next == 51 ? (size_t(p.data[1]) + 2) * 4 : (size_t(p.data[1]) + 1) * 8;
            if (len > p.size)
                return warn("IPv6 extension header truncated");
            next = p.data[0];
            p.data += len;
            p.size -= len;
            continue;
        }
        case 44: { // Fragment (§4.5): next header, reserved, offset (13 bits, 8-byte units) + M, identification
            if (p.size < 8)
                return warn("IPv6 fragment header truncated");
            uint8_t inner = p.data[0];
            uint16_t offm = be16(p.data + 2);
            std::vector<std::string> notes;
            auto whole =
                fragments_.add(FragmentKey{6, src, dst, inner, be32(p.data + 4)}, uint32_t(offm >> 3) * 8, offm & 1,
                               std::string(reinterpret_cast<const char *>(p.data + 8), p.size - 8), frame_, notes);
            for (auto &n : notes)
                out_.warn(n);
            if (!whole)
                return;
            std::string keep = std::move(*whole); // the reassembled payload starts after the Fragment header
            return ipv6Headers(src, dst, inner, Packet{reinterpret_cast<const uint8_t *>(keep.data()), keep.size()});
        }
        default:
            return transport(src, dst, next, p);
        }
    }
}

void Decoder::transport(const std::string &src, const std::string &dst, uint8_t proto, Packet p) {
    if (proto == 17) { // UDP (RFC 768)
        if (p.size < 8)
            return warn("UDP header truncated");
        size_t len = be16(p.data + 4);
        if (len < 8 || len > p.size) // a length of 0 is legal for IPv6 jumbograms only; take what is there
            len = p.size;
        udp(Address{src, be16(p.data)}, Address{dst, be16(p.data + 2)}, Packet{p.data + 8, len - 8});
    } else if (proto == 6) { // TCP (RFC 9293 §3.1): data offset in 32-bit words; flags FIN 0x01 SYN 0x02 RST 0x04
        if (p.size < 20 || size_t(p.data[12] >> 4) * 4 < 20 || size_t(p.data[12] >> 4) * 4 > p.size)
            return warn("TCP header truncated");
        size_t off = size_t(p.data[12] >> 4) * 4;
        TcpSegment seg;
        seg.src = Address{src, be16(p.data)};
        seg.dst = Address{dst, be16(p.data + 2)};
        seg.seq = be32(p.data + 4);
        uint8_t flags = p.data[13];
        seg.fin = flags & 0x01;
        seg.syn = flags & 0x02;
        seg.rst = flags & 0x04;
        seg.payload.assign(reinterpret_cast<const char *>(p.data + off), p.size - off);
        seg.time = time_;
        seg.frame = frame_;
        tcp_.add(std::move(seg));
    } else {
        ++otherIp_;
    }
}

void Decoder::udp(const Address &src, const Address &dst, Packet p) {
    std::string_view data(reinterpret_cast<const char *>(p.data), p.size);
    if (onlyLineEnds(data)) { // RFC 5626 §3.5.1 keep-alive, or an empty datagram
        ++keepAlives_;
        return;
    }
    if (!startsWithSip(data)) { // RTP, STUN (RFC 8489), anything else on the wire
        ++nonSip_;
        return;
    }
    std::string note;
    Captured c;
    c.time = time_;
    c.transport = Transport::Udp;
    c.src = src;
    c.dst = dst;
    c.data = datagramMessage(data, &note);
    if (!note.empty())
        warn("UDP " + src.str() + " -> " + dst.str() + ": " + note);
    out_.message(std::move(c), frame_);
}

void Decoder::finish() {
    tcp_.finish();
    std::vector<std::string> notes;
    fragments_.finish(notes);
    for (auto &n : notes)
        out_.warn(n);
    if (nonSip_ > 0)
        out_.warn(std::to_string(nonSip_) + " UDP datagrams that are not SIP (RTP, STUN, other) skipped");
    if (keepAlives_ > 0)
        out_.warn(std::to_string(keepAlives_) + " UDP keep-alives (CRLF) skipped");
}

struct PcapCloser {
    void operator()(pcap_t *p) const { pcap_close(p); }
};

std::unique_ptr<pcap_t, PcapCloser> openMemory(const std::string &bytes, const std::string &name) {
    // fmemopen needs a writable buffer pointer in C; it is opened read-only here.
    FILE *fp = fmemopen(const_cast<char *>(bytes.data()), bytes.size(), "rb");
    if (!fp)
        throw TraceError(name + ": cannot read: " + std::strerror(errno));
    char err[PCAP_ERRBUF_SIZE] = {0};
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_MICRO, err);
    if (!p) {
        fclose(fp);
        throw TraceError(name + ": frame 1: damaged capture file: " + err);
    }
    return std::unique_ptr<pcap_t, PcapCloser>(p);
}

bool knownLinktype(int lt) {
    for (int k : {kEthernet, kNull, kLoop, kRaw, kLinktypeRaw, kSll, kSll2, kIpv4, kIpv6})
        if (lt == k)
            return true;
    return false;
}

} // namespace

bool isPcapMagic(std::string_view b) {
    if (b.size() < 4)
        return false;
    uint32_t m = be32(reinterpret_cast<const uint8_t *>(b.data()));
    return m == 0xa1b2c3d4 || m == 0xd4c3b2a1 || m == 0xa1b23c4d || m == 0x4d3cb2a1 // pcap, µs and ns
           || m == 0x0a0d0d0a;                                                      // pcapng Section Header Block
}

void readPcap(const std::string &bytes, Collector &out) {
    auto pcap = openMemory(bytes, out.name());
    int linktype = pcap_datalink(pcap.get());
    if (!knownLinktype(linktype)) {
        const char *lt = pcap_datalink_val_to_name(linktype);
        throw TraceError(out.name() + ": link type " + std::to_string(linktype) + " (" + (lt ? lt : "unknown") +
                         ") is not read; captures on Ethernet, Linux cooked (any), loopback or raw IP are");
    }
    Decoder decoder(out);
    uint64_t frame = 0;
    for (;;) {
        pcap_pkthdr *hdr = nullptr;
        const u_char *data = nullptr;
        int rc = pcap_next_ex(pcap.get(), &hdr, &data);
        if (rc == PCAP_ERROR_BREAK)
            break;
        ++frame;
        if (rc != 1) {
            std::string why = pcap_geterr(pcap.get());
            if (frame == 1)
                throw TraceError(out.name() + ": frame 1: damaged capture: " + why);
            out.warn("frame " + std::to_string(frame) + ": damaged capture (" + why +
                     "); the rest of the file is lost");
            break;
        }
        if (hdr->caplen < hdr->len)
            out.warn("frame " + std::to_string(frame) + ": only " + std::to_string(hdr->caplen) + " of " +
                     std::to_string(hdr->len) + " bytes captured (snap length)");
        double time = double(hdr->ts.tv_sec) + double(hdr->ts.tv_usec) / 1e6;
        decoder.frame(linktype, data, hdr->caplen, time, frame);
    }
    decoder.finish();
}

} // namespace parkway::replay::detail
