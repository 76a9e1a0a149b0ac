#include "wire/moh.hh"

#include <fmt/format.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <random>
#include <set>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

// spandsp's telephony.h redefines lrint() & co. unless <cmath> came first (it is included above).
extern "C" {
#include <spandsp/telephony.h>

#include <spandsp/g722.h>
}

namespace parkway::callpark {

// ---------------------------------------------------------------- G.722 (spandsp)

std::vector<uint8_t> encodeG722Loop(const std::vector<int16_t> &audio) {
    std::vector<uint8_t> out(audio.size());
    if (audio.empty())
        return out;
    g722_encode_state_t *enc = g722_encode_init(nullptr, 64000, G722_SAMPLE_RATE_8000);
    if (!enc)
        return {};
    for (int pass = 0; pass < 2; ++pass) { // the first pass only settles the ADPCM state (see moh.hh)
        size_t done = 0;
        while (done < audio.size()) {
            int chunk = static_cast<int>(std::min<size_t>(8000, audio.size() - done));
            if (g722_encode(enc, out.data() + done, audio.data() + done, chunk) != chunk) {
                g722_encode_free(enc);
                return {};
            }
            done += static_cast<size_t>(chunk);
        }
    }
    g722_encode_free(enc);
    return out;
}

// ---------------------------------------------------------------- G.711 (ITU-T G.711, segment encoding)

uint8_t linearToUlaw(int16_t sample) {
    constexpr int kBias = 0x84;
    constexpr int kClip = 32635;
    int s = sample;
    int sign = 0;
    if (s < 0) {
        s = -s;
        sign = 0x80;
    }
    if (s > kClip) s = kClip;
    s += kBias;
    int exponent = 7;
    for (int mask = 0x4000; (s & mask) == 0 && exponent > 0; mask >>= 1) --exponent;
    int mantissa = (s >> (exponent + 3)) & 0x0F;
    return static_cast<uint8_t>(~(sign | (exponent << 4) | mantissa));
}

int16_t ulawToLinear(uint8_t code) {
    constexpr int kBias = 0x84;
    int u = ~code & 0xFF;
    int t = ((u & 0x0F) << 3) + kBias;
    t <<= (u & 0x70) >> 4;
    return static_cast<int16_t>((u & 0x80) ? (kBias - t) : (t - kBias));
}

uint8_t linearToAlaw(int16_t sample) {
    static constexpr int kSegEnd[8] = {0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF};
    int pcm = sample >> 3;  // A-law works on 13 bits
    int mask;
    if (pcm >= 0) {
        mask = 0xD5;  // sign bit set, even bits inverted
    } else {
        mask = 0x55;
        pcm = -pcm - 1;
    }
    int seg = 0;
    while (seg < 8 && pcm > kSegEnd[seg]) ++seg;
    if (seg >= 8) return static_cast<uint8_t>(0x7F ^ mask);
    int aval = seg << 4;
    aval |= seg < 2 ? (pcm >> 1) & 0x0F : (pcm >> seg) & 0x0F;
    return static_cast<uint8_t>(aval ^ mask);
}

int16_t alawToLinear(uint8_t code) {
    int a = code ^ 0x55;
    int t = (a & 0x0F) << 4;
    int seg = (a & 0x70) >> 4;
    if (seg == 0) {
        t += 8;
    } else {
        t += 0x108;
        t <<= seg - 1;
    }
    return static_cast<int16_t>((a & 0x80) ? t : -t);
}

// ---------------------------------------------------------------- audio

std::vector<int16_t> builtinHoldTone() {
    // A slow, soft arpeggio (Cmaj7 - Am7 - Fmaj7 - G6), each note a sine with its octave faintly mixed in,
    // a short attack and a long exponential decay so notes ring into each other without clicks.
    constexpr double kRate = 8000.0;
    constexpr double kNote = 0.42;  // seconds between notes
    constexpr double kRing = 1.2;   // how long a note rings
    static constexpr double kFreqs[] = {
        261.63, 329.63, 392.00, 493.88,  // C E G B
        220.00, 261.63, 329.63, 392.00,  // A C E G
        174.61, 220.00, 261.63, 329.63,  // F A C E
        196.00, 246.94, 293.66, 329.63,  // G B D E
    };
    constexpr size_t kNotes = sizeof(kFreqs) / sizeof(kFreqs[0]);
    const size_t total = static_cast<size_t>(kNote * kNotes * kRate);
    std::vector<double> mix(total, 0.0);
    const double pi = std::acos(-1.0);
    for (size_t n = 0; n < kNotes; ++n) {
        size_t start = static_cast<size_t>(n * kNote * kRate);
        size_t len = static_cast<size_t>(kRing * kRate);
        for (size_t i = 0; i < len; ++i) {
            double t = i / kRate;
            double env = std::min(1.0, t / 0.03) * std::exp(-t * 3.2);
            double v = std::sin(2 * pi * kFreqs[n] * t) + 0.25 * std::sin(4 * pi * kFreqs[n] * t);
            mix[(start + i) % total] += 0.22 * env * v;  // wraps: the loop is seamless
        }
    }
    std::vector<int16_t> out(total);
    for (size_t i = 0; i < total; ++i) {
        double v = std::max(-1.0, std::min(1.0, mix[i]));
        out[i] = static_cast<int16_t>(std::lround(v * 32000.0));
    }
    return out;
}

namespace {
uint32_t le32(const unsigned char* p) {
    return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
}  // namespace

std::optional<std::vector<int16_t>> loadHoldAudio(const std::string& audioFile, std::string* err) {
    if (audioFile.empty()) return builtinHoldTone();
    auto bad = [&](std::string_view why) -> std::optional<std::vector<int16_t>> {
        if (err) *err = fmt::format("music-on-hold file '{}': {}", audioFile, why);
        return std::nullopt;
    };
    std::ifstream in(audioFile, std::ios::binary);
    if (!in) return bad(fmt::format("cannot open ({})", std::strerror(errno)));
    std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.size() < 12 || std::memcmp(data.data(), "RIFF", 4) != 0 || std::memcmp(data.data() + 8, "WAVE", 4) != 0)
        return bad("not a RIFF/WAVE file (need 8 kHz mono 16-bit PCM WAV)");
    bool haveFmt = false;
    size_t pos = 12;
    while (pos + 8 <= data.size()) {
        const unsigned char* h = data.data() + pos;
        uint32_t size = le32(h + 4);
        size_t body = pos + 8;
        if (size > data.size() - body) {
            if (std::memcmp(h, "data", 4) == 0 && haveFmt) size = static_cast<uint32_t>(data.size() - body);  // truncated writer
            else return bad("truncated chunk");
        }
        if (std::memcmp(h, "fmt ", 4) == 0) {
            if (size < 16) return bad("fmt chunk too short");
            const unsigned char* f = data.data() + body;
            uint16_t format = le16(f), channels = le16(f + 2), bits = le16(f + 14);
            uint32_t rate = le32(f + 4);
            if (format != 1) return bad(fmt::format("format {} is not PCM (need 8 kHz mono 16-bit PCM)", format));
            if (channels != 1) return bad(fmt::format("{} channels (need mono)", channels));
            if (rate != 8000) return bad(fmt::format("{} Hz (need 8000 Hz)", rate));
            if (bits != 16) return bad(fmt::format("{} bits per sample (need 16)", bits));
            haveFmt = true;
        } else if (std::memcmp(h, "data", 4) == 0) {
            if (!haveFmt) return bad("data chunk before fmt chunk");
            size_t n = size / 2;
            if (n < 160) return bad("less than 20 ms of audio");
            std::vector<int16_t> out(n);
            for (size_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(le16(data.data() + body + 2 * i));
            return out;
        }
        pos = body + size + (size & 1);  // chunks are word aligned
    }
    return bad(haveFmt ? "no data chunk" : "no fmt chunk");
}

// ---------------------------------------------------------------- descriptors

FdLimit raiseFdLimit() {
    FdLimit l;
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rlimit up = rl;
            up.rlim_cur = rl.rlim_max;
            if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                rl = up;
        }
        l.limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
    } else {
        l.limit = UINT64_MAX;
    }
    if (DIR *d = ::opendir("/proc/self/fd")) {
        while (const dirent *e = ::readdir(d))
            if (e->d_name[0] != '.')
                ++l.open;
        ::closedir(d);
        if (l.open)
            --l.open; // the directory's own descriptor
    }
    return l;
}

