#include <catch2/catch.hpp>

#include "wire/moh.hh"

#include <cmath>
extern "C" {
#include <spandsp/telephony.h>

#include <spandsp/g722.h>
}

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace parkway::callpark;
using Clock = std::chrono::steady_clock;

namespace {

// A loopback UDP receiver on an ephemeral port: the "parked phone". Linux routes all of 127/8 to lo, so
// 127.0.0.2 is a second host on the same machine.
struct Receiver {
    int fd = -1;
    uint16_t port = 0;
    explicit Receiver(const char *ip = "127.0.0.1") {
        fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        REQUIRE(::inet_pton(AF_INET, ip, &a.sin_addr) == 1);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);
        socklen_t len = sizeof a;
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
        port = ntohs(a.sin_port);
    }
    ~Receiver() { ::close(fd); }
    struct Packet {
        std::vector<uint8_t> data;
        Clock::time_point at;
    };
    // Wait up to `timeout` for one packet.
    std::optional<Packet> recv(std::chrono::milliseconds timeout) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
            return std::nullopt;
        Packet pk;
        pk.data.resize(2048);
        ssize_t n = ::recv(fd, pk.data.data(), pk.data.size(), 0);
        if (n < 0)
            return std::nullopt;
        pk.data.resize(static_cast<size_t>(n));
        pk.at = Clock::now();
        return pk;
    }
    // Throw away what already arrived.
    void flush() {
        while (recv(std::chrono::milliseconds(0))) {
        }
    }
    // Every packet arriving within `window`.
    std::vector<Packet> collect(std::chrono::milliseconds window) {
        std::vector<Packet> out;
        auto end = Clock::now() + window;
        for (auto now = Clock::now(); now < end; now = Clock::now())
            if (auto p = recv(std::chrono::duration_cast<std::chrono::milliseconds>(end - now) +
                              std::chrono::milliseconds(1)))
                out.push_back(std::move(*p));
        return out;
    }
    // One datagram to 127.0.0.1:port (an RTP packet by default: V=2, PCMU, 12-byte header).
    void sendTo(uint16_t port, std::string_view data = std::string_view("\x80\x00\x00\x01\0\0\0\0\0\0\0\x07", 12)) {
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        to.sin_port = htons(port);
        REQUIRE(::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<sockaddr *>(&to), sizeof to) ==
                static_cast<ssize_t>(data.size()));
    }
};

// Wait (bounded) until `pred` holds; the player drains a stream waiting for its latch every 100 ms.
template <typename P> bool waitFor(P pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    auto end = Clock::now() + timeout;
    while (!pred()) {
        if (Clock::now() >= end)
            return false;
        ::usleep(5000);
    }
    return true;
}

uint16_t be16(const uint8_t *p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t *p) {
    return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
           p[3];
}

std::string tempPath(const char *name) {
    return std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/pw-moh-" +
           std::to_string(::getpid()) + "-" + name;
}

// `count` consecutive ports on 127.0.0.1 free right now (other tests and daemons run beside us): the first is
// even.
uint16_t freeRange(int count) {
    static std::mt19937 rng{std::random_device{}()};
    for (int attempt = 0; attempt < 1000; ++attempt) {
        uint16_t base = static_cast<uint16_t>(10000 + 2 * (rng() % 25000));
        std::vector<int> held;
        bool ok = true;
        for (int i = 0; ok && i < count; ++i) {
            int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(static_cast<uint16_t>(base + i));
            ok = ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
            held.push_back(fd);
        }
        for (int fd : held)
            ::close(fd);
        if (ok)
            return base;
    }
    FAIL("no free port range");
    return 0;
}

// No tick was skipped (a timing check of a loaded machine means nothing otherwise; the RTP clock checks still do).
bool calm(const MohPlayer &p) {
    return p.playerStats().ticksSkipped == 0;
}

void writeWav(const std::string &path, uint16_t format, uint16_t channels, uint32_t rate, uint16_t bits,
              size_t samples) {
    auto le16 = [](std::string &s, uint16_t v) { s += static_cast<char>(v & 0xFF), s += static_cast<char>(v >> 8); };
    auto le32 = [&](std::string &s, uint32_t v) { le16(s, v & 0xFFFF), le16(s, static_cast<uint16_t>(v >> 16)); };
    std::string fmtChunk;
    le16(fmtChunk, format);
    le16(fmtChunk, channels);
    le32(fmtChunk, rate);
    le32(fmtChunk, rate * channels * bits / 8);
    le16(fmtChunk, static_cast<uint16_t>(channels * bits / 8));
    le16(fmtChunk, bits);
    std::string data(samples * 2, '\0');
    for (size_t i = 0; i < samples; ++i)
        data[2 * i] = static_cast<char>(i & 0xFF);
    std::string body = "WAVE";
    body += "fmt ";
    le32(body, static_cast<uint32_t>(fmtChunk.size()));
    body += fmtChunk;
    body += "LIST"; // an unrelated chunk to skip
    le32(body, 3);
    body += std::string("abc\0", 4);
    body += "data";
    le32(body, static_cast<uint32_t>(data.size()));
    body += data;
    std::string file = "RIFF";
    le32(file, static_cast<uint32_t>(body.size()));
    file += body;
    std::ofstream(path, std::ios::binary) << file;
}

} // namespace

TEST_CASE("G.711 encoders match the reference code points") {
    CHECK(linearToUlaw(0) == 0xFF);
    CHECK(linearToUlaw(32767) == 0x80);
    CHECK(linearToUlaw(-32768) == 0x00);
    CHECK(linearToAlaw(0) == 0xD5);
    CHECK(linearToAlaw(32767) == 0xAA);
    CHECK(linearToAlaw(-32768) == 0x2A);
    // Every code decodes and re-encodes to itself (µ-law has two zeros: 0x7F and 0xFF).
    for (int c = 0; c < 256; ++c) {
        INFO("code " << c);
        CHECK(linearToAlaw(alawToLinear(static_cast<uint8_t>(c))) == c);
        if (c != 0x7F)
            CHECK(linearToUlaw(ulawToLinear(static_cast<uint8_t>(c))) == c);
    }
    // Quantisation error stays within the segment step.
    for (int x = -32768; x <= 32767; x += 97) {
        int16_t s = static_cast<int16_t>(x);
        CHECK(std::abs(ulawToLinear(linearToUlaw(s)) - x) <= std::max(8, std::abs(x) / 16 + 132));
        CHECK(std::abs(alawToLinear(linearToAlaw(s)) - x) <= std::max(16, std::abs(x) / 16 + 16));
    }
}

TEST_CASE("built-in hold tone: a few seconds, audible, never clipping") {
    auto tone = builtinHoldTone();
    CHECK(tone.size() >= 8000 * 3);
    CHECK(tone.size() <= 8000 * 15);
    int peak = 0;
    double energy = 0;
    for (int16_t s : tone) {
        peak = std::max(peak, std::abs(static_cast<int>(s)));
        energy += static_cast<double>(s) * s;
    }
    CHECK(peak > 3000);
    CHECK(peak < 32767);
    CHECK(std::sqrt(energy / tone.size()) > 500);
}

