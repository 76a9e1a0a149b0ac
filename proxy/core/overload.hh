// Graceful overload (docs/limits.md "Overload"): how far behind the SIP thread is, and what follows from it.
//
// The measure is the time between a request reaching the machine and the SIP thread getting to it: the kernel's
// receive timestamp of each UDP datagram (SO_TIMESTAMPNS, read in socket_guard.cc) against the clock when sofia-sip
// reads it (queue delay), and the lateness of a periodic timer on the SIP loop (loop lag; it covers TCP and lets the
// figure fall back to zero when nothing arrives). Both feed one exponentially weighted moving average.
//
//  - soft threshold (overload_soft_ms): upstream clients that support RFC 7339 (an "oc" parameter in their Via)
//    are asked to send less: oc=<reduction %> in the Via of every response to them, proportional to where the
//    delay stands between the soft and the hard threshold;
//  - hard threshold (overload_queue_ms): new requests (no To tag; ACK, CANCEL and BYE excepted) are refused with
//    503 + Retry-After (RFC 3261 §21.5.4) before anything is made for them, until the delay is back under the
//    soft threshold (hysteresis). Requests inside a dialog are always served: they finish calls.
//
// OverloadGate is the arithmetic only (no sofia-sip): the SIP core feeds it and asks it (limits.cc, overload.cc).
#pragma once
#include <cstdint>
#include <string>

namespace parkway::proxy {

struct OverloadSettings {
    uint32_t hardMs = 200;     // 0 = no gate (no 503, no oc reduction)
    uint32_t softMs = 100;     // < hardMs
    uint32_t retryAfterS = 1;  // Retry-After of the 503
    bool control = true;       // RFC 7339 parameters in responses to clients that asked (Via ;oc)
    uint32_t validityMs = 500; // RFC 7339 §5.5 oc-validity (its default value)
};

class OverloadGate {
public:
    static constexpr double kTauMs = 100;          // time constant of the moving average
    static constexpr double kMinWeight = 1.0 / 16; // a burst of samples at one instant still moves it

    void configure(const OverloadSettings &s);
    const OverloadSettings &settings() const { return s_; }
    bool enabled() const { return s_.hardMs > 0; }

    // One measurement at steady time nowUs: work that reached us lateMs ago is being handled now. Its weight
    // grows with the time since the previous measurement, or with spanMs when given (the loop-lag probe gives its
    // period: a single late firing, a scheduling hiccup with nothing queued, must not shut the gate by itself).
    void sample(int64_t nowUs, double lateMs, double spanMs = -1);
    double delayMs() const { return avgMs_; }       // the smoothed delay
    double lastSampleMs() const { return lastMs_; } // the latest measurement
    bool refusing() const { return refusing_; }     // new requests get 503
    // RFC 7339 "loss" reduction now advertised (0..100, steps of 5) and its oc-seq, a number that grows each time
    // the reduction changes (§5.2): the wall-clock time of that change, "seconds.milliseconds".
    unsigned reduction() const { return reduction_; }
    const std::string &seq() const { return seq_; }
    // ";oc=..;oc-algo=..;oc-validity=..;oc-seq=.." parameters, without the leading ';'.
    std::string ocParams() const;

private:
    void update();
    OverloadSettings s_;
    double avgMs_ = 0, lastMs_ = 0;
    int64_t lastUs_ = 0;
    bool refusing_ = false;
    unsigned reduction_ = 0;
    int64_t seqMs_ = 0;
    std::string seq_ = "0";
};

// What the socket layer measured: the receive timestamp of a datagram (CLOCK_REALTIME, as the kernel stamps it)
// turned into a delay, in microseconds; negative or absurd values (clock steps) give -1.
int64_t queueDelayUs(int64_t kernelRealtimeNs);

} // namespace parkway::proxy