uint32_t evenPortCount(uint16_t portMin, uint16_t portMax) {
    if (portMin > portMax)
        return 0;
    uint32_t first = portMin + (portMin & 1u);
    return first > portMax ? 0 : (portMax - first) / 2 + 1;
}

std::string checkMohDescriptors(uint16_t portMin, uint16_t portMax, const FdLimit &l, uint64_t reserve) {
    uint64_t ports = evenPortCount(portMin, portMax);
    if (l.limit == UINT64_MAX)
        return {};
    uint64_t used = l.open + reserve;
    uint64_t room = l.limit > used ? l.limit - used : 0;
    if (ports <= room)
        return {};
    return fmt::format("moh_port_min/moh_port_max {}..{} give {} music-on-hold ports (one UDP socket each), but the "
                       "open-file limit {} leaves room for {} beside the {} descriptors open and {} kept for SIP "
                       "connections, databases and the admin API; narrow the range to at most {} ports or raise "
                       "the limit (ulimit -n, systemd LimitNOFILE=)",
                       portMin, portMax, ports, l.limit, room, l.open, reserve, room);
}

// ---------------------------------------------------------------- the player

std::string signalingSourceIp(std::string_view source) {
    auto numeric = [](const std::string &ip) {
        in6_addr a6{};
        in_addr a4{};
        return inet_pton(AF_INET, ip.c_str(), &a4) == 1 || inet_pton(AF_INET6, ip.c_str(), &a6) == 1;
    };
    if (std::string whole(source); numeric(whole))
        return whole; // a bare IP ("fe::1" has no scheme)
    // "udp:IP:PORT" / "tcp:[IPv6]:PORT" (host msg_source).
    std::string_view v = source;
    if (size_t colon = v.find(':');
        colon != std::string_view::npos && colon > 0 && std::all_of(v.begin(), v.begin() + colon, [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        }))
        v.remove_prefix(colon + 1);
    std::string ip;
    if (!v.empty() && v.front() == '[') {
        size_t close = v.find(']');
        if (close == std::string_view::npos)
            return {};
        ip = std::string(v.substr(1, close - 1));
    } else if (std::count(v.begin(), v.end(), ':') == 1) {
        ip = std::string(v.substr(0, v.find(':'))); // IPv4:port
    }
    return numeric(ip) ? ip : std::string();
}