TEST_CASE("WAV loading: 8 kHz mono 16-bit accepted, anything else is an error naming the file") {
    std::string ok = tempPath("ok.wav");
    writeWav(ok, 1, 1, 8000, 16, 800);
    std::string err;
    auto a = loadHoldAudio(ok, &err);
    REQUIRE(a);
    CHECK(a->size() == 800);
    CHECK((*a)[1] == 1);

    struct Bad {
        const char *name;
        uint16_t format, channels;
        uint32_t rate;
        uint16_t bits;
        const char *why;
    };
    const Bad bads[] = {{"stereo.wav", 1, 2, 8000, 16, "mono"},
                        {"wide.wav", 1, 1, 16000, 16, "8000 Hz"},
                        {"8bit.wav", 1, 1, 8000, 8, "16"},
                        {"float.wav", 3, 1, 8000, 16, "not PCM"}};
    for (const auto &b : bads) {
        std::string p = tempPath(b.name);
        writeWav(p, b.format, b.channels, b.rate, b.bits, 800);
        CHECK_FALSE(loadHoldAudio(p, &err));
        CHECK_THAT(err, Catch::Contains(p) && Catch::Contains(b.why));
        std::remove(p.c_str());
    }
    std::string junk = tempPath("junk.wav");
    std::ofstream(junk) << "this is not audio";
    CHECK_FALSE(loadHoldAudio(junk, &err));
    CHECK_THAT(err, Catch::Contains(junk) && Catch::Contains("RIFF"));
    CHECK_FALSE(loadHoldAudio(tempPath("missing.wav"), &err));
    CHECK_THAT(err, Catch::Contains("missing.wav") && Catch::Contains("cannot open"));

    MohPlayer p;
    CHECK_FALSE(p.start("127.0.0.1", 30000, 30010, junk, &err));
    CHECK_THAT(err, Catch::Contains(junk));
    CHECK_FALSE(p.running());
    std::remove(ok.c_str());
    std::remove(junk.c_str());
}

TEST_CASE("MohPlayer sends RTP at 50 packets/s with the negotiated payload type") {
    Receiver rx;
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(101);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 100), "", &err));
    auto s = player.add("127.0.0.1", rx.port, 8, &err);
    REQUIRE(s);
    CHECK(s->localPort >= base);
    CHECK(s->localPort % 2 == 0);

    std::vector<Receiver::Packet> pkts;
    auto deadline = Clock::now() + std::chrono::seconds(3);
    while (pkts.size() < 51 && Clock::now() < deadline)
        if (auto p = rx.recv(std::chrono::milliseconds(200)))
            pkts.push_back(std::move(*p));
    REQUIRE(pkts.size() == 51);

    const auto &first = pkts.front().data;
    REQUIRE(first.size() == 12 + 160);
    CHECK((first[0] >> 6) == 2);   // RTP version 2
    CHECK((first[1] & 0x80) != 0); // marker on the first packet
    CHECK((first[1] & 0x7F) == 8); // PCMA
    const uint32_t ssrc = be32(&first[8]);
    // Payload is the A-law encoded start of the built-in tone.
    auto tone = builtinHoldTone();
    for (int i = 0; i < 160; ++i)
        REQUIRE(first[12 + i] == linearToAlaw(tone[i]));
    for (size_t i = 1; i < pkts.size(); ++i) {
        const auto &a = pkts[i - 1].data;
        const auto &b = pkts[i].data;
        REQUIRE(b.size() == 172);
        CHECK((b[1] & 0x80) == 0);
        CHECK((b[1] & 0x7F) == 8);
        CHECK(static_cast<uint16_t>(be16(&a[2]) + 1) == be16(&b[2]));
        // +160 per packet; a tick skipped after a stall of this (loaded) machine advances it by 160 more.
        if (player.playerStats().ticksSkipped == 0)
            CHECK(be32(&a[4]) + 160 == be32(&b[4]));
        else
            CHECK((be32(&b[4]) - be32(&a[4])) % 160 == 0);
        CHECK(be32(&b[8]) == ssrc);
    }
    // 50 intervals of 20 ms = 1 s; allow scheduling slack on a loaded CI box but catch wrong pacing
    // (10 ms would take 0.5 s, 40 ms 2 s).
    double secs = std::chrono::duration<double>(pkts.back().at - pkts.front().at).count();
    CHECK(secs > 0.75);
    CHECK((secs < 1.30 || !calm(player))); // (ticks skipped after a stall of this loaded machine take longer)
    auto st = player.stats(s->id);
    REQUIRE(st);
    CHECK(st->packetsSent >= 51);
    CHECK(st->payloadType == 8);
    CHECK(st->ssrc == ssrc);
    CHECK(player.remove(s->id));
    CHECK_FALSE(player.remove(s->id));
    CHECK_FALSE(player.stats(s->id));
}

namespace {
// RMS of G.722 bytes decoded at 8 kHz (spandsp's decoder, the inverse of the player's encoder).
double g722Rms(const std::vector<uint8_t> &bytes) {
    g722_decode_state_t *dec = g722_decode_init(nullptr, 64000, G722_SAMPLE_RATE_8000);
    REQUIRE(dec);
    std::vector<int16_t> pcm(bytes.size() * 2);
    int n = g722_decode(dec, pcm.data(), bytes.data(), static_cast<int>(bytes.size()));
    g722_decode_free(dec);
    REQUIRE(n > 0);
    double e = 0;
    for (int i = 0; i < n; ++i)
        e += double(pcm[i]) * pcm[i];
    return std::sqrt(e / n);
}
double pcmRms(const int16_t *s, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; ++i)
        e += double(s[i]) * s[i];
    return std::sqrt(e / double(n));
}
} // namespace

TEST_CASE("encodeG722Loop: one byte per 8 kHz sample, decodes back to the tone's loudness") {
    auto tone = builtinHoldTone();
    auto g722 = encodeG722Loop(tone);
    REQUIRE(g722.size() == tone.size());
    double src = pcmRms(tone.data(), tone.size());
    REQUIRE(src > 100);
    double dec = g722Rms(g722);
    CHECK(dec > 0.7 * src);
    CHECK(dec < 1.3 * src);
}

