// In-process SIP test harness: one su_root shared by a Proxy and fake phones (TestUa, raw nta agents),
// stepped until a predicate holds — no sleeps. Used by tests/sip and the call-park tests.
#pragma once
#include <core/proxy.hh>
#include <sofia/sofia.hh>

#include <parkway/module.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parkway::test {

// Step `root` (su_root_step) until pred() is true or timeoutMs of wall time passed. Returns pred().
bool runUntil(su_root_t *root, const std::function<bool()> &pred, int timeoutMs = 5000);
// Step `root` for ms milliseconds (processing everything due meanwhile).
void runFor(su_root_t *root, int ms);

// A recorded SIP message (request or response), kept alive by reference.
struct SipMessage {
    sofia::Msg msg;
    std::string text; // as serialised
    sip_t *sip() const { return msg.sip(); }
    bool isRequest() const;
    int status() const;              // 0 for a request
    std::string method() const;      // request method or CSeq method
    std::string requestUri() const;
    std::string header(const std::string &name, unsigned idx = 0) const; // "" when absent
    size_t headerCount(const std::string &name) const;
    std::string body() const;
    std::string callId() const;
    std::string fromTag() const;
    std::string toTag() const;
    uint32_t cseq() const;
    int maxForwards() const; // -1 when absent
};

// Hook module: a pw_module whose hooks call std::functions of this object. Give loaded() to the proxy.
class HookModule {
public:
    explicit HookModule(std::string name = "hook");
    HookModule(const HookModule &) = delete;
    HookModule &operator=(const HookModule &) = delete;

    std::function<pw_verdict(pw_request *)> onRequest;    // default: CONTINUE
    std::function<void(const pw_msg *)> onResponse;
    std::function<int()> onStart;
    std::function<void()> onStop;
    std::function<int(const std::string &args, pw_writer *out)> onCommand; // command "test"
    std::function<int(const std::string &domain, pw_writer *why)> onDomainRelease; // v1.4; default: PW_OK

    // Set by init(): valid while the proxy lives.
    const pw_host_api *api = nullptr;
    pw_host *host = nullptr;
    bool destroyed = false;

    proxy::LoadedModule loaded();

    // Helpers over api for test code.
    std::string method(pw_request *req) const;
    std::string header(pw_request *req, const std::string &name, unsigned idx = 0) const;
    std::string requestUri(pw_request *req) const;
    int reply(pw_request *req, int status, const std::string &body = {}, const std::string &ctype = {},
              const std::vector<std::pair<std::string, std::string>> &headers = {});
    int addTarget(pw_request *req, const std::string &uri, const std::string &nextHop = {});

private:
    std::string name_;
    pw_module desc_{};
    pw_command_def cmds_[2]{};
    pw_param_def params_[2]{};
};

struct RequestOptions {
    std::vector<std::string> headers; // raw "Name: value"
    std::string body, contentType;
    std::string from, to;   // header values; defaults "<sip:name@ua-host:port>" / "<ruri>"
    std::string nextHop;    // where to send; default: the UA's outbound proxy (setProxy), else the R-URI
    std::string callId;     // default: new
    bool dialog = false;    // create a leg (INVITE/SUBSCRIBE always do)
    bool autoAck = true;    // INVITE: ACK a 2xx automatically
};

class TestUa;

// A request this UA sent, with everything that came back.
struct Client {
    TestUa *ua = nullptr;
    nta_outgoing_t *orq = nullptr;
    nta_leg_t *leg = nullptr;    // dialog created by this request (INVITE/SUBSCRIBE or options.dialog), owned
    nta_leg_t *dlgLeg = nullptr; // the dialog this request belongs to (== leg, or the parent's for in-dialog)
    std::string method;
    SipMessage request;
    std::vector<SipMessage> responses;
    int lastStatus = 0, finalStatus = 0;
    uint32_t inviteCseq = 0;
    bool autoAck = true;
    int acksSent = 0;
    std::string nextHop;
    bool has(int status) const;
    int count(int status) const;
    const SipMessage *response(int status) const; // first with that status
};

// A request this UA received (server transaction), with ACK/CANCEL seen on it.
struct Incoming {
    TestUa *ua = nullptr;
    nta_incoming_t *irq = nullptr;
    nta_leg_t *leg = nullptr; // created when we answered 2xx to INVITE/SUBSCRIBE (to send BYE etc.)
    SipMessage request;
    std::vector<SipMessage> acks;
    bool cancelled = false;
    int status = 0; // last status we sent
};

class TestUa {
public:
    // bindUrl: "sip:127.0.0.1:*" (UDP+TCP ephemeral) or with ";transport=tcp", or "sips:127.0.0.1:*" (TLS only:
    // tlsDir is then a sofia-sip certificate folder with agent.pem and cafile.pem; the phone verifies nobody).
    TestUa(su_root_t *root, std::string name = "ua", std::string bindUrl = "sip:127.0.0.1:*", uint32_t t1Ms = 50,
           const std::string &tlsDir = {});
    ~TestUa();
    TestUa(const TestUa &) = delete;
    TestUa &operator=(const TestUa &) = delete;

    const std::string &name() const { return name_; }
    uint16_t port() const { return port_; }
    std::string hostPort() const; // "127.0.0.1:40123"
    std::string uri(const std::string &user = {}) const;    // "sip:user@127.0.0.1:40123" (user defaults to name)
                                                            // (+ ";transport=tls" for a TLS phone)
    void setProxy(const std::string &uri) { proxy_ = uri; } // outbound proxy for requests

