#include "dns_stub.hh"

#include "../sofia/sofia.hh"

#include <ares.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

namespace parkway::proxy {

namespace {

constexpr size_t kHeader = 12; // RFC 1035 §4.1.1

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// The length of the header plus the question section of a query, or 0 when it is not a one-question query.
size_t questionEnd(const unsigned char *q, size_t len) {
    if (len < kHeader || ((q[4] << 8) | q[5]) != 1)
        return 0;
    size_t i = kHeader;
    while (i < len && q[i] != 0) {
        if ((q[i] & 0xc0) != 0)
            return 0; // no compression in a query's question
        i += 1 + q[i];
    }
    return i + 1 + 4 <= len ? i + 1 + 4 : 0;
}

// RFC 1035 §4.1.1: the query turned into a SERVFAIL answer (its header and question, nothing else).
std::string servfail(const unsigned char *q, size_t len) {
    size_t end = questionEnd(q, len);
    std::string a(reinterpret_cast<const char *>(q), end ? end : std::min(len, kHeader));
    if (a.size() < kHeader)
        return {};
    a[2] = static_cast<char>(0x80 | (q[2] & 0x79)); // QR, opcode and RD as asked
    a[3] = static_cast<char>(0x80 | 2);             // RA, RCODE 2 (server failure)
    for (int i = end ? 6 : 4; i < 12; ++i)
        a[i] = 0; // no answer, authority or additional records
    return a;
}

} // namespace

std::vector<std::string> readNameServers(const std::string &resolvConf) {
    std::ifstream in(resolvConf);
    std::vector<std::string> hosts;
    std::string line, port = "53";
    while (std::getline(in, line)) {
        line = trim(line.substr(0, line.find_first_of("#;")));
        std::istringstream words(line);
        std::string key, value;
        words >> key >> value;
        if (key == "nameserver" && !value.empty())
            hosts.push_back(value);
        else if (key == "port" && !value.empty())
            port = value; // sofia-sip's own extension
    }
    std::vector<std::string> out;
    for (auto &h : hosts)
        out.push_back((h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port);
    return out;
}

struct DnsStub::Impl {
    su_root_t *root;
    Settings s;
    Log log;
    int fd = -1;
    uint16_t port = 0;
    su_wait_t wait[1];
    int index = -1;
    ares_channel channel = nullptr;
    std::map<int, int> aresWaits; // c-ares socket -> su_root registration index
    std::unique_ptr<sofia::Timer> timer;
    std::string confPath;
    size_t inFlight = 0;
    uint64_t failed = 0;
    bool haveServers = false;
    // After the upstream servers timed out or refused the connection, queries fail at once for a while: a
    // request needs several lookups (NAPTR, SRV, A/AAAA; RFC 3263) and must not wait the full time for each.
    std::chrono::steady_clock::time_point downUntil{};

    struct Query {
        Impl *impl;
        sockaddr_storage from;
        socklen_t fromLen;
        std::string query, key;
    };
    std::set<std::string> pending; // asker address + query ID: a retransmission is not forwarded twice

    void openSocket();
    void openChannel();
    void writeSofiaConf();
    void receive();
    void forward(const unsigned char *q, size_t len, const sockaddr_storage &from, socklen_t fromLen);
    void reply(const std::string &a, const sockaddr_storage &to, socklen_t toLen);
    void answered(Query *q, int status, const unsigned char *abuf, int alen);
    void socketState(int sock, bool readable, bool writable);
    void process(int readFd, int writeFd);
    void armTimer();
};

void DnsStub::Impl::openSocket() {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw std::runtime_error(std::string("dns stub: socket: ") + strerror(errno));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 ||
        getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) < 0)
        throw std::runtime_error(std::string("dns stub: bind 127.0.0.1: ") + strerror(errno));
    port = ntohs(a.sin_port);
    su_wait_create(wait, fd, SU_WAIT_IN);
    index = su_root_register(
        root, wait,
        [](su_root_magic_t *, su_wait_t *, su_wakeup_arg_t *arg) noexcept -> int {
            static_cast<Impl *>(static_cast<void *>(arg))->receive();
            return 0;
        },
        static_cast<su_wakeup_arg_t *>(static_cast<void *>(this)), 0);
    if (index < 0)
        throw std::runtime_error("dns stub: cannot watch its socket");
}

