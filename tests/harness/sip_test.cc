#include "sip_test.hh"

#ifdef PARKWAY_HAVE_LOADER
#include <plugin/loader.hh>
#endif
#include <sofia-sip/tport_tag.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <strings.h>

namespace parkway::test {

using Clock = std::chrono::steady_clock;

bool runUntil(su_root_t *root, const std::function<bool()> &pred, int timeoutMs) {
    auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
    while (!pred()) {
        if (Clock::now() >= deadline) return pred();
        su_root_step(root, 5);
    }
    return true;
}

void runFor(su_root_t *root, int ms) {
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < deadline) su_root_step(root, 5);
}

// ---------------------------------------------------------------- SipMessage

bool SipMessage::isRequest() const { return sip() && sip()->sip_request; }
int SipMessage::status() const { return sip() && sip()->sip_status ? sip()->sip_status->st_status : 0; }
std::string SipMessage::method() const {
    if (!sip()) return {};
    if (sip()->sip_request) return sip()->sip_request->rq_method_name;
    return sip()->sip_cseq ? sip()->sip_cseq->cs_method_name : "";
}
std::string SipMessage::requestUri() const {
    return sip() && sip()->sip_request ? sofia::urlString(sip()->sip_request->rq_url) : "";
}
std::string SipMessage::header(const std::string &name, unsigned idx) const {
    return sofia::headerValue(msg.get(), name, idx);
}
size_t SipMessage::headerCount(const std::string &name) const {
    size_t n = 0;
    std::string v;
    while (sofia::headerValue(msg.get(), name, static_cast<unsigned>(n), v)) ++n;
    return n;
}
std::string SipMessage::body() const {
    return sip() && sip()->sip_payload ? std::string(sip()->sip_payload->pl_data, sip()->sip_payload->pl_len) : "";
}
std::string SipMessage::callId() const { return sip() && sip()->sip_call_id ? sip()->sip_call_id->i_id : ""; }
std::string SipMessage::fromTag() const {
    return sip() && sip()->sip_from && sip()->sip_from->a_tag ? sip()->sip_from->a_tag : "";
}
std::string SipMessage::toTag() const { return sip() && sip()->sip_to && sip()->sip_to->a_tag ? sip()->sip_to->a_tag : ""; }
uint32_t SipMessage::cseq() const { return sip() && sip()->sip_cseq ? sip()->sip_cseq->cs_seq : 0; }
int SipMessage::maxForwards() const {
    return sip() && sip()->sip_max_forwards ? static_cast<int>(sip()->sip_max_forwards->mf_count) : -1;
}

static SipMessage record(msg_t *m /* adopted */) {
    SipMessage s;
    s.msg = sofia::Msg::adopt(m);
    s.text = sofia::msgText(m);
    return s;
}

// ---------------------------------------------------------------- HookModule

namespace {
int hookInit(const pw_host_api *api, pw_host *host, void **ctx) {
    pw_str p = api->param_str(host, "self");
    std::string s(p.ptr ? p.ptr : "", p.len);
    auto *self = reinterpret_cast<HookModule *>(static_cast<uintptr_t>(std::stoull(s, nullptr, 16)));
    self->api = api;
    self->host = host;
    *ctx = self;
    return PW_OK;
}
int hookStart(void *ctx) {
    auto *self = static_cast<HookModule *>(ctx);
    return self->onStart ? self->onStart() : PW_OK;
}
void hookStop(void *ctx) {
    auto *self = static_cast<HookModule *>(ctx);
    if (self->onStop) self->onStop();
}
void hookDestroy(void *ctx) { static_cast<HookModule *>(ctx)->destroyed = true; }
pw_verdict hookRequest(void *ctx, pw_request *req) {
    auto *self = static_cast<HookModule *>(ctx);
    return self->onRequest ? self->onRequest(req) : PW_CONTINUE;
}
void hookResponse(void *ctx, const pw_msg *m) {
    auto *self = static_cast<HookModule *>(ctx);
    if (self->onResponse) self->onResponse(m);
}
int hookCommand(void *ctx, pw_str args, pw_writer *out) {
    auto *self = static_cast<HookModule *>(ctx);
    if (!self->onCommand) return self->api->writer_error(out, 404, PW_STR_LIT("no command"));
    return self->onCommand(std::string(args.ptr ? args.ptr : "", args.len), out);
}
int hookDomainRelease(void *ctx, pw_str domain, pw_writer *why) {
    auto *self = static_cast<HookModule *>(ctx);
    return self->onDomainRelease ? self->onDomainRelease(std::string(domain.ptr ? domain.ptr : "", domain.len), why)
                                 : PW_OK;
}
} // namespace

