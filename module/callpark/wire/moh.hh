// Music on hold: a G.711 / G.722 RTP sender with its own thread (20 ms pacing must not depend on SIP load).
// One sender serves every parked call: UDP sockets bound from a configured port range, each shared by up to
// setStreamsPerPort() streams (callpark moh_streams_per_port; 1 = one port per call), each stream with its own
// SSRC, sequence number and timestamp (RFC 3550 §8). Every 20 ms tick (absolute deadlines, missed ticks skipped
// after a stall, never caught up in a burst) sends one packet per stream with sendmmsg: a 12-byte RTP header of
// its own plus the looped audio encoded once per codec at start (two iovecs). What arrives is drained with
// recvmmsg from the sockets epoll reports readable. The module drives it from the SIP thread through
// add/remove/setRemote/setSignalingSource; all methods are thread-safe.
//
// Symmetric RTP latching (RFC 4961; docs/callpark.md "Music on hold and symmetric RTP"): the SDP c=/m= of the
// parked party is only a hint. Music goes to the address:port the party's own RTP comes from (the latch),
// and only a packet whose source IP is the SDP connection address or the party's SIP signalling source IP
// may latch. Before a latch the SDP address gets at most the stream's pre-latch allowance (setPrelatchMs),
// then nothing until a packet latches: a forged SDP cannot turn the player into a long-running reflector.
// On a shared port a packet belongs to the stream latched to its source IP:port; else to the unlatched stream
// whose SDP address:port is exactly its source; else to the one unlatched stream whose allowed IPs contain its
// source IP (several: the one of them whose payload type is the packet's). An ambiguous packet latches nothing
// and is counted (PlayerStats::packetsAmbiguous).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::callpark {

// G.711 encoders from 16-bit linear PCM (ITU-T G.711).
uint8_t linearToUlaw(int16_t sample);
uint8_t linearToAlaw(int16_t sample);
int16_t ulawToLinear(uint8_t code); // for tests and the built-in tone check
int16_t alawToLinear(uint8_t code);

// Payload types the player sends: the static PCMU (0), PCMA (8) and G722 (9) of RFC 3551 §6.
constexpr bool isMohPayloadType(int pt) {
    return pt == 0 || pt == 8 || pt == 9;
}

// G.722 at 64 kbit/s (ITU-T G.722, spandsp's encoder) of a looped 8 kHz recording, one byte per input sample:
// the encoder takes the 8 kHz audio as the lower sub-band (spandsp G722_SAMPLE_RATE_8000), so 20 ms = 160
// samples = 160 bytes, and the RTP clock stays 8000 (RFC 3551 §4.5.2). G.722 is ADPCM (it has state), so the
// loop is encoded twice and the second pass kept: at its wrap the encoder state matches the decoder's, which
// has just decoded the end of the loop, and the seam does not click.
std::vector<uint8_t> encodeG722Loop(const std::vector<int16_t> &audio);

// 8 kHz mono 16-bit audio. "" = the built-in tone sequence (a soft, slow arpeggio, a few seconds, looped).
// A WAV must be RIFF/WAVE, PCM (format 1), 1 channel, 8000 Hz, 16 bits; anything else is an error that names
// the file and what is wrong with it.
std::optional<std::vector<int16_t>> loadHoldAudio(const std::string &audioFile, std::string *err = nullptr);
std::vector<int16_t> builtinHoldTone();

// Open-file budget of the process (docs/limits.md "Call park"): one music-on-hold stream is one UDP socket.
struct FdLimit {
    uint64_t limit = 0; // RLIMIT_NOFILE soft limit (after raiseFdLimit), UINT64_MAX when unlimited
    uint64_t open = 0;  // descriptors open now
};
// Raise the soft RLIMIT_NOFILE to the hard one and report it with the descriptors open now.
FdLimit raiseFdLimit();
// Even ports (RTP, RFC 3550 §11) in [portMin, portMax].
uint32_t evenPortCount(uint16_t portMin, uint16_t portMax);
// "" when `ports` sockets fit beside what is open and `reserve` more descriptors (SIP connections, databases,
// admin clients); else a message naming moh_port_min/moh_port_max, the limit and how to fix it.
std::string checkMohDescriptors(uint16_t portMin, uint16_t portMax, const FdLimit &l, uint64_t reserve);

