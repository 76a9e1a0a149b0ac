// Shared set-up for the call-park scenarios: a proxy with registrar + callpark + router on a temp SQLite
// file, phones registered as extensions of "parkway.test", helpers for SDP offers, RTP counting and admin
// commands. Everything on one su_root, stepped until a predicate holds.
#pragma once
#include <admin/metrics.hh>
#include <plugin/loader.hh>
#include <sip_test.hh>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parkway::test {

inline const std::string kDomain = "parkway.test";

inline std::string tempDb() {
    static std::atomic<int> n{0};
    std::string db = "/tmp/parkway-callpark-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".db";
    // A crashed earlier run with the same pid may have left its files: start empty, always.
    for (std::string f : {db, db + ".park"})
        for (const char *suffix : {"", "-wal", "-shm"})
            std::remove((f + suffix).c_str());
    return db;
}

// Whether UDP port `port` on 127.0.0.1 can be bound right now.
inline bool udpPortFree(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    bool ok = ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

inline std::string aorOf(const std::string &user) {
    return "sip:" + user + "@" + kDomain;
}

// An SDP offer with PCMU and PCMA, RTP expected on 127.0.0.1:port.
inline std::string offerSdp(uint16_t port, const std::string &dir = "sendrecv") {
    return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + std::to_string(port) +
           " RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 "
           "telephone-event/8000\r\na=" +
           dir + "\r\n";
}

inline std::string answerSdp(uint16_t port) {
    return "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio " + std::to_string(port) +
           " RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=recvonly\r\n";
}

// The port of the first m=audio line of an SDP, 0 when absent.
inline uint16_t sdpAudioPort(const std::string &sdp) {
    auto p = sdp.find("m=audio ");
    if (p == std::string::npos)
        return 0;
    return static_cast<uint16_t>(std::stoi(sdp.substr(p + 8)));
}

struct ParkEnvOptions {
    std::map<std::string, std::string> params;     // callpark parameters
    std::string db;                                // "" = a new temp file
    std::function<void(proxy::CoreConfig &)> core; // adjust the core's settings (e.g. turn digest auth on)
};

class ParkEnv {
public:
    explicit ParkEnv(ParkEnvOptions o = {}) : opts_(std::move(o)) {
        db_ = opts_.db.empty() ? tempDb() : opts_.db;
        proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
        cfg.database = db_;
        if (opts_.core)
            opts_.core(cfg);
        // Log lines are kept for checks (logged()) and still printed for whoever reads a failing test.
        cfg.logSink = [this](int level, const std::string &module, const std::string &text) {
            logs_.push_back(module + ": " + text);
            if (level <= 2 || std::getenv("PARKWAY_DEBUG"))
                std::fprintf(stderr, "parkway [%s] %s\n", module.c_str(), text.c_str());
        };
        env_ = std::make_unique<SipTestEnv>(cfg, &metrics_);
        loadModules();
        env_->start();
    }
    ~ParkEnv() {
        uas_.clear();
        env_.reset();
        if (opts_.db.empty() && !keepDb_) {
            for (std::string f : {db_, db_ + ".park"})
                for (const char *suffix : {"", "-wal", "-shm"})
                    std::remove((f + suffix).c_str());
        }
    }

    SipTestEnv &env() { return *env_; }
    // Log lines (module: text) containing `part`.
    std::vector<std::string> logged(const std::string &part) const {
        std::vector<std::string> out;
        for (auto &l : logs_)
            if (l.find(part) != std::string::npos)
                out.push_back(l);
        return out;
    }
    // A counter or gauge the modules reported (kept across restart()); 0 when never reported.
    double metric(const std::string &name, const std::string &labels = "") const {
        return metrics_.value(name, labels);
    }
    const std::string &db() const { return db_; }
    void keepDb() { keepDb_ = true; }

    // A phone registered as `ext` (its contact is the UA's own address).
    TestUa &phone(const std::string &ext) {
        auto ua = env_->makeUa(ext);
        TestUa &ref = *ua;
        uas_.push_back(std::move(ua));
        RequestOptions o;
        o.from = "<" + aorOf(ext) + ">";
        o.to = "<" + aorOf(ext) + ">";
        o.headers = {"Contact: <" + ref.uri(ext) + ">", "Expires: 3600"};
        auto &c = ref.send("REGISTER", "sip:" + kDomain, o);
        REQUIRE(env_->runUntil([&] { return c.finalStatus != 0; }));
        REQUIRE(c.finalStatus == 200);
        return ref;
    }
    // A UA that is not registered (e.g. an outside caller), still using the proxy.
    TestUa &ua(const std::string &name) {
        auto ua = env_->makeUa(name);
        TestUa &ref = *ua;
        uas_.push_back(std::move(ua));
        return ref;
    }

    // INVITE from `from` (an extension of the domain) to `dial` with an SDP offer (rtpPort 0 = no SDP).
    Client &invite(TestUa &ua, const std::string &fromExt, const std::string &dial, uint16_t rtpPort,
                   std::vector<std::string> headers = {}, const std::string &display = "") {
        RequestOptions o;
        o.from = (display.empty() ? "" : "\"" + display + "\" ") + "<" + aorOf(fromExt) + ">";
        o.to = "<sip:" + dial + "@" + kDomain + ">";
        o.headers = std::move(headers);
        if (rtpPort) {
            o.body = offerSdp(rtpPort);
            o.contentType = "application/sdp";
        }
        return ua.send("INVITE", "sip:" + dial + "@" + kDomain, o);
    }

    bool waitFinal(Client &c, int ms = 5000) {
        return env_->runUntil([&] { return c.finalStatus != 0; }, ms);
    }

    // A module command as the admin API runs it: the module may answer later (writer_defer, ABI 1.8; with the storage
    // thread the engine part runs there, docs/cluster.md "Threads"); the loop turns until it does (10 s at most).
    nlohmann::json command(const std::string &name, const nlohmann::json &args = nlohmann::json::object(),
                           int *status = nullptr) {
        auto answer = std::make_shared<std::optional<proxy::CommandResult>>();
        auto r = env_->proxy().runCommand("callpark", name, args.dump(),
                                          [answer](proxy::CommandResult later) { *answer = std::move(later); });
        if (r.deferred) {
            ++deferredCommands_;
            REQUIRE(env_->runUntil([&] { return answer->has_value(); }, 10000));
            r = **answer;
        }
        if (status)
            *status = r.httpStatus;
        return nlohmann::json::parse(r.json, nullptr, false);
    }
    // The same as a caller that needs the answer at once (writer_defer gives NULL, the module answers inline): for a
    // snapshot of SIP-side state at this very loop turn (the loop does not turn while it waits).
    nlohmann::json commandNow(const std::string &name, const nlohmann::json &args = nlohmann::json::object(),
                              int *status = nullptr) {
        auto r = env_->proxy().runCommand("callpark", name, args.dump());
        if (status)
            *status = r.httpStatus;
        return nlohmann::json::parse(r.json, nullptr, false);
    }
    // How many command() calls the module answered later (deferred) rather than at once.
    int deferredCommands() const { return deferredCommands_; }
    // How many calls parked.list shows. A failing command (non-200, no "parked" array) fails the test here
    // instead of reading as 0 (a `parkedCount() == 0` check would pass while the listing is broken).
    size_t parkedCount(const nlohmann::json &filter = nlohmann::json::object()) {
        int status = 0;
        auto j = command("parked.list", filter, &status);
        INFO("parked.list " << filter.dump() << " -> " << status << " " << j.dump());
        REQUIRE(status == 200);
        REQUIRE(j.contains("parked"));
        REQUIRE(j["parked"].is_array());
        return j["parked"].size();
    }

    // Destroy the proxy (parked calls stay in the DB; no BYE goes out) and start a new one on the same
    // port and database: a daemon restart.
    // `params` override callpark parameters from now on (e.g. another MOH port range).
    void restart(const std::map<std::string, std::string> &params = {}) {
        for (auto &[k, v] : params)
            opts_.params[k] = v;
        env_->restart(modules());
    }

private:
    std::vector<proxy::LoadedModule> modules() {
        std::vector<proxy::LoadedModule> v;
        v.push_back(proxy::loadModule("registrar", SipTestEnv::moduleDir(), {}));
        // The park engine keeps its own file: it refuses a database another module already wrote into
        // without a parkway schema version (the registrar's tables).
        std::map<std::string, std::string> p = {
            {"moh_port_min", "30000"}, {"moh_port_max", "39998"}, {"database", db_ + ".park"}};
        // The "callpark-inline:" run (CMakeLists.txt) turns the storage thread off (storage_thread = "off"), so every
        // scenario also goes through the inline engine calls (docs/cluster.md "Threads").
        if (const char *st = std::getenv("PARKWAY_TEST_STORAGE_THREAD"))
            p["storage_thread"] = st;
        for (auto &[k, val] : opts_.params)
            p[k] = val;
        v.push_back(proxy::loadModule("callpark", SipTestEnv::moduleDir(), p));
        v.push_back(proxy::loadModule("router", SipTestEnv::moduleDir(), {}));
        return v;
    }
    void loadModules() {
        for (auto &m : modules())
            env_->add(std::move(m));
    }

    ParkEnvOptions opts_;
    int deferredCommands_ = 0;
    proxy::Metrics metrics_;
    std::vector<std::string> logs_;
    std::string db_;
    bool keepDb_ = false;
    std::unique_ptr<SipTestEnv> env_;
    std::vector<std::unique_ptr<TestUa>> uas_;
};

// RTP packets arriving on a RawUdp socket (the parked party's media port).
inline size_t rtpCount(RawUdp &s) {
    s.poll();
    size_t n = 0;
    for (auto &p : s.received)
        if (p.size() >= 12 && (uint8_t(p[0]) >> 6) == 2)
            ++n;
    return n;
}

inline int rtpPayloadType(RawUdp &s) {
    s.poll();
    for (auto &p : s.received)
        if (p.size() >= 12 && (uint8_t(p[0]) >> 6) == 2)
            return uint8_t(p[1]) & 0x7f;
    return -1;
}

// 1003 calls 2002 through the proxy (record-routed); returns 1003's INVITE client. 2002 takes
// REFERs (202) and BYEs; 1003 takes NOTIFYs and BYEs.
inline Client &callThroughProxy(ParkEnv &p, TestUa &a, TestUa &b, uint16_t rtpA, uint16_t rtpB) {
    b.autoAnswer("INVITE", 200, offerSdp(rtpB), "application/sdp");
    b.autoAnswer("REFER", 202);
    b.autoAnswer("BYE", 200);
    a.autoAnswer("NOTIFY", 200);
    a.autoAnswer("BYE", 200);
    RequestOptions o;
    o.from = "\"James\" <" + aorOf("1003") + ">";
    o.to = "<" + aorOf("2002") + ">";
    o.body = offerSdp(rtpA);
    o.contentType = "application/sdp";
    auto &c = a.send("INVITE", aorOf("2002"), o);
    REQUIRE(p.waitFinal(c));
    REQUIRE(c.finalStatus == 200);
    return c;
}

// The REFER NOTIFYs (Event: refer, RFC 3515 §2.4.4) a UA received, in order.
inline std::vector<const SipMessage *> referNotifies(TestUa &ua) {
    std::vector<const SipMessage *> out;
    for (auto &in : ua.incoming)
        if (in->request.method() == "NOTIFY" && in->request.header("Event").rfind("refer", 0) == 0)
            out.push_back(&in->request);
    return out;
}

} // namespace parkway::test