TEST_CASE("MohPlayer sends G.722 (PT 9): 160-byte payloads of the encoded loop, timestamps +160") {
    Receiver rx;
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(61);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 60), "", &err));
    auto s = player.add("127.0.0.1", rx.port, 9, &err);
    REQUIRE(s);
    std::vector<Receiver::Packet> pkts;
    auto deadline = Clock::now() + std::chrono::seconds(3);
    while (pkts.size() < 10 && Clock::now() < deadline)
        if (auto p = rx.recv(std::chrono::milliseconds(200)))
            pkts.push_back(std::move(*p));
    REQUIRE(pkts.size() == 10);
    auto g722 = encodeG722Loop(builtinHoldTone());
    std::vector<uint8_t> payload;
    for (size_t i = 0; i < pkts.size(); ++i) {
        const auto &b = pkts[i].data;
        REQUIRE(b.size() == 12 + 160);
        CHECK((b[1] & 0x7F) == 9);
        if (i > 0 && player.playerStats().ticksSkipped == 0) // (a stall of this machine skips ticks)
            CHECK(be32(&pkts[i - 1].data[4]) + 160 == be32(&b[4]));
        payload.insert(payload.end(), b.begin() + 12, b.end());
    }
    // The stream starts at the top of the loop: the first packet is the encoder's first 160 bytes.
    CHECK(std::equal(payload.begin(), payload.begin() + 160, g722.begin()));
    CHECK(g722Rms(payload) > 100); // music, not silence
    CHECK(player.stats(s->id)->payloadType == 9);
    CHECK(player.setRemote(s->id, "127.0.0.1", rx.port, 0));
    CHECK_FALSE(player.setRemote(s->id, "127.0.0.1", rx.port, 18));
}

TEST_CASE("MohPlayer: held remote sends nothing until setRemote, PCMU after re-target") {
    Receiver rx;
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(21);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 20), "", &err));
    auto s = player.add("0.0.0.0", 0, 0, &err);
    REQUIRE(s);
    CHECK_FALSE(rx.recv(std::chrono::milliseconds(100)));
    CHECK(player.stats(s->id)->packetsSent == 0);
    REQUIRE(player.setRemote(s->id, "127.0.0.1", rx.port, 0));
    auto p = rx.recv(std::chrono::milliseconds(500));
    REQUIRE(p);
    CHECK((p->data[1] & 0x80) != 0);                                // marker: first packet to this destination
    CHECK((p->data[1] & 0x7F) == 0);                                // PCMU
    CHECK_FALSE(player.setRemote(s->id, "127.0.0.1", rx.port, 18)); // G.729: not ours to play
    CHECK_FALSE(player.setRemote(s->id, "not-an-ip", rx.port, 0));
    CHECK_FALSE(player.setRemote(9999, "127.0.0.1", rx.port, 0));
    CHECK(player.stats(s->id)->remotePort == rx.port); // a rejected setRemote changes nothing
}

TEST_CASE("MohPlayer drains what the parked party sends to its port") {
    Receiver phone;
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(11);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 10), "", &err));
    auto s = player.add("127.0.0.1", phone.port, 0, &err);
    REQUIRE(s);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(s->localPort);
    const char rtp[12] = {static_cast<char>(0x80), 0, 0, 1};
    for (int i = 0; i < 5; ++i)
        REQUIRE(::sendto(phone.fd, rtp, sizeof rtp, 0, reinterpret_cast<sockaddr *>(&to), sizeof to) == sizeof rtp);
    auto deadline = Clock::now() + std::chrono::seconds(3);
    while (player.stats(s->id)->packetsReceived < 5 && Clock::now() < deadline)
        (void)phone.recv(std::chrono::milliseconds(50));
    CHECK(player.stats(s->id)->packetsReceived == 5);
}

TEST_CASE("MohPlayer port allocation: even ports, busy ports skipped, preferred port, exhaustion is an error") {
    MohPlayer player;
    std::string err;
    const uint16_t b = freeRange(8); // even: b+2, b+4, b+6 are the range's even ports
    auto P = [b](int d) { return static_cast<uint16_t>(b + d); };
    // Occupy b+2 from outside: the player must skip it.
    int busy = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(P(2));
    REQUIRE(::bind(busy, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0);

    REQUIRE(player.start("127.0.0.1", P(1), P(6), "", &err)); // even ports: b+2, b+4, b+6
    auto s1 = player.add("127.0.0.1", 9, 0, &err);
    REQUIRE(s1);
    CHECK(s1->localPort == P(4));
    auto s2 = player.add("127.0.0.1", 9, 0, &err);
    REQUIRE(s2);
    CHECK(s2->localPort == P(6));
    auto s3 = player.add("127.0.0.1", 9, 0, &err);
    CHECK_FALSE(s3);
    CHECK_THAT(err, Catch::Contains("no free music-on-hold RTP port") &&
                        Catch::Contains(std::to_string(P(2)) + "-" + std::to_string(P(6))));
    CHECK(player.streamCount() == 2);
    REQUIRE(player.remove(s1->id));
    auto s4 = player.add("127.0.0.1", 9, 0, &err, P(4)); // preferred port (e.g. the one used before a restart)
    REQUIRE(s4);
    CHECK(s4->localPort == P(4));
    ::close(busy);

    CHECK_FALSE(player.add("127.0.0.1", 9, 18, &err));
    CHECK_THAT(err, Catch::Contains("payload type 18"));
    player.stop();
    CHECK(player.streamCount() == 0);
    CHECK_FALSE(player.add("127.0.0.1", 9, 0, &err));
    CHECK_THAT(err, Catch::Contains("not running"));
}

TEST_CASE("MohPlayer start rejects bad ranges and addresses") {
    MohPlayer p;
    std::string err;
    CHECK_FALSE(p.start("127.0.0.1", 0, 10, "", &err));
    CHECK_THAT(err, Catch::Contains("port range"));
    CHECK_FALSE(p.start("127.0.0.1", 20010, 20000, "", &err));
    CHECK_THAT(err, Catch::Contains("port range"));
    CHECK_FALSE(p.start("127.0.0.1", 20001, 20001, "", &err));
    CHECK_THAT(err, Catch::Contains("even"));
    CHECK_FALSE(p.start("pbx.example.net", 20000, 20010, "", &err));
    CHECK_THAT(err, Catch::Contains("pbx.example.net"));
    REQUIRE(p.start("127.0.0.1", 31400, 31410, "", &err));
    CHECK_FALSE(p.start("127.0.0.1", 31400, 31410, "", &err));
    CHECK_THAT(err, Catch::Contains("already running"));
}

// ---------------------------------------------------------------- descriptors (docs/limits.md "Call park")

TEST_CASE("music-on-hold ports against the open-file limit: even ports counted, a range that does not fit is named") {
    CHECK(evenPortCount(40000, 40999) == 500);
    CHECK(evenPortCount(40001, 40002) == 1);
    CHECK(evenPortCount(40001, 40001) == 0);
    FdLimit l{1000, 50};
    CHECK(checkMohDescriptors(40000, 41386, l, 256).empty()); // 694 ports = 1000 - 50 - 256
    std::string why = checkMohDescriptors(40000, 41388, l, 256);
    CHECK_THAT(why, Catch::Contains("moh_port_min/moh_port_max 40000..41388") && Catch::Contains("695") &&
                        Catch::Contains("1000") && Catch::Contains("at most 694") && Catch::Contains("LimitNOFILE"));
    CHECK(checkMohDescriptors(10000, 65534, FdLimit{UINT64_MAX, 10}, 256).empty()); // unlimited
    CHECK_FALSE(checkMohDescriptors(40000, 40010, FdLimit{100, 200}, 256).empty()); // nothing left at all
}

TEST_CASE("MohPlayer start raises the soft open-file limit and refuses a range that cannot fit in it") {
    FdLimit l = raiseFdLimit();
    REQUIRE(l.open > 0);
    rlimit rl{};
    REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHECK(rl.rlim_cur == rl.rlim_max); // soft raised to hard
    if (l.limit == UINT64_MAX)
        return; // unlimited: nothing to refuse
    MohPlayer p;
    std::string err;
    p.setReservedDescriptors(l.limit); // everything is spoken for
    CHECK_FALSE(p.start("127.0.0.1", 31500, 31510, "", &err));
    CHECK_THAT(err, Catch::Contains("moh_port_min/moh_port_max 31500..31510") && Catch::Contains("open-file limit"));
    CHECK_FALSE(p.running());
    p.setReservedDescriptors(256);
    CHECK(p.start("127.0.0.1", 31500, 31510, "", &err));
}

namespace {
// Lowers the soft open-file limit to the lowest free descriptor number (the next socket() then fails with
// EMFILE) until destroyed.
struct NoMoreDescriptors {
    rlimit saved{};
    NoMoreDescriptors() {
        REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
        int lowest = ::open("/dev/null", O_RDONLY);
        REQUIRE(lowest >= 0);
        ::close(lowest);
        rlimit low = saved;
        low.rlim_cur = static_cast<rlim_t>(lowest);
        REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    }
    ~NoMoreDescriptors() { setrlimit(RLIMIT_NOFILE, &saved); }
};
} // namespace

TEST_CASE("MohPlayer add out of descriptors fails at once with a reason the caller can answer 503 for") {
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(399);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 398), "", &err)); // 200 even ports
    auto first = player.add("127.0.0.1", 9, 0, &err);
    REQUIRE(first);
    {
        NoMoreDescriptors guard;
        MohPlayer::AddError why = MohPlayer::AddError::None;
        err.clear();
        CHECK_FALSE(player.add("127.0.0.1", 9, 0, &err, 0, &why));
        CHECK(why == MohPlayer::AddError::NoDescriptors);
        CHECK_THAT(err, Catch::Contains("out of file descriptors"));
        CHECK_FALSE(player.add("127.0.0.1", 9, 0, &err, first->localPort + 2, &why)); // preferred port too
        CHECK(why == MohPlayer::AddError::NoDescriptors);
    }
    // It gave up at the first failing port instead of trying all 200: the rotation moved by one step only
    // (a full sweep would have come round to the port right after the first stream's).
    MohPlayer::AddError why = MohPlayer::AddError::NoDescriptors;
    auto next = player.add("127.0.0.1", 9, 0, &err, 0, &why);
    REQUIRE(next);
    CHECK(why == MohPlayer::AddError::None);
    CHECK(next->localPort == first->localPort + 4);
    CHECK(player.streamCount() == 2);
}

