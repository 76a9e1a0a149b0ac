// The receiving end of the music-on-hold benchmark (bench/moh/bench_moh.py; not a test).
//
//   bench_moh_receiver [--sockets 8]
//
// Binds that many UDP sockets on 127.0.0.1 (ephemeral ports) and prints "ports P1 P2 ..." on stdout. Then reads
// commands on stdin, one a line:
//   count          -> "streams N packets M": RTP streams (SSRCs) seen so far and packets received
//   measure SECS   -> measures for SECS seconds, then prints one "result ..." line (below)
//   quit / EOF     -> exits
// Datagrams are read with recvmmsg in batches, every socket in one epoll loop on one thread, and timed by the
// kernel at reception (SO_TIMESTAMPNS), so the figures do not depend on when this process got the CPU. Streams
// are told apart by SSRC (RFC 3550 §8), whichever socket they reach. Per stream it records the gaps between
// consecutive packets; jitter = |gap - 20 ms|. Loss = packets the RTP sequence numbers say were sent but never
// arrived.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr unsigned kBatch = 64;
constexpr size_t kBytes = 64;      // the RTP fixed header is all we read
constexpr int64_t kBinNs = 10'000; // jitter histogram: 10 µs bins
constexpr size_t kBins = 100'000;  // up to 1 s

struct Stream {
    int64_t lastNs = 0;
    uint16_t lastSeq = 0;
    uint64_t received = 0, expected = 0;
};

struct Stats {
    std::unordered_map<uint32_t, Stream> streams;
    std::vector<uint64_t> jitter = std::vector<uint64_t>(kBins, 0);
    uint64_t packets = 0, gaps = 0;
    bool measuring = false;
};

std::mutex mu;
Stats stats;
std::atomic<bool> stop{false};

int64_t toNs(const timespec &t) {
    return int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

double cpuSeconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void account(const unsigned char *p, size_t n, int64_t at) {
    if (n < 12 || (p[0] >> 6) != 2)
        return;
    uint16_t seq = static_cast<uint16_t>(p[2] << 8 | p[3]);
    uint32_t ssrc = uint32_t(p[8]) << 24 | uint32_t(p[9]) << 16 | uint32_t(p[10]) << 8 | p[11];
    ++stats.packets;
    Stream &s = stats.streams[ssrc];
    if (s.lastNs && stats.measuring) {
        int64_t jit = std::llabs(at - s.lastNs - 20'000'000);
        ++stats.jitter[std::min<size_t>(kBins - 1, size_t(jit / kBinNs))];
        ++stats.gaps;
        s.expected += static_cast<uint16_t>(seq - s.lastSeq);
        ++s.received;
    }
    s.lastNs = at;
    s.lastSeq = seq;
}

void loop(const std::vector<int> &fds) {
    int ep = epoll_create1(0);
    for (int fd : fds) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    static unsigned char bufs[kBatch][kBytes];
    static char ctl[kBatch][CMSG_SPACE(sizeof(timespec))];
    iovec iov[kBatch];
    mmsghdr m[kBatch];
    epoll_event evs[64];
    while (!stop.load()) {
        int n = epoll_wait(ep, evs, 64, 100);
        for (int e = 0; e < n; ++e) {
            for (;;) {
                for (unsigned i = 0; i < kBatch; ++i) {
                    iov[i] = {bufs[i], kBytes};
                    m[i] = {};
                    m[i].msg_hdr.msg_iov = &iov[i];
                    m[i].msg_hdr.msg_iovlen = 1;
                    m[i].msg_hdr.msg_control = ctl[i];
                    m[i].msg_hdr.msg_controllen = sizeof ctl[i];
                }
                int got = recvmmsg(evs[e].data.fd, m, kBatch, MSG_DONTWAIT, nullptr);
                if (got <= 0)
                    break;
                std::lock_guard<std::mutex> lock(mu);
                for (int i = 0; i < got; ++i) {
                    int64_t at = 0;
                    for (cmsghdr *c = CMSG_FIRSTHDR(&m[i].msg_hdr); c; c = CMSG_NXTHDR(&m[i].msg_hdr, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
                            timespec t;
                            std::memcpy(&t, CMSG_DATA(c), sizeof t);
                            at = toNs(t);
                        }
                    account(bufs[i], m[i].msg_len, at);
                }
                if (got < int(kBatch))
                    break;
            }
        }
    }
}

double percentileMs(const std::vector<uint64_t> &h, uint64_t total, double q) {
    uint64_t want = static_cast<uint64_t>(q * double(total)), seen = 0;
    for (size_t i = 0; i < h.size(); ++i) {
        seen += h[i];
        if (seen > want)
            return double(i) * kBinNs / 1e6;
    }
    return double(h.size()) * kBinNs / 1e6;
}

void measure(double secs) {
    {
        std::lock_guard<std::mutex> lock(mu);
        std::fill(stats.jitter.begin(), stats.jitter.end(), 0);
        stats.gaps = 0;
        for (auto &[ssrc, s] : stats.streams)
            s.received = s.expected = 0;
        stats.packets = 0;
        stats.measuring = true;
    }
    double cpu0 = cpuSeconds();
    timespec t0{};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    std::this_thread::sleep_for(std::chrono::duration<double>(secs));
    timespec t1{};
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = double(toNs(t1) - toNs(t0)) / 1e9;
    double cpu = cpuSeconds() - cpu0;
    std::lock_guard<std::mutex> lock(mu);
    stats.measuring = false;
    uint64_t received = 0, expected = 0;
    size_t active = 0;
    for (auto &[ssrc, s] : stats.streams) {
        received += s.received;
        expected += s.expected;
        active += s.received > 0;
    }
    double loss = expected ? 100.0 * double(expected - std::min(expected, received)) / double(expected) : 0;
    std::printf("result streams %zu packets_per_s %.0f jitter_p50_ms %.3f jitter_p99_ms %.3f jitter_max_ms %.3f "
                "loss_pct %.4f receiver_cpu_pct %.1f\n",
                active, double(stats.packets) / wall, percentileMs(stats.jitter, stats.gaps, 0.50),
                percentileMs(stats.jitter, stats.gaps, 0.99), percentileMs(stats.jitter, stats.gaps, 1.0), loss,
                100.0 * cpu / wall);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char **argv) {
    int sockets = 8;
    for (int i = 1; i + 1 < argc; ++i)
        if (std::string(argv[i]) == "--sockets")
            sockets = std::max(1, std::atoi(argv[++i]));
    std::vector<int> fds;
    std::string line = "ports";
    for (int i = 0; i < sockets; ++i) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        int big = 32 << 20, on = 1;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big) == 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
            std::perror("bench_moh_receiver: bind");
            return 1;
        }
        socklen_t len = sizeof a;
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
        line += " " + std::to_string(ntohs(a.sin_port));
        fds.push_back(fd);
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    std::thread rx([&] { loop(fds); });
    std::string cmd;
    while (std::getline(std::cin, cmd)) {
        if (cmd == "quit")
            break;
        if (cmd == "count") {
            std::lock_guard<std::mutex> lock(mu);
            std::printf("streams %zu packets %" PRIu64 "\n", stats.streams.size(), stats.packets);
            std::fflush(stdout);
        } else if (cmd.rfind("measure ", 0) == 0) {
            measure(std::atof(cmd.c_str() + 8));
        }
    }
    stop = true;
    rx.join();
    for (int fd : fds)
        close(fd);
    return 0;
}