    // ---- UAC
    Client &send(const std::string &method, const std::string &ruri, RequestOptions opts = {});
    // Send a full request written by hand (no Via: nta adds it). Sent to opts.nextHop / the proxy.
    Client &sendRaw(const std::string &text, const std::string &nextHop = {});
    int cancel(Client &c);
    int ack(Client &c, const std::string &body = {}, const std::string &ctype = {});
    // In-dialog request on the dialog of c (after its 2xx), e.g. BYE, re-INVITE, NOTIFY.
    Client &inDialog(Client &c, const std::string &method, RequestOptions opts = {});
    Client &inDialog(Incoming &in, const std::string &method, RequestOptions opts = {});

    // ---- UAS
    struct Rule {
        std::string method; // "*" matches any (not ACK/CANCEL)
        int status = 200;
        std::string body, contentType;
        std::vector<std::string> headers;
    };
    void autoAnswer(const std::string &method, int status, std::string body = {}, std::string ctype = {},
                    std::vector<std::string> headers = {});
    void clearRules() { rules_.clear(); }
    int reply(Incoming &in, int status, const std::string &body = {}, const std::string &ctype = {},
              const std::vector<std::string> &headers = {});

    // ---- what was seen
    std::vector<std::unique_ptr<Incoming>> incoming; // every request, including in-dialog ones and stray ACKs
    std::vector<std::unique_ptr<Client>> clients;
    size_t count(const std::string &method) const;   // requests received with that method
    Incoming *last(const std::string &method);       // latest received with that method, or nullptr
    SipMessage *lastAck();                           // latest ACK, absorbed by a transaction or stray

    nta_agent_t *agent() const { return agent_; }

    // internal trampolines
    int onRequest(nta_leg_t *leg, nta_incoming_t *irq, const sip_t *sip);
    int onAckCancel(Incoming *in, nta_incoming_t *irq, const sip_t *sip);
    int onResponse(Client *c, nta_outgoing_t *orq, const sip_t *sip);

private:
    Client &start(std::unique_ptr<Client> c, nta_leg_t *leg, const std::string &method, const std::string &ruri,
                  const RequestOptions &opts);
    su_root_t *root_;
    std::string name_, host_ = "127.0.0.1", proxy_;
    bool tls_ = false;
    uint16_t port_ = 0;
    nta_agent_t *agent_ = nullptr;
    nta_leg_t *defaultLeg_ = nullptr;
    std::vector<Rule> rules_;
    std::vector<SipMessage> strayAcks_;
};

// A plain UDP socket for byte-exact tests (malformed input, counting retransmissions).
class RawUdp {
public:
    RawUdp(); // bound to 127.0.0.1:ephemeral, non-blocking
    ~RawUdp();
    RawUdp(const RawUdp &) = delete;
    RawUdp &operator=(const RawUdp &) = delete;
    uint16_t port() const { return port_; }
    bool sendTo(uint16_t port, const std::string &data, const std::string &host = "127.0.0.1");
    // Drain the socket into received (call from runUntil predicates).
    void poll();
    std::vector<std::string> received;
    size_t countStartingWith(const std::string &prefix); // polls first

private:
    int fd_ = -1;
    uint16_t port_ = 0;
};

// The proxy under test on one su_root, with shrunk timers.
class SipTestEnv {
public:
    static proxy::CoreConfig defaultConfig(); // sip:127.0.0.1:* (UDP+TCP), T1 50ms, T2 400ms, sub expires [1,3600]
    // metrics/events: optional observability sinks handed to the Proxy (proxy/admin/metrics.hh, event_bus.hh).
    explicit SipTestEnv(proxy::CoreConfig cfg = defaultConfig(), proxy::Metrics *metrics = nullptr,
                        proxy::EventBus *events = nullptr);
    ~SipTestEnv();

    su_root_t *root() const { return root_.get(); }
    proxy::Proxy &proxy() { return *proxy_; }
    const proxy::CoreConfig &config() const { return cfg_; }

    // Modules, before start(). load() dlopens <PARKWAY_MODULE_DIR>/<name>.so through the loader.
    void add(proxy::LoadedModule m) { pending_.push_back(std::move(m)); }
    void add(HookModule &h) { pending_.push_back(h.loaded()); }
    void load(const std::string &name, const std::map<std::string, std::string> &params = {});
    static std::string moduleDir();
    void start(); // addModules(pending) + start()

    std::string proxyUri() const;  // "sip:127.0.0.1:<port>"
    std::string proxyHostPort() const;
    uint16_t port() const { return proxy_->port(); }

    bool runUntil(const std::function<bool()> &pred, int timeoutMs = 5000) { return test::runUntil(root(), pred, timeoutMs); }
    void runFor(int ms) { test::runFor(root(), ms); }
    std::unique_ptr<TestUa> makeUa(const std::string &name, const std::string &bindUrl = "sip:127.0.0.1:*");

    // Destroy the proxy (no BYE is sent for module dialogs) and start a new one on the same port with
    // these modules — for export/restore tests.
    void restart(std::vector<proxy::LoadedModule> modules);

private:
    sofia::Root root_;
    proxy::CoreConfig cfg_;
    proxy::Metrics *metrics_ = nullptr;
    proxy::EventBus *events_ = nullptr;
    std::unique_ptr<proxy::Proxy> proxy_;
    std::vector<proxy::LoadedModule> pending_;
};

} // namespace parkway::test
