// The SIP trace (sip_trace.hh). The seam is sofia-sip's message dump: with a dump file set (TPTAG_DUMP), every
// transport calls tport_dump_iovec() with exactly the bytes it has just written to or read from a socket (UDP: one
// whole datagram; TCP/TLS: the stream bytes of one write or read, TLS as plaintext) on the SIP thread. sofia-sip
// 1.12 has no capture hook of its own (tport_capt_msg came later), so this file defines tport_dump_iovec() for the
// whole program, as sofia_fixes.cc does for tport_tsend(): calls from inside libsofia-sip-ua go through its PLT.
// The proxy sets the dump file to /dev/null, so sofia-sip itself writes nothing (unless TPORT_DUMP asks it to).
//
// Addresses: for a datagram the peer is the message's address and the local one the socket's (for a wildcard
// socket, the source address the kernel routes to the peer from); for a connection the peer is the connection's
// and the local address is read from the connection's socket (found once per connection by its peer).
#include "sip_trace.hh"

#include "sip_trace_frame.hh"

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/su.h>
#include <sofia-sip/tport.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pcap/pcap.h>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <unordered_map>

extern "C" void tport_dump_iovec(tport_t const *self, msg_t *msg, size_t n, su_iovec_t const iov[], size_t iovused,
                                 char const *what, char const *how);

namespace parkway::proxy {
namespace {

enum class Format { Text, Pcap };

bool splitTarget(const std::string &target, Format &fmt, std::string &file) {
    if (target.rfind("pcap:", 0) == 0)
        fmt = Format::Pcap;
    else if (target.rfind("text:", 0) == 0)
        fmt = Format::Text;
    else
        return false;
    file = target.substr(5);
    return true;
}

// ---------------------------------------------------------------- addresses

using Addr = sockaddr_storage;

const sockaddr *sa(const Addr &a) {
    return reinterpret_cast<const sockaddr *>(&a);
}

// An IPv4-mapped IPv6 address (a dual-stack socket) as the IPv4 address it is.
Addr canonical(const sockaddr *s, socklen_t len) {
    Addr a{};
    memcpy(&a, s, std::min<size_t>(len, sizeof a));
    auto *a6 = reinterpret_cast<sockaddr_in6 *>(&a);
    if (a.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
        sockaddr_in v4{};
        v4.sin_family = AF_INET;
        v4.sin_port = a6->sin6_port;
        memcpy(&v4.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
        a = Addr{};
        memcpy(&a, &v4, sizeof v4);
    }
    return a;
}

uint16_t portOf(const Addr &a) {
    if (a.ss_family == AF_INET)
        return ntohs(reinterpret_cast<const sockaddr_in *>(&a)->sin_port);
    if (a.ss_family == AF_INET6)
        return ntohs(reinterpret_cast<const sockaddr_in6 *>(&a)->sin6_port);
    return 0;
}

std::string ipText(const Addr &a) {
    char buf[INET6_ADDRSTRLEN] = "?";
    if (a.ss_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(&a)->sin_addr, buf, sizeof buf);
    else if (a.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6 *>(&a)->sin6_addr, buf, sizeof buf);
    return buf;
}

// "127.0.0.1:5060", "[::1]:5060" (tools/replay/trace.hh)
std::string addrText(const Addr &a) {
    return a.ss_family == AF_INET6 ? fmt::format("[{}]:{}", ipText(a), portOf(a))
                                   : fmt::format("{}:{}", ipText(a), portOf(a));
}

bool sameAddr(const Addr &a, const Addr &b) {
    return a.ss_family == b.ss_family && portOf(a) == portOf(b) && ipText(a) == ipText(b);
}

bool isWildcard(const Addr &a) {
    if (a.ss_family == AF_INET)
        return reinterpret_cast<const sockaddr_in *>(&a)->sin_addr.s_addr == INADDR_ANY;
    if (a.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6 *>(&a)->sin6_addr);
    return true;
}

void setPort(Addr &a, uint16_t port) {
    if (a.ss_family == AF_INET)
        reinterpret_cast<sockaddr_in *>(&a)->sin_port = htons(port);
    else if (a.ss_family == AF_INET6)
        reinterpret_cast<sockaddr_in6 *>(&a)->sin6_port = htons(port);
}

socklen_t lenOf(const Addr &a) {
    return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// The address the kernel sends to peer from (a connected UDP socket is never used to send).
bool routeSource(const Addr &peer, Addr &out) {
    int s = socket(peer.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return false;
    socklen_t len = sizeof out;
    bool ok = connect(s, sa(peer), lenOf(peer)) == 0 && getsockname(s, reinterpret_cast<sockaddr *>(&out), &len) == 0;
    close(s);
    if (ok)
        out = canonical(sa(out), len);
    return ok;
}

// The local address of our stream socket connected to peer: its descriptor is found by its peer address.
bool connectionLocal(const Addr &peer, Addr &out) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return false;
    bool found = false;
    while (dirent *e = readdir(d)) {
        char *end = nullptr;
        long fd = strtol(e->d_name, &end, 10);
        if (!*e->d_name || *end)
            continue;
        Addr p{};
        socklen_t len = sizeof p;
        int type = 0;
        socklen_t tlen = sizeof type;
        if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr *>(&p), &len) != 0)
            continue;
        if (!sameAddr(canonical(sa(p), len), peer))
            continue;
        if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_STREAM)
            continue;
        len = sizeof out;
        if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr *>(&out), &len) == 0) {
            out = canonical(sa(out), len);
            found = true;
            break;
        }
    }
    closedir(d);
    return found;
}

