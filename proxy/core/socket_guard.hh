// What the SIP listening sockets need and sofia-sip's transport layer does not offer:
//  - TCP: a cap on connections in total and per source address, a deadline for a new connection's first
//    complete SIP message, an idle timeout, and no busy loop when the process runs out of file descriptors;
//  - UDP and TCP: datagrams and connections from a banned source (see RateLimiter) are dropped before
//    sofia-sip parses anything, so a flood costs one system call per packet.
//
// sofia-sip 1.12 accepts connections with accept(2) and reads datagrams with recvmsg(2) inside its transport
// and has no hook to refuse either, so socket_guard.cc defines accept() and recvmsg() for the whole program (the
// executable's definition takes precedence over the C library's for every shared library, sofia-sip included).
// Sockets that are not SIP listeners of a live SocketGuard pass straight through to the C library. A guard is
// used on its SIP thread only (sofia-sip calls accept and recvmsg there).
#pragma once
#include "address_set.hh"

#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace parkway::proxy {

class SocketGuard {
public:
    struct Settings {
        uint32_t maxConnections = 1024;         // accepted SIP TCP connections at once
        uint32_t maxPerSource = 32;             // per source address (trusted peers exempt)
        uint32_t firstMessageTimeoutMs = 10000; // a new connection must deliver a whole SIP message by then
        uint32_t idleTimeoutMs = 3600000;       // no complete SIP message for this long: closed
        AddressSet trusted;
        std::function<bool(const IpKey &)> banned; // drop everything from this source (may be empty)
        std::function<bool(const IpKey &)> charge; // count one message from this source; false: over its rate
        // Set: UDP datagrams are read with their kernel receive timestamp (SO_TIMESTAMPNS) and this is told how
        // long each one waited before the SIP thread read it, in microseconds (the overload gate, overload.hh).
        std::function<void(int64_t)> queueDelay;
    };
    // reason: "total", "per_source", "banned", "fd_limit", "first_message_timeout", "idle_timeout"
    using Report = std::function<void(const char *reason, const std::string &peer)>;

    SocketGuard(Settings s, Report report);
    ~SocketGuard();
    SocketGuard(const SocketGuard &) = delete;
    SocketGuard &operator=(const SocketGuard &) = delete;

    // The SIP sockets to guard, found by their bound ports (after the transports are bound): TCP listeners and
    // UDP sockets.
    void guardSockets(const std::vector<uint16_t> &tcpPorts, const std::vector<uint16_t> &udpPorts);
    // A complete SIP message arrived from this peer over TCP (the connection is alive and speaking SIP).
    void noteMessage(const sockaddr *peer);
    // Close connections past their deadlines and forget closed ones. Call about once a second.
    void sweep();
    size_t connections() const { return conns_.size(); }
    // Shut down every connection from this source (it was just banned).
    void closeFrom(const IpKey &ip);
    // Datagrams dropped by admitDatagram since the last call.
    uint64_t takeDroppedDatagrams() {
        uint64_t n = dropped_;
        dropped_ = 0;
        return n;
    }
    size_t connectionsFrom(const IpKey &ip) const;

    // Called by the accept() wrapper with a socket it just accepted from one of our listeners. Returns fd, or -1
    // with errno set after closing the socket when a limit refuses it.
    int admit(int fd, const sockaddr *peer);
    bool guards(int listenFd) const;
    bool guardsDatagrams(int fd) const;
    bool timestamps() const { return bool(s_.queueDelay); }
    // A datagram from fd carried this kernel receive timestamp (CLOCK_REALTIME, nanoseconds).
    void noteReceiveTime(int64_t realtimeNs);
    // Called by the recvmsg() wrapper for a datagram read from our UDP socket fd: false = drop it. Dropped:
    // everything from a banned source, and everything that is not SIP. A STUN binding request (an RFC 5626
    // keep-alive) is answered here rather than by sofia-sip's STUN server.
    bool admitDatagram(int fd, const sockaddr *from, const unsigned char *data, size_t len);
    // accept() failed with EMFILE/ENFILE on a guarded listener: take the pending connection off the queue with
    // the reserved descriptor and close it, so the listener does not stay readable for ever (a busy loop).
    void shed(int listenFd);

private:
    struct Conn {
        IpKey ip;
        std::string peer, key; // "ip:port" (for reports) and the packed byPeer_ key
        ino_t inode = 0;
        int64_t acceptedMs = 0, lastMessageMs = 0; // lastMessageMs 0: no complete message yet
        bool closing = false;                      // shut down by us; forgotten once the socket is gone
    };
    bool alive(int fd, const Conn &c) const;
    void sweepAt(int64_t nowMs);
    void release(std::unordered_map<int, Conn>::iterator it);
    void close(int fd, const char *reason);

    Settings s_;
    Report report_;
    std::vector<int> listeners_, datagramSockets_;
    std::unordered_map<int, Conn> conns_; // by file descriptor
    std::unordered_map<IpKey, uint32_t, IpKeyHash> perSource_;
    std::unordered_map<std::string, int> byPeer_; // packed peer address (ip, port) -> fd
    int reserveFd_ = -1;
    uint64_t dropped_ = 0;
};

std::string peerText(const sockaddr *sa); // "ip:port" ("[v6]:port")

} // namespace parkway::proxy
