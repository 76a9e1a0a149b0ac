// Shared set-up for the TLS tests: a throwaway PKI made with the openssl CLI (make_certs.sh) in a temp folder
// removed at exit, the in-process proxy with a TLS listener and the park modules, TLS-only phones, and
// `openssl s_client` runs against the proxy while its su_root is stepped.
#pragma once
#include "park_env.hh"

#include <plugin/loader.hh>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace parkway::test {

// The PKI, made once per test process, removed when it exits.
class Pki {
public:
    static const Pki &get() {
        static Pki pki;
        return pki;
    }
    const std::string &dir() const { return dir_; }
    std::string file(const std::string &name) const { return dir_ + "/" + name; }
    ~Pki() {
        if (!dir_.empty())
            std::system(("rm -rf '" + dir_ + "'").c_str());
    }

private:
    Pki() {
        char tmpl[] = "/tmp/parkway-tls-test-XXXXXX";
        if (!mkdtemp(tmpl))
            throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        std::string cmd = std::string("sh '") + PARKWAY_TLS_MAKE_CERTS + "' '" + dir_ + "'";
        if (std::system(cmd.c_str()) != 0)
            throw std::runtime_error("make_certs.sh failed");
    }
    std::string dir_;
};

inline std::string slurpFile(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// A child process (openssl s_client) with stdin from a file and stdout+stderr into a file. Stopped (SIGTERM,
// then SIGKILL) and reaped when destroyed.
class Child {
public:
    Child(const std::vector<std::string> &argv, const std::string &stdinFile) {
        char tmpl[] = "/tmp/parkway-tls-out-XXXXXX";
        int fd = mkstemp(tmpl);
        if (fd < 0)
            throw std::runtime_error("mkstemp failed");
        out_ = tmpl;
        pid_ = fork();
        if (pid_ == 0) {
            int in = open(stdinFile.c_str(), O_RDONLY);
            if (in >= 0)
                dup2(in, 0);
            dup2(fd, 1);
            dup2(fd, 2);
            std::vector<char *> args;
            for (auto &a : argv)
                args.push_back(const_cast<char *>(a.c_str()));
            args.push_back(nullptr);
            execvp(args[0], args.data());
            _exit(127);
        }
        close(fd);
    }
    ~Child() {
        stop();
        std::remove(out_.c_str());
    }
    bool exited() {
        if (pid_ <= 0)
            return true;
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            pid_ = -1;
            return true;
        }
        return false;
    }
    void stop() {
        if (pid_ <= 0)
            return;
        kill(pid_, SIGTERM);
        for (int i = 0; i < 100 && !exited(); ++i)
            usleep(10000);
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    std::string output() const { return slurpFile(out_); }
    int status() const { return status_; }

private:
    pid_t pid_ = -1;
    int status_ = -1;
    std::string out_;
};

struct TlsEnvOptions {
    bool verifyClient = true;
    bool verifyServer = true;
    std::string certificate = "server"; // name in the PKI
    std::vector<proxy::UserEntry> users; // not empty: kDomain authenticates these users (docs/auth.md)
};

// The proxy with listeners UDP+TCP and TLS on 127.0.0.1 (ephemeral), registrar + callpark + router.
class TlsEnv {
public:
    explicit TlsEnv(TlsEnvOptions o = {}) {
        const Pki &pki = Pki::get();
        db_ = tempDb();
        proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
        cfg.listen = {"sip:127.0.0.1:*", "sips:127.0.0.1:*"};
        cfg.database = db_;
        cfg.tlsCertificate = pki.file(o.certificate + ".pem");
        cfg.tlsPrivateKey = pki.file(o.certificate + ".key");
        cfg.tlsCaFile = pki.file("ca.pem");
        cfg.tlsVerifyClient = o.verifyClient;
        cfg.tlsVerifyServer = o.verifyServer;
        if (!o.users.empty()) {
            cfg.auth.unauthenticatedDomains.clear();
            cfg.auth.users = o.users;
        }
        cfg.logSink = [](int level, const std::string &module, const std::string &text) {
            if (level <= 1 || std::getenv("PARKWAY_DEBUG"))
                std::fprintf(stderr, "parkway [%s] %s\n", module.c_str(), text.c_str());
        };
        env_ = std::make_unique<SipTestEnv>(cfg);
        env_->add(proxy::loadModule("registrar", SipTestEnv::moduleDir(), {}));
        env_->add(
            proxy::loadModule("callpark", SipTestEnv::moduleDir(),
                              {{"moh_port_min", "40000"}, {"moh_port_max", "49998"}, {"database", db_ + ".park"}}));
        env_->add(proxy::loadModule("router", SipTestEnv::moduleDir(), {}));
        env_->start();
        for (auto &u : env_->proxy().boundUrls()) {
            auto p = u.find(";transport=tls");
            if (p == std::string::npos)
                continue;
            auto colon = u.rfind(':', p);
            tlsPort_ = static_cast<uint16_t>(std::stoi(u.substr(colon + 1, p - colon - 1)));
        }
        if (!tlsPort_)
            throw std::runtime_error("no TLS listener bound");
    }
    ~TlsEnv() {
        uas_.clear();
        env_.reset();
        for (std::string f : {db_, db_ + ".park"})
            for (const char *suffix : {"", "-wal", "-shm"})
                std::remove((f + suffix).c_str());
    }
    SipTestEnv &env() { return *env_; }
    uint16_t tlsPort() const { return tlsPort_; }
    std::string tlsProxyUri() const { return "sip:127.0.0.1:" + std::to_string(tlsPort_) + ";transport=tls"; }

    // A TLS-only phone with `cert`'s certificate folder; its requests go to the proxy's TLS listener.
    TestUa &tlsUa(const std::string &name, const std::string &cert = "phone") {
        auto ua = std::make_unique<TestUa>(env_->root(), name, "sips:127.0.0.1:*", env_->config().t1Ms,
                                           Pki::get().file(cert + ".d"));
        ua->setProxy(tlsProxyUri());
        uas_.push_back(std::move(ua));
        return *uas_.back();
    }
    // A plain UDP/TCP phone.
    TestUa &plainUa(const std::string &name) {
        uas_.push_back(env_->makeUa(name));
        return *uas_.back();
    }
    // REGISTER `ext` with the UA's own contact; returns the final status.
    int registerAs(TestUa &ua, const std::string &ext) {
        RequestOptions o;
        o.from = "<" + aorOf(ext) + ">";
        o.to = "<" + aorOf(ext) + ">";
        o.headers = {"Contact: <" + ua.uri(ext) + ">", "Expires: 3600"};
        auto &c = ua.send("REGISTER", "sip:" + kDomain, o);
        env_->runUntil([&] { return c.finalStatus != 0; });
        return c.finalStatus;
    }
    Client &invite(TestUa &ua, const std::string &fromExt, const std::string &dial, uint16_t rtpPort) {
        RequestOptions o;
        o.from = "<" + aorOf(fromExt) + ">";
        o.to = "<sip:" + dial + "@" + kDomain + ">";
        o.body = offerSdp(rtpPort);
        o.contentType = "application/sdp";
        return ua.send("INVITE", "sip:" + dial + "@" + kDomain, o);
    }
    bool waitFinal(Client &c, int ms = 5000) {
        return env_->runUntil([&] { return c.finalStatus != 0; }, ms);
    }
    size_t parkedCount() {
        auto r = env_->proxy().runCommand("callpark", "parked.list", "{}");
        auto j = nlohmann::json::parse(r.json, nullptr, false);
        REQUIRE(r.httpStatus == 200);
        REQUIRE(j.contains("parked"));
        return j["parked"].size();
    }

    // `openssl s_client` against the TLS listener, sending an OPTIONS and waiting for the answer (or for the
    // client to give up) while the proxy runs. Returns everything s_client printed.
    std::string sClient(const std::vector<std::string> &extra, int ms = 5000) {
        const Pki &pki = Pki::get();
        const std::string n = std::to_string(++n_);
        std::string req = "OPTIONS sip:127.0.0.1:" + std::to_string(tlsPort_) +
                          " SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bKsclient" + n +
                          "\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: "
                          "<sip:127.0.0.1>\r\nCall-ID: sclient-" +
                          n + "\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        std::string in = pki.file("options-" + n + ".txt");
        std::ofstream(in) << req;
        std::vector<std::string> argv = {"openssl",
                                         "s_client",
                                         "-connect",
                                         "127.0.0.1:" + std::to_string(tlsPort_),
                                         "-CAfile",
                                         pki.file("ca.pem"),
                                         "-verify_return_error",
                                         "-verify_ip",
                                         "127.0.0.1",
                                         "-brief",
                                         "-ign_eof"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        Child child(argv, in);
        env_->runUntil([&] { return child.exited() || child.output().find("SIP/2.0 200") != std::string::npos; }, ms);
        child.stop();
        std::remove(in.c_str());
        return child.output();
    }

private:
    std::string db_;
    uint16_t tlsPort_ = 0;
    int n_ = 0;
    std::unique_ptr<SipTestEnv> env_;
    std::vector<std::unique_ptr<TestUa>> uas_;
};

} // namespace parkway::test