HookModule::HookModule(std::string name) : name_(std::move(name)) {
    params_[0] = pw_param_def{sizeof(pw_param_def), "self", PW_PARAM_STRING, "", "test object address"};
    params_[1] = pw_param_def{sizeof(pw_param_def), nullptr, PW_PARAM_STRING, nullptr, nullptr};
    cmds_[0] = pw_command_def{sizeof(pw_command_def), "test", "calls HookModule::onCommand", hookCommand};
    cmds_[1] = pw_command_def{sizeof(pw_command_def), nullptr, nullptr, nullptr};
    desc_.struct_size = sizeof(pw_module);
    desc_.abi_major = PW_ABI_MAJOR;
    desc_.abi_minor = PW_ABI_MINOR;
    desc_.name = name_.c_str();
    desc_.version = "test";
    desc_.description = "test hooks";
    desc_.params = params_;
    desc_.commands = cmds_;
    desc_.init = hookInit;
    desc_.start = hookStart;
    desc_.stop = hookStop;
    desc_.destroy = hookDestroy;
    desc_.on_request = hookRequest;
    desc_.on_response = hookResponse;
    desc_.domain_release = hookDomainRelease;
}

proxy::LoadedModule HookModule::loaded() {
    char buf[32];
    snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(this)));
    proxy::LoadedModule m;
    m.desc = &desc_;
    m.params["self"] = buf;
    return m;
}

static std::string s(pw_str v) { return v.ptr ? std::string(v.ptr, v.len) : std::string(); }

std::string HookModule::method(pw_request *req) const { return s(api->msg_method(api->request_msg(req))); }
std::string HookModule::header(pw_request *req, const std::string &name, unsigned idx) const {
    return s(api->msg_header(api->request_msg(req), pw_str{name.data(), name.size()}, idx));
}
std::string HookModule::requestUri(pw_request *req) const { return s(api->msg_request_uri(api->request_msg(req))); }
int HookModule::reply(pw_request *req, int status, const std::string &body, const std::string &ctype,
                      const std::vector<std::pair<std::string, std::string>> &headers) {
    std::vector<pw_header> hs;
    for (auto &[n, v] : headers) hs.push_back({pw_str{n.data(), n.size()}, pw_str{v.data(), v.size()}});
    return api->request_reply(req, status, pw_str{}, hs.data(), hs.size(), pw_str{ctype.data(), ctype.size()},
                              pw_str{body.data(), body.size()});
}
int HookModule::addTarget(pw_request *req, const std::string &uri, const std::string &nextHop) {
    return api->request_add_target(req, pw_str{uri.data(), uri.size()}, pw_str{nextHop.data(), nextHop.size()});
}

// ---------------------------------------------------------------- Client

bool Client::has(int status) const { return count(status) > 0; }
int Client::count(int status) const {
    int n = 0;
    for (auto &r : responses)
        if (r.status() == status) ++n;
    return n;
}
const SipMessage *Client::response(int status) const {
    for (auto &r : responses)
        if (r.status() == status) return &r;
    return nullptr;
}

// ---------------------------------------------------------------- TestUa