// At most one report per interval of a failure that may repeat on every call (a full port range, descriptor
// exhaustion): allow() is true for the first in each interval; suppressed() tells how many were not reported.
class ReportThrottle {
public:
    explicit ReportThrottle(int64_t intervalMs) : intervalMs_(intervalMs) {}
    bool allow(int64_t nowMs) {
        if (lastMs_ != 0 && nowMs - lastMs_ < intervalMs_) {
            ++pending_;
            return false;
        }
        lastMs_ = nowMs;
        suppressed_ = pending_;
        pending_ = 0;
        return true;
    }
    uint64_t suppressed() const { return suppressed_; } // since the previous report, as of the last allow()
private:
    int64_t intervalMs_, lastMs_ = 0;
    uint64_t pending_ = 0, suppressed_ = 0;
};

// The IP of a host msg_source ("udp:192.0.2.1:5060", "tcp:[2001:db8::1]:5061") or of a bare IP
// ("192.0.2.1", "2001:db8::1"); "" when `source` holds no numeric IP.
std::string signalingSourceIp(std::string_view source);

class MohPlayer {
public:
    static constexpr int64_t kDefaultPrelatchMs = 5000;
    static constexpr int64_t kPrelatchUnlimited = -1; // send to the SDP address until a latch (no bound)
    static constexpr uint32_t kMaxStreamsPerPort = 1024;

    // Why add() failed: capacity (NoFreePort, NoDescriptors: answer 503 + Retry-After) or the request.
    enum class AddError { None, NotRunning, BadPayloadType, BadAddress, NoFreePort, NoDescriptors };

    struct StreamInfo {
        uint64_t id = 0;
        uint16_t localPort = 0;
    };
    struct StreamStats {
        uint64_t packetsSent = 0;
        uint64_t bytesSent = 0;
        uint64_t packetsReceived = 0; // every datagram that reached our port (drained, never played)
        uint32_t ssrc = 0;
        int payloadType = -1;
        std::string remoteIp; // the SDP destination (c=/m=), "0.0.0.0"/0 while held
        uint16_t remotePort = 0;
        // Symmetric RTP.
        bool latched = false; // music goes to latchedIp:latchedPort, not to the SDP destination
        std::string latchedIp;
        uint16_t latchedPort = 0;
        uint64_t latches = 0;          // how often the stream latched (again after the party moved)
        uint64_t packetsForeign = 0;   // from an IP that may not latch (neither SDP nor signalling): ignored;
                                       // on a shared port counted in PlayerStats only (whose would it be?)
        uint64_t packetsNotRtp = 0;    // from an allowed IP but not RTP version 2: did not latch
        std::string lastForeignSource; // "IP:port" of the last foreign packet
        uint64_t prelatchSent = 0;     // packets sent to the SDP destination before any latch
        bool hadDestination = false;   // the SDP asked for music at least once
        std::string signalingIp;       // the party's SIP signalling source IP ("" = unknown)
    };

    // The player as a whole.
    struct PlayerStats {
        size_t streams = 0;
        size_t sockets = 0;            // UDP sockets open (ports in use): ceil(streams / streams per port) at best
        uint64_t ticks = 0;            // 20 ms ticks run
        uint64_t ticksSkipped = 0;     // ticks missed after a stall (skipped, not caught up)
        uint64_t chunks = 0;           // holds of the player's lock by the sender (a tick is one or more)
        uint64_t packetsSent = 0;      // packets handed to sendmmsg
        uint64_t packetsAmbiguous = 0; // on a shared port, from a source that could latch several streams: ignored
        uint64_t packetsForeign = 0;   // from an IP no stream on the port may latch from (all ports)
    };

    MohPlayer();
    ~MohPlayer(); // stops the thread and closes every socket
    MohPlayer(const MohPlayer &) = delete;
    MohPlayer &operator=(const MohPlayer &) = delete;

