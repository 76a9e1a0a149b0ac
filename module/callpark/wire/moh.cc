#include "wire/moh.hh"

#include <fmt/format.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <random>
#include <set>
#include <sys/epoll.h>
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
    if (s > kClip)
        s = kClip;
    s += kBias;
    int exponent = 7;
    for (int mask = 0x4000; (s & mask) == 0 && exponent > 0; mask >>= 1)
        --exponent;
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
    int pcm = sample >> 3; // A-law works on 13 bits
    int mask;
    if (pcm >= 0) {
        mask = 0xD5; // sign bit set, even bits inverted
    } else {
        mask = 0x55;
        pcm = -pcm - 1;
    }
    int seg = 0;
    while (seg < 8 && pcm > kSegEnd[seg])
        ++seg;
    if (seg >= 8)
        return static_cast<uint8_t>(0x7F ^ mask);
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
    constexpr double kNote = 0.42; // seconds between notes
    constexpr double kRing = 1.2;  // how long a note rings
    static constexpr double kFreqs[] = {
        261.63, 329.63, 392.00, 493.88, // C E G B
        220.00, 261.63, 329.63, 392.00, // A C E G
        174.61, 220.00, 261.63, 329.63, // F A C E
        196.00, 246.94, 293.66, 329.63, // G B D E
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
            mix[(start + i) % total] += 0.22 * env * v; // wraps: the loop is seamless
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
uint32_t le32(const unsigned char *p) {
    return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint16_t le16(const unsigned char *p) {
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
} // namespace

std::optional<std::vector<int16_t>> loadHoldAudio(const std::string &audioFile, std::string *err) {
    if (audioFile.empty())
        return builtinHoldTone();
    auto bad = [&](std::string_view why) -> std::optional<std::vector<int16_t>> {
        if (err)
            *err = fmt::format("music-on-hold file '{}': {}", audioFile, why);
        return std::nullopt;
    };
    std::ifstream in(audioFile, std::ios::binary);
    if (!in)
        return bad(fmt::format("cannot open ({})", std::strerror(errno)));
    std::vector<unsigned char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.size() < 12 || std::memcmp(data.data(), "RIFF", 4) != 0 || std::memcmp(data.data() + 8, "WAVE", 4) != 0)
        return bad("not a RIFF/WAVE file (need 8 kHz mono 16-bit PCM WAV)");
    bool haveFmt = false;
    size_t pos = 12;
    while (pos + 8 <= data.size()) {
        const unsigned char *h = data.data() + pos;
        uint32_t size = le32(h + 4);
        size_t body = pos + 8;
        if (size > data.size() - body) {
            if (std::memcmp(h, "data", 4) == 0 && haveFmt)
                size = static_cast<uint32_t>(data.size() - body); // truncated writer
            else
                return bad("truncated chunk");
        }
        if (std::memcmp(h, "fmt ", 4) == 0) {
            if (size < 16)
                return bad("fmt chunk too short");
            const unsigned char *f = data.data() + body;
            uint16_t format = le16(f), channels = le16(f + 2), bits = le16(f + 14);
            uint32_t rate = le32(f + 4);
            if (format != 1)
                return bad(fmt::format("format {} is not PCM (need 8 kHz mono 16-bit PCM)", format));
            if (channels != 1)
                return bad(fmt::format("{} channels (need mono)", channels));
            if (rate != 8000)
                return bad(fmt::format("{} Hz (need 8000 Hz)", rate));
            if (bits != 16)
                return bad(fmt::format("{} bits per sample (need 16)", bits));
            haveFmt = true;
        } else if (std::memcmp(h, "data", 4) == 0) {
            if (!haveFmt)
                return bad("data chunk before fmt chunk");
            size_t n = size / 2;
            if (n < 160)
                return bad("less than 20 ms of audio");
            std::vector<int16_t> out(n);
            for (size_t i = 0; i < n; ++i)
                out[i] = static_cast<int16_t>(le16(data.data() + body + 2 * i));
            return out;
        }
        pos = body + size + (size & 1); // chunks are word aligned
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

constexpr int kSamplesPerPacket = 160; // 20 ms at 8 kHz
constexpr long kPacketNs = 20'000'000;

bool resolveNumeric(const std::string &ip, uint16_t port, sockaddr_storage *out, socklen_t *len) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo *res = nullptr;
    std::string portText = std::to_string(port);
    if (getaddrinfo(ip.c_str(), portText.c_str(), &hints, &res) != 0 || !res)
        return false;
    std::memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

bool isUnspecified(const std::string &ip) {
    return ip.empty() || ip == "0.0.0.0" || ip == "::";
}

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
constexpr unsigned kMaxDrainPerVisit = 128;
constexpr unsigned kRecvBatch = 32; // datagrams per recvmmsg
constexpr size_t kRecvBytes = 64;   // we read only the RTP fixed header; longer datagrams are truncated
constexpr size_t kSendChunk = 16;   // packets sent per hold of the player's lock (at least one port's)
// How long the sender waits, between two chunks, for a caller that asked for the lock to take it (Impl::handOver).
constexpr int64_t kHandOverNs = 2'000'000;
constexpr unsigned kSendBatch = 1024; // messages per sendmmsg (UIO_MAXIOV)
constexpr int kMaxReadyPorts = 1024;  // epoll events per tick (level-triggered: the rest come next tick)
// A port whose last stream left keeps its socket (bound, in the epoll set, drained and discarded) for reuse by a
// later stream instead of close + socket + bind + epoll_ctl on every park: each is reused only after kIdleQuietNs
// without a stream (late packets of the old call have stopped by then; what did arrive is discarded when it is
// reused), unless it is the port asked for (a restored call's own) or the range has no other port left. The pool
// covers the calls that leave within kIdleQuietNs (hundreds a second on a busy box): at most kMaxIdleSockets, and
// one idle longer than kIdleKeepNs is closed (a quiet night returns its descriptors).
constexpr size_t kMaxIdleSockets = 2048;
constexpr int64_t kIdleQuietNs = 1'000'000'000;
constexpr int64_t kIdleKeepNs = 30'000'000'000;

int64_t monoNs() {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

timespec toTimespec(int64_t ns) {
    timespec t{};
    t.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    t.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    return t;
}

void putBe32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<unsigned char>(v >> (24 - 8 * i));
}

} // namespace

struct MohPlayer::Impl {
    struct Port;
    struct Stream {
        uint64_t id = 0;
        Port *port = nullptr;      // the local socket it shares (or has alone: moh_streams_per_port 1)
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
        size_t pos = 0;          // into the audio loop
        unsigned char hdr[12]{}; // this tick's RTP header (the payload is the shared encoded loop)
        StreamStats stats;
    };
    // One UDP socket bound to one even local port, shared by up to `perPort` streams (each with its own SSRC,
    // sequence and timestamp, RFC 3550 §8: the SSRC, not the transport address, identifies a source).
    struct Port {
        int fd = -1;
        uint16_t port = 0;
        std::vector<Stream *> streams;
    };

    mutable std::mutex mu;
    mutable std::atomic<int> callersWaiting{0}; // callers (the SIP thread) waiting for mu: callerLock
    mutable std::mutex handMu;                  // with handCv: the sender waits for such a caller (handOver)
    mutable std::condition_variable handCv;
    size_t chunkPackets = kSendChunk;    // packets per chunk (holdChunksForTest may lower it)
    int64_t chunkHoldUsForTest = 0;      // holdChunksForTest
    std::atomic<uint64_t> chunksSent{0}; // chunks sent (read without the lock: chunksForTest)
    std::map<uint64_t, std::unique_ptr<Stream>> streams;
    std::map<uint16_t, Port> ports; // open sockets by local port (map nodes are stable: Stream::port stays valid)
    std::set<uint16_t> roomy;       // open ports with room for another stream
    struct IdleSocket {
        int fd = -1;
        uint16_t port = 0;
        int64_t since = 0; // monoNs() when its last stream left
    };
    std::deque<IdleSocket> idle;  // sockets of ports without a stream kept for reuse, oldest first (kMaxIdleSockets)
    std::set<uint16_t> idlePorts; // their ports
    uint32_t perPort = 1;
    // The loop encoded once per codec, each followed by a copy of its first 160 bytes so that any 20 ms
    // starting inside the loop is contiguous (one iovec, shared by every stream on that codec).
    std::vector<uint8_t> ulaw, alaw, g722;
    size_t loopLen = 0;
    std::string bindIp;
    sockaddr_storage bindAddr{};
    socklen_t bindLen = 0;
    uint16_t portMin = 0, portMax = 0, cursor = 0;
    uint64_t reserve = 256;
    int64_t prelatchMs = kDefaultPrelatchMs;
    uint64_t nextId = 1;
    int epfd = -1; // every port's socket, for draining only the ones with something to read
    PlayerStats counters;
    std::mt19937 rng{std::random_device{}()};
    std::atomic<bool> running{false};
    std::thread worker;
    // Sender-thread scratch (reused every tick).
    std::vector<mmsghdr> msgs;
    std::vector<iovec> iovs;
    std::vector<std::pair<Stream *, bool>> sentBy; // the stream of each message, and whether it is pre-latch

    bool setRemoteLocked(Stream &s, const std::string &ip, uint16_t port, int pt, std::string *err) {
        sockaddr_storage a{};
        socklen_t len = 0;
        bool held = isUnspecified(ip) || port == 0;
        if (!held && (!resolveNumeric(ip, port, &a, &len) || a.ss_family != bindAddr.ss_family)) {
            if (err)
                *err = fmt::format("bad RTP destination '{}' port {}", ip, port);
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
        s.marker = true; // new destination: a new talkspurt (RFC 3551 §4.1)
        return true;
    }

    static void unlatch(Stream &s) {
        s.latched = false;
        s.stats.latched = false;
        s.stats.latchedIp.clear();
        s.stats.latchedPort = 0;
    }

    static void latchTo(Stream &s, const sockaddr_storage &from, socklen_t fromLen) {
        s.latch = from;
        s.latchLen = fromLen;
        s.latched = true;
        s.marker = true; // a new destination: a new talkspurt (RFC 3551 §4.1)
        ++s.stats.latches;
        s.stats.latched = true;
        s.stats.latchedIp = ipText(from);
        s.stats.latchedPort = portOf(from);
    }

    static bool mayLatch(const Stream &s, const IpKey &src) { return src == s.sdpIp || src == s.sigIp; }
    static bool waitingForLatch(const Stream &s) { return s.hasRemote && !s.latched; }

    // ------------------------------------------------------------ receiving (symmetric RTP latching)

    // One datagram that reached `p` from `from`. Symmetric RTP (RFC 4961 §3): the party receives RTP where it
    // sends it from, which is also what a NAT in front of it lets back in. Only a packet from a stream's SDP
    // connection address or from its party's signalling source IP may latch that stream; anything else is a
    // stranger trying to point the music somewhere (counted, ignored). No re-latching on packets alone: once
    // latched a stream stays put until the party's signalling moves it (setRemote/setSignalingSource), so a second
    // sender at an allowed IP (another device behind the same NAT, a spoofed source) cannot take it over.
    //
    // On a shared port the packet belongs to: the stream latched to exactly that IP:port; else the one unlatched
    // stream whose SDP address:port is exactly the source; else the one unlatched stream that may latch from the
    // source IP (several: the one of them whose payload type is the packet's). Anything else latches nothing:
    // an ambiguous packet is counted (PlayerStats::packetsAmbiguous) and waits for a better one.
    void classify(Port &p, const sockaddr_storage &from, socklen_t fromLen, const unsigned char *buf, size_t n) {
        for (Stream *s : p.streams)
            if (s->latched && sameAddress(s->latch, from)) {
                ++s->stats.packetsReceived;
                return;
            }
        const IpKey ip = keyOf(from);
        const bool rtp = n >= 12 && (buf[0] >> 6) == 2; // RTP version 2, complete fixed header (RFC 3550 §5.1)
        const int pt = rtp ? buf[1] & 0x7F : -1;
        Stream *allowed = nullptr, *exact = nullptr, *waiting = nullptr, *samePt = nullptr;
        int nAllowed = 0, nExact = 0, nWaiting = 0, nSamePt = 0;
        for (Stream *s : p.streams) {
            if (!mayLatch(*s, ip))
                continue;
            ++nAllowed, allowed = s;
            if (!waitingForLatch(*s))
                continue;
            ++nWaiting, waiting = s;
            if (sameAddress(s->remote, from))
                ++nExact, exact = s;
            if (s->pt == pt)
                ++nSamePt, samePt = s;
        }
        if (nAllowed == 0)
            return foreign(p, from);
        Stream *to = nWaiting == 1 ? waiting : nExact == 1 ? exact : nExact == 0 && nSamePt == 1 ? samePt : nullptr;
        if (!to && nAllowed == 1)
            to = allowed; // its only possible owner, latched elsewhere or held: counted, nothing to latch
        if (!to) {
            ++counters.packetsAmbiguous;
            return;
        }
        ++to->stats.packetsReceived;
        if (!waitingForLatch(*to))
            return; // no music wanted now, or latched already: nothing to latch
        if (!rtp) {
            ++to->stats.packetsNotRtp; // a stray datagram does not steer the music
            return;
        }
        latchTo(*to, from, fromLen);
    }

    // From an IP no stream on the port may latch from. With one stream on the port it is that stream's
    // (StreamStats::packetsForeign); on a shared port nobody's (PlayerStats::packetsForeign).
    void foreign(Port &p, const sockaddr_storage &from) {
        ++counters.packetsForeign;
        if (p.streams.size() != 1)
            return;
        Stream &s = *p.streams.front();
        ++s.stats.packetsReceived;
        ++s.stats.packetsForeign;
        s.stats.lastForeignSource =
            fmt::format(from.ss_family == AF_INET6 ? "[{}]:{}" : "{}:{}", ipText(from), portOf(from));
    }

    // Read what reached the port (never played), recvmmsg batches, at most kMaxDrainPerVisit.
    void drain(Port &p) {
        static thread_local unsigned char bufs[kRecvBatch][kRecvBytes];
        sockaddr_storage from[kRecvBatch];
        iovec iov[kRecvBatch];
        mmsghdr m[kRecvBatch];
        for (unsigned done = 0; done < kMaxDrainPerVisit;) {
            for (unsigned i = 0; i < kRecvBatch; ++i) {
                iov[i] = {bufs[i], kRecvBytes};
                m[i] = {};
                m[i].msg_hdr.msg_name = &from[i];
                m[i].msg_hdr.msg_namelen = sizeof from[i];
                m[i].msg_hdr.msg_iov = &iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
            }
            int got = ::recvmmsg(p.fd, m, kRecvBatch, MSG_DONTWAIT, nullptr);
            if (got <= 0)
                return; // EAGAIN: empty (an empty datagram is msg_len 0 and counts)
            for (int i = 0; i < got; ++i)
                classify(p, from[i], m[i].msg_hdr.msg_namelen, bufs[i], m[i].msg_len);
            done += static_cast<unsigned>(got);
            if (static_cast<unsigned>(got) < kRecvBatch)
                return;
        }
    }

    // Drain the ports with something to read. A port with a stream waiting for its latch is drained every 5th
    // tick (it latches within 100 ms of the party's first packet); one whose streams are settled every 25th
    // only: we never play what arrives, and the socket buffer holds half a second.
    void drainReady(uint64_t tick) {
        epoll_event ev[kMaxReadyPorts];
        if (tick % 5 != 0)
            return;
        int n = ::epoll_wait(epfd, ev, kMaxReadyPorts, 0);
        for (int i = 0; i < n; ++i) {
            std::lock_guard<std::mutex> lock(mu);
            auto it = ports.find(static_cast<uint16_t>(ev[i].data.u32));
            if (it == ports.end()) {
                if (auto at = findIdle(static_cast<uint16_t>(ev[i].data.u32)); at != idle.end())
                    discardQueued(at->fd); // nobody's any more
                continue;
            }
            Port &p = it->second;
            if (tick % 25 == 0 ||
                std::any_of(p.streams.begin(), p.streams.end(), [](const Stream *s) { return waitingForLatch(*s); }))
                drain(p);
        }
    }

    // ------------------------------------------------------------ sending

    // Where this stream's packet goes now: the latch; before one, the SDP destination while the pre-latch
    // allowance lasts; after that nowhere (the socket keeps listening for the party's RTP).
    static const sockaddr_storage *destination(Stream &s, socklen_t *len, bool *prelatch) {
        *prelatch = false;
        if (!s.hasRemote)
            return nullptr;
        if (s.latched) {
            *len = s.latchLen;
            return &s.latch;
        }
        // The SDP names the very host that talks SIP with us: no third party to reflect to, so no bound. A phone
        // that honours our a=sendonly answer sends no RTP (RFC 3264 §6.1) and would never latch; this keeps its
        // music playing.
        if (!(s.sdpIp == s.sigIp)) {
            if (s.prelatchLeft == 0)
                return nullptr;
            *prelatch = true;
            if (s.prelatchLeft > 0)
                --s.prelatchLeft; // spent even when the send fails
        }
        *len = s.remoteLen;
        return &s.remote;
    }

    const uint8_t *payload(const Stream &s) const {
        const std::vector<uint8_t> &audio = s.pt == 8 ? alaw : s.pt == 9 ? g722 : ulaw;
        return audio.data() + s.pos;
    }

    // Queue this tick's packet of `s` (RTP header of its own + the shared payload: two iovecs), then move its
    // media clock on. `extra` ticks were skipped after a stall: the timestamp and the audio follow real time
    // (RFC 3550 §5.1: the timestamp reflects the sampling instant), the sequence number counts packets sent.
    void queue(Stream &s, uint64_t extra) {
        s.ts += static_cast<uint32_t>(extra * kSamplesPerPacket);
        s.pos = static_cast<size_t>((s.pos + extra % loopLen * kSamplesPerPacket) % loopLen);
        socklen_t toLen = 0;
        bool prelatch = false;
        if (const sockaddr_storage *to = destination(s, &toLen, &prelatch)) {
            s.hdr[0] = 0x80; // V=2, no padding, no extension, no CSRC (RFC 3550 §5.1)
            s.hdr[1] = static_cast<unsigned char>((s.marker ? 0x80 : 0) | (s.pt & 0x7F));
            s.hdr[2] = static_cast<unsigned char>(s.seq >> 8);
            s.hdr[3] = static_cast<unsigned char>(s.seq);
            putBe32(s.hdr + 4, s.ts);
            putBe32(s.hdr + 8, s.stats.ssrc);
            size_t k = sentBy.size();
            iovs[2 * k] = {s.hdr, 12};
            iovs[2 * k + 1] = {const_cast<uint8_t *>(payload(s)), kSamplesPerPacket};
            mmsghdr &m = msgs[k];
            m = {};
            m.msg_hdr.msg_name = const_cast<sockaddr_storage *>(to);
            m.msg_hdr.msg_namelen = toLen;
            m.msg_hdr.msg_iov = &iovs[2 * k];
            m.msg_hdr.msg_iovlen = 2;
            sentBy.emplace_back(&s, prelatch);
            ++s.seq; // one per packet sent (RFC 3550 §5.1); none while waiting for a latch
        }
        // The media clock runs even while nothing is sent, so a resumed stream stays continuous.
        s.ts += kSamplesPerPacket;
        s.pos = (s.pos + kSamplesPerPacket) % loopLen;
    }

    // Send one port's packets: sendmmsg in batches; a message the kernel refuses is skipped (counted as not
    // sent), a full socket buffer (EAGAIN) ends this tick for the port.
    void sendPort(Port &p, uint64_t extra) {
        const size_t need = p.streams.size();
        if (msgs.size() < need) {
            msgs.resize(need);
            iovs.resize(2 * need);
        }
        sentBy.clear();
        for (Stream *s : p.streams)
            queue(*s, extra);
        const size_t total = sentBy.size();
        for (size_t off = 0; off < total;) {
            unsigned batch = static_cast<unsigned>(std::min<size_t>(kSendBatch, total - off));
            int r = ::sendmmsg(p.fd, msgs.data() + off, batch, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (r < 0) {
                ++off; // this one failed (e.g. EPERM from a firewall): the rest still go
                continue;
            }
            for (int i = 0; i < r; ++i) {
                auto [s, prelatch] = sentBy[off + i];
                ++s->stats.packetsSent;
                s->stats.bytesSent += 12 + kSamplesPerPacket;
                if (prelatch)
                    ++s->stats.prelatchSent;
                s->marker = false;
            }
            off += static_cast<size_t>(r);
        }
        counters.packetsSent += total;
    }

    // One 20 ms tick of every stream. The lock is taken per chunk of ports (at most kSendChunk packets), not for
    // the whole tick: with thousands of streams a tick is milliseconds of sendmmsg, and the SIP thread's
    // add/remove must not wait that long; between chunks the lock goes to a caller waiting for it (handOver).
    // Ports are visited in order, so a stream added between chunks on a port already visited starts at the next
    // tick; a removed one sends nothing more once remove() returned.
    void tick(uint64_t extra) {
        drainReady(counters.ticks);
        uint32_t next = 0;
        for (bool more = true; more;) {
            more = sendChunk(extra, &next);
            if (more)
                handOver();
        }
    }

    // One chunk of a tick: the ports from `*next` on, up to kSendChunk packets. False when the tick is done.
    bool sendChunk(uint64_t extra, uint32_t *next) {
        std::lock_guard<std::mutex> lock(mu);
        size_t queued = 0;
        auto it = ports.lower_bound(static_cast<uint16_t>(*next));
        for (; it != ports.end() && (queued < chunkPackets || queued == 0); ++it) {
            sendPort(it->second, extra);
            queued += it->second.streams.size();
        }
        chunksSent.fetch_add(1, std::memory_order_relaxed);
        if (chunkHoldUsForTest > 0) // busy, as sendmmsg is (a sleeping holder lets the scheduler hand over)
            for (const int64_t until = monoNs() + chunkHoldUsForTest * 1000; monoNs() < until;) {
            }
        if (it == ports.end()) {
            ++counters.ticks; // (under the lock: playerStats() reads it)
            return false;
        }
        *next = it->first;
        return true;
    }

    // The lock for a call from another thread (the SIP thread's add, remove, setRemote...). A mutex is not fair:
    // the sender, unlocking between two chunks and locking again at once, would win it back every time, and with
    // thousands of streams (a tick that takes most of its 20 ms) such a call waited for the end of the tick: with
    // music playing, parking stalled past ~3,000 calls and restoring 4,216 took 10.4 s (bench/README.md). A caller
    // says it waits; the sender hands the lock over between chunks (handOver), so a call waits for one chunk.
    std::unique_lock<std::mutex> callerLock() const {
        callersWaiting.fetch_add(1, std::memory_order_acq_rel);
        std::unique_lock<std::mutex> lock(mu);
        if (callersWaiting.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> hand(handMu); // (no lost wake-up: handOver tests under handMu)
            handCv.notify_one();
        }
        return lock;
    }

    // Between two chunks (the lock released): while a caller waits for the lock, sleep until it has it, for
    // kHandOverNs at most (a caller the scheduler does not run that soon gets the lock after the next chunk).
    // Sleeping, not spinning: the core may be what the caller is waiting for.
    void handOver() const {
        if (callersWaiting.load(std::memory_order_acquire) == 0)
            return;
        std::unique_lock<std::mutex> hand(handMu);
        handCv.wait_for(hand, std::chrono::nanoseconds(kHandOverNs),
                        [this] { return callersWaiting.load(std::memory_order_acquire) == 0; });
    }

    // A steady 20 ms clock on absolute deadlines (clock_nanosleep TIMER_ABSTIME: no drift accumulates). Up to
    // kMaxCatchUp ticks late (a busy machine's scheduling delay) the missed ticks are sent at once, which a
    // jitter buffer absorbs; after a longer stall (an overloaded machine, a suspend, a debugger) they are
    // skipped, not caught up in a burst: the next packet of every stream leaves at the next deadline, its
    // timestamp and audio advanced by the time missed.
    static constexpr uint64_t kMaxCatchUp = 2;
    void run() {
        const int64_t start = monoNs();
        uint64_t k = 0, extra = 0; // the tick due next; ticks skipped before it
        // The tick to run next: `first`, or the one due now when more than kMaxCatchUp are missed (the ones
        // before it are skipped, counted in `extra`).
        auto catchUp = [&](uint64_t first) {
            const uint64_t now = static_cast<uint64_t>((monoNs() - start) / kPacketNs);
            if (now > first + kMaxCatchUp) {
                extra += now - first;
                std::lock_guard<std::mutex> lock(mu);
                counters.ticksSkipped += now - first;
                return now;
            }
            return first;
        };
        while (running.load(std::memory_order_acquire)) {
            timespec due = toTimespec(start + int64_t(k) * kPacketNs);
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, nullptr) == EINTR) {
            }
            k = catchUp(k); // woken late
            tick(extra);
            extra = 0;
            k = catchUp(k + 1); // (a tick that took longer than 20 ms)
        }
    }

    // ------------------------------------------------------------ ports

    // The socket bound to `port`, or -1 with errno (EADDRINUSE: taken by someone else; EMFILE/ENFILE/ENOBUFS/
    // ENOMEM: the process or the system is out of descriptors or memory, no other port will do better).
    int bindPort(uint16_t port) {
        int fd = ::socket(bindAddr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        sockaddr_storage a = bindAddr;
        if (a.ss_family == AF_INET)
            reinterpret_cast<sockaddr_in *>(&a)->sin_port = htons(port);
        else
            reinterpret_cast<sockaddr_in6 *>(&a)->sin6_port = htons(port);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = port;
        if (::bind(fd, reinterpret_cast<sockaddr *>(&a), bindLen) != 0 ||
            ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            int e = errno;
            ::close(fd);
            errno = e == ENOSPC ? ENOMEM : e; // epoll watches exhausted (fs.epoll.max_user_watches): resources
            return -1;
        }
        return fd;
    }
    static bool outOfDescriptors(int e) { return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM; }

    Port *openPort(uint16_t port, int fd) {
        Port &p = ports[port];
        p.fd = fd;
        p.port = port;
        return &p;
    }

    // A port for a new stream: `preferred` when it is in the range and has room (joined, or bound anew); else
    // an open port with room (fill before opening: N streams of different parties take ceil(N / streams per port)
    // sockets); else
    // a new even port from a rotating cursor (a just-closed port is not reused at once, so late packets for an
    // old call do not land on a new one). nullptr with *bindErrno set when out of descriptors, 0 when full.
    // With `party` (the party's SIP source IP) a port with room where no stream may latch from that IP comes
    // first, then a new port, and only then a port shared with a stream of that IP: phones behind one NAT (one
    // public IP, private SDP addresses) would make each other's RTP ambiguous on one port. Calls that all come
    // through one SBC spread over the range before they share (the SBC's symmetric media then matches the SDP
    // address:port exactly).
    Port *pickPort(uint16_t preferred, const IpKey &party, int *bindErrno) {
        *bindErrno = 0;
        if (preferred >= portMin && preferred <= portMax && (preferred & 1) == 0) {
            if (auto it = ports.find(preferred); it != ports.end()) {
                if (it->second.streams.size() < perPort)
                    return &it->second;
            } else if (auto at = findIdle(preferred); at != idle.end()) {
                return reuseIdle(at);
            } else if (int fd = bindPort(preferred); fd >= 0) {
                return openPort(preferred, fd);
            } else if (outOfDescriptors(errno)) {
                *bindErrno = errno;
                return nullptr;
            }
        }
        // A port with room, the first one without the party's IP if any. Only the first kRoomyLook ports with room
        // are looked at: with every call from one address (an SBC) each of them holds that IP, and a full scan on
        // every add made parking slow down as the parked set grew (O(ports) per call).
        constexpr size_t kRoomyLook = 16;
        Port *shared = nullptr;
        size_t looked = 0;
        for (uint16_t port : roomy) {
            if (++looked > kRoomyLook)
                break;
            Port &p = ports.at(port);
            if (!party.set ||
                std::none_of(p.streams.begin(), p.streams.end(), [&](const Stream *s) { return mayLatch(*s, party); }))
                return &p;
            if (!shared)
                shared = &p;
        }
        // A socket idle long enough (the oldest) before a new one.
        if (!idle.empty() && monoNs() - idle.front().since >= kIdleQuietNs)
            return reuseIdle(idle.begin());
        const uint32_t count = (portMax - portMin) / 2 + 1;
        for (uint32_t i = 0; i < count && ports.size() + idle.size() < count; ++i) {
            uint16_t candidate = cursor;
            uint32_t next = candidate + 2u;
            cursor = static_cast<uint16_t>(next > portMax ? portMin : next);
            if (ports.count(candidate) || idlePorts.count(candidate))
                continue;
            if (int fd = bindPort(candidate); fd >= 0)
                return openPort(candidate, fd);
            if (outOfDescriptors(errno)) {
                *bindErrno = errno; // no other port will do better: stop at once
                return shared ? shared : idle.empty() ? nullptr : reuseIdle(idle.begin());
            }
        }
        if (!shared && !idle.empty()) // the range is full: an idle socket, however recently it was left
            return reuseIdle(idle.begin());
        return shared;
    }

    std::deque<IdleSocket>::iterator findIdle(uint16_t port) {
        if (!idlePorts.count(port))
            return idle.end();
        return std::find_if(idle.begin(), idle.end(), [port](const IdleSocket &i) { return i.port == port; });
    }

    // Read and drop what waits on a socket, at most `limit` datagrams (a port between calls: none of it is for a
    // stream of ours).
    static void discardQueued(int fd, unsigned limit = kMaxDrainPerVisit) {
        static thread_local unsigned char buf[kRecvBytes];
        iovec iov[kRecvBatch];
        mmsghdr m[kRecvBatch];
        for (unsigned done = 0; done < limit;) {
            for (unsigned i = 0; i < kRecvBatch; ++i) {
                iov[i] = {buf, kRecvBytes};
                m[i] = {};
                m[i].msg_hdr.msg_iov = &iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
            }
            int got = ::recvmmsg(fd, m, kRecvBatch, MSG_DONTWAIT, nullptr);
            if (got <= 0)
                return;
            done += static_cast<unsigned>(got);
        }
    }

    // An idle socket serves a port again, its queue emptied first (late packets of the call that left).
    Port *reuseIdle(std::deque<IdleSocket>::iterator at) {
        IdleSocket i = *at;
        idle.erase(at);
        idlePorts.erase(i.port);
        discardQueued(i.fd, 1u << 16); // all of it (the socket buffer bounds it)
        return openPort(i.port, i.fd);
    }

    void attach(Stream &s, Port &p) {
        s.port = &p;
        p.streams.push_back(&s);
        if (p.streams.size() < perPort)
            roomy.insert(p.port);
        else
            roomy.erase(p.port);
    }

    // Detach a stream; the last one out leaves the socket idle for reuse (kMaxIdleSockets), or closes it when
    // enough are idle (closing leaves the epoll set too).
    void detach(Stream &s) {
        Port &p = *s.port;
        p.streams.erase(std::find(p.streams.begin(), p.streams.end(), &s));
        if (p.streams.empty()) {
            const int64_t now = monoNs();
            while (!idle.empty() && now - idle.front().since >= kIdleKeepNs) {
                ::close(idle.front().fd);
                idlePorts.erase(idle.front().port);
                idle.pop_front();
            }
            if (idle.size() < kMaxIdleSockets) {
                idle.push_back({p.fd, p.port, now});
                idlePorts.insert(p.port);
            } else
                ::close(p.fd);
            roomy.erase(p.port);
            ports.erase(p.port);
        } else if (p.streams.size() < perPort) {
            roomy.insert(p.port);
        }
        s.port = nullptr;
    }

    void closeAll() {
        std::lock_guard<std::mutex> lock(mu);
        for (auto &[port, p] : ports) {
            (void)port;
            ::close(p.fd);
        }
        ports.clear();
        roomy.clear();
        for (const IdleSocket &i : idle)
            ::close(i.fd);
        idle.clear();
        idlePorts.clear();
        streams.clear();
        if (epfd >= 0)
            ::close(epfd);
        epfd = -1;
    }
};

MohPlayer::MohPlayer() : impl_(std::make_unique<Impl>()) {}

MohPlayer::~MohPlayer() {
    stop();
}

namespace {
// The loop followed by its own first 160 bytes (see Impl::ulaw).
std::vector<uint8_t> withWrapTail(std::vector<uint8_t> loop) {
    std::vector<uint8_t> out = loop;
    for (size_t i = 0; i < static_cast<size_t>(kSamplesPerPacket); ++i)
        out.push_back(loop[i % loop.size()]);
    return out;
}
} // namespace

bool MohPlayer::start(std::string bindIp, uint16_t portMin, uint16_t portMax, std::string audioFile, std::string *err) {
    auto fail = [&](std::string msg) {
        if (err)
            *err = std::move(msg);
        return false;
    };
    if (impl_->running.load())
        return fail("music-on-hold player already running");
    if (portMin == 0 || portMin > portMax)
        return fail(fmt::format("bad music-on-hold port range {}-{}", portMin, portMax));
    uint16_t firstEven = static_cast<uint16_t>(portMin + (portMin & 1));
    if (firstEven > portMax || firstEven < portMin)
        return fail(
            fmt::format("music-on-hold port range {}-{} has no even port (RTP uses even ports)", portMin, portMax));
    sockaddr_storage a{};
    socklen_t len = 0;
    if (!resolveNumeric(bindIp, 0, &a, &len) || (a.ss_family != AF_INET && a.ss_family != AF_INET6))
        return fail(fmt::format("bad music-on-hold bind address '{}' (need a numeric IP)", bindIp));
    std::string audioErr;
    auto audio = loadHoldAudio(audioFile, &audioErr);
    if (!audio)
        return fail(audioErr);
    std::string fds = checkMohDescriptors(portMin, portMax, raiseFdLimit(), reservedDescriptors());
    if (!fds.empty())
        return fail(fds);
    std::vector<uint8_t> g722 = encodeG722Loop(*audio);
    if (g722.size() != audio->size())
        return fail("music on hold: the G.722 encoder (spandsp) failed");
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return fail(fmt::format("music on hold: epoll_create1: {}", std::strerror(errno)));
    {
        auto lock = impl_->callerLock();
        std::vector<uint8_t> ulaw(audio->size()), alaw(audio->size());
        for (size_t i = 0; i < audio->size(); ++i) {
            ulaw[i] = linearToUlaw((*audio)[i]);
            alaw[i] = linearToAlaw((*audio)[i]);
        }
        impl_->loopLen = audio->size();
        impl_->ulaw = withWrapTail(std::move(ulaw));
        impl_->alaw = withWrapTail(std::move(alaw));
        impl_->g722 = withWrapTail(std::move(g722));
        impl_->bindIp = bindIp;
        impl_->bindAddr = a;
        impl_->bindLen = len;
        impl_->portMin = firstEven;
        impl_->portMax = portMax;
        impl_->cursor = firstEven;
        impl_->epfd = ep;
        impl_->counters = {};
    }
    impl_->running.store(true, std::memory_order_release);
    impl_->worker = std::thread([this] { impl_->run(); });
    return true;
}

void MohPlayer::setReservedDescriptors(uint64_t n) {
    impl_->reserve = n;
}
bool MohPlayer::setStreamsPerPort(uint32_t n) {
    if (n < 1 || n > kMaxStreamsPerPort || impl_->running.load())
        return false;
    auto lock = impl_->callerLock();
    impl_->perPort = n;
    return true;
}
uint32_t MohPlayer::streamsPerPort() const {
    auto lock = impl_->callerLock();
    return impl_->perPort;
}
void MohPlayer::setPrelatchMs(int64_t ms) {
    auto lock = impl_->callerLock();
    impl_->prelatchMs = ms < 0 ? kPrelatchUnlimited : ms;
}
int64_t MohPlayer::prelatchMs() const {
    auto lock = impl_->callerLock();
    return impl_->prelatchMs;
}
uint64_t MohPlayer::reservedDescriptors() const {
    return impl_->reserve;
}

std::optional<MohPlayer::StreamInfo> MohPlayer::add(std::string remoteIp, uint16_t remotePort, int payloadType,
                                                    std::string *err, uint16_t preferredPort, AddError *why,
                                                    std::string_view partyIp) {
    auto failed = [why](AddError e) -> std::optional<StreamInfo> {
        if (why)
            *why = e;
        return std::nullopt;
    };
    if (why)
        *why = AddError::None;
    if (!impl_->running.load()) {
        if (err)
            *err = "music-on-hold player is not running";
        return failed(AddError::NotRunning);
    }
    if (!isMohPayloadType(payloadType)) {
        if (err)
            *err = fmt::format("music on hold plays PCMU (0), PCMA (8) or G722 (9), not payload type {}", payloadType);
        return failed(AddError::BadPayloadType);
    }
    auto lock = impl_->callerLock();
    auto s = std::make_unique<Impl::Stream>();
    // The pre-latch allowance in whole packets (rounded up): 0 ms sends nothing before a latch.
    s->prelatchLeft = impl_->prelatchMs < 0 ? -1 : (impl_->prelatchMs + 19) / 20;
    if (!impl_->setRemoteLocked(*s, remoteIp, remotePort, payloadType, err))
        return failed(AddError::BadAddress);
    int bindErrno = 0;
    const IpKey party = keyOf(signalingSourceIp(partyIp));
    Impl::Port *port = impl_->pickPort(preferredPort, party, &bindErrno);
    if (!port && bindErrno) {
        if (err)
            *err = fmt::format("out of file descriptors opening a music-on-hold socket ({}; {} streams active)",
                               std::strerror(bindErrno), impl_->streams.size());
        return failed(AddError::NoDescriptors);
    }
    if (!port) {
        if (err)
            *err = fmt::format("no free music-on-hold RTP port in {}-{} on {} ({} streams active, {} per port)",
                               impl_->portMin, impl_->portMax, impl_->bindIp, impl_->streams.size(), impl_->perPort);
        return failed(AddError::NoFreePort);
    }
    s->stats.ssrc = impl_->rng();
    s->seq = static_cast<uint16_t>(impl_->rng());
    s->ts = impl_->rng(); // random initial seq/timestamp (RFC 3550 §5.1)
    s->id = impl_->nextId++;
    impl_->attach(*s, *port);
    StreamInfo info{s->id, port->port};
    impl_->streams.emplace(s->id, std::move(s));
    return info;
}

bool MohPlayer::remove(uint64_t id) {
    auto lock = impl_->callerLock();
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end())
        return false;
    impl_->detach(*it->second);
    impl_->streams.erase(it);
    return true;
}

bool MohPlayer::setRemote(uint64_t id, std::string remoteIp, uint16_t remotePort, int payloadType) {
    if (!isMohPayloadType(payloadType))
        return false;
    auto lock = impl_->callerLock();
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end())
        return false;
    return impl_->setRemoteLocked(*it->second, remoteIp, remotePort, payloadType, nullptr);
}

bool MohPlayer::setSignalingSource(uint64_t id, std::string_view source) {
    std::string ip = signalingSourceIp(source);
    IpKey key = keyOf(ip);
    if (!source.empty() && !key.set)
        return false;
    auto lock = impl_->callerLock();
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end())
        return false;
    Impl::Stream &s = *it->second;
    s.sigIp = key;
    s.stats.signalingIp = key.set ? ip : std::string();
    if (s.latched && !Impl::mayLatch(s, keyOf(s.latch)))
        Impl::unlatch(s);
    return true;
}