namespace {
int uaLegCb(nta_leg_magic_t *m, nta_leg_t *leg, nta_incoming_t *irq, const sip_t *sip) noexcept {
    try {
        return reinterpret_cast<TestUa *>(m)->onRequest(leg, irq, sip);
    } catch (...) {
        return 500;
    }
}
int uaAckCancelCb(nta_incoming_magic_t *m, nta_incoming_t *irq, const sip_t *sip) noexcept {
    try {
        auto *in = reinterpret_cast<Incoming *>(m);
        return in->ua->onAckCancel(in, irq, sip);
    } catch (...) {
        return 500;
    }
}
int uaResponseCb(nta_outgoing_magic_t *m, nta_outgoing_t *orq, const sip_t *sip) noexcept {
    try {
        auto *c = reinterpret_cast<Client *>(m);
        return c->ua->onResponse(c, orq, sip);
    } catch (...) {
        return 0;
    }
}
// Responses nta could not match to a live transaction (e.g. a 2xx from a second fork): recorded on the
// Client with the same Call-ID and CSeq.
int uaAgentCb(nta_agent_magic_t *m, nta_agent_t *agent, msg_t *msg, sip_t *sip) noexcept {
    try {
        auto *ua = reinterpret_cast<TestUa *>(m);
        if (ua && sip && sip->sip_status && sip->sip_call_id && sip->sip_cseq) {
            for (auto &c : ua->clients) {
                if (c->request.callId() == sip->sip_call_id->i_id && c->request.cseq() == sip->sip_cseq->cs_seq) {
                    c->responses.push_back(record(msg_ref_create(msg)));
                    break;
                }
            }
        }
    } catch (...) {
    }
    nta_msg_discard(agent, msg);
    return 0;
}
const char *orNull(const std::string &v) { return v.empty() ? nullptr : v.c_str(); }
std::string joinHeaders(const std::vector<std::string> &h) {
    std::string out;
    for (auto &l : h) out += (out.empty() ? "" : "\r\n") + l;
    return out;
}
} // namespace

TestUa::TestUa(su_root_t *root, std::string name, std::string bindUrl, uint32_t t1Ms, const std::string &tlsDir)
    : root_(root), name_(std::move(name)) {
    agent_ = nta_agent_create(root, URL_STRING_MAKE(bindUrl.c_str()), uaAgentCb,
                              reinterpret_cast<nta_agent_magic_t *>(this), NTATAG_UA(1), NTATAG_SIP_T1(t1Ms),
                              NTATAG_SIP_T1X64(64 * t1Ms), NTATAG_SIP_T2(8 * t1Ms), NTATAG_SIP_T4(10 * t1Ms),
                              NTATAG_PASS_100(1), TAG_IF(!tlsDir.empty(), TPTAG_CERTIFICATE(tlsDir.c_str())),
                              TAG_IF(!tlsDir.empty(), TPTAG_TLS_VERIFY_POLICY(TPTLS_VERIFY_NONE)), TAG_END());
    if (!agent_) throw std::runtime_error("TestUa " + name_ + ": cannot bind " + bindUrl);
    defaultLeg_ = nta_leg_tcreate(agent_, uaLegCb, reinterpret_cast<nta_leg_magic_t *>(this), NTATAG_NO_DIALOG(1),
                                  TAG_END());
    sip_via_t *v = nta_agent_via(agent_);
    if (v) {
        host_ = v->v_host;
        port_ = static_cast<uint16_t>(std::stoi(v->v_port ? v->v_port : "5060"));
        tls_ = v->v_protocol && strcasecmp(v->v_protocol, "SIP/2.0/TLS") == 0;
    }
}

TestUa::~TestUa() {
    for (auto &c : clients) {
        if (c->orq) nta_outgoing_destroy(c->orq);
        if (c->leg) nta_leg_destroy(c->leg);
    }
    for (auto &in : incoming) {
        if (in->irq) {
            nta_incoming_bind(in->irq, nullptr, nullptr);
            nta_incoming_destroy(in->irq);
        }
        if (in->leg) nta_leg_destroy(in->leg);
    }
    if (defaultLeg_) nta_leg_destroy(defaultLeg_);
    nta_agent_destroy(agent_);
}

