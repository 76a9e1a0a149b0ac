// The admin plane: libevent evhttp on its own thread. Reaches SIP state only through Proxy::post()
// (work runs on the SIP thread; the reply is handed back to the libevent thread). See docs/admin-api.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace parkway::proxy {

class Proxy;
class Metrics;
class EventBus;

struct AdminConfig {
    bool enabled = true;
    std::string listen = "127.0.0.1:8089"; // host:port; port 0 = ephemeral (tests)
    std::string token;                     // bearer token; required unless requireToken == false
    bool requireToken = true;              // may be false only when listen is a loopback address
    bool metricsRequireToken = true;       // GET /metrics asks for the token too (when requireToken)
    uint32_t sseKeepaliveMs = 15000;       // ": keep-alive" comment on idle event streams
    uint32_t requestTimeoutMs = 30000;     // 504 when the SIP thread has not answered by then
    size_t maxBodyBytes = 8u << 20;        // larger request bodies get 413
};

class AdminServer {
public:
    AdminServer(AdminConfig cfg, Proxy &proxy, Metrics &metrics, EventBus &events);
    ~AdminServer(); // stop()s
    // Validate config (throws std::runtime_error naming the key), bind, start the thread.
    void start();
    void stop();
    uint16_t port() const; // bound port (after start)
    size_t streamCount() const; // open /api/events streams (tests)

    // Checks only (no bind): throws std::runtime_error naming the admin.* key that is wrong.
    static void validate(const AdminConfig &cfg);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace parkway::proxy