std::string isoTime(const timeval &tv) {
    tm t{};
    time_t s = tv.tv_sec;
    gmtime_r(&s, &t);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                       t.tm_hour, t.tm_min, t.tm_sec, static_cast<long>(tv.tv_usec));
}

// ---------------------------------------------------------------- stream messages (text format)

bool isWs(char c) {
    return c == '\r' || c == '\n' || c == ' ' || c == '\t';
}

// Content-Length (or its compact form "l", RFC 3261 §7.3.3) among the header lines; 0 when absent.
size_t contentLength(const std::string &head) {
    size_t pos = 0;
    while (pos < head.size()) {
        size_t eol = head.find('\n', pos);
        if (eol == std::string::npos)
            eol = head.size();
        std::string line = head.substr(pos, eol - pos);
        pos = eol + 1;
        size_t colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        std::string name = line.substr(0, colon);
        while (!name.empty() && isWs(name.back()))
            name.pop_back();
        for (auto &c : name)
            c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
        if (name == "content-length" || name == "l")
            return strtoul(line.c_str() + colon + 1, nullptr, 10);
    }
    return 0;
}

// Whether stream bytes begin with a SIP start line (RFC 3261 §7.1, §7.2), after CRLF keep-alives.
bool startsMessage(const std::string &data) {
    size_t i = 0;
    while (i < data.size() && isWs(data[i]))
        ++i;
    size_t eol = data.find("\r\n", i);
    if (i == data.size() || eol == std::string::npos)
        return i < data.size(); // a start line not complete yet: take it
    std::string line = data.substr(i, eol - i);
    return line.rfind("SIP/2.0 ", 0) == 0 || (line.size() > 8 && line.compare(line.size() - 8, 8, " SIP/2.0") == 0);
}

// Takes the first whole message out of a stream buffer (leading CRLF keep-alives dropped). "" when incomplete.
std::string takeMessage(std::string &buf) {
    size_t lead = 0;
    while (lead < buf.size() && isWs(buf[lead]))
        ++lead;
    buf.erase(0, lead);
    size_t end = buf.find("\r\n\r\n"), sep = 4;
    size_t lf = buf.find("\n\n");
    if (lf != std::string::npos && (end == std::string::npos || lf < end))
        end = lf, sep = 2;
    if (end == std::string::npos)
        return {};
    size_t total = end + sep + contentLength(buf.substr(0, end + sep));
    if (buf.size() < total)
        return {};
    std::string msg = buf.substr(0, total);
    buf.erase(0, total);
    return msg;
}