std::optional<MohPlayer::StreamStats> MohPlayer::stats(uint64_t id) const {
    auto lock = impl_->callerLock();
    auto it = impl_->streams.find(id);
    if (it == impl_->streams.end())
        return std::nullopt;
    return it->second->stats;
}

MohPlayer::PlayerStats MohPlayer::playerStats() const {
    auto lock = impl_->callerLock();
    PlayerStats p = impl_->counters;
    p.chunks = impl_->chunksSent.load(std::memory_order_relaxed);
    p.streams = impl_->streams.size();
    p.sockets = impl_->ports.size();
    return p;
}

size_t MohPlayer::streamCount() const {
    auto lock = impl_->callerLock();
    return impl_->streams.size();
}

void MohPlayer::holdChunksForTest(int64_t us, size_t packetsPerChunk) {
    auto lock = impl_->callerLock();
    impl_->chunkHoldUsForTest = us;
    impl_->chunkPackets = packetsPerChunk ? packetsPerChunk : kSendChunk;
}

uint64_t MohPlayer::chunksForTest() const {
    return impl_->chunksSent.load(std::memory_order_relaxed);
}

void MohPlayer::stallForTest(int64_t ms) {
    auto lock = impl_->callerLock();
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

bool MohPlayer::running() const {
    return impl_->running.load();
}

void MohPlayer::stop() {
    if (impl_->running.exchange(false) && impl_->worker.joinable())
        impl_->worker.join();
    impl_->closeAll();
}

} // namespace parkway::callpark