namespace {

constexpr int kSamplesPerPacket = 160;  // 20 ms at 8 kHz
constexpr long kPacketNs = 20'000'000;

bool resolveNumeric(const std::string& ip, uint16_t port, sockaddr_storage* out, socklen_t* len) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* res = nullptr;
    std::string portText = std::to_string(port);
    if (getaddrinfo(ip.c_str(), portText.c_str(), &hints, &res) != 0 || !res) return false;
    std::memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

bool isUnspecified(const std::string& ip) { return ip.empty() || ip == "0.0.0.0" || ip == "::"; }

// An IP address as 16 bytes, IPv4 as IPv4-mapped IPv6 (RFC 4291 §2.5.5.2), so that "192.0.2.1" and a socket's
// "::ffff:192.0.2.1" compare equal.
struct IpKey {
    bool set = false;
    unsigned char b[16] = {};
    bool operator==(const IpKey &o) const { return set && o.set && std::memcmp(b, o.b, 16) == 0; }
};

IpKey keyOf(const sockaddr_storage &a) {
    IpKey k;
    if (a.ss_family == AF_INET) {
        k.set = true;
        k.b[10] = k.b[11] = 0xFF;
        std::memcpy(k.b + 12, &reinterpret_cast<const sockaddr_in *>(&a)->sin_addr, 4);
    } else if (a.ss_family == AF_INET6) {
        k.set = true;
        std::memcpy(k.b, &reinterpret_cast<const sockaddr_in6 *>(&a)->sin6_addr, 16);
    }
    return k;
}

IpKey keyOf(const std::string &ip) {
    sockaddr_storage a{};
    socklen_t len = 0;
    if (ip.empty() || !resolveNumeric(ip, 0, &a, &len))
        return {};
    return keyOf(a);
}

uint16_t portOf(const sockaddr_storage &a) {
    if (a.ss_family == AF_INET)
        return ntohs(reinterpret_cast<const sockaddr_in *>(&a)->sin_port);
    if (a.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6 *>(&a)->sin6_port);
    return 0;
}

std::string ipText(const sockaddr_storage &a) {
    char buf[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(&a)->sin_addr, buf, sizeof buf);
    else if (a.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6 *>(&a)->sin6_addr, buf, sizeof buf);
    return buf;
}

bool sameAddress(const sockaddr_storage &a, const sockaddr_storage &b) {
    return keyOf(a) == keyOf(b) && portOf(a) == portOf(b);
}

// Datagrams read from one socket per visit at most: a flood on one port must not hold the player's lock for
// long (what is left waits in the socket buffer, or is dropped by the kernel when that is full).
constexpr int kMaxDrainPerVisit = 128;

void addNs(timespec* t, long ns) {
    t->tv_nsec += ns;
    while (t->tv_nsec >= 1'000'000'000) {
        t->tv_nsec -= 1'000'000'000;
        ++t->tv_sec;
    }
}

long diffNs(const timespec& a, const timespec& b) {  // a - b
    return (a.tv_sec - b.tv_sec) * 1'000'000'000L + (a.tv_nsec - b.tv_nsec);
}

}  // namespace

