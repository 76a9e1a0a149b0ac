// fuzz_sip_core / fuzz_sip_core_tcp: raw bytes from the network -> sofia's parser -> the SIP core (RFC 3261 §16
// pipeline, dialogs, host API) -> the real registrar, callpark and router modules (dlopen()ed .so files, as the
// daemon loads them), all on one su_root stepped by the harness.
//   UDP build: each input is one datagram sent from a loopback socket to the proxy.
//   TCP build (PARKWAY_FUZZ_TCP): each input is the byte stream of one new connection (framing, several
//   messages, partial ones, Content-Length lies), half-closed after the last byte; "/UDP " in Via headers is
//   sent as "/TCP " so the seeds shared with the UDP target reach the same code.
// The process runs in a network namespace of its own (fuzz_common.hh) so nothing a message names is reached.
// A "phone" socket on 127.0.0.1:5099 answers every request sent to it with 200 (INVITEs with an SDP answer), so
// seeds whose Via/Contact name that port drive park, retrieve and recall flows further.
// Every 2,000 inputs (PARKWAY_FUZZ_RESET_EVERY) the proxy and its modules are destroyed and made again (memory stays
// bounded; the state inputs build up in between — registrations, parked calls, subscriptions — is what later inputs
// hit). Invariant: no crash, sanitizer report or hang (libFuzzer -timeout).
#include "fuzz_common.hh"

#include <core/proxy.hh>
#include <plugin/loader.hh>
#include <sofia/sofia.hh>

#include <sofia-sip/su_log.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

extern "C" {
// Exported by libsofia-sip-ua but not declared in its public headers.
extern su_log_t nta_log[];
extern su_log_t tport_log[];
}

namespace px = parkway::proxy;
namespace fz = parkway::fuzz;

namespace {

#ifdef PARKWAY_FUZZ_TCP
constexpr bool kTcp = true;
#else
constexpr bool kTcp = false;
#endif
constexpr unsigned kResetEveryDefault = 2000;
constexpr uint16_t kPhonePort = 5099;
constexpr size_t kMaxDatagram = 65507; // what one UDP datagram can carry over IPv4
constexpr int kMaxSteps = 64;          // su_root steps per input after the bytes are in

// ---- sockets

sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int udpSocket(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback(port);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        if (fd >= 0)
            ::close(fd);
        return -1;
    }
    return fd;
}

// The proxy's own UDP socket (bound to 127.0.0.1:port), to see whether a datagram is still queued for it.
int findUdpSocket(uint16_t port) {
    for (int fd = 3; fd < 4096; ++fd) {
        int type = 0;
        socklen_t tl = sizeof type;
        if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_DGRAM)
            continue;
        sockaddr_in a{};
        socklen_t len = sizeof a;
        if (::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == port)
            return fd;
    }
    return -1;
}

bool datagramQueued(int fd) {
    char c;
    return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0;
}

// PARKWAY_FUZZ_VERBOSE: the first line of what came back, to see what a seed gets answered.
void trace(const char *who, std::string_view msg) {
    if (fz::verbose())
        std::fprintf(stderr, "[%s] %.*s\n", who, static_cast<int>(msg.find('\r')), msg.data());
}

void drain(int fd) {
    static char buf[65536];
    ssize_t n;
    while (fd >= 0 && (n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) >= 0)
        trace("client got", {buf, size_t(n)});
}

uint16_t portOf(const std::string &url) {
    // "sip:127.0.0.1:40123;transport=tcp"
    size_t colon = url.rfind(':');
    return colon == std::string::npos ? 0 : static_cast<uint16_t>(std::atoi(url.c_str() + colon + 1));
}

// ---- the phone: answers 200 to whatever request reaches 127.0.0.1:5099

std::string headerLines(std::string_view msg, std::string_view name, std::string_view compact) {
    std::string out;
    size_t pos = msg.find('\n');
    while (pos != std::string_view::npos && pos + 1 < msg.size()) {
        size_t end = msg.find('\n', pos + 1);
        std::string_view line = msg.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1);
        if (line.empty() || line == "\r")
            break;
        size_t colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string_view n = line.substr(0, colon);
            while (!n.empty() && n.back() == ' ')
                n.remove_suffix(1);
            if (strncasecmp(n.data(), name.data(), std::max(n.size(), name.size())) == 0 ||
                (n.size() == compact.size() && strncasecmp(n.data(), compact.data(), n.size()) == 0)) {
                out.append(line);
                if (out.back() != '\r')
                    out += '\r';
                out += '\n';
            }
        }
        pos = end;
    }
    return out;
}

