// The admin plane: libevent evhttp on its own thread. Reaches SIP state only through Proxy::post()
// (work runs on the SIP thread; the reply is handed back to the libevent thread). See docs/admin-api.md.
#pragma once
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
};

class AdminServer {
public:
    AdminServer(AdminConfig cfg, Proxy &proxy, Metrics &metrics, EventBus &events);
    ~AdminServer(); // stop()s
    // Validate config (throws std::runtime_error naming the key), bind, start the thread.
    void start();
    void stop();
    uint16_t port() const; // bound port (after start)

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace parkway::proxy
