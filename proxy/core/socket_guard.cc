#include "socket_guard.hh"

#include "overload.hh"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace parkway::proxy {
namespace {

std::mutex gRegistryMutex;
std::vector<SocketGuard *> gGuards; // live guards; accept() looks its listening socket up here

SocketGuard *guardOf(int listenFd) {
    std::lock_guard<std::mutex> lock(gRegistryMutex);
    for (SocketGuard *g : gGuards)
        if (g->guards(listenFd))
            return g;
    return nullptr;
}

SocketGuard *datagramGuardOf(int fd) {
    std::lock_guard<std::mutex> lock(gRegistryMutex);
    for (SocketGuard *g : gGuards)
        if (g->guardsDatagrams(fd))
            return g;
    return nullptr;
}

int64_t steadyMs() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

uint16_t portOf(const sockaddr *sa) {
    if (sa->sa_family == AF_INET)
        return ntohs(reinterpret_cast<const sockaddr_in *>(sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_port);
    return 0;
}

std::string peerKey(const sockaddr *sa) {
    IpKey ip;
    if (!ipKeyOf(sa, ip))
        return {};
    uint16_t port = portOf(sa);
    std::string k(reinterpret_cast<const char *>(ip.b), sizeof ip.b);
    k.push_back(static_cast<char>(port >> 8));
    k.push_back(static_cast<char>(port & 0xff));
    return k;
}

// Reset rather than close politely: a refused or expired connection leaves no TIME_WAIT behind.
void closeHard(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

int socketType(int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 ? v : -1;
}

bool boundToOneOf(int fd, const std::vector<uint16_t> &ports) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0)
        return false;
    return std::find(ports.begin(), ports.end(), portOf(reinterpret_cast<sockaddr *>(&ss))) != ports.end();
}

bool isListener(int fd) {
    int v = 0;
    socklen_t len = sizeof v;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

// The kernel stamps each datagram as it arrives (SO_TIMESTAMPNS), and the receive buffer is made large enough for
// the queue to grow past the overload thresholds (docs/limits.md "Overload") before the kernel drops datagrams
// (Linux's default, about 200 kB, holds a few tens of milliseconds of SIP at full load). Capped by
// net.core.rmem_max.
void measureQueueDelay(int fd) {
    int one = 1, rcvbuf = 4 << 20, cur = 0;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    socklen_t len = sizeof cur;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &cur, &len) == 0 && cur < rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

std::vector<int> openDescriptors() {
    std::vector<int> fds;
    if (DIR *d = opendir("/proc/self/fd")) {
        while (dirent *e = readdir(d)) {
            char *end = nullptr;
            long fd = std::strtol(e->d_name, &end, 10);
            if (end && *end == '\0' && end != e->d_name && fd != dirfd(d))
                fds.push_back(static_cast<int>(fd));
        }
        closedir(d);
    }
    return fds;
}

} // namespace

std::string peerText(const sockaddr *sa) {
    IpKey ip;
    if (!sa || !ipKeyOf(sa, ip))
        return "?";
    std::string t = ip.text();
    if (t.find(':') != std::string::npos)
        t = "[" + t + "]";
    return t + ":" + std::to_string(portOf(sa));
}

SocketGuard::SocketGuard(Settings s, Report report) : s_(std::move(s)), report_(std::move(report)) {
    reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    std::lock_guard<std::mutex> lock(gRegistryMutex);
    gGuards.push_back(this);
}

SocketGuard::~SocketGuard() {
    {
        std::lock_guard<std::mutex> lock(gRegistryMutex);
        gGuards.erase(std::remove(gGuards.begin(), gGuards.end(), this), gGuards.end());
    }
    if (reserveFd_ >= 0)
        ::close(reserveFd_);
}

void SocketGuard::guardSockets(const std::vector<uint16_t> &tcpPorts, const std::vector<uint16_t> &udpPorts) {
    std::vector<int> tcp, udp;
    for (int fd : openDescriptors()) {
        int type = socketType(fd);
        if (type == SOCK_STREAM && isListener(fd) && boundToOneOf(fd, tcpPorts))
            tcp.push_back(fd);
        else if (type == SOCK_DGRAM && boundToOneOf(fd, udpPorts))
            udp.push_back(fd);
    }
    if (timestamps())
        for (int fd : udp)
            measureQueueDelay(fd);
    std::lock_guard<std::mutex> lock(gRegistryMutex);
    listeners_ = tcp;
    datagramSockets_ = udp;
}

void SocketGuard::noteReceiveTime(int64_t realtimeNs) {
    int64_t us = queueDelayUs(realtimeNs);
    if (us >= 0)
        s_.queueDelay(us);
}

bool SocketGuard::guardsDatagrams(int fd) const {
    return std::find(datagramSockets_.begin(), datagramSockets_.end(), fd) != datagramSockets_.end();
}

namespace {

const unsigned char kCookie[4] = {0x21, 0x12, 0xa4, 0x42}; // RFC 5389 §6 magic cookie

// A well-formed RFC 5389 binding request: type 0x0001, a length that matches and is a multiple of 4, the cookie.
bool stunBindingRequest(const unsigned char *d, size_t len) {
    if (len < 20 || d[0] != 0x00 || d[1] != 0x01)
        return false;
    size_t bodyLen = (size_t(d[2]) << 8) | d[3];
    return bodyLen == len - 20 && bodyLen % 4 == 0 && memcmp(d + 4, kCookie, 4) == 0;
}

// RFC 5389 §7.3.1 / §15.2: a binding success response with XOR-MAPPED-ADDRESS (what RFC 5626 §4.4.2 keep-alives
// look at to notice a NAT rebinding).
std::string stunBindingSuccess(const unsigned char *req, const sockaddr *from) {
    std::string attr;
    if (from->sa_family == AF_INET) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(from);
        uint16_t port = ntohs(in->sin_port) ^ 0x2112;
        const auto *a = reinterpret_cast<const unsigned char *>(&in->sin_addr);
        attr = {0x00, 0x20, 0x00, 0x08, 0x00, 0x01, char(port >> 8), char(port & 0xff)};
        for (int i = 0; i < 4; ++i)
            attr.push_back(char(a[i] ^ kCookie[i]));
    } else if (from->sa_family == AF_INET6) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(from);
        uint16_t port = ntohs(in6->sin6_port) ^ 0x2112;
        const auto *a = reinterpret_cast<const unsigned char *>(&in6->sin6_addr);
        attr = {0x00, 0x20, 0x00, 0x14, 0x00, 0x02, char(port >> 8), char(port & 0xff)};
        for (int i = 0; i < 16; ++i)
            attr.push_back(char(a[i] ^ (i < 4 ? kCookie[i] : req[8 + i - 4])));
    }
    std::string out = {0x01, 0x01, char(attr.size() >> 8), char(attr.size() & 0xff)};
    out.append(reinterpret_cast<const char *>(req + 4), 16); // cookie and transaction ID
    return out + attr;
}

} // namespace