// ---------------------------------------------------------------- the file and its rotation

std::string numbered(const std::string &file, uint32_t i) {
    return i ? fmt::format("{}.{}", file, i) : file;
}

// FILE -> FILE.1 -> ... -> FILE.<keep>; the oldest falls off. keep 0: FILE is just removed.
void rotateFiles(const std::string &file, uint32_t keep) {
    if (keep == 0) {
        unlink(file.c_str());
        return;
    }
    unlink(numbered(file, keep).c_str());
    for (uint32_t i = keep; i > 0; --i)
        rename(numbered(file, i - 1).c_str(), numbered(file, i).c_str());
}

class TraceFile {
public:
    TraceFile(Format fmt, std::string file, uint64_t maxBytes, uint32_t keep)
        : fmt_(fmt), file_(std::move(file)), max_(maxBytes), keep_(keep) {}
    ~TraceFile() { close(); }

    // An existing non-empty FILE is rotated first: each start begins a new file.
    std::string open() {
        struct stat st {};
        if (stat(file_.c_str(), &st) == 0 && st.st_size > 0)
            rotateFiles(file_, keep_);
        return reopen();
    }
    // One record of n bytes: FILE is rotated first when it would pass max_bytes (a record bigger than that on
    // its own still goes into a file of its own).
    bool room(size_t n) {
        if (!fp_)
            return false;
        if (bytes_ > header_ && bytes_ + n > max_) {
            close();
            rotateFiles(file_, keep_);
            ++rotations_;
            if (!reopen().empty())
                return false;
        }
        bytes_ += n;
        total_ += n;
        ++records_;
        return true;
    }
    void writeText(const std::string &rec) {
        if (!room(rec.size()))
            return;
        fwrite(rec.data(), 1, rec.size(), fp_);
        fflush(fp_);
    }
    void writePacket(const timeval &tv, const std::string &pkt) {
        if (pkt.empty() || !room(16 + pkt.size()))
            return;
        pcap_pkthdr h{};
        h.ts = tv;
        h.caplen = h.len = static_cast<bpf_u_int32>(pkt.size());
        pcap_dump(reinterpret_cast<u_char *>(dumper_), &h, reinterpret_cast<const u_char *>(pkt.data()));
        pcap_dump_flush(dumper_);
    }
    nlohmann::json status() const {
        nlohmann::json files = nlohmann::json::array();
        struct stat st {};
        for (uint32_t i = 0; i <= keep_; ++i)
            if (stat(numbered(file_, i).c_str(), &st) == 0)
                files.push_back(numbered(file_, i));
        nlohmann::json j{{"bytes", bytes_},
                         {"bytes_total", total_},
                         {"records", records_},
                         {"rotations", rotations_},
                         {"files", files}};
        if (!error_.empty())
            j["error"] = error_; // a rotation could not open the next file: nothing is written any more
        return j;
    }

private:
    std::string reopen() {
        // Not through a symbolic link: a trace holds credentials (docs/replay.md "Recording").
        int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return error_ = fmt::format("cannot create {}: {}", file_, strerror(errno));
        fchmod(fd, 0600); // a file we truncated keeps its mode otherwise
        fp_ = fdopen(fd, "wb");
        if (!fp_) {
            ::close(fd);
            return error_ = fmt::format("cannot open {}: {}", file_, strerror(errno));
        }
        bytes_ = 0;
        if (fmt_ == Format::Text) {
            static const char kHeader[] = "# parkway sip trace 1\n";
            fputs(kHeader, fp_);
            fflush(fp_);
            bytes_ = sizeof kHeader - 1;
        } else {
            // LINKTYPE_RAW: every record starts with its IPv4 or IPv6 header, so both share one file.
            dead_ = dead_ ? dead_ : pcap_open_dead(DLT_RAW, 262144);
            dumper_ = dead_ ? pcap_dump_fopen(dead_, fp_) : nullptr;
            if (!dumper_) {
                fclose(fp_);
                fp_ = nullptr;
                return error_ = fmt::format("cannot write a pcap header to {}", file_);
            }
            pcap_dump_flush(dumper_);
            bytes_ = 24; // the pcap file header
        }
        header_ = bytes_;
        total_ += bytes_;
        return {};
    }
    void close() {
        if (dumper_)
            pcap_dump_close(dumper_); // closes fp_
        else if (fp_)
            fclose(fp_);
        dumper_ = nullptr;
        fp_ = nullptr;
    }

public:
    void closeAll() {
        close();
        if (dead_)
            pcap_close(dead_);
        dead_ = nullptr;
    }

private:
    Format fmt_;
    std::string file_;
    uint64_t max_;
    uint32_t keep_;
    FILE *fp_ = nullptr;
    pcap_t *dead_ = nullptr;
    pcap_dumper_t *dumper_ = nullptr;
    uint64_t bytes_ = 0, header_ = 0, total_ = 0, records_ = 0, rotations_ = 0;
    std::string error_;
};