struct MohPlayer::Impl {
    struct Stream {
        int fd = -1;
        uint16_t localPort = 0;
        sockaddr_storage remote{}; // the SDP destination
        socklen_t remoteLen = 0;
        bool hasRemote = false;    // the SDP asks for music now
        bool hasSdpRemote = false; // `remote` holds a destination (kept while held, to tell a move from a resume)
        IpKey sdpIp, sigIp;        // the IPs whose packets may latch
        bool latched = false;
        sockaddr_storage latch{}; // where the party's RTP comes from (RFC 4961)
        socklen_t latchLen = 0;
        int64_t prelatchLeft = 0; // packets the SDP destination may still get before a latch; -1 = no bound
        bool marker = true;
        int pt = 0;
        uint16_t seq = 0;
        uint32_t ts = 0;
        size_t pos = 0;  // into the audio loop
        StreamStats stats;
    };

    mutable std::mutex mu;
    std::map<uint64_t, Stream> streams;
    std::set<uint16_t> usedPorts;
    std::vector<uint8_t> ulaw, alaw, g722; // the loop, encoded once per codec (all the same length)
    std::string bindIp;
    sockaddr_storage bindAddr{};
    socklen_t bindLen = 0;
    uint16_t portMin = 0, portMax = 0, cursor = 0;
    uint64_t reserve = 256;
    int64_t prelatchMs = kDefaultPrelatchMs;
    uint64_t nextId = 1;
    uint64_t ticks = 0;
    std::mt19937 rng{std::random_device{}()};
    std::atomic<bool> running{false};
    std::thread worker;

    bool setRemoteLocked(Stream& s, const std::string& ip, uint16_t port, int pt, std::string* err) {
        sockaddr_storage a{};
        socklen_t len = 0;
        bool held = isUnspecified(ip) || port == 0;
        if (!held && (!resolveNumeric(ip, port, &a, &len) || a.ss_family != bindAddr.ss_family)) {
            if (err) *err = fmt::format("bad RTP destination '{}' port {}", ip, port);
            return false;
        }
        s.pt = pt;
        s.stats.payloadType = pt;
        s.stats.remoteIp = ip;
        s.stats.remotePort = port;
        if (held) {
            s.hasRemote = false; // held / disabled stream: keep the socket (and the latch), send nothing
            return true;
        }
        // The party announced other media (RFC 3264 §8: a changed c=/m= in a new offer): the old latch is
        // stale; its next allowed packet latches again. The same destination (a session refresh, a resume after
        // hold) keeps the latch.
        if (!s.hasSdpRemote || !sameAddress(a, s.remote))
            unlatch(s);
        s.remote = a;
        s.remoteLen = len;
        s.sdpIp = keyOf(a);
        s.hasSdpRemote = true;
        s.hasRemote = true;
        s.stats.hadDestination = true;
        s.marker = true;  // new destination: a new talkspurt (RFC 3551 §4.1)
        return true;
    }

