// Graceful overload (docs/limits.md "Overload"): how far behind the SIP thread is, and what follows from it.
//
// The measure is the time between a request reaching the machine and the SIP thread getting to it: the kernel's
// receive timestamp of each UDP datagram (SO_TIMESTAMPNS, read in socket_guard.cc) against the clock when sofia-sip
// reads it (queue delay), and the lateness of a periodic timer on the SIP loop (loop lag; it covers TCP and lets the
// figure fall back to zero when nothing arrives). Both feed one exponentially weighted moving average.
//
//  - between the soft (overload_soft_ms) and the hard threshold (overload_queue_ms) the reduction grows from 0 to
//    100 % in proportion to where the delay stands. That share of new requests (no To tag; ACK, CANCEL and BYE
//    excepted) is refused with 503 + Retry-After (RFC 3261 §21.5.4) before anything is made for them, spread
//    evenly (a counter, no randomness: "refuse k of every 20") as RFC 7339's loss algorithm (§6) would at a
//    client; the same value is advertised to upstream clients that support RFC 7339 (oc=<reduction> in the Via
//    of every response to those whose Via has "oc");
//  - from the hard threshold on, every new request is refused. The value moves only when the delay has moved 3/4 of a
//    step (5 %) away from it (hysteresis: no flapping between neighbours, and the gate stays fully shut until the
//    delay is that far under the hard threshold). Requests inside a dialog are always served.
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
    double delayMs() const { return avgMs_; }           // the smoothed delay
    double lastSampleMs() const { return lastMs_; }     // the latest measurement
    bool refusing() const { return reduction_ >= 100; } // every new request gets 503
    bool shedding() const { return reduction_ > 0; }    // some new requests get 503
    // Asked once for each new request: false when this one is to be refused. Deterministic: of every 100 new
    // requests, reduction() are refused, evenly spread (an error-diffusion counter, RFC 7339 §6 applied here).
    bool admit();
    // The same for a request a module marked as finishing work under way (pw_module.overload_priority): admitted
    // until the delay reaches twice the hard threshold. Does not touch admit()'s spread.
    bool admitPriority() const { return avgMs_ < 2.0 * s_.hardMs; }
    // RFC 7339 "loss" reduction now applied and advertised (0..100, steps of 5) and its oc-seq, a number that grows
    // each time the reduction changes (§5.2): the wall-clock time of that change, "seconds.milliseconds".
    unsigned reduction() const { return reduction_; }
    const std::string &seq() const { return seq_; }
    // ";oc=..;oc-algo=..;oc-validity=..;oc-seq=.." parameters, without the leading ';'.
    std::string ocParams() const;

private:
    void update();
    OverloadSettings s_;
    double avgMs_ = 0, lastMs_ = 0;
    int64_t lastUs_ = 0;
    unsigned reduction_ = 0;
    unsigned shedAcc_ = 0; // admit(): the refusals owed, in hundredths of a request
    int64_t seqMs_ = 0;
    std::string seq_ = "0";
};

// What the socket layer measured: the receive timestamp of a datagram (CLOCK_REALTIME, as the kernel stamps it)
// turned into a delay, in microseconds; negative or absurd values (clock steps) give -1.
int64_t queueDelayUs(int64_t kernelRealtimeNs);

} // namespace parkway::proxy
