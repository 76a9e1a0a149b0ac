// The admin plane: libevent evhttp on its own thread. Reaches SIP state only through Proxy::post()
// (work runs on the SIP thread; the reply is handed back to the libevent thread). See docs/admin-api.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace parkway::proxy {

class Proxy;
class Metrics;
class EventBus;
struct CommandResult;

struct AdminConfig {
    bool enabled = true;
    std::string listen = "127.0.0.1:8089"; // host:port; port 0 = ephemeral (tests)
    std::string token;                     // bearer token; required unless requireToken == false
    bool requireToken = true;              // may be false only when listen is a loopback address
    bool metricsRequireToken = true;       // GET /metrics asks for the token too (when requireToken)
    bool console = true;                   // admin.console: serve the operator console's static files under /ui/
    uint32_t sseKeepaliveMs = 15000;       // ": keep-alive" comment on idle event streams
    uint32_t requestTimeoutMs = 30000;     // 504 when the SIP thread has not answered by then
    // Limits (docs/limits.md "Admin API"). A request is judged on its head before any body byte is read.
    size_t maxBodyBytes = 1u << 20;          // admin.max_body_bytes: a larger Content-Length gets 413
    size_t maxJsonDepth = 32;                // admin.max_json_depth: deeper request bodies get 400
    size_t maxHeaderBytes = 8192;            // admin.max_header_bytes: request line + headers; 431 above
    uint32_t headerTimeoutMs = 10000;        // admin.header_timeout_ms: a request head must arrive within this
    uint32_t idleTimeoutMs = 60000;          // admin.idle_timeout_ms: a connection we owe nothing is closed after
    size_t maxConnections = 64;              // admin.max_connections: open connections, event streams included
    size_t maxStreamBacklogBytes = 1u << 20; // an event-stream client that leaves this much unread is dropped
    // TLS (docs/admin-api.md "TLS"). Both PEM files set = HTTPS only (TLS 1.2 at least) on admin.listen.
    std::string tlsCertificate;  // admin.tls_certificate: the server's certificate chain (PEM)
    std::string tlsPrivateKey;   // admin.tls_private_key: its private key (PEM, unencrypted)
    std::string tlsCaFile;       // admin.tls_ca_file: when set, clients must present a certificate this CA signed
    bool allowPlaintext = false; // admin.allow_plaintext: plain HTTP on a listener that is not loopback
    bool tls() const { return !tlsCertificate.empty() || !tlsPrivateKey.empty(); }
};

// A token shorter than this is refused on a listener that is not loopback.
constexpr size_t kMinRemoteTokenLength = 16;

class AdminServer {
public:
    AdminServer(AdminConfig cfg, Proxy &proxy, Metrics &metrics, EventBus &events);
    ~AdminServer(); // stop()s
    // Validate config (throws std::runtime_error naming the key), bind, start the thread.
    void start();
    void stop();
    // What POST /api/reload runs, on the SIP thread (the daemon: re-read the config file, then the modules'
    // reload; see proxy/app/main.cc). Unset: only the modules' reload hooks. Call before start().
    void setReloadHandler(std::function<CommandResult()> handler);
    uint16_t port() const;          // bound port (after start)
    size_t streamCount() const;     // open /api/events streams (tests)
    size_t connectionCount() const; // open admin connections (tests)

    // Checks only (no bind): throws std::runtime_error naming the admin.* key that is wrong. A listener that is
    // not loopback needs TLS (or admin.allow_plaintext = true).
    static void validate(const AdminConfig &cfg);
    // Whether host (of admin.listen) is a loopback address: 127.0.0.0/8, ::1 or "localhost".
    static bool isLoopbackHost(const std::string &host);

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace parkway::proxy