    // Load the audio and start the sender thread. Ports are taken from [portMin, portMax], even ports
    // only (RFC 3550 §11: RTP on even ports). False + *err on a bad range, bad IP or bad audio file, or when
    // the range does not fit the open-file limit (raised to its hard maximum first) beside
    // reservedDescriptors() others: a start refused with a clear message beats EMFILE at run time.
    bool start(std::string bindIp, uint16_t portMin, uint16_t portMax, std::string audioFile, std::string *err);
    // Descriptors kept free for everything else when checking the range (default 256).
    void setReservedDescriptors(uint64_t n);
    // Streams sharing one local port (1..kMaxStreamsPerPort, default 1 = a port per stream), before start():
    // false when out of range or running. A new stream joins an open port with room before a new port opens.
    bool setStreamsPerPort(uint32_t n);
    uint32_t streamsPerPort() const;
    uint64_t reservedDescriptors() const;
    // How much music (in 20 ms packets, rounded up) a stream may send to its SDP destination before RTP from the
    // party latches it (callpark parameter moh_prelatch_ms): one allowance per stream, spent across every SDP
    // change, never renewed. 0 = nothing before a latch; kPrelatchUnlimited = no bound. Streams added from now on.
    void setPrelatchMs(int64_t ms);
    int64_t prelatchMs() const;

    // Start sending to remoteIp:remotePort with payload type 0 (PCMU), 8 (PCMA) or 9 (G722). A remote of
    // 0.0.0.0 or port 0 (a held/disabled stream) allocates the socket but sends nothing until setRemote.
    // `preferredPort` (e.g. the port used before a restart) is tried first (joined when open with room). nullopt + *err
    // when the range is exhausted, the payload type is not one of those, the address is bad or the player is not
    // running; *why says which. Out of descriptors (EMFILE/ENFILE) it fails at once instead of trying every port.
    // `partyIp` (the party's SIP source, as for setSignalingSource; "" = unknown) keeps streams of one IP (phones
    // behind one NAT) on different ports while the range has room: on one port their RTP would be ambiguous.
    std::optional<StreamInfo> add(std::string remoteIp, uint16_t remotePort, int payloadType,
                                  std::string *err = nullptr, uint16_t preferredPort = 0, AddError *why = nullptr,
                                  std::string_view partyIp = {});
    // Stop a stream (no packet leaves for it once this returned); the last stream of a port closes its socket.
    // False when unknown.
    bool remove(uint64_t id);
    // Re-target a stream (the parked party re-INVITEd). False when unknown or pt not 0/8/9. A new SDP
    // destination (address or port) drops the latch: the party says its media moved, so the next allowed packet
    // latches again (within what is left of the pre-latch allowance meanwhile). The same destination keeps it.
    bool setRemote(uint64_t id, std::string remoteIp, uint16_t remotePort, int payloadType);
    // The parked party's SIP signalling source (host msg_source "udp:IP:PORT", or a bare IP; "" = unknown): RTP
    // from that IP may latch too (a phone behind NAT puts its private address in the SDP). A latch whose IP is
    // no longer allowed is dropped. False when the stream is unknown or `source` holds no numeric IP.
    bool setSignalingSource(uint64_t id, std::string_view source);

    std::optional<StreamStats> stats(uint64_t id) const;
    PlayerStats playerStats() const;
    size_t streamCount() const;
    bool running() const;

    // Tests: hold the player's lock for `ms`, stalling the sender as a loaded machine would.
    void stallForTest(int64_t ms);
    // Tests: the sender sends `packetsPerChunk` packets per hold of its lock (a port's at least; 0: the default) and
    // keeps the lock `us` longer each time, as thousands of streams keep it busy (0: not longer).
    void holdChunksForTest(int64_t us, size_t packetsPerChunk);
    // Tests: PlayerStats::chunks, read without waiting for the player's lock.
    uint64_t chunksForTest() const;

    // Stop the thread and close every socket. Idempotent.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace parkway::callpark