    static void unlatch(Stream &s) {
        s.latched = false;
        s.stats.latched = false;
        s.stats.latchedIp.clear();
        s.stats.latchedPort = 0;
    }

    static bool mayLatch(const Stream &s, const IpKey &src) { return src == s.sdpIp || src == s.sigIp; }

    // Read what the party sent (never played) and latch on it. Symmetric RTP (RFC 4961 §3): the party receives
    // RTP where it sends it from, which is also what a NAT in front of it lets back in. Only a packet from the
    // SDP connection address or from the party's signalling source IP may latch; anything else is a stranger
    // trying to point the music somewhere (counted, ignored). No re-latching on packets alone: once latched the
    // stream stays put until the party's signalling moves it (setRemote/setSignalingSource), so a second sender
    // at an allowed IP (another device behind the same NAT, a spoofed source) cannot take the stream over.
    static void drain(Stream &s) {
        unsigned char buf[2048];
        for (int i = 0; i < kMaxDrainPerVisit; ++i) {
            sockaddr_storage from{};
            socklen_t fromLen = sizeof from;
            ssize_t n = ::recvfrom(s.fd, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr *>(&from), &fromLen);
            if (n < 0)
                break; // EAGAIN: empty (an empty datagram is n == 0 and counts)
            ++s.stats.packetsReceived;
            if (!mayLatch(s, keyOf(from))) {
                ++s.stats.packetsForeign;
                s.stats.lastForeignSource =
                    fmt::format(from.ss_family == AF_INET6 ? "[{}]:{}" : "{}:{}", ipText(from), portOf(from));
                continue;
            }
            if (s.latched || !s.hasRemote)
                continue; // no music wanted now: nothing to latch
            // RTP version 2 with a complete fixed header (RFC 3550 §5.1): a stray datagram does not steer the music.
            if (n < 12 || (buf[0] >> 6) != 2) {
                ++s.stats.packetsNotRtp;
                continue;
            }
            s.latch = from;
            s.latchLen = fromLen;
            s.latched = true;
            s.marker = true; // a new destination: a new talkspurt (RFC 3551 §4.1)
            ++s.stats.latches;
            s.stats.latched = true;
            s.stats.latchedIp = ipText(from);
            s.stats.latchedPort = portOf(from);
        }
    }