// SIP starts with a letter. sofia-sip hands a datagram starting with 0x00/0x01 to its STUN server (which prints
// every request on stderr and answers malformed ones with an error: a reflector) and one with 0xf8..0xff to SigComp.
// So STUN binding requests are answered here, and every other datagram that is not SIP is dropped.
bool SocketGuard::admitDatagram(int fd, const sockaddr *from, const unsigned char *data, size_t len) {
    IpKey ip;
    bool known = ipKeyOf(from, ip);
    if (known && s_.banned && s_.banned(ip)) {
        ++dropped_;
        return false;
    }
    if (!data || len == 0 || (data[0] != 0x00 && data[0] != 0x01 && data[0] < 0xf8))
        return true;
    ++dropped_;
    // a keep-alive never reaches the SIP layer's rate limiter: it is charged here
    if (stunBindingRequest(data, len) && known && (!s_.charge || s_.charge(ip))) {
        std::string resp = stunBindingSuccess(data, from);
        socklen_t fromLen = from->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
        ::sendto(fd, resp.data(), resp.size(), MSG_DONTWAIT, from, fromLen);
    }
    return false;
}

void SocketGuard::closeFrom(const IpKey &ip) {
    std::vector<int> fds;
    for (const auto &[fd, c] : conns_)
        if (c.ip == ip && alive(fd, c))
            fds.push_back(fd);
    for (int fd : fds)
        close(fd, "banned");
}

bool SocketGuard::guards(int listenFd) const {
    return std::find(listeners_.begin(), listeners_.end(), listenFd) != listeners_.end();
}

size_t SocketGuard::connectionsFrom(const IpKey &ip) const {
    auto it = perSource_.find(ip);
    return it == perSource_.end() ? 0 : it->second;
}

bool SocketGuard::alive(int fd, const Conn &c) const {
    struct stat st {};
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == c.inode;
}

void SocketGuard::release(std::unordered_map<int, Conn>::iterator it) {
    auto ps = perSource_.find(it->second.ip);
    if (ps != perSource_.end() && --ps->second == 0)
        perSource_.erase(ps);
    auto bp = byPeer_.find(it->second.key);
    if (bp != byPeer_.end() && bp->second == it->first)
        byPeer_.erase(bp);
    conns_.erase(it);
}

// sofia-sip sees the end of the stream on its next read and closes the transport itself.
void SocketGuard::close(int fd, const char *reason) {
    auto it = conns_.find(fd);
    if (it == conns_.end() || it->second.closing)
        return;
    it->second.closing = true;
    ::shutdown(fd, SHUT_RDWR);
    if (report_)
        report_(reason, it->second.peer);
}