// ---------------------------------------------------------------- the tracer

struct Chunk {
    bool send = false, stream = false;
    std::string transport; // "udp", "tcp", "tls", ...
    Addr local{}, remote{};
    const void *tport = nullptr;
    std::string data;
    timeval tv{};
};

class Tracer {
public:
    Tracer(TraceSettings s, Format fmt, const std::string &file)
        : settings_(std::move(s)), fmt_(fmt), file_(fmt, file, settings_.maxBytes, settings_.files) {}
    ~Tracer() { file_.closeAll(); }
    std::string open() { return file_.open(); }
    const TraceSettings &settings() const { return settings_; }
    Format format() const { return fmt_; }
    nlohmann::json status() const { return file_.status(); }

    void onChunk(Chunk &c) {
        if (fmt_ == Format::Text)
            c.stream ? textStream(c) : textRecord(c, c.data);
        else
            c.stream ? pcapStream(c) : file_.writePacket(c.tv, udp(c));
    }

    // The local address of a connection, looked up once per transport object (and again if it is reused).
    Addr connectionAddress(const void *tport, const Addr &peer, const Addr &fallback) {
        auto it = locals_.find(tport);
        if (it != locals_.end() && sameAddr(it->second.first, peer))
            return it->second.second;
        if (locals_.size() > 8192)
            locals_.clear();
        Addr local = fallback;
        connectionLocal(peer, local);
        locals_[tport] = {peer, local};
        return local;
    }
    Addr datagramAddress(const Addr &bound, const Addr &peer) {
        if (!isWildcard(bound))
            return bound;
        std::string key = ipText(peer);
        auto it = routes_.find(key);
        if (it == routes_.end()) {
            if (routes_.size() > 8192)
                routes_.clear();
            Addr src = bound;
            routeSource(peer, src);
            it = routes_.emplace(key, src).first;
        }
        Addr out = it->second;
        setPort(out, portOf(bound));
        return out;
    }

private:
    struct Conn {
        uint32_t seq[2] = {1, 1}; // next sequence number we send (0) and receive (1)
        std::string buf[2];       // text: bytes of an incomplete message, per direction
    };
    const Addr &src(const Chunk &c) const { return c.send ? c.local : c.remote; }
    const Addr &dst(const Chunk &c) const { return c.send ? c.remote : c.local; }