std::string TestUa::hostPort() const { return host_ + ":" + std::to_string(port_); }
std::string TestUa::uri(const std::string &user) const {
    return "sip:" + (user.empty() ? name_ : user) + "@" + hostPort() + (tls_ ? ";transport=tls" : "");
}

Client &TestUa::start(std::unique_ptr<Client> c, nta_leg_t *leg, const std::string &method, const std::string &ruri,
                      const RequestOptions &opts) {
    Client *cp = c.get();
    clients.push_back(std::move(c));
    cp->ua = this;
    cp->method = method;
    cp->autoAck = opts.autoAck;
    cp->nextHop = !opts.nextHop.empty() ? opts.nextHop : proxy_;
    cp->dlgLeg = leg;
    sip_method_t m = sip_method_code(method.c_str());
    std::string hdrs = joinHeaders(opts.headers);
    std::string contact = "<" + uri() + ">";
    std::string from = opts.from.empty() ? "<" + uri() + ">" : opts.from;
    std::string to = opts.to.empty() ? "<" + ruri + ">" : opts.to;
    bool inDialog = leg != nullptr && cp->leg == nullptr;
    cp->orq = nta_outgoing_tcreate(
        leg ? leg : defaultLeg_, uaResponseCb, reinterpret_cast<nta_outgoing_magic_t *>(cp),
        cp->nextHop.empty() || inDialog ? nullptr : URL_STRING_MAKE(cp->nextHop.c_str()), m, method.c_str(),
        ruri.empty() ? nullptr : URL_STRING_MAKE(ruri.c_str()),
        SIPTAG_FROM_STR(leg ? nullptr : from.c_str()), SIPTAG_TO_STR(leg ? nullptr : to.c_str()),
        SIPTAG_CALL_ID_STR(orNull(opts.callId)), SIPTAG_CONTACT_STR(contact.c_str()), SIPTAG_HEADER_STR(orNull(hdrs)),
        SIPTAG_CONTENT_TYPE_STR(orNull(opts.contentType)), SIPTAG_PAYLOAD_STR(orNull(opts.body)), TAG_END());
    if (!cp->orq) throw std::runtime_error("TestUa " + name_ + ": cannot send " + method);
    if (msg_t *req = nta_outgoing_getrequest(cp->orq)) {
        cp->request = record(req);
        if (m == sip_method_invite) cp->inviteCseq = cp->request.cseq();
    }
    return *cp;
}

Client &TestUa::send(const std::string &method, const std::string &ruri, RequestOptions opts) {
    auto c = std::make_unique<Client>();
    sip_method_t m = sip_method_code(method.c_str());
    if (m == sip_method_invite || m == sip_method_subscribe || opts.dialog) {
        std::string from = opts.from.empty() ? "<" + uri() + ">" : opts.from;
        std::string to = opts.to.empty() ? "<" + ruri + ">" : opts.to;
        c->leg = nta_leg_tcreate(agent_, uaLegCb, reinterpret_cast<nta_leg_magic_t *>(this), SIPTAG_FROM_STR(from.c_str()),
                                 SIPTAG_TO_STR(to.c_str()), SIPTAG_CALL_ID_STR(orNull(opts.callId)), TAG_END());
        nta_leg_tag(c->leg, nullptr);
        nta_leg_t *leg = c->leg;
        opts.callId.clear(); // the leg carries it
        return start(std::move(c), leg, method, ruri, opts);
    }
    return start(std::move(c), nullptr, method, ruri, opts);
}