    // The socket bound to `port`, or -1 with errno (EADDRINUSE: taken by someone else; EMFILE/ENFILE/ENOBUFS/
    // ENOMEM: the process or the system is out of descriptors or memory, no other port will do better).
    int bindPort(uint16_t port) {
        int fd = ::socket(bindAddr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        sockaddr_storage a = bindAddr;
        if (a.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&a)->sin_port = htons(port);
        else reinterpret_cast<sockaddr_in6*>(&a)->sin6_port = htons(port);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), bindLen) != 0) {
            int e = errno;
            ::close(fd);
            errno = e;
            return -1;
        }
        return fd;
    }
    static bool outOfDescriptors(int e) { return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM; }

    void tick() {
        unsigned char pkt[12 + kSamplesPerPacket];
        // Drain what the parked parties send (we do not play it) every 25th tick only once a stream latched or
        // while it is held: one recv syscall per stream per 20 ms would double the syscalls of the player for
        // nothing (the socket buffer holds 0.5 s). A stream waiting for its latch is drained every 5th tick, so
        // it latches within 100 ms of the party's first packet.
        const uint64_t t = ticks++;
        const bool drainSettled = t % 25 == 0, drainWaiting = t % 5 == 0;
        // The lock is taken per chunk of streams, not for the whole tick: with hundreds of streams a tick is
        // milliseconds of sendto, and the SIP thread's add/remove must not wait that long. Streams are visited
        // in id order, so one removed or added between chunks is simply skipped or picked up.
        constexpr int kChunk = 32;
        uint64_t next = 0;
        bool more = true;
        while (more) {
            std::lock_guard<std::mutex> lock(mu);
            const size_t n = ulaw.size();
            auto it = streams.lower_bound(next);
            for (int done = 0; it != streams.end() && done < kChunk; ++it, ++done) {
                Stream& s = it->second;
                if (s.hasRemote && !s.latched ? drainWaiting : drainSettled)
                    drain(s);
                // Where this packet goes: the latch; before one, the SDP destination while the pre-latch
                // allowance lasts; after that nowhere (the socket keeps listening for the party's RTP).
                const sockaddr_storage *to = nullptr;
                socklen_t toLen = 0;
                bool prelatch = false;
                if (s.hasRemote && s.latched) {
                    to = &s.latch;
                    toLen = s.latchLen;
                } else if (s.hasRemote && s.sdpIp == s.sigIp) {
                    // The SDP names the very host that talks SIP with us: no third party to reflect to, so no
                    // bound. A phone that honours our a=sendonly answer sends no RTP (RFC 3264 §6.1) and would
                    // never latch; this keeps its music playing.
                    to = &s.remote;
                    toLen = s.remoteLen;
                } else if (s.hasRemote && s.prelatchLeft != 0) {
                    to = &s.remote;
                    toLen = s.remoteLen;
                    prelatch = true;
                    if (s.prelatchLeft > 0)
                        --s.prelatchLeft; // spent even when sendto fails
                }
                if (to) {
                    const std::vector<uint8_t> &audio = s.pt == 8 ? alaw : s.pt == 9 ? g722 : ulaw;
                    pkt[0] = 0x80;  // V=2, no padding, no extension, no CSRC (RFC 3550 §5.1)
                    pkt[1] = static_cast<unsigned char>((s.marker ? 0x80 : 0) | (s.pt & 0x7F));
                    pkt[2] = static_cast<unsigned char>(s.seq >> 8);
                    pkt[3] = static_cast<unsigned char>(s.seq);
                    for (int i = 0; i < 4; ++i) pkt[4 + i] = static_cast<unsigned char>(s.ts >> (24 - 8 * i));
                    for (int i = 0; i < 4; ++i) pkt[8 + i] = static_cast<unsigned char>(s.stats.ssrc >> (24 - 8 * i));
                    // The audio loop, wrapping at its end.
                    size_t first = std::min<size_t>(kSamplesPerPacket, n - s.pos);
                    std::memcpy(pkt + 12, audio.data() + s.pos, first);
                    for (size_t i = first; i < kSamplesPerPacket; ++i) pkt[12 + i] = audio[(s.pos + i) % n];
                    ssize_t w =
                        ::sendto(s.fd, pkt, sizeof pkt, MSG_DONTWAIT, reinterpret_cast<const sockaddr *>(to), toLen);
                    if (w == static_cast<ssize_t>(sizeof pkt)) {
                        ++s.stats.packetsSent;
                        s.stats.bytesSent += sizeof pkt;
                        if (prelatch)
                            ++s.stats.prelatchSent;
                        s.marker = false;
                    }
                    ++s.seq; // one per packet sent (RFC 3550 §5.1); none while waiting for a latch
                }
                // The media clock runs even while nothing is sent, so a resumed stream stays continuous.
                s.ts += kSamplesPerPacket;
                s.pos = (s.pos + kSamplesPerPacket) % n;
            }
            more = it != streams.end();
            if (more) next = it->first;
        }
    }

    void run() {
        timespec next{};
        clock_gettime(CLOCK_MONOTONIC, &next);
        while (running.load(std::memory_order_acquire)) {
            tick();
            addNs(&next, kPacketNs);
            // Absolute deadlines: no drift accumulates (clock_nanosleep TIMER_ABSTIME).
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
            }
            timespec now{};
            clock_gettime(CLOCK_MONOTONIC, &now);
            // Stalled (machine suspended, debugger): resynchronise instead of bursting to catch up.
            if (diffNs(now, next) > 10 * kPacketNs) next = now;
        }
    }

    void closeAll() {
        std::lock_guard<std::mutex> lock(mu);
        for (auto& [id, s] : streams) {
            (void)id;
            ::close(s.fd);
        }
        streams.clear();
        usedPorts.clear();
    }
};