int SocketGuard::admit(int fd, const sockaddr *peer) {
    int64_t nowMs = steadyMs();
    if (auto stale = conns_.find(fd); stale != conns_.end())
        release(stale); // the number was reused
    IpKey ip;
    ipKeyOf(peer, ip);
    bool trusted = s_.trusted.contains(ip);
    auto refusal = [&]() -> const char * {
        if (s_.banned && s_.banned(ip))
            return "banned";
        if (conns_.size() >= s_.maxConnections)
            return "total";
        if (!trusted && connectionsFrom(ip) >= s_.maxPerSource)
            return "per_source";
        return nullptr;
    };
    if (refusal())
        sweepAt(nowMs); // counts may include sockets sofia-sip closed since the last sweep
    if (const char *why = refusal()) {
        closeHard(fd);
        if (report_)
            report_(why, peerText(peer));
        errno = ECONNABORTED;
        return -1;
    }
    struct stat st {};
    fstat(fd, &st);
    Conn c{ip, peerText(peer), peerKey(peer), st.st_ino, nowMs, 0, false};
    byPeer_[c.key] = fd;
    ++perSource_[ip];
    conns_.emplace(fd, std::move(c));
    return fd;
}

void SocketGuard::noteMessage(const sockaddr *peer) {
    if (conns_.empty() || !peer)
        return;
    auto it = byPeer_.find(peerKey(peer));
    if (it == byPeer_.end())
        return;
    auto c = conns_.find(it->second);
    if (c != conns_.end())
        c->second.lastMessageMs = steadyMs();
}

void SocketGuard::sweep() {
    sweepAt(steadyMs());
}

void SocketGuard::sweepAt(int64_t nowMs) {
    for (auto it = conns_.begin(); it != conns_.end();) {
        auto cur = it++;
        Conn &c = cur->second;
        if (!alive(cur->first, c)) {
            release(cur);
        } else if (!c.closing && c.lastMessageMs == 0 && nowMs - c.acceptedMs > s_.firstMessageTimeoutMs) {
            close(cur->first, "first_message_timeout");
        } else if (!c.closing && c.lastMessageMs && nowMs - c.lastMessageMs > s_.idleTimeoutMs) {
            close(cur->first, "idle_timeout");
        }
    }
}

void SocketGuard::shed(int listenFd) {
    if (reserveFd_ >= 0)
        ::close(reserveFd_);
    int s = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC);
    if (s >= 0)
        closeHard(s);
    reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (report_)
        report_("fd_limit", "");
}

} // namespace parkway::proxy

// The program-wide accept(): see socket_guard.hh.
extern "C" int accept(int fd, sockaddr *addr, socklen_t *len) {
    using parkway::proxy::SocketGuard;
    SocketGuard *g = parkway::proxy::guardOf(fd);
    if (!g)
        return ::accept4(fd, addr, len, 0);
    sockaddr_storage ss{};
    socklen_t sl = sizeof ss;
    int s = ::accept4(fd, reinterpret_cast<sockaddr *>(&ss), &sl, 0);
    if (s < 0) {
        if (errno == EMFILE || errno == ENFILE) {
            g->shed(fd);
            errno = ECONNABORTED;
        }
        return -1;
    }
    if (g->admit(s, reinterpret_cast<sockaddr *>(&ss)) < 0)
        return -1;
    if (addr && len) {
        std::memcpy(addr, &ss, std::min<socklen_t>(*len, sl));
        *len = sl;
    }
    return s;
}

// The program-wide recvmsg(): see socket_guard.hh. A datagram from a banned source (or junk that sofia-sip would
// take for STUN) is read and dropped; the caller sees "nothing to read" (EAGAIN), as if it had never arrived.
extern "C" ssize_t recvmsg(int fd, msghdr *msg, int flags) {
    parkway::proxy::SocketGuard *g = nullptr;
    if (msg && msg->msg_name && !(flags & MSG_ERRQUEUE))
        g = parkway::proxy::datagramGuardOf(fd);
    // sofia-sip reads without ancillary data: the receive timestamp comes in a buffer of ours
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    bool stamp = g && g->timestamps() && !msg->msg_control;
    if (stamp) {
        msg->msg_control = control;
        msg->msg_controllen = sizeof control;
    }
    ssize_t n = static_cast<ssize_t>(::syscall(SYS_recvmsg, fd, msg, flags));
    if (stamp) {
        for (cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(msg) : nullptr; c; c = CMSG_NXTHDR(msg, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                timespec ts;
                std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
                g->noteReceiveTime(int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec);
            }
        msg->msg_control = nullptr;
        msg->msg_controllen = 0;
    }
    if (n < 0 || !g)
        return n;
    const unsigned char *data = nullptr;
    size_t len = 0; // what the first buffer holds: enough to tell SIP from STUN
    if (msg->msg_iovlen > 0 && msg->msg_iov[0].iov_base) {
        data = static_cast<const unsigned char *>(msg->msg_iov[0].iov_base);
        len = std::min(static_cast<size_t>(n), msg->msg_iov[0].iov_len);
    }
    if (len < 4)
        data = nullptr; // (never with sofia-sip's single receive buffer) too little to judge: let it through
    if (g->admitDatagram(fd, static_cast<const sockaddr *>(msg->msg_name), data, static_cast<size_t>(n)))
        return n;
    errno = EAGAIN;
    return -1;
}