Client &TestUa::sendRaw(const std::string &text, const std::string &nextHop) {
    auto c = std::make_unique<Client>();
    Client *cp = c.get();
    clients.push_back(std::move(c));
    cp->ua = this;
    cp->nextHop = nextHop.empty() ? proxy_ : nextHop;
    msg_t *msg = msg_make(sip_default_mclass(), 0, text.data(), static_cast<ssize_t>(text.size()));
    if (!msg) throw std::runtime_error("TestUa: cannot parse raw request");
    sip_t *sip = sip_object(msg);
    cp->method = sip && sip->sip_request ? sip->sip_request->rq_method_name : "";
    cp->orq = nta_outgoing_mcreate(agent_, uaResponseCb, reinterpret_cast<nta_outgoing_magic_t *>(cp),
                                   cp->nextHop.empty() ? nullptr : URL_STRING_MAKE(cp->nextHop.c_str()), msg, TAG_END());
    if (!cp->orq) {
        msg_destroy(msg);
        throw std::runtime_error("TestUa: cannot send raw request");
    }
    if (msg_t *req = nta_outgoing_getrequest(cp->orq)) cp->request = record(req);
    return *cp;
}

int TestUa::cancel(Client &c) {
    if (!c.orq) return -1;
    return nta_outgoing_tcancel(c.orq, nullptr, nullptr, TAG_END()) ? 0 : -1;
}

int TestUa::ack(Client &c, const std::string &body, const std::string &ctype) {
    if (!c.dlgLeg || !c.inviteCseq) return -1;
    sofia::Home home;
    sip_cseq_t *cs = sip_cseq_create(home.get(), c.inviteCseq, SIP_METHOD_ACK);
    nta_outgoing_t *ack = nta_outgoing_tcreate(c.dlgLeg, nullptr, nullptr, nullptr, SIP_METHOD_ACK, nullptr, SIPTAG_CSEQ(cs),
                                               SIPTAG_CONTENT_TYPE_STR(orNull(ctype)), SIPTAG_PAYLOAD_STR(orNull(body)),
                                               TAG_END());
    if (!ack) return -1;
    nta_outgoing_destroy(ack);
    ++c.acksSent;
    return 0;
}

Client &TestUa::inDialog(Client &c, const std::string &method, RequestOptions opts) {
    if (!c.dlgLeg) throw std::runtime_error("TestUa: no dialog for in-dialog " + method);
    auto nc = std::make_unique<Client>();
    return start(std::move(nc), c.dlgLeg, method, "", opts);
}

Client &TestUa::inDialog(Incoming &in, const std::string &method, RequestOptions opts) {
    if (!in.leg) throw std::runtime_error("TestUa: no dialog for in-dialog " + method);
    auto nc = std::make_unique<Client>();
    return start(std::move(nc), in.leg, method, "", opts);
}

void TestUa::autoAnswer(const std::string &method, int status, std::string body, std::string ctype,
                        std::vector<std::string> headers) {
    rules_.push_back({method, status, std::move(body), std::move(ctype), std::move(headers)});
}

int TestUa::reply(Incoming &in, int status, const std::string &body, const std::string &ctype,
                  const std::vector<std::string> &headers) {
    if (!in.irq) return -1;
    const sip_t *sip = in.request.sip();
    bool hadTag = sip->sip_to && sip->sip_to->a_tag;
    if (status > 100 && !hadTag && !nta_incoming_gettag(in.irq)) nta_incoming_tag(in.irq, nullptr);
    sip_method_t m = sip->sip_request->rq_method;
    if (status >= 200 && status < 300 && !hadTag && !in.leg &&
        (m == sip_method_invite || m == sip_method_subscribe || m == sip_method_refer)) {
        in.leg = nta_leg_tcreate(agent_, uaLegCb, reinterpret_cast<nta_leg_magic_t *>(this),
                                 SIPTAG_CALL_ID(sip->sip_call_id), SIPTAG_FROM(sip->sip_to), SIPTAG_TO(sip->sip_from),
                                 TAG_END());
        if (in.leg) {
            nta_leg_tag(in.leg, nta_incoming_gettag(in.irq));
            nta_leg_server_route(in.leg, sip->sip_record_route, sip->sip_contact);
        }
    }
    std::string contact = "<" + uri() + ">";
    std::string hdrs = joinHeaders(headers);
    int rc = nta_incoming_treply(in.irq, status, sip_status_phrase(status) ? sip_status_phrase(status) : "Unknown",
                                 SIPTAG_CONTACT_STR(status >= 200 && status < 300 ? contact.c_str() : nullptr),
                                 SIPTAG_HEADER_STR(orNull(hdrs)), SIPTAG_CONTENT_TYPE_STR(orNull(ctype)),
                                 SIPTAG_PAYLOAD_STR(orNull(body)), TAG_END());
    in.status = status;
    return rc;
}