void answerPhone(int fd) {
    static char buf[65536];
    for (;;) {
        sockaddr_in from{};
        socklen_t fl = sizeof from;
        ssize_t n = ::recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, reinterpret_cast<sockaddr *>(&from), &fl);
        if (n < 0)
            return;
        std::string_view msg(buf, static_cast<size_t>(n));
        trace("phone got", msg);
        if (msg.rfind("SIP/2.0", 0) == 0 || msg.rfind("ACK ", 0) == 0 || msg.size() < 8)
            continue;
        bool invite = msg.rfind("INVITE ", 0) == 0;
        std::string to = headerLines(msg, "To", "t");
        if (!to.empty() && to.find("tag=") == std::string::npos)
            to.insert(to.size() - 2, ";tag=phone");
        std::string body = invite ? "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                                    "m=audio 5098 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                                  : "";
        std::string resp = "SIP/2.0 200 OK\r\n" + headerLines(msg, "Via", "v") + headerLines(msg, "From", "f") + to +
                           headerLines(msg, "Call-ID", "i") + headerLines(msg, "CSeq", "") +
                           headerLines(msg, "Record-Route", "") + "Contact: <sip:phone@127.0.0.1:5099>\r\n" +
                           (invite ? "Content-Type: application/sdp\r\n" : "") +
                           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
        ::sendto(fd, resp.data(), resp.size(), 0, reinterpret_cast<sockaddr *>(&from), fl);
    }
}

// ---- the world

void quietSofia() {
    if (fz::verbose())
        return;
    for (su_log_t *l : {su_log_default, nta_log, tport_log}) {
        su_log_redirect(
            l, [](void *, char const *, va_list) {}, nullptr);
        su_log_set_level(l, 0);
    }
}

struct World {
    parkway::sofia::Root root;
    std::unique_ptr<px::Proxy> proxy;
    uint16_t udpPort = 0, tcpPort = 0;
    int proxyUdp = -1; // the proxy's UDP socket
    int client = -1;   // our UDP socket (responses to it are drained)
    int phone = -1;    // 127.0.0.1:5099
    unsigned inputs = 0;
    unsigned resetEvery = kResetEveryDefault; // PARKWAY_FUZZ_RESET_EVERY=N overrides (1: a fresh proxy per input)
};

World *gWorld = nullptr;

void step(World &w) {
    su_root_step(w.root.get(), 0);
    answerPhone(w.phone);
    drain(w.client);
}

void startProxy(World &w) {
    w.proxy.reset();
    px::CoreConfig cfg;
    cfg.listen = {"sip:127.0.0.1:*;transport=udp", "sip:127.0.0.1:*;transport=tcp"};
    cfg.domains = {"parkway.test", "pbx.example.com", "127.0.0.1"};
    cfg.database = ":memory:";
    cfg.instance = "parkway-fuzz";
    cfg.t1Ms = 50;
    cfg.t2Ms = 400;
    cfg.t4Ms = 500;
    cfg.subMinExpires = 1;
    cfg.configDir = PARKWAY_FUZZ_FIXTURES;
    cfg.logSink = fz::fuzzLog;
    // Two domains believe From (the module paths stay reachable); pbx.example.com challenges, so credentials
    // (Authorization / Proxy-Authorization, nonces, nonce-counts) are parsed and checked on fuzzed input too.
    cfg.auth.unauthenticatedDomains = {"parkway.test", "127.0.0.1"};
    cfg.auth.secret = "fuzz-secret-0123456789";
    cfg.auth.users = {{"pbx.example.com", "1001", std::string(64, 'a'), std::string(32, 'b'), {"1099"}}};
    cfg.auth.maxFailures = 0; // every input comes from 127.0.0.1: a ban would silence the rest of the run
    w.proxy = std::make_unique<px::Proxy>(w.root.get(), cfg);
    // The core's loop pacer sleeps 0.2 ms on every idle round (proxy/sofia/sofia.hh LoopPacer); the harness steps
    // the loop itself, and those sleeps would be most of the time per input. Pacing has no effect on behaviour.
    su_root_remove_prepoll(w.root.get());
    w.proxy->bind();
    auto urls = w.proxy->boundUrls();
    w.udpPort = portOf(urls.at(0));
    w.tcpPort = portOf(urls.at(1));
    w.proxyUdp = findUdpSocket(w.udpPort);
    if (w.proxyUdp < 0)
        fz::fail("cannot find the proxy's UDP socket", urls.at(0));
    std::vector<px::LoadedModule> mods;
    mods.push_back(px::loadModule("registrar", fz::moduleDir(), {}));
    mods.push_back(px::loadModule("callpark", fz::moduleDir(),
                                  {{"database", ":memory:"},
                                   {"moh_port_min", "30000"},
                                   {"moh_port_max", "30999"},
                                   {"provision_file", "provision.toml"},
                                   {"rules_file", "rules.tsv"},
                                   {"park_info", "true"},
                                   {"recall_time", "2s"}}));
    // A regular-expression route sees every Request-URI user part of a local domain that nobody registered.
    mods.push_back(px::loadModule("router", fz::moduleDir(),
                                  {{"routes", "prefix:9 => sip:127.0.0.1:5099\nregex:^\\+44(.*)$ => "
                                              "sip:{user}@127.0.0.1:5099"}}));
    w.proxy->addModules(std::move(mods));
    w.proxy->start();
}