TEST_CASE("MohPlayer add failure reasons: a full range is NoFreePort, a bad payload type is the request's fault") {
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(1);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 0), "", &err));
    REQUIRE(player.add("127.0.0.1", 9, 0, &err));
    MohPlayer::AddError why = MohPlayer::AddError::None;
    CHECK_FALSE(player.add("127.0.0.1", 9, 0, &err, 0, &why));
    CHECK(why == MohPlayer::AddError::NoFreePort);
    CHECK_FALSE(player.add("127.0.0.1", 9, 18, &err, 0, &why));
    CHECK(why == MohPlayer::AddError::BadPayloadType);
}

TEST_CASE("ReportThrottle lets one report through per interval and counts the others") {
    ReportThrottle t(1000);
    CHECK(t.allow(5000));
    CHECK(t.suppressed() == 0);
    CHECK_FALSE(t.allow(5100));
    CHECK_FALSE(t.allow(5999));
    CHECK(t.allow(6000));
    CHECK(t.suppressed() == 2);
    CHECK(t.allow(7500));
    CHECK(t.suppressed() == 0);
}

// ---------------------------------------------------------------- symmetric RTP (RFC 4961), docs/callpark.md

TEST_CASE("signalingSourceIp takes the IP out of a host msg_source or a bare IP") {
    CHECK(signalingSourceIp("udp:192.0.2.1:5060") == "192.0.2.1");
    CHECK(signalingSourceIp("tcp:[2001:db8::1]:5061") == "2001:db8::1");
    CHECK(signalingSourceIp("TLS:198.51.100.7:5061") == "198.51.100.7");
    CHECK(signalingSourceIp("192.0.2.9") == "192.0.2.9");
    CHECK(signalingSourceIp("fe::1") == "fe::1"); // a bare IPv6 address whose first group looks like a scheme
    CHECK(signalingSourceIp("::ffff:192.0.2.1") == "::ffff:192.0.2.1");
    CHECK(signalingSourceIp("").empty());
    CHECK(signalingSourceIp("udp:pbx.example.net:5060").empty());
    CHECK(signalingSourceIp("tcp:[2001:db8::1:5061").empty());
}

TEST_CASE("MohPlayer latches: after one RTP packet from the party, music goes where it came from, not to the SDP") {
    Receiver sdp;   // X: what the (forged, or NATed) SDP says
    Receiver phone; // Y: where the party's RTP really comes from
    MohPlayer player;
    std::string err;
    player.setPrelatchMs(60000); // the pre-latch allowance plays no part here
    const uint16_t base = freeRange(21);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 20), "", &err));
    auto s = player.add("127.0.0.1", sdp.port, 0, &err);
    REQUIRE(s);
    REQUIRE(sdp.recv(std::chrono::milliseconds(1000))); // before a latch: the SDP address
    CHECK_FALSE(player.stats(s->id)->latched);

    phone.sendTo(s->localPort);
    auto first = phone.recv(std::chrono::milliseconds(2000));
    REQUIRE(first);
    REQUIRE(first->data.size() == 172);
    CHECK((first->data[1] & 0x80) != 0); // marker: a new destination
    // Loopback delivers within sendto: everything sent to X before the latch is in X's buffer by now.
    sdp.flush();
    auto atPhone = phone.collect(std::chrono::milliseconds(300));
    CHECK((atPhone.size() >= 10 || !calm(player)));
    CHECK(!atPhone.empty());
    CHECK_FALSE(sdp.recv(std::chrono::milliseconds(0)));
    auto st = player.stats(s->id);
    REQUIRE(st);
    CHECK(st->latched);
    CHECK(st->latchedIp == "127.0.0.1");
    CHECK(st->latchedPort == phone.port);
    CHECK(st->latches == 1);
    CHECK(st->remotePort == sdp.port); // the SDP destination is still what the party said
    CHECK(st->packetsForeign == 0);
}

