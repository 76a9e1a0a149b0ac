// Music on hold: a G.711 RTP sender with its own thread (20 ms pacing must not depend on SIP load).
// One UDP socket per parked call, bound from a configured port range. The module drives it from the SIP
// thread through add/remove/setRemote; all methods are thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parkway::callpark {

// G.711 encoders from 16-bit linear PCM (ITU-T G.711).
uint8_t linearToUlaw(int16_t sample);
uint8_t linearToAlaw(int16_t sample);
int16_t ulawToLinear(uint8_t code);  // for tests and the built-in tone check
int16_t alawToLinear(uint8_t code);

// 8 kHz mono 16-bit audio. "" = the built-in tone sequence (a soft, slow arpeggio, a few seconds, looped).
// A WAV must be RIFF/WAVE, PCM (format 1), 1 channel, 8000 Hz, 16 bits; anything else is an error that names
// the file and what is wrong with it.
std::optional<std::vector<int16_t>> loadHoldAudio(const std::string& audioFile, std::string* err = nullptr);
std::vector<int16_t> builtinHoldTone();

class MohPlayer {
public:
    struct StreamInfo {
        uint64_t id = 0;
        uint16_t localPort = 0;
    };
    struct StreamStats {
        uint64_t packetsSent = 0;
        uint64_t bytesSent = 0;
        uint64_t packetsReceived = 0;  // what the parked party sends us (drained every 0.5 s, not played)
        uint32_t ssrc = 0;
        int payloadType = -1;
        std::string remoteIp;
        uint16_t remotePort = 0;
    };

    MohPlayer();
    ~MohPlayer();  // stops the thread and closes every socket
    MohPlayer(const MohPlayer&) = delete;
    MohPlayer& operator=(const MohPlayer&) = delete;

    // Load the audio and start the sender thread. Ports are taken from [portMin, portMax], even ports
    // only (RFC 3550 §11: RTP on even ports). False + *err on a bad range, bad IP or bad audio file.
    bool start(std::string bindIp, uint16_t portMin, uint16_t portMax, std::string audioFile, std::string* err);

    // Start sending to remoteIp:remotePort with payload type 0 (PCMU) or 8 (PCMA). A remote of
    // 0.0.0.0 or port 0 (a held/disabled stream) allocates the socket but sends nothing until setRemote.
    // `preferredPort` (e.g. the port used before a restart) is tried first. nullopt + *err when the range
    // is exhausted, the payload type is not G.711, the address is bad or the player is not running.
    std::optional<StreamInfo> add(std::string remoteIp, uint16_t remotePort, int payloadType,
                                  std::string* err = nullptr, uint16_t preferredPort = 0);
    // Stop a stream and close its socket. False when unknown.
    bool remove(uint64_t id);
    // Re-target a stream (the parked party re-INVITEd). False when unknown or pt not G.711.
    bool setRemote(uint64_t id, std::string remoteIp, uint16_t remotePort, int payloadType);

    std::optional<StreamStats> stats(uint64_t id) const;
    size_t streamCount() const;
    bool running() const;

    // Stop the thread and close every socket. Idempotent.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace parkway::callpark