void sendUdp(World &w, const uint8_t *data, size_t size) {
    sockaddr_in to = loopback(w.udpPort);
    ::sendto(w.client, data, std::min(size, kMaxDatagram), 0, reinterpret_cast<sockaddr *>(&to), sizeof to);
    // Loopback delivery is synchronous: the datagram is queued now. Step until the proxy took it, then a few
    // more times for what it set off (forwarded requests looping back, answers from the phone).
    int quiet = 0;
    for (int i = 0; i < kMaxSteps && quiet < 3; ++i) {
        step(w);
        quiet = datagramQueued(w.proxyUdp) ? 0 : quiet + 1;
    }
}

void sendTcp(World &w, const uint8_t *data, size_t size) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fz::fail("socket", std::strerror(errno));
    sockaddr_in to = loopback(w.tcpPort);
    // A blocking connect on loopback completes in the kernel's backlog, before the proxy accepts.
    if (::connect(fd, reinterpret_cast<sockaddr *>(&to), sizeof to) != 0) {
        ::close(fd);
        return;
    }
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t sent = 0;
    int steps = 0;
    while (sent < size && steps < 4 * kMaxSteps) {
        ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += static_cast<size_t>(n);
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            break;
        step(w);
        ++steps;
    }
    ::shutdown(fd, SHUT_WR);
    static char buf[65536];
    for (int i = 0; i < kMaxSteps; ++i) {
        step(w);
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0)
            trace("tcp got", {buf, size_t(n)});
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            break; // the proxy closed it
    }
    // An abortive close (RST) so no TIME_WAIT piles up over millions of inputs.
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);
    step(w);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    fz::isolateNetwork();
    fz::pinModules({"registrar", "router", "callpark"});
    gWorld = new World;
    if (const char *n = std::getenv("PARKWAY_FUZZ_RESET_EVERY"); n && std::atoi(n) > 0)
        gWorld->resetEvery = static_cast<unsigned>(std::atoi(n));
    quietSofia();
    gWorld->client = udpSocket(0);
    gWorld->phone = udpSocket(kPhonePort);
    if (gWorld->phone < 0)
        gWorld->phone = udpSocket(0); // not isolated and 5099 taken: the flows stop earlier
    startProxy(*gWorld);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    World &w = *gWorld;
    if (++w.inputs % w.resetEvery == 0)
        startProxy(w);
    if (!kTcp) {
        sendUdp(w, data, size);
        return 0;
    }
    // The seeds shared with the UDP target say "Via: SIP/2.0/UDP"; sofia drops a request whose top Via names
    // another transport than the one it came on, so make them TCP (same length) to reach the same code.
    std::string stream(reinterpret_cast<const char *>(data), size);
    for (size_t p = 0; (p = stream.find("/UDP ", p)) != std::string::npos; p += 5)
        stream.replace(p, 5, "/TCP ");
    sendTcp(w, reinterpret_cast<const uint8_t *>(stream.data()), stream.size());
    return 0;
}