TEST_CASE("MohPlayer latch: no re-latching on packets alone, a new SDP destination from the party re-latches") {
    Receiver sdp, phone, other, sdp2; // all on 127.0.0.1, the SDP's IP: each may latch
    MohPlayer player;
    std::string err;
    player.setPrelatchMs(60000);
    const uint16_t base = freeRange(21);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 20), "", &err));
    auto s = player.add("127.0.0.1", sdp.port, 8, &err);
    REQUIRE(s);
    phone.sendTo(s->localPort);
    REQUIRE(phone.recv(std::chrono::milliseconds(2000)));

    // A second sender at an allowed IP does not take the stream over.
    other.sendTo(s->localPort);
    REQUIRE(waitFor([&] { return player.stats(s->id)->packetsReceived >= 2; }));
    phone.flush();
    CHECK(phone.collect(std::chrono::milliseconds(200)).size() >= 5);
    CHECK_FALSE(other.recv(std::chrono::milliseconds(0)));
    CHECK(player.stats(s->id)->latchedPort == phone.port);

    // The same destination again (a session refresh, PCMU now): the latch stays.
    REQUIRE(player.setRemote(s->id, "127.0.0.1", sdp.port, 0));
    CHECK(player.stats(s->id)->latched);
    // Held and resumed at the same destination: the latch stays; nothing is sent meanwhile.
    REQUIRE(player.setRemote(s->id, "0.0.0.0", 0, 0));
    phone.flush();
    CHECK_FALSE(phone.recv(std::chrono::milliseconds(100)));
    REQUIRE(player.setRemote(s->id, "127.0.0.1", sdp.port, 0));
    CHECK(player.stats(s->id)->latched);
    REQUIRE(phone.recv(std::chrono::milliseconds(500)));

    // The party announces a new destination (re-INVITE): the latch goes, the new SDP address gets the pre-latch
    // music, and the next packet from an allowed IP latches again.
    REQUIRE(player.setRemote(s->id, "127.0.0.1", sdp2.port, 0));
    CHECK_FALSE(player.stats(s->id)->latched);
    REQUIRE(sdp2.recv(std::chrono::milliseconds(500)));
    other.sendTo(s->localPort);
    REQUIRE(other.recv(std::chrono::milliseconds(2000)));
    phone.flush();
    sdp2.flush();
    auto atOther = other.collect(std::chrono::milliseconds(200));
    CHECK((atOther.size() >= 5 || !calm(player)));
    CHECK_FALSE(phone.recv(std::chrono::milliseconds(0)));
    CHECK_FALSE(sdp2.recv(std::chrono::milliseconds(0)));
    CHECK(player.stats(s->id)->latches == 2);
    CHECK(player.stats(s->id)->latchedPort == other.port);
}

TEST_CASE("MohPlayer pre-latch: the SDP address gets at most moh_prelatch_ms of music, then nothing until a latch") {
    Receiver sdp, phone;
    MohPlayer player;
    std::string err;
    CHECK(player.prelatchMs() == MohPlayer::kDefaultPrelatchMs);
    player.setPrelatchMs(190); // rounded up to whole 20 ms packets: 10
    const uint16_t base = freeRange(21);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 20), "", &err));
    auto s = player.add("127.0.0.1", sdp.port, 0, &err);
    REQUIRE(s);
    auto got = sdp.collect(std::chrono::milliseconds(600));
    REQUIRE(got.size() == 10);
    // Ten packets in a row, paced at 20 ms: about 180 ms from the first to the last.
    CHECK((std::chrono::duration<double>(got.back().at - got.front().at).count() < 0.4 || !calm(player)));
    CHECK_FALSE(sdp.recv(std::chrono::milliseconds(200))); // stopped, not slowed down
    auto st = player.stats(s->id);
    CHECK(st->prelatchSent == 10);
    CHECK(st->packetsSent == 10);
    CHECK_FALSE(st->latched);
    // Still listening: the party's first packet starts the music where it came from; the RTP sequence goes
    // on from the last packet sent (RFC 3550 §5.1: one per packet sent).
    phone.sendTo(s->localPort);
    auto p = phone.recv(std::chrono::milliseconds(2000));
    REQUIRE(p);
    CHECK(be16(&p->data[2]) == static_cast<uint16_t>(be16(&got.back().data[2]) + 1));
    CHECK(be32(&p->data[4]) > be32(&got.back().data[4]) + 160); // the media clock ran meanwhile
    // A new SDP destination does not renew the allowance (it is per stream): nothing goes to it.
    Receiver sdp2;
    REQUIRE(player.setRemote(s->id, "127.0.0.1", sdp2.port, 0));
    CHECK_FALSE(sdp2.recv(std::chrono::milliseconds(200)));
    CHECK(player.stats(s->id)->prelatchSent == 10);

    SECTION("0 = nothing before a latch") {
        Receiver x, y;
        player.setPrelatchMs(0);
        auto s0 = player.add("127.0.0.1", x.port, 0, &err);
        REQUIRE(s0);
        CHECK_FALSE(x.recv(std::chrono::milliseconds(200)));
        y.sendTo(s0->localPort);
        REQUIRE(y.recv(std::chrono::milliseconds(2000)));
        CHECK_FALSE(x.recv(std::chrono::milliseconds(0)));
        CHECK(player.stats(s0->id)->prelatchSent == 0);
    }
    SECTION("unlimited (-1) = the SDP address until a latch") {
        Receiver x;
        player.setPrelatchMs(-1);
        CHECK(player.prelatchMs() == MohPlayer::kPrelatchUnlimited);
        auto s1 = player.add("127.0.0.1", x.port, 0, &err);
        REQUIRE(s1);
        CHECK(x.collect(std::chrono::milliseconds(400)).size() >= 15);
    }
}

TEST_CASE("MohPlayer latch: a packet from a foreign IP is counted and ignored, the signalling source IP may latch") {
    Receiver sdp;                   // the SDP says 127.0.0.1
    Receiver stranger("127.0.0.2"); // another host
    MohPlayer player;
    std::string err;
    player.setPrelatchMs(60000);
    const uint16_t base = freeRange(21);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 20), "", &err));
    auto s = player.add("127.0.0.1", sdp.port, 0, &err);
    REQUIRE(s);
    for (int i = 0; i < 3; ++i)
        stranger.sendTo(s->localPort);
    REQUIRE(waitFor([&] { return player.stats(s->id)->packetsForeign == 3; }));
    CHECK_FALSE(stranger.recv(std::chrono::milliseconds(150)));
    auto st = player.stats(s->id);
    CHECK_FALSE(st->latched);
    CHECK(st->latches == 0);
    CHECK_THAT(st->lastForeignSource, Catch::StartsWith("127.0.0.2:" + std::to_string(stranger.port)));
    sdp.flush();
    REQUIRE(sdp.recv(std::chrono::milliseconds(500))); // the music still goes to the SDP address

    // Not RTP, even from the SDP's own IP: no latch either.
    Receiver junk;
    junk.sendTo(s->localPort, "hello");
    REQUIRE(waitFor([&] { return player.stats(s->id)->packetsNotRtp == 1; }));
    CHECK_FALSE(player.stats(s->id)->latched);
    CHECK_FALSE(junk.recv(std::chrono::milliseconds(100)));

    // 127.0.0.2 is where the party's SIP comes from (a phone behind NAT, its SDP naming a private address):
    // now its RTP latches.
    CHECK_FALSE(player.setSignalingSource(s->id, "udp:pbx.example.net:5060"));
    CHECK_FALSE(player.setSignalingSource(9999, "udp:127.0.0.2:5060"));
    REQUIRE(player.setSignalingSource(s->id, "udp:127.0.0.2:5060"));
    CHECK(player.stats(s->id)->signalingIp == "127.0.0.2");
    stranger.sendTo(s->localPort);
    REQUIRE(stranger.recv(std::chrono::milliseconds(2000)));
    st = player.stats(s->id);
    CHECK(st->latched);
    CHECK(st->latchedIp == "127.0.0.2");
    CHECK(st->packetsForeign == 3);

    // The party's signalling moves to another IP: a latch on an IP that may no longer latch is dropped.
    REQUIRE(player.setSignalingSource(s->id, "udp:127.0.0.3:5060"));
    CHECK_FALSE(player.stats(s->id)->latched);
    stranger.flush();
    REQUIRE(sdp.recv(std::chrono::milliseconds(500)));
    CHECK_FALSE(stranger.recv(std::chrono::milliseconds(100)));
}