    Conn &conn(const Chunk &c) {
        std::string key = c.transport + " " + addrText(c.local) + " " + addrText(c.remote);
        if (conns_.size() > 4096 && !conns_.count(key))
            conns_.clear(); // stale connections: start afresh
        return conns_[key];
    }
    void textRecord(const Chunk &c, const std::string &msg) {
        size_t i = 0;
        while (i < msg.size() && isWs(msg[i]))
            ++i;
        if (i == msg.size())
            return; // a CRLF keep-alive (RFC 5626 §3.5.1) is no message
        file_.writeText(fmt::format("--- {} {} {} {} -> {} {}\n", isoTime(c.tv), c.send ? "send" : "recv", c.transport,
                                    addrText(src(c)), addrText(dst(c)), msg.size()) +
                        msg + "\n");
    }
    void textStream(const Chunk &c) {
        std::string &buf = conn(c).buf[c.send ? 0 : 1];
        if (buf.empty() && !startsMessage(c.data))
            return; // the trace started in the middle of a message: wait for the next one
        buf += c.data;
        for (std::string m = takeMessage(buf); !m.empty(); m = takeMessage(buf))
            textRecord(c, m);
        if (buf.size() > (32u << 20))
            buf.clear(); // not SIP after all
    }
    std::string udp(const Chunk &c) const {
        return trace::udpPacket(sa(src(c)), sa(dst(c)), c.data.data(), c.data.size());
    }
    // TCP segments whose sequence numbers grow with the bytes of each direction (RFC 9293 §3.4).
    void pcapStream(const Chunk &c) {
        Conn &k = conn(c);
        uint32_t &seq = k.seq[c.send ? 0 : 1];
        uint32_t ack = k.seq[c.send ? 1 : 0];
        for (size_t off = 0; off < c.data.size(); off += trace::kMaxSegment) {
            size_t n = std::min(trace::kMaxSegment, c.data.size() - off);
            file_.writePacket(c.tv, trace::tcpPacket(sa(src(c)), sa(dst(c)), seq, ack, c.data.data() + off, n));
            seq += static_cast<uint32_t>(n);
        }
    }

    TraceSettings settings_;
    Format fmt_;
    TraceFile file_;
    std::unordered_map<std::string, Conn> conns_;
    std::unordered_map<const void *, std::pair<Addr, Addr>> locals_;
    std::unordered_map<std::string, Addr> routes_;
};

std::unique_ptr<Tracer> gTracer;                        // owned by the SIP thread
std::atomic<Tracer *> gActive{nullptr};                 // what the hook uses
std::atomic<std::thread::id> gOwner{std::thread::id()}; // the SIP thread: other threads' transports are not ours

using DumpFn = void (*)(tport_t const *, msg_t *, size_t, su_iovec_t const *, size_t, char const *, char const *);

DumpFn realDump() {
    static DumpFn fn = reinterpret_cast<DumpFn>(dlsym(RTLD_NEXT, "tport_dump_iovec"));
    return fn;
}

bool chunkOf(tport_t const *tp, msg_t *msg, bool send, Chunk &c) {
    su_addrinfo_t const *own = tport_get_address(tp);
    tp_name_t const *name = tport_name(tp);
    if (!own || !own->ai_addr || !name)
        return false;
    c.send = send;
    c.stream = tport_is_stream(tp) != 0;
    c.transport = name->tpn_proto ? name->tpn_proto : "udp";
    for (auto &ch : c.transport)
        ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
    c.tport = tp;
    Tracer &t = *gActive.load(std::memory_order_relaxed);
    if (tport_is_secondary(tp)) { // a connection: its address is the peer's
        c.remote = canonical(own->ai_addr, static_cast<socklen_t>(own->ai_addrlen));
        tport_t *primary = tport_parent(tp);
        su_addrinfo_t const *pa = primary ? tport_get_address(primary) : nullptr;
        Addr fallback = pa ? canonical(pa->ai_addr, static_cast<socklen_t>(pa->ai_addrlen)) : Addr{};
        c.local = t.connectionAddress(tp, c.remote, fallback);
    } else {
        su_addrinfo_t *peer = msg ? msg_addrinfo(msg) : nullptr;
        if (!peer || !peer->ai_addr)
            return false;
        c.remote = canonical(peer->ai_addr, static_cast<socklen_t>(peer->ai_addrlen));
        c.local = t.datagramAddress(canonical(own->ai_addr, static_cast<socklen_t>(own->ai_addrlen)), c.remote);
    }
    if (c.local.ss_family != c.remote.ss_family)
        c.local = Addr{}, c.local.ss_family = c.remote.ss_family;
    return true;
}

