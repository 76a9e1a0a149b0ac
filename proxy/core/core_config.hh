// Settings of the SIP core, filled by the daemon from the [proxy] table of the TOML config
// (proxy/app/config.*) and by tests directly.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace parkway::proxy {

// A user given in the [auth] users_file (docs/auth.md): credentials as HA1 per algorithm (the config loader
// hashes a plain password at once and forgets it).
struct UserEntry {
    std::string domain, user, ha1Sha256, ha1Md5;
    std::vector<std::string> registerFor;
};

// Who may send what (docs/auth.md): digest authentication of local users (RFC 3261 §22, RFC 7616, RFC 8760).
struct AuthConfig {
    std::string secret;       // HMAC key of the nonces; empty: a random one kept in the database
    uint32_t nonceTtlS = 300; // a nonce older than this is answered with stale=true
    // Local domains whose users are not challenged: their From is taken as their identity. "*" = every domain
    // (tests only; the config loader takes names).
    std::vector<std::string> unauthenticatedDomains;
    std::vector<std::string> md5OffDomains; // domains that offer and accept SHA-256 only
    uint32_t maxFailures = 10;              // failed authentications from one source within failureWindowS ...
    uint32_t failureWindowS = 60;           // ... start its ban (ban_ms)
    std::vector<UserEntry> users;           // applied to the users table at start
};

struct CoreConfig {
    // sofia URLs, e.g. "sip:127.0.0.1:5060;transport=udp", "sip:127.0.0.1:5060;transport=tcp",
    // "sip:127.0.0.1:*" (ephemeral, tests). The first is the primary (Record-Route, Contact).
    std::vector<std::string> listen{"sip:127.0.0.1:5060;transport=udp", "sip:127.0.0.1:5060;transport=tcp"};
    std::vector<std::string> domains{"127.0.0.1"}; // local domains (router: -> location)
    std::string database = "parkway.db";           // SQLite file shared by modules ("core_setting database")
    std::string instance = "parkway";
    bool recordRoute = true;
    // Ask for transparent huge pages for the heap as it grows (heap_pages.hh). The daemon turns it on by
    // default ([proxy] huge_page_heap); tests leave the process's malloc as it is.
    bool hugePageHeap = false;
    uint32_t maxForwards = 70; // inserted when a request has none
    uint32_t t1Ms = 500, t2Ms = 4000, t4Ms = 5000;
    uint32_t subMinExpires = 60, subMaxExpires = 3600;
    // Outbound proxy (docs/carrier-routing.md): the default next hop of requests a module originates out of a
    // dialog with no next hop and no Route of its own; sent with a preloaded Route when the URI has ;lr (RFC
    // 3261 §8.1.2). "" = none. byDomain (lower-case domain -> URI) overrides it for a Request-URI (else From)
    // in that domain.
    std::string outboundProxy;
    std::map<std::string, std::string> outboundProxyByDomain;
    // Where module and core log lines go (level: 0 error, 1 warn, 2 info, 3 debug, as pw_log_level; module:
    // module name or "core"). Called on the SIP thread. Unset: plain lines on stderr (tests).
    std::function<void(int level, const std::string &module, const std::string &text)> logSink;
    // Whether logSink writes a line at `level` now (module.h log_enabled: modules skip formatting the rest).
    // Unset: every level is written.
    std::function<bool(int level)> logEnabled;
    std::string configDir; // folder of the config file: modules resolve their relative file parameters here

    // ---- limits on what a sender can make the core hold (docs/limits.md)
    uint32_t maxMessageBytes = 65536; // larger incoming messages are refused (413 over UDP; TCP: closed)
    uint32_t maxTransactions = 10000; // requests in progress at once; beyond, a new request gets 503
    uint32_t maxDnsPending = 200;     // forwarded requests waiting on a DNS name at once; beyond, 503
    uint32_t retryAfterS = 5;         // Retry-After of the core's 503 answers (RFC 3261 §20.33)
    uint32_t tcpMaxConnections = 1024, tcpMaxPerSource = 32;
    uint32_t tcpFirstMessageMs = 10000;       // a new TCP connection must deliver a whole SIP message by then
    uint32_t tcpIdleMs = 3600000;             // a TCP connection that carried no SIP message for this long is closed
    uint32_t tcpMessageMs = 10000;            // an incomplete message with no new byte for this long is dropped
    double rateLimit = 500, rateBurst = 1000; // requests/s per source address (0 = off), bucket size
    uint32_t banMs = 60000;                   // a source that exceeds the rate is ignored this long
    // Graceful overload (docs/limits.md "Overload", proxy/core/overload.hh): how far behind the SIP thread may be
    // (smoothed queue delay of received requests and loop lag) before new requests get 503 (0 = never), the
    // delay from which RFC 7339 clients are asked to send less (< overloadQueueMs; also where 503s stop), the
    // Retry-After of those 503s, and whether RFC 7339 oc parameters go into responses to clients that ask.
    uint32_t overloadQueueMs = 200, overloadSoftMs = 100, overloadRetryAfterS = 1;
    bool overloadControl = true;
    std::vector<std::string> trustedPeers;     // addresses/networks exempt from rate limits and per-source caps
    std::string resolvConf;                    // resolv.conf for DNS; "" = /etc/resolv.conf
    uint32_t dnsTimeoutS = 2, dnsAttempts = 2; // per DNS server try, tries per server

    // ---- TLS (RFC 3261 §26.2, RFC 5630; proxy/core/tls.hh): for "sips:host:port" listeners (config "tls:")
    std::string tlsCertificate, tlsPrivateKey; // PEM files: our certificate and its (unencrypted) key
    std::string tlsCaFile;                     // PEM CAs peers are verified against; "" = the system's bundle
    bool tlsVerifyClient = false;              // a TLS client must present a certificate signed by tlsCaFile
    bool tlsVerifyServer = true;               // outgoing TLS: the server's certificate must verify and name it
    AuthConfig auth;

    // ---- recording (docs/replay.md "Recording", proxy/core/sip_trace.hh): "" = off, "pcap:FILE", "text:FILE"
    // (FILE absolute). Started when the listeners are bound; applied again by a reload.
    std::string sipTrace;
    uint64_t sipTraceMaxBytes = 100ull << 20; // FILE is rotated before the record that would pass this
    uint32_t sipTraceFiles = 5;               // rotated files kept (FILE.1 .. FILE.N)
};

} // namespace parkway::proxy