TEST_CASE("MohPlayer: an SDP naming the party's own SIP source IP gets music without a latch and without a bound") {
    // A phone that honours our a=sendonly answer sends no RTP (RFC 3264 §6.1), so it never latches; when its SDP
    // names the host its SIP comes from there is nobody else to reflect to, and the music keeps playing.
    Receiver sdp;
    MohPlayer player;
    std::string err;
    player.setPrelatchMs(0); // nothing before a latch to a third-party address
    const uint16_t base = freeRange(21);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 20), "", &err));
    auto s = player.add("127.0.0.1", sdp.port, 0, &err);
    REQUIRE(s);
    CHECK_FALSE(sdp.recv(std::chrono::milliseconds(200))); // SIP source unknown: a third party for all we know
    REQUIRE(player.setSignalingSource(s->id, "udp:127.0.0.1:5062"));
    CHECK(sdp.collect(std::chrono::milliseconds(400)).size() >= 15);
    CHECK_FALSE(player.stats(s->id)->latched);
    // the party's SIP moves to another host: the SDP address is a third party again, bounded (here: 0)
    REQUIRE(player.setSignalingSource(s->id, "udp:127.0.0.2:5062"));
    sdp.flush();
    CHECK(sdp.collect(std::chrono::milliseconds(300)).size() <= 1);
}

// ---------------------------------------------------------------- at scale: shared ports, batched sends

namespace {
struct Rtp {
    uint16_t seq;
    uint32_t ts, ssrc;
    int pt;
};
Rtp rtpOf(const std::vector<uint8_t> &d) {
    REQUIRE(d.size() >= 12);
    return {be16(&d[2]), be32(&d[4]), be32(&d[8]), d[1] & 0x7F};
}
// What arrives at each receiver within `window`, timed as it arrives.
std::vector<std::vector<Receiver::Packet>> collectAll(std::vector<Receiver *> rx, std::chrono::milliseconds window) {
    std::vector<std::vector<Receiver::Packet>> out(rx.size());
    std::vector<pollfd> fds;
    for (auto *r : rx)
        fds.push_back({r->fd, POLLIN, 0});
    for (auto end = Clock::now() + window; Clock::now() < end;) {
        if (::poll(fds.data(), fds.size(), 5) <= 0)
            continue;
        for (size_t i = 0; i < rx.size(); ++i)
            if (fds[i].revents & POLLIN)
                if (auto p = rx[i]->recv(std::chrono::milliseconds(0)))
                    out[i].push_back(std::move(*p));
    }
    return out;
}
} // namespace

TEST_CASE("MohPlayer streams per port: N streams take ceil(N/K) sockets, each stream its own SSRC") {
    MohPlayer player;
    std::string err;
    CHECK(player.streamsPerPort() == 1); // the player's default: a port per stream
    CHECK_FALSE(player.setStreamsPerPort(0));
    CHECK_FALSE(player.setStreamsPerPort(MohPlayer::kMaxStreamsPerPort + 1));
    REQUIRE(player.setStreamsPerPort(8));
    const uint16_t base = freeRange(201);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 200), "", &err));
    CHECK_FALSE(player.setStreamsPerPort(4)); // not while running
    std::vector<uint64_t> ids;
    std::set<uint16_t> ports;
    std::set<uint32_t> ssrcs;
    for (int i = 0; i < 20; ++i) {
        auto s = player.add("127.0.0.1", static_cast<uint16_t>(9000 + 2 * i), i % 2 ? 8 : 0, &err);
        INFO(err);
        REQUIRE(s);
        CHECK(s->localPort % 2 == 0);
        ids.push_back(s->id);
        ports.insert(s->localPort);
        ssrcs.insert(player.stats(s->id)->ssrc);
    }
    CHECK(ports.size() == 3); // ceil(20 / 8)
    CHECK(player.playerStats().sockets == 3);
    CHECK(player.playerStats().streams == 20);
    CHECK(ssrcs.size() == 20);
    // The last stream of a port closes its socket; a freed place on a port is taken before a new port opens.
    for (int i = 0; i < 8; ++i)
        REQUIRE(player.remove(ids[i]));
    CHECK(player.playerStats().sockets == 2);
    auto again = player.add("127.0.0.1", 9100, 0, &err);
    REQUIRE(again);
    CHECK(player.playerStats().sockets == 2);
    // A restored stream gets its old port back when it has room (no re-INVITE needed).
    auto back = player.add("127.0.0.1", 9102, 0, &err, *ports.begin());
    REQUIRE(back);
    CHECK(back->localPort == *ports.begin());
    player.stop();
    CHECK(player.playerStats().sockets == 0);
}

TEST_CASE("MohPlayer streams per port: a party's SIP source IP spreads its streams over ports while it can") {
    MohPlayer player;
    std::string err;
    REQUIRE(player.setStreamsPerPort(4));
    const uint16_t base = freeRange(5);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 4), "", &err)); // 3 ports
    auto a = player.add("0.0.0.0", 0, 0, &err, 0, nullptr, "udp:127.0.0.7:5060");
    REQUIRE(a);
    REQUIRE(player.setSignalingSource(a->id, "udp:127.0.0.7:5060"));
    auto other = player.add("0.0.0.0", 0, 0, &err, 0, nullptr, "udp:127.0.0.8:5060");
    REQUIRE(other);
    CHECK(other->localPort == a->localPort); // another party: fill the port
    auto b = player.add("0.0.0.0", 0, 0, &err, 0, nullptr, "udp:127.0.0.7:5061");
    REQUIRE(b);
    CHECK(b->localPort != a->localPort); // the same NAT: another port
}