std::string gather(size_t n, su_iovec_t const iov[], size_t iovused) {
    std::string data;
    data.reserve(n);
    for (size_t i = 0; i < iovused && data.size() < n; ++i)
        data.append(static_cast<const char *>(iov[i].siv_base), std::min<size_t>(iov[i].siv_len, n - data.size()));
    return data;
}

} // namespace

bool traceHookActive() {
    return realDump() != nullptr &&
           dlsym(RTLD_DEFAULT, "tport_dump_iovec") == reinterpret_cast<void *>(static_cast<DumpFn>(&tport_dump_iovec));
}

std::string traceApply(const TraceSettings &s) {
    if (gTracer && gTracer->settings() == s)
        return {};
    if (!gTracer && s.target.empty())
        return {};
    gActive.store(nullptr);
    gTracer.reset();
    if (s.target.empty())
        return {};
    if (std::string why = checkTraceTarget(s.target); !why.empty())
        return why;
    if (s.maxBytes < kTraceMinBytes || s.maxBytes > kTraceMaxBytes || s.files > kTraceMaxFiles)
        return "sip_trace_max_bytes or sip_trace_files out of range";
    if (!traceHookActive())
        return "the SIP trace hook is not in effect (tport_dump_iovec is not ours: is the program linked with "
               "-rdynamic / ENABLE_EXPORTS?)";
    Format fmt = Format::Text;
    std::string file;
    splitTarget(s.target, fmt, file);
    auto t = std::make_unique<Tracer>(s, fmt, file);
    if (std::string why = t->open(); !why.empty())
        return why;
    gTracer = std::move(t);
    gOwner.store(std::this_thread::get_id());
    gActive.store(gTracer.get());
    return {};
}

TraceSettings traceSettings() {
    return gTracer ? gTracer->settings() : TraceSettings{"", 0, 0};
}

std::string traceStatusJson() {
    nlohmann::json j{{"enabled", gTracer != nullptr}};
    if (!gTracer) {
        j["target"] = "";
        return j.dump();
    }
    const TraceSettings &s = gTracer->settings();
    j["target"] = s.target;
    j["format"] = gTracer->format() == Format::Pcap ? "pcap" : "text";
    j["file"] = s.target.substr(5);
    j["max_bytes"] = s.maxBytes;
    j["max_files"] = s.files;
    j.update(gTracer->status());
    return j.dump();
}

} // namespace parkway::proxy

extern "C" void tport_dump_iovec(tport_t const *self, msg_t *msg, size_t n, su_iovec_t const iov[], size_t iovused,
                                 char const *what, char const *how) {
    using namespace parkway::proxy;
    static const bool sofiaDump = getenv("TPORT_DUMP") || getenv("MSG_DUMP"); // asked for by the operator
    if (sofiaDump)
        if (DumpFn real = realDump())
            real(self, msg, n, iov, iovused, what, how);
    if (!self || n == 0 || !iov || !gActive.load(std::memory_order_acquire) ||
        gOwner.load(std::memory_order_relaxed) != std::this_thread::get_id())
        return;
    try {
        Chunk c;
        gettimeofday(&c.tv, nullptr);
        if (!chunkOf(self, msg, what && strcmp(what, "sent") == 0, c))
            return;
        c.data = gather(n, iov, iovused);
        gActive.load(std::memory_order_relaxed)->onChunk(c);
    } catch (...) {
        // Never unwind into sofia-sip; a record that could not be made is left out.
    }
}