int TestUa::onRequest(nta_leg_t *, nta_incoming_t *irq, const sip_t *sip) {
    auto in = std::make_unique<Incoming>();
    Incoming *ip = in.get();
    ip->ua = this;
    ip->request = record(nta_incoming_getrequest(irq));
    incoming.push_back(std::move(in));
    sip_method_t m = sip->sip_request->rq_method;
    if (m == sip_method_ack) {
        strayAcks_.push_back(ip->request);
        nta_incoming_destroy(irq);
        return 0;
    }
    ip->irq = irq;
    nta_incoming_bind(irq, uaAckCancelCb, reinterpret_cast<nta_incoming_magic_t *>(ip));
    for (auto &r : rules_) {
        if (r.method == "*" ? true : sofia::iequals(r.method, sip->sip_request->rq_method_name)) {
            reply(*ip, r.status, r.body, r.contentType, r.headers);
            break;
        }
    }
    return 0;
}

int TestUa::onAckCancel(Incoming *in, nta_incoming_t *irq, const sip_t *sip) {
    if (!sip) { // transaction gone
        if (in->irq == irq) {
            nta_incoming_bind(irq, nullptr, nullptr);
        }
        return 0;
    }
    if (sip->sip_request->rq_method == sip_method_ack) {
        msg_t *m = nta_incoming_getrequest_ackcancel(irq);
        if (m) {
            in->acks.push_back(record(m));
            strayAcks_.push_back(in->acks.back());
        }
    } else if (sip->sip_request->rq_method == sip_method_cancel) {
        in->cancelled = true;
    }
    return 0;
}

int TestUa::onResponse(Client *c, nta_outgoing_t *orq, const sip_t *sip) {
    if (!sip) {
        int st = nta_outgoing_status(orq);
        c->lastStatus = st;
        c->finalStatus = st;
        return 0;
    }
    int status = sip->sip_status->st_status;
    c->responses.push_back(record(nta_outgoing_getresponse(orq)));
    c->lastStatus = status;
    if (status >= 200 && !c->finalStatus) c->finalStatus = status;
    if (c->dlgLeg && status >= 200 && status < 300 && sip->sip_to && sip->sip_to->a_tag) {
        if (c->leg) { // the response that creates the dialog (RFC 3261 §12.1.2)
            if (!nta_leg_get_rtag(c->leg)) nta_leg_rtag(c->leg, sip->sip_to->a_tag);
            nta_leg_client_route(c->leg, sip->sip_record_route, sip->sip_contact);
        }
        if (sip->sip_cseq && sip->sip_cseq->cs_method == sip_method_invite && c->autoAck) {
            c->inviteCseq = sip->sip_cseq->cs_seq;
            ack(*c);
        } else if (sip->sip_cseq && sip->sip_cseq->cs_method == sip_method_invite) {
            c->inviteCseq = sip->sip_cseq->cs_seq;
        }
    }
    return 0;
}

size_t TestUa::count(const std::string &method) const {
    size_t n = 0;
    for (auto &in : incoming)
        if (sofia::iequals(in->request.method(), method)) ++n;
    for (auto &in : incoming)
        if (sofia::iequals(method, "ACK")) n += in->acks.size();
    return n;
}

Incoming *TestUa::last(const std::string &method) {
    for (auto it = incoming.rbegin(); it != incoming.rend(); ++it)
        if (sofia::iequals((*it)->request.method(), method)) return it->get();
    return nullptr;
}