TEST_CASE("MohPlayer shared port: every stream paced at 20 ms, seq +1, timestamp +160, its own loop audio") {
    // A loop of 1000 samples (6.25 packets): payloads wrap inside a packet.
    std::string wav = tempPath("shared.wav");
    writeWav(wav, 1, 1, 8000, 16, 1000);
    auto audio = loadHoldAudio(wav);
    REQUIRE(audio);
    Receiver ru, ra, rg;
    MohPlayer player;
    std::string err;
    REQUIRE(player.setStreamsPerPort(16));
    const uint16_t base = freeRange(21);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 20), wav, &err));
    auto su = player.add("127.0.0.1", ru.port, 0, &err);
    auto sa = player.add("127.0.0.1", ra.port, 8, &err);
    auto sg = player.add("127.0.0.1", rg.port, 9, &err);
    REQUIRE((su && sa && sg));
    CHECK((su->localPort == sa->localPort && sa->localPort == sg->localPort));
    CHECK(player.playerStats().sockets == 1);
    auto all = collectAll({&ru, &ra, &rg}, std::chrono::milliseconds(1100));
    auto &pu = all[0], &pa = all[1], &pg = all[2];
    const bool skipped = player.playerStats().ticksSkipped > 0; // a stall of this (shared) machine
    INFO("ticks skipped: " << player.playerStats().ticksSkipped);
    for (auto *pk : {&pu, &pa, &pg}) {
        REQUIRE(pk->size() >= 10);
        CHECK(pk->size() <= 62); // 20 ms pacing: ~55 in 1.1 s (10 ms would be ~110)
        if (!skipped)
            CHECK(pk->size() >= 45); // (40 ms would be ~28)
        // The RTP clock (8000 Hz, +160 a packet) keeps up with the wall clock: packets every 20 ms on average,
        // whatever the load (a skipped tick advances the timestamp; a 10 or 40 ms pacing would not keep up).
        double secs = std::chrono::duration<double>(pk->back().at - pk->front().at).count();
        double rtpSecs = (rtpOf(pk->back().data).ts - rtpOf(pk->front().data).ts) / 8000.0;
        CHECK(std::abs(secs - rtpSecs) < 0.1);
        CHECK(secs > 0.7);
        for (size_t i = 1; i < pk->size(); ++i) {
            Rtp a = rtpOf((*pk)[i - 1].data), b = rtpOf((*pk)[i].data);
            CHECK(static_cast<uint16_t>(a.seq + 1) == b.seq);
            CHECK(a.ssrc == b.ssrc);
            if (!skipped)
                CHECK(a.ts + 160 == b.ts);
        }
    }
    CHECK(rtpOf(pu[0].data).ssrc != rtpOf(pa[0].data).ssrc);
    // The payloads are the loop, encoded per codec, continuing across packets and the loop's end.
    const size_t n = audio->size();
    auto g722 = encodeG722Loop(*audio);
    for (auto [pk, pt] : {std::pair{&pu, 0}, std::pair{&pa, 8}, std::pair{&pg, 9}}) {
        size_t pos = 0; // every stream starts at the top of the loop
        uint32_t ts0 = rtpOf((*pk)[0].data).ts;
        for (auto &p : *pk) {
            REQUIRE(p.data.size() == 172);
            CHECK(rtpOf(p.data).pt == pt);
            pos = (rtpOf(p.data).ts - ts0) % n; // the audio follows the timestamp
            for (size_t i = 0; i < 160; ++i) {
                size_t at = (pos + i) % n;
                uint8_t want = pt == 0 ? linearToUlaw((*audio)[at]) : pt == 8 ? linearToAlaw((*audio)[at]) : g722[at];
                if (p.data[12 + i] != want)
                    FAIL("payload type " << pt << " byte " << i << " at loop position " << at);
            }
        }
    }
    // PCMU decodes back to the loop audio (G.711 is lossy only in the low bits).
    const size_t pos1 = (rtpOf(pu[1].data).ts - rtpOf(pu[0].data).ts) % n;
    CHECK(std::abs(ulawToLinear(pu[1].data[12]) - (*audio)[pos1]) <= 8);
    std::remove(wav.c_str());
}

TEST_CASE("MohPlayer shared port: remove() stops that stream at once, the others play on") {
    Receiver r1, r2;
    MohPlayer player;
    std::string err;
    REQUIRE(player.setStreamsPerPort(4));
    const uint16_t base = freeRange(11);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 10), "", &err));
    auto s1 = player.add("127.0.0.1", r1.port, 0, &err);
    auto s2 = player.add("127.0.0.1", r2.port, 0, &err);
    REQUIRE((s1 && s2));
    REQUIRE(s1->localPort == s2->localPort);
    REQUIRE(r1.recv(std::chrono::milliseconds(500)));
    REQUIRE(player.remove(s1->id));
    r1.flush(); // what left before remove() returned
    CHECK(r1.collect(std::chrono::milliseconds(200)).empty());
    r2.flush();
    CHECK(r2.collect(std::chrono::milliseconds(400)).size() >= 5);
    CHECK(player.playerStats().sockets == 1);
}

TEST_CASE("MohPlayer shared port latching: each source latches its own stream, an ambiguous one latches nothing") {
    Receiver phoneA("127.0.0.2"), phoneB("127.0.0.3"), natX("127.0.0.4"), natY("127.0.0.4"), stranger("127.0.0.9");
    MohPlayer player;
    std::string err;
    player.setPrelatchMs(0); // the SDP addresses (127.0.0.5, nobody) get nothing: only a latch brings music
    REQUIRE(player.setStreamsPerPort(8));
    const uint16_t base = freeRange(11);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 10), "", &err));
    auto a = player.add("127.0.0.5", 4000, 0, &err);
    REQUIRE(a);
    const uint16_t port = a->localPort;
    auto add = [&](uint16_t sdpPort, int pt, const char *sig) {
        auto s = player.add("127.0.0.5", sdpPort, pt, &err, port);
        REQUIRE(s);
        REQUIRE(s->localPort == port);
        REQUIRE(player.setSignalingSource(s->id, sig));
        return s->id;
    };
    REQUIRE(player.setSignalingSource(a->id, "udp:127.0.0.2:5060"));
    uint64_t b = add(4002, 0, "udp:127.0.0.3:5060");
    uint64_t c = add(4004, 0, "udp:127.0.0.4:5060"); // c and d: two phones behind one NAT, both PCMU
    uint64_t d = add(4006, 0, "udp:127.0.0.4:5060");
    // Two sources, two streams on one port: each latches to its own.
    phoneB.sendTo(port);
    phoneA.sendTo(port);
    REQUIRE(waitFor([&] { return player.stats(a->id)->latched && player.stats(b)->latched; }));
    CHECK(player.stats(a->id)->latchedPort == phoneA.port);
    CHECK(player.stats(b)->latchedPort == phoneB.port);
    auto pa = phoneA.recv(std::chrono::milliseconds(500));
    auto pb = phoneB.recv(std::chrono::milliseconds(500));
    REQUIRE((pa && pb));
    CHECK(rtpOf(pa->data).ssrc == player.stats(a->id)->ssrc);
    CHECK(rtpOf(pb->data).ssrc == player.stats(b)->ssrc);
    // More packets from a latched source stay with its stream.
    phoneA.sendTo(port);
    REQUIRE(waitFor([&] { return player.stats(a->id)->packetsReceived == 2; }));

    // 127.0.0.4 may latch c and d alike, same payload type: nothing latches; the packet is counted.
    natX.sendTo(port);
    REQUIRE(waitFor([&] { return player.playerStats().packetsAmbiguous == 1; }));
    CHECK_FALSE(player.stats(c)->latched);
    CHECK_FALSE(player.stats(d)->latched);
    CHECK_FALSE(natX.recv(std::chrono::milliseconds(150)));
    // A stranger latches nothing either (counted as foreign on the shared port).
    stranger.sendTo(port);
    REQUIRE(waitFor([&] { return player.playerStats().packetsForeign == 1; }));
    // The payload type tells them apart once d moves to PCMA (its SDP changed).
    REQUIRE(player.setRemote(d, "127.0.0.5", 4006, 8));
    natY.sendTo(port, std::string_view("\x80\x08\x00\x01\0\0\0\0\0\0\0\x07", 12));
    REQUIRE(waitFor([&] { return player.stats(d)->latched; }));
    CHECK(player.stats(d)->latchedPort == natY.port);
    CHECK_FALSE(player.stats(c)->latched);
    // Now c is the only one 127.0.0.4 may still latch.
    natX.sendTo(port);
    REQUIRE(waitFor([&] { return player.stats(c)->latched; }));
    CHECK(player.stats(c)->latchedPort == natX.port);
    // An exact SDP address:port beats the IP rule: e's SDP names natZ's very socket.
    Receiver natZ("127.0.0.4");
    auto e = player.add("127.0.0.4", natZ.port, 0, &err, port);
    REQUIRE(e);
    uint64_t f = add(4010, 0, "udp:127.0.0.4:5060");
    natZ.sendTo(port);
    REQUIRE(waitFor([&] { return player.stats(e->id)->latched; }));
    CHECK_FALSE(player.stats(f)->latched);
}

