// A DNS stub inside the process, between sofia-sip's resolver and the real name servers.
//
// Why: sofia-sip 1.12's resolver (sres) runs on the SIP thread and, when it cannot open a socket to its name
// server (connect() fails: no route, a broadcast address; socket() fails: no file descriptors left), loops for
// ever inside sres_query(): the SIP thread spins at 100 % and never serves anything again. So sofia-sip is given
// exactly one name server that it can always reach: this stub, a UDP socket on 127.0.0.1. The stub forwards each
// query with c-ares (timeouts, tries, several servers, TCP on truncation) to the servers of the real resolv.conf
// and relays the answer; anything that goes wrong upstream (unreachable, refused, timeout, too many queries in
// flight) becomes a SERVFAIL answer in bounded time, which sofia-sip turns into 503 for the request.
//
// SIP thread only: its sockets and timer are driven by the su_root.
#pragma once
#include <sofia-sip/su_wait.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace parkway::proxy {

class DnsStub {
public:
    struct Settings {
        std::string resolvConf = "/etc/resolv.conf"; // the real servers: "nameserver" lines (+ sofia's "port N")
        uint32_t timeoutMs = 2000;                   // per try, per server (c-ares)
        uint32_t tries = 2;
        uint32_t maxInFlight = 256; // queries forwarded at once; beyond, SERVFAIL at once
    };
    using Log = std::function<void(const std::string &)>;

    // Throws std::runtime_error when the stub socket or the c-ares channel cannot be made.
    DnsStub(su_root_t *root, Settings s, Log log);
    ~DnsStub();
    DnsStub(const DnsStub &) = delete;
    DnsStub &operator=(const DnsStub &) = delete;

    // A resolv.conf for sofia-sip naming only the stub (and the search domains of the real file).
    const std::string &sofiaResolvConf() const;
    uint16_t port() const;
    size_t inFlight() const;
    uint64_t failed() const; // queries answered SERVFAIL

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// The name servers of a resolv.conf as "ip:port" ("[v6]:port"); sofia-sip's "port N" line applies to all.
std::vector<std::string> readNameServers(const std::string &resolvConf);

} // namespace parkway::proxy