void DnsStub::Impl::openChannel() {
    static const int init = ares_library_init(ARES_LIB_INIT_ALL);
    (void)init;
    ares_options o{};
    o.timeout = static_cast<int>(s.timeoutMs);
    o.tries = static_cast<int>(s.tries);
    o.sock_state_cb = [](void *data, ares_socket_t sock, int readable, int writable) {
        static_cast<Impl *>(data)->socketState(sock, readable != 0, writable != 0);
    };
    o.sock_state_cb_data = this;
    o.lookups = const_cast<char *>("b");
    int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS;
    if (int rc = ares_init_options(&channel, &o, mask); rc != ARES_SUCCESS)
        throw std::runtime_error(std::string("dns stub: c-ares: ") + ares_strerror(rc));
    std::string csv;
    for (const auto &srv : readNameServers(s.resolvConf))
        csv += (csv.empty() ? "" : ",") + srv;
    haveServers = !csv.empty() && ares_set_servers_ports_csv(channel, csv.c_str()) == ARES_SUCCESS;
    if (!haveServers)
        log("dns: no usable name server in " + s.resolvConf + ": every name lookup fails");
}

// sofia-sip reads this file (and its search domains) instead of the real one.
void DnsStub::Impl::writeSofiaConf() {
    std::ifstream in(s.resolvConf);
    std::string conf = "# written by parkway: sofia-sip asks the stub inside the process\nnameserver 127.0.0.1\n";
    conf += "port " + std::to_string(port) + "\n";
    std::string line;
    while (std::getline(in, line)) {
        std::string t = trim(line);
        if (t.rfind("search", 0) == 0 || t.rfind("domain", 0) == 0)
            conf += t + "\n";
    }
    const char *tmp = getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/parkway-resolv-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    int f = mkstemp(name.data());
    if (f < 0)
        throw std::runtime_error("dns stub: cannot write a resolv.conf for sofia-sip in " + tmpl);
    bool ok = ::write(f, conf.data(), conf.size()) == static_cast<ssize_t>(conf.size());
    ::close(f);
    confPath = name.data();
    if (!ok)
        throw std::runtime_error("dns stub: cannot write " + confPath);
}

void DnsStub::Impl::receive() {
    unsigned char buf[4096];
    for (int n = 0; n < 64; ++n) { // bounded per wakeup: other sockets get their turn
        sockaddr_storage from{};
        socklen_t fromLen = sizeof from;
        ssize_t len = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr *>(&from), &fromLen);
        if (len < 0)
            return;
        if (static_cast<size_t>(len) < kHeader || (buf[2] & 0x80))
            continue; // not a query
        forward(buf, static_cast<size_t>(len), from, fromLen);
    }
}

void DnsStub::Impl::forward(const unsigned char *q, size_t len, const sockaddr_storage &from, socklen_t fromLen) {
    if (!haveServers || inFlight >= s.maxInFlight || std::chrono::steady_clock::now() < downUntil) {
        ++failed;
        reply(servfail(q, len), from, fromLen);
        return;
    }
    std::string key(reinterpret_cast<const char *>(&from), fromLen);
    key.append(reinterpret_cast<const char *>(q), 2);
    if (!pending.insert(key).second)
        return; // already being resolved
    auto *query = new Query{this, from, fromLen, std::string(reinterpret_cast<const char *>(q), len), key};
    ++inFlight;
    ares_send(
        channel, q, static_cast<int>(len),
        [](void *arg, int status, int, unsigned char *abuf, int alen) {
            auto *qq = static_cast<Query *>(arg);
            qq->impl->answered(qq, status, abuf, alen);
        },
        query);
    armTimer();
}