SipMessage *TestUa::lastAck() { return strayAcks_.empty() ? nullptr : &strayAcks_.back(); }

// ---------------------------------------------------------------- RawUdp

RawUdp::RawUdp() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd_ < 0) throw std::runtime_error("RawUdp: socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0) throw std::runtime_error("RawUdp: bind");
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len);
    port_ = ntohs(a.sin_port);
    fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
}

RawUdp::~RawUdp() {
    if (fd_ >= 0) ::close(fd_);
}

bool RawUdp::sendTo(uint16_t port, const std::string &data, const std::string &host) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    return ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr *>(&a), sizeof a) ==
           static_cast<ssize_t>(data.size());
}

void RawUdp::poll() {
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) return;
        received.emplace_back(buf, static_cast<size_t>(n));
    }
}

size_t RawUdp::countStartingWith(const std::string &prefix) {
    poll();
    size_t n = 0;
    for (auto &r : received)
        if (r.compare(0, prefix.size(), prefix) == 0) ++n;
    return n;
}

// ---------------------------------------------------------------- SipTestEnv

proxy::CoreConfig SipTestEnv::defaultConfig() {
    proxy::CoreConfig c;
    c.listen = {"sip:127.0.0.1:*"};
    c.domains = {"parkway.test"};
    c.database = ":memory:";
    c.instance = "parkway-test";
    c.t1Ms = 50;
    c.t2Ms = 400;
    c.t4Ms = 500;
    c.subMinExpires = 1;
    c.subMaxExpires = 3600;
    c.rateLimit = 0; // in-process tests send fast from one address; the hardening tests turn it on
    c.overloadQueueMs = 0; // the loop runs when a test steps it: its lateness (and queued datagrams) mean nothing
    c.auth.unauthenticatedDomains = {"*"}; // phones identify by From; the identity tests turn digest on
    return c;
}

SipTestEnv::SipTestEnv(proxy::CoreConfig cfg, proxy::Metrics *metrics, proxy::EventBus *events)
    : cfg_(std::move(cfg)), metrics_(metrics), events_(events) {
    proxy_ = std::make_unique<proxy::Proxy>(root_.get(), cfg_, metrics_, events_);
    proxy_->bind();
}

SipTestEnv::~SipTestEnv() { proxy_.reset(); }

std::string SipTestEnv::moduleDir() {
#ifdef PARKWAY_MODULE_DIR
    return PARKWAY_MODULE_DIR;
#else
    return "modules";
#endif
}

void SipTestEnv::load(const std::string &name, const std::map<std::string, std::string> &params) {
#ifdef PARKWAY_HAVE_LOADER
    pending_.push_back(proxy::loadModule(name, moduleDir(), params));
#else
    (void)name, (void)params;
    throw std::runtime_error("SipTestEnv::load: built without the module loader");
#endif
}

void SipTestEnv::start() {
    proxy_->addModules(std::move(pending_));
    pending_.clear();
    proxy_->start();
}

std::string SipTestEnv::proxyHostPort() const { return "127.0.0.1:" + std::to_string(proxy_->port()); }
std::string SipTestEnv::proxyUri() const { return "sip:" + proxyHostPort(); }

std::unique_ptr<TestUa> SipTestEnv::makeUa(const std::string &name, const std::string &bindUrl) {
    auto ua = std::make_unique<TestUa>(root(), name, bindUrl, cfg_.t1Ms);
    ua->setProxy(proxyUri());
    return ua;
}

void SipTestEnv::restart(std::vector<proxy::LoadedModule> modules) {
    uint16_t p = proxy_->port();
    proxy_.reset();
    proxy::CoreConfig c = cfg_;
    c.listen = {"sip:127.0.0.1:" + std::to_string(p)};
    proxy_ = std::make_unique<proxy::Proxy>(root(), c, metrics_, events_);
    proxy_->bind();
    proxy_->addModules(std::move(modules));
    proxy_->start();
}

} // namespace parkway::test