TEST_CASE("MohPlayer after a stall: missed ticks are skipped, no burst, timestamps follow real time") {
    Receiver rx;
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(11);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 10), "", &err));
    auto s = player.add("127.0.0.1", rx.port, 0, &err);
    REQUIRE(s);
    auto before = rx.recv(std::chrono::milliseconds(500));
    REQUIRE(before);
    // Stall the sender for 400 ms (as an overloaded machine or a long sendmmsg would): 20 ticks missed.
    const uint64_t skippedBefore = player.playerStats().ticksSkipped;
    player.stallForTest(400);
    auto pk = rx.collect(std::chrono::milliseconds(300));
    REQUIRE(pk.size() >= 3);
    CHECK(player.playerStats().ticksSkipped >= skippedBefore + 15);
    // No burst: ~15 packets in 300 ms (plus what was in flight), not the 20 missed ones on top.
    CHECK(pk.size() <= 15 + 5);
    // The timestamp of the last packet is where the wall clock is (not 20 ticks behind).
    double wall = std::chrono::duration<double>(pk.back().at - before->at).count();
    double rtp = (rtpOf(pk.back().data).ts - rtpOf(before->data).ts) / 8000.0;
    CHECK(std::abs(wall - rtp) < 0.1);
    // The sequence number counts packets sent: +1 each, no gap where the ticks were skipped.
    CHECK(static_cast<uint16_t>(rtpOf(pk.back().data).seq - rtpOf(before->data).seq) == pk.size());
}

TEST_CASE("MohPlayer with a busy sender: a SIP-thread call waits for one chunk, not for the end of the tick") {
    Receiver rx; // the music goes there, unread
    MohPlayer player;
    std::string err;
    const uint16_t base = freeRange(41);
    REQUIRE(player.start("127.0.0.1", base, static_cast<uint16_t>(base + 40), "", &err)); // a port per stream
    std::vector<uint64_t> ids;
    for (int i = 0; i < 16; ++i) {
        auto s = player.add("127.0.0.1", rx.port, 0, &err);
        REQUIRE(s);
        ids.push_back(s->id);
    }
    // 16 chunks of one packet a tick, each holding the lock 1.1 ms: the sender holds it ~90 % of every 20 ms, as
    // with thousands of streams.
    player.holdChunksForTest(1100, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    std::mt19937 rng{7};
    uint64_t waited = 0;
    constexpr int kCalls = 30;
    for (int i = 0; i < kCalls; ++i) {
        // at a different instant of the tick each time
        std::this_thread::sleep_for(std::chrono::microseconds(1000 + rng() % 19000));
        const uint64_t before = player.chunksForTest();
        CHECK(player.setRemote(ids[size_t(i) % ids.size()], "127.0.0.1", rx.port, i % 2 ? 8 : 0));
        waited += player.chunksForTest() - before;
    }
    player.holdChunksForTest(0, 0);
    // The sender hands the lock over between two chunks: a call waits for the chunk in progress at most (and may
    // read the counter one chunk late). Without that it got the lock when the tick ended, 8 chunks later on average.
    INFO("chunks sent while " << kCalls << " calls waited for the lock: " << waited);
    CHECK(waited <= uint64_t(kCalls) * 2);
}

TEST_CASE("MohPlayer idle sockets: a port left by its last stream stays bound and is reused with its queue emptied") {
    MohPlayer player;
    std::string err;
    const uint16_t b = freeRange(4); // even ports b and b+2
    const uint16_t first = b, second = static_cast<uint16_t>(b + 2);
    REQUIRE(player.start("127.0.0.1", first, second, "", &err));
    Receiver phone;
    auto s1 = player.add("127.0.0.1", phone.port, 0, &err);
    REQUIRE(s1);
    REQUIRE(s1->localPort == first);
    REQUIRE(player.remove(s1->id));
    CHECK(player.playerStats().sockets == 0); // no stream on it: not counted as in use
    // Still ours (idle, kept for the next stream): nobody else can bind it meanwhile.
    int other = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(first);
    CHECK(::bind(other, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0);
    ::close(other);
    // Late RTP of the call that left reaches the idle port.
    for (int i = 0; i < 3; ++i)
        phone.sendTo(first);
    // Just left: a new stream takes another port while one is free ...
    auto s2 = player.add("127.0.0.1", 9, 0, &err);
    REQUIRE(s2);
    CHECK(s2->localPort == second);
    // ... and the idle one once the range has nothing else, without what queued there meanwhile: that RTP is the
    // old call's and must neither latch the new stream nor count as its own.
    auto s3 = player.add("127.0.0.1", 9, 0, &err);
    REQUIRE(s3);
    CHECK(s3->localPort == first);
    CHECK(player.playerStats().sockets == 2);
    ::usleep(300 * 1000); // the player drains a stream waiting for its latch every 100 ms
    auto st = player.stats(s3->id);
    REQUIRE(st);
    CHECK(st->packetsReceived == 0);
    CHECK_FALSE(st->latched);
    // Its own party's RTP after the takeover does latch it.
    phone.sendTo(first);
    REQUIRE(waitFor([&] { return player.stats(s3->id)->latched; }));
    CHECK(player.stats(s3->id)->latchedPort == phone.port);
    player.stop();
}
