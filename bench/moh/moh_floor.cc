// The kernel floor of the music-on-hold benchmark (bench/moh/bench_moh.py; not a test).
//
//   bench_moh_floor --streams N --per-port K --to P1,P2,...
//
// Sends what N parked calls with music would get, and nothing else: every 20 ms, one 172-byte RTP packet (PCMU,
// 160 samples; RFC 3550 §5.1 header of 12 bytes) per stream to 127.0.0.1 at the listed ports (stream i to port
// i mod count), K streams per bound UDP socket, one sendmmsg per socket and tick, each message from two iovecs
// (header, payload) as the daemon's player builds them. No SIP, no locks, no per-stream state beyond the header:
// what this costs is what the system calls and the kernel's UDP path cost on this machine, the least any sender
// of these packets through sockets pays. bench_moh.py reads this process's CPU time from /proc like the daemon's
// and compares the two per packet. Runs until stdin closes (or a line "quit").
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kPayload = 160; // 20 ms of PCMU at 8 kHz
constexpr int64_t kTickNs = 20'000'000;

struct Stream {
    uint8_t hdr[12];
    uint16_t seq = 0;
    uint32_t ts = 0;
    sockaddr_in to{};
};

void put16(uint8_t *p, uint16_t v) {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
void put32(uint8_t *p, uint32_t v) {
    put16(p, uint16_t(v >> 16));
    put16(p + 2, uint16_t(v));
}

std::vector<uint16_t> parsePorts(const std::string &list) {
    std::vector<uint16_t> out;
    for (size_t at = 0; at < list.size();) {
        size_t comma = list.find(',', at);
        out.push_back(uint16_t(std::atoi(list.substr(at, comma - at).c_str())));
        at = comma == std::string::npos ? list.size() : comma + 1;
    }
    return out;
}

int boundSocket() {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        std::perror("bench_moh_floor: socket");
        std::exit(1);
    }
    return fd;
}

// One tick: every socket sends its streams' packets in one sendmmsg (the daemon's player sends one port's in one).
void tick(std::vector<Stream> &streams, const std::vector<int> &fds, size_t perPort, const uint8_t *payload) {
    std::vector<mmsghdr> m(perPort);
    std::vector<iovec> iov(2 * perPort);
    for (size_t f = 0; f < fds.size(); ++f) {
        size_t first = f * perPort, n = std::min(perPort, streams.size() - first);
        for (size_t i = 0; i < n; ++i) {
            Stream &s = streams[first + i];
            put16(s.hdr + 2, ++s.seq);
            put32(s.hdr + 4, s.ts += kPayload);
            iov[2 * i] = {s.hdr, sizeof s.hdr};
            iov[2 * i + 1] = {const_cast<uint8_t *>(payload), kPayload};
            m[i] = {};
            m[i].msg_hdr.msg_name = &s.to;
            m[i].msg_hdr.msg_namelen = sizeof s.to;
            m[i].msg_hdr.msg_iov = &iov[2 * i];
            m[i].msg_hdr.msg_iovlen = 2;
        }
        sendmmsg(fds[f], m.data(), unsigned(n), MSG_DONTWAIT);
    }
}

} // namespace

int main(int argc, char **argv) {
    size_t count = 0, perPort = 16;
    std::vector<uint16_t> ports;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--streams")
            count = size_t(std::atol(v.c_str()));
        else if (k == "--per-port")
            perPort = std::max<size_t>(1, size_t(std::atol(v.c_str())));
        else if (k == "--to")
            ports = parsePorts(v);
    }
    if (!count || ports.empty()) {
        std::fprintf(stderr, "usage: bench_moh_floor --streams N --per-port K --to P1,P2,...\n");
        return 2;
    }
    std::vector<Stream> streams(count);
    for (size_t i = 0; i < count; ++i) {
        Stream &s = streams[i];
        std::memset(s.hdr, 0, sizeof s.hdr);
        s.hdr[0] = 0x80; // version 2, PT 0 (PCMU)
        put32(s.hdr + 8, uint32_t(0x5000'0000u + i));
        s.to.sin_family = AF_INET;
        s.to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s.to.sin_port = htons(ports[i % ports.size()]);
    }
    std::vector<int> fds((count + perPort - 1) / perPort);
    for (int &fd : fds)
        fd = boundSocket();
    std::printf("sockets %zu\n", fds.size());
    std::fflush(stdout);
    std::atomic<bool> stop{false};
    std::thread watcher([&] {
        std::string line;
        while (std::getline(std::cin, line) && line != "quit") {
        }
        stop = true;
    });
    static const uint8_t payload[kPayload] = {0xff}; // PCMU silence is 0xff; the rest 0: content does not matter
    timespec next{};
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!stop.load()) {
        tick(streams, fds, perPort, payload);
        next.tv_nsec += kTickNs; // an absolute 20 ms clock, as the player's: no drift
        if (next.tv_nsec >= 1'000'000'000) {
            next.tv_nsec -= 1'000'000'000;
            ++next.tv_sec;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    }
    watcher.join();
    for (int fd : fds)
        close(fd);
    return 0;
}