MohPlayer::MohPlayer() : impl_(std::make_unique<Impl>()) {}

MohPlayer::~MohPlayer() { stop(); }

bool MohPlayer::start(std::string bindIp, uint16_t portMin, uint16_t portMax, std::string audioFile,
                      std::string* err) {
    auto fail = [&](std::string msg) {
        if (err) *err = std::move(msg);
        return false;
    };
    if (impl_->running.load()) return fail("music-on-hold player already running");
    if (portMin == 0 || portMin > portMax)
        return fail(fmt::format("bad music-on-hold port range {}-{}", portMin, portMax));
    uint16_t firstEven = static_cast<uint16_t>(portMin + (portMin & 1));
    if (firstEven > portMax || firstEven < portMin)
        return fail(fmt::format("music-on-hold port range {}-{} has no even port (RTP uses even ports)", portMin,
                                portMax));
    sockaddr_storage a{};
    socklen_t len = 0;
    if (!resolveNumeric(bindIp, 0, &a, &len) || (a.ss_family != AF_INET && a.ss_family != AF_INET6))
        return fail(fmt::format("bad music-on-hold bind address '{}' (need a numeric IP)", bindIp));
    std::string audioErr;
    auto audio = loadHoldAudio(audioFile, &audioErr);
    if (!audio) return fail(audioErr);
    std::string fds = checkMohDescriptors(portMin, portMax, raiseFdLimit(), reservedDescriptors());
    if (!fds.empty())
        return fail(fds);
    std::vector<uint8_t> g722 = encodeG722Loop(*audio);
    if (g722.size() != audio->size())
        return fail("music on hold: the G.722 encoder (spandsp) failed");
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->ulaw.resize(audio->size());
        impl_->alaw.resize(audio->size());
        for (size_t i = 0; i < audio->size(); ++i) {
            impl_->ulaw[i] = linearToUlaw((*audio)[i]);
            impl_->alaw[i] = linearToAlaw((*audio)[i]);
        }
        impl_->g722 = std::move(g722);
        impl_->bindIp = bindIp;
        impl_->bindAddr = a;
        impl_->bindLen = len;
        impl_->portMin = firstEven;
        impl_->portMax = portMax;
        impl_->cursor = firstEven;
    }
    impl_->running.store(true, std::memory_order_release);
    impl_->worker = std::thread([this] { impl_->run(); });
    return true;
}

void MohPlayer::setReservedDescriptors(uint64_t n) {
    impl_->reserve = n;
}
void MohPlayer::setPrelatchMs(int64_t ms) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->prelatchMs = ms < 0 ? kPrelatchUnlimited : ms;
}
int64_t MohPlayer::prelatchMs() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->prelatchMs;
}
uint64_t MohPlayer::reservedDescriptors() const {
    return impl_->reserve;
}