void DnsStub::Impl::answered(Query *q, int status, const unsigned char *abuf, int alen) {
    std::unique_ptr<Query> owned(q);
    --inFlight;
    pending.erase(q->key);
    if (status == ARES_EDESTRUCTION)
        return; // the stub is going away
    const auto *qb = reinterpret_cast<const unsigned char *>(q->query.data());
    std::string a;
    if (status == ARES_SUCCESS && abuf && alen >= static_cast<int>(kHeader)) {
        a.assign(reinterpret_cast<const char *>(abuf), static_cast<size_t>(alen));
        a[0] = q->query[0]; // c-ares used an ID of its own: give the asker its own back
        a[1] = q->query[1];
    } else {
        ++failed;
        a = servfail(qb, q->query.size());
        if (status == ARES_ETIMEOUT || status == ARES_ECONNREFUSED)
            downUntil = std::chrono::steady_clock::now() + std::chrono::milliseconds(s.timeoutMs * 2);
    }
    reply(a, q->from, q->fromLen);
}

void DnsStub::Impl::reply(const std::string &a, const sockaddr_storage &to, socklen_t toLen) {
    if (!a.empty())
        ::sendto(fd, a.data(), a.size(), 0, reinterpret_cast<const sockaddr *>(&to), toLen);
}

void DnsStub::Impl::socketState(int sock, bool readable, bool writable) {
    auto it = aresWaits.find(sock);
    if (!readable && !writable) {
        if (it != aresWaits.end()) {
            su_root_deregister(root, it->second);
            aresWaits.erase(it);
        }
        return;
    }
    int events = (readable ? SU_WAIT_IN : 0) | (writable ? SU_WAIT_OUT : 0);
    if (it != aresWaits.end()) {
        su_root_eventmask(root, it->second, sock, events);
        return;
    }
    su_wait_t w[1];
    su_wait_create(w, sock, events);
    int idx = su_root_register(
        root, w,
        [](su_root_magic_t *, su_wait_t *wt, su_wakeup_arg_t *arg) noexcept -> int {
            auto *self = static_cast<Impl *>(static_cast<void *>(arg));
            int ev = su_wait_events(wt, wt->fd);
            self->process((ev & (SU_WAIT_IN | SU_WAIT_HUP | SU_WAIT_ERR)) ? wt->fd : ARES_SOCKET_BAD,
                          (ev & SU_WAIT_OUT) ? wt->fd : ARES_SOCKET_BAD);
            return 0;
        },
        static_cast<su_wakeup_arg_t *>(static_cast<void *>(this)), 0);
    if (idx >= 0)
        aresWaits[sock] = idx;
}

void DnsStub::Impl::process(int readFd, int writeFd) {
    ares_process_fd(channel, readFd, writeFd);
    armTimer();
}

void DnsStub::Impl::armTimer() {
    timeval max{5, 0}, tv{};
    timeval *t = ares_timeout(channel, &max, &tv);
    if (!inFlight) {
        timer->cancel();
        return;
    }
    uint64_t ms = static_cast<uint64_t>(t->tv_sec) * 1000 + static_cast<uint64_t>(t->tv_usec) / 1000;
    timer->start(ms ? ms : 1, [this] { process(ARES_SOCKET_BAD, ARES_SOCKET_BAD); });
}

DnsStub::DnsStub(su_root_t *root, Settings s, Log log) : impl_(std::make_unique<Impl>()) {
    impl_->root = root;
    impl_->s = std::move(s);
    impl_->log = std::move(log);
    impl_->timer = std::make_unique<sofia::Timer>(root);
    impl_->openSocket();
    impl_->openChannel();
    impl_->writeSofiaConf();
}

DnsStub::~DnsStub() {
    if (impl_->channel)
        ares_destroy(impl_->channel); // pending queries end with ARES_EDESTRUCTION
    for (auto &[sock, idx] : impl_->aresWaits)
        su_root_deregister(impl_->root, idx);
    if (impl_->index >= 0)
        su_root_deregister(impl_->root, impl_->index);
    if (impl_->fd >= 0)
        ::close(impl_->fd);
    if (!impl_->confPath.empty())
        ::unlink(impl_->confPath.c_str());
}

const std::string &DnsStub::sofiaResolvConf() const {
    return impl_->confPath;
}
uint16_t DnsStub::port() const {
    return impl_->port;
}
size_t DnsStub::inFlight() const {
    return impl_->inFlight;
}
uint64_t DnsStub::failed() const {
    return impl_->failed;
}

} // namespace parkway::proxy