std::optional<MohPlayer::StreamInfo> MohPlayer::add(std::string remoteIp, uint16_t remotePort, int payloadType,
                                                    std::string *err, uint16_t preferredPort, AddError *why) {
    auto failed = [why](AddError e) -> std::optional<StreamInfo> {
        if (why)
            *why = e;
        return std::nullopt;
    };
    if (why)
        *why = AddError::None;
    if (!impl_->running.load()) {
        if (err) *err = "music-on-hold player is not running";
        return failed(AddError::NotRunning);
    }
    if (!isMohPayloadType(payloadType)) {
        if (err)
            *err = fmt::format("music on hold plays PCMU (0), PCMA (8) or G722 (9), not payload type {}", payloadType);
        return failed(AddError::BadPayloadType);
    }
    std::lock_guard<std::mutex> lock(impl_->mu);
    Impl::Stream s;
    // The pre-latch allowance in whole packets (rounded up): 0 ms sends nothing before a latch.
    s.prelatchLeft = impl_->prelatchMs < 0 ? -1 : (impl_->prelatchMs + 19) / 20;
    if (!impl_->setRemoteLocked(s, remoteIp, remotePort, payloadType, err))
        return failed(AddError::BadAddress);
    // Candidates: the preferred port, then even ports from a rotating cursor (a just-freed port is not reused
    // at once, so late packets for an old call do not land on a new one).
    int fd = -1;
    uint16_t port = 0;
    bool noFds = false;
    int bindErrno = 0;
    if (preferredPort >= impl_->portMin && preferredPort <= impl_->portMax && (preferredPort & 1) == 0 &&
        !impl_->usedPorts.count(preferredPort)) {
        fd = impl_->bindPort(preferredPort);
        if (fd >= 0) port = preferredPort;
        else
            noFds = Impl::outOfDescriptors(bindErrno = errno);
    }
    const uint32_t count = (impl_->portMax - impl_->portMin) / 2 + 1;
    for (uint32_t i = 0; fd < 0 && !noFds && i < count; ++i) {
        uint16_t candidate = impl_->cursor;
        uint32_t next = candidate + 2u;
        impl_->cursor = static_cast<uint16_t>(next > impl_->portMax ? impl_->portMin : next);
        if (impl_->usedPorts.count(candidate)) continue;
        fd = impl_->bindPort(candidate);
        if (fd >= 0) port = candidate;
        else
            noFds = Impl::outOfDescriptors(bindErrno = errno); // no other port will do better: stop at once
    }
    if (noFds) {
        if (err)
            *err = fmt::format("out of file descriptors opening a music-on-hold socket ({}; {} streams active)",
                               std::strerror(bindErrno), impl_->streams.size());
        return failed(AddError::NoDescriptors);
    }
    if (fd < 0) {
        if (err)
            *err = fmt::format("no free music-on-hold RTP port in {}-{} on {} ({} streams active)", impl_->portMin,
                               impl_->portMax, impl_->bindIp, impl_->streams.size());
        return failed(AddError::NoFreePort);
    }
    s.fd = fd;
    s.localPort = port;
    s.stats.ssrc = impl_->rng();
    s.seq = static_cast<uint16_t>(impl_->rng());
    s.ts = impl_->rng();  // random initial seq/timestamp (RFC 3550 §5.1)
    uint64_t id = impl_->nextId++;
    impl_->usedPorts.insert(port);
    impl_->streams.emplace(id, std::move(s));
    return StreamInfo{id, port};
}

bool MohPlayer::remove(uint64_t id) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end()) return false;
    ::close(it->second.fd);
    impl_->usedPorts.erase(it->second.localPort);
    impl_->streams.erase(it);
    return true;
}

bool MohPlayer::setRemote(uint64_t id, std::string remoteIp, uint16_t remotePort, int payloadType) {
    if (!isMohPayloadType(payloadType))
        return false;
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end()) return false;
    return impl_->setRemoteLocked(it->second, remoteIp, remotePort, payloadType, nullptr);
}

bool MohPlayer::setSignalingSource(uint64_t id, std::string_view source) {
    std::string ip = signalingSourceIp(source);
    IpKey key = keyOf(ip);
    if (!source.empty() && !key.set)
        return false;
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end())
        return false;
    Impl::Stream &s = it->second;
    s.sigIp = key;
    s.stats.signalingIp = key.set ? ip : std::string();
    if (s.latched && !Impl::mayLatch(s, keyOf(s.latch)))
        Impl::unlatch(s);
    return true;
}

std::optional<MohPlayer::StreamStats> MohPlayer::stats(uint64_t id) const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end()) return std::nullopt;
    return it->second.stats;
}

size_t MohPlayer::streamCount() const {
    std::lock_guard<std::mutex> lock(impl_->mu);
    return impl_->streams.size();
}

bool MohPlayer::running() const { return impl_->running.load(); }

void MohPlayer::stop() {
    if (impl_->running.exchange(false) && impl_->worker.joinable()) impl_->worker.join();
    impl_->closeAll();
}

}  // namespace parkway::callpark
