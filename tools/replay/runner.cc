// parkway-replay run: the replayer (runner.hh, docs/replay.md "Running a fixture").
//
// One su_root, one nta agent per participant on its own loopback address. Steps run in the fixture's partial
// order: a `send` goes when its `after` steps are done and its delay (divided by --speed) passed; every message
// the server sends to a phone is offered to that phone's pending `expect` steps whose `after` are done, and the
// first that matches completes and binds the server's symbols it carries.
#include "runner.hh"

#include "run_text.hh"

#include <sofia-sip/msg.h>
#include <sofia-sip/msg_header.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_tag.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su_alloc.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/url.h>

#include <core/digest.hh>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <iostream>
#include <map>
#include <random>
#include <set>

extern "C" {
extern su_log_t nta_log[];   // sofia-sip's log of nta and tport: quiet unless PARKWAY_REPLAY_TRACE is set (the
extern su_log_t tport_log[]; // runner reports what went wrong itself)
}

namespace parkway::replay {

namespace rt = runtext;
using Clock = std::chrono::steady_clock;

namespace {

double secondsBetween(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

Clock::duration secondsToDuration(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

std::string msgText(msg_t *msg) {
    if (!msg)
        return {};
    su_home_t *home = static_cast<su_home_t *>(su_home_new(sizeof(su_home_t)));
    size_t len = 0;
    char *s = msg_as_string(home, msg, nullptr, 0, &len);
    std::string out = s ? std::string(s, len) : std::string();
    su_home_unref(home);
    return out;
}

const char *orNull(const std::string &s) {
    return s.empty() ? nullptr : s.c_str();
}

std::string nextAddress(const std::string &base, size_t i) {
    in_addr a{};
    if (inet_pton(AF_INET, base.c_str(), &a) != 1)
        throw RunInputError("--bind " + base + ": not an IPv4 address");
    a.s_addr = htonl(ntohl(a.s_addr) + static_cast<uint32_t>(i));
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    return buf;
}

} // namespace

ServerAddress parseServerAddress(const std::string &text) {
    ServerAddress s;
    std::string rest = text;
    for (const char *t : {"udp:", "tcp:"})
        if (rest.rfind(t, 0) == 0) {
            s.transport = std::string(t, 3);
            rest = rest.substr(4);
        }
    auto colon = rest.rfind(':');
    s.host = colon == std::string::npos ? rest : rest.substr(0, colon);
    if (colon != std::string::npos) {
        std::string p = rest.substr(colon + 1);
        if (p.empty() || p.find_first_not_of("0123456789") != std::string::npos || std::stoi(p) <= 0 ||
            std::stoi(p) > 65535)
            throw RunInputError("--server " + text + ": bad port '" + p + "' (want [udp:|tcp:]HOST[:PORT])");
        s.port = std::stoi(p);
    }
    if (s.host.empty() || s.host.find(':') != std::string::npos)
        throw RunInputError("--server " + text + ": want [udp:|tcp:]HOST[:PORT] (IPv4 or a name)");
    return s;
}

// ---------------------------------------------------------------- state

struct Phone;
enum class State { Pending, Done, Skipped, Failed };

// A request a phone sent (a client transaction).
struct Outgoing {
    Runner::Impl *impl = nullptr;
    Phone *phone = nullptr;
    nta_outgoing_t *orq = nullptr;
    int step = 0;
    std::string method, callId, text; // text: as rendered (before nta added its Via)
    long cseq = 0;                    // as in the fixture (before any shift)
    std::set<int> statuses;           // seen, to drop retransmissions
    int final = 0;
    std::string ackText; // the ACK sent for its 2xx, re-sent on a retransmitted 2xx (RFC 3261 §13.2.2.4)
};

// A request the server sent to a phone (a server transaction).
struct Incoming {
    Runner::Impl *impl = nullptr;
    Phone *phone = nullptr;
    nta_incoming_t *irq = nullptr;
    std::string method, text;
    int answered = 0; // last status sent
};

struct Phone {
    Runner::Impl *impl = nullptr;
    const Participant *p = nullptr;
    std::string host, transport;
    int port = 0;
    nta_agent_t *agent = nullptr;
    nta_leg_t *leg = nullptr;
    std::vector<int> media;                      // UDP sockets behind the media-port symbols
    std::vector<std::string> wwwAuth, proxyAuth; // the last challenge of each kind
    unsigned nc = 0;
};

// A message from the server waiting for an expect step.
struct Inbound {
    Phone *phone = nullptr;
    std::string text;
    Incoming *in = nullptr;
    Clock::time_point at;
    bool candidate = false; // shown as the closest message of a failed step
};

struct StepRun {
    const Step *step = nullptr;
    State state = State::Pending;
    Clock::time_point doneAt;
    double seconds = 0;
    std::string failure, closest;
    size_t closestCount = 0;
    Incoming *in = nullptr; // expect request steps: the request that matched
};

struct Runner::Impl {
    Impl(const Fixture &f, const RunOptions &o) : fx(f), opt(o), server(parseServerAddress(o.server)) {}
    ~Impl();

    const Fixture &fx;
    RunOptions opt;
    ServerAddress server;
    su_root_t *root = nullptr;
    bool suInit = false;
    std::vector<std::unique_ptr<Phone>> phones;
    std::map<std::string, Phone *> byName;
    Bindings bound;
    std::vector<StepRun> runs;
    std::map<int, size_t> index;
    std::vector<std::unique_ptr<Outgoing>> outs;
    std::vector<std::unique_ptr<Incoming>> ins;
    std::deque<Inbound> backlog;
    std::vector<std::string> unexpected;
    std::vector<std::string> local;        // requests that got no answer at all (nta's own 408/503)
    std::map<std::string, long> cseqShift; // Call-ID -> +N after automatic re-sends with credentials
    Clock::time_point start;
    bool lingering = false;
    std::mt19937_64 rng{std::random_device{}()};

    // setup
    void openPhones();
    // order
    bool ready(size_t i, Clock::time_point *readyAt = nullptr) const;
    bool satisfied(int stepId) const;
    std::vector<bool> blocked() const;
    bool finished() const;
    void complete(size_t i);
    void fail(size_t i, const std::string &why);
    // sending
    bool runSends();
    void runSend(size_t i);
    SymbolLookup lookupFor(Phone &ph);
    std::string fresh(const Symbol &sym, Phone &ph);
    int openMediaPort(Phone &ph);
    std::vector<std::string> withCredentials(const Step &s, Phone &ph, const std::string &method);
    void sendRequest(size_t i, Phone &ph);
    void sendAck(size_t i, Phone &ph, const std::string &text, Outgoing *invite);
    void sendCancel(size_t i, Phone &ph, const std::string &text);
    Outgoing *transmit(Phone &ph, const std::string &text, int step, bool ack = false);
    void sendResponse(size_t i, Phone &ph);
    void reply(Incoming &in, const std::string &text, const std::string &method);
    Incoming *requestToAnswer(size_t i, Phone &ph, const std::string &method);
    // receiving
    void onResponse(Outgoing *o, const std::string &text);
    void onRequest(Phone &ph, Incoming *in, const std::string &text);
    std::optional<MatchResult> compare(const Step &s, const std::string &text) const;
    bool offer(Inbound &m);
    bool failFinal(Inbound &m);
    bool resendWithCredentials(Outgoing *o, const std::string &text);
    void offerBacklog();
    void expireBacklog(bool all);
    void answerUnexpected(Incoming *in);
    void checkDeadlines();
    // report
    std::string stepName(const Step &s) const;
    std::string dialogLine(const Step &s) const; // "  dialog: {{call1}} = ...\n"
    RunReport report();
};

// ---------------------------------------------------------------- nta callbacks (never throw into C)

namespace {

int onResponseCb(nta_outgoing_magic_t *m, nta_outgoing_t *orq, const sip_t *sip) noexcept {
    auto *o = reinterpret_cast<Outgoing *>(m);
    try {
        if (!sip)
            return 0;
        // A response nta made itself (the request could not be delivered, or timer B/F fired): sofia-sip marks
        // it with NTA_INTERNAL_MSG (1 << 15, nta_internal.h). It is no message from the server: noted, and the
        // expect steps time out with "nothing came".
        if (sip->sip_flags & (1u << 15)) {
            o->impl->local.push_back(fmt::format("{}: {} CSeq {} got no answer from the server ({} {} from the "
                                                 "local stack)",
                                                 o->phone->p->name, o->method, o->cseq, sip->sip_status->st_status,
                                                 sip->sip_status->st_phrase));
            return 0;
        }
        msg_t *msg = nta_outgoing_getresponse(orq);
        std::string text = msgText(msg);
        if (msg)
            msg_destroy(msg);
        o->impl->onResponse(o, text);
    } catch (const std::exception &e) {
        std::cerr << "parkway-replay: " << e.what() << "\n";
    }
    return 0;
}

int onAckCancelCb(nta_incoming_magic_t *m, nta_incoming_t *irq, const sip_t *sip) noexcept {
    auto *in = reinterpret_cast<Incoming *>(m);
    try {
        if (!sip)
            return 0; // the transaction ended; the Incoming keeps irq until the end of the run
        msg_t *msg = nta_incoming_getrequest_ackcancel(irq);
        std::string text = msgText(msg);
        if (msg)
            msg_destroy(msg);
        auto ack = std::make_unique<Incoming>();
        ack->impl = in->impl, ack->phone = in->phone, ack->method = rt::method(text), ack->text = text;
        Incoming *ap = ack.get();
        in->impl->ins.push_back(std::move(ack));
        in->impl->onRequest(*in->phone, ap, text);
        // RFC 3261 §9.2: a CANCELled INVITE not yet answered gets 487 (nta answered the CANCEL itself).
        if (sip->sip_request->rq_method == sip_method_cancel && in->answered < 200 && in->irq) {
            nta_incoming_treply(in->irq, SIP_487_REQUEST_CANCELLED, TAG_END());
            in->answered = 487;
        }
    } catch (const std::exception &e) {
        std::cerr << "parkway-replay: " << e.what() << "\n";
    }
    return 0;
}

int onRequestCb(nta_leg_magic_t *m, nta_leg_t *, nta_incoming_t *irq, const sip_t *sip) noexcept {
    auto *ph = reinterpret_cast<Phone *>(m);
    Incoming *ip = nullptr;
    try {
        msg_t *msg = nta_incoming_getrequest(irq);
        std::string text = msgText(msg);
        if (msg)
            msg_destroy(msg);
        auto in = std::make_unique<Incoming>();
        in->impl = ph->impl, in->phone = ph, in->method = rt::method(text), in->text = text;
        ip = in.get();
        ph->impl->ins.push_back(std::move(in));
        if (sip->sip_request->rq_method == sip_method_ack) {
            nta_incoming_destroy(irq); // an ACK that matched no transaction (2xx ACK after it ended)
        } else {
            ip->irq = irq;
            nta_incoming_bind(irq, onAckCancelCb, reinterpret_cast<nta_incoming_magic_t *>(ip));
            if (sip->sip_request->rq_method == sip_method_invite) { // as a phone does (RFC 3261 §17.2.1)
                nta_incoming_treply(irq, SIP_100_TRYING, TAG_END());
                ip->answered = 100;
            }
        }
        ph->impl->onRequest(*ph, ip, text);
    } catch (const std::exception &e) {
        std::cerr << "parkway-replay: " << e.what() << "\n";
        return ip ? 0 : 500; // once kept, the transaction is ours to answer (or to destroy at the end)
    }
    return 0;
}

// Responses no transaction wants: a 2xx retransmitted after the INVITE transaction ended gets its ACK again.
int onStrayCb(nta_agent_magic_t *m, nta_agent_t *agent, msg_t *msg, sip_t *sip) noexcept {
    auto *ph = reinterpret_cast<Phone *>(m);
    try {
        if (sip && sip->sip_status && sip->sip_call_id && sip->sip_cseq) {
            for (auto &o : ph->impl->outs)
                if (o->phone == ph && o->callId == sip->sip_call_id->i_id && !o->ackText.empty() &&
                    sip->sip_cseq->cs_method == sip_method_invite &&
                    o->cseq + ph->impl->cseqShift[o->callId] == static_cast<long>(sip->sip_cseq->cs_seq))
                    ph->impl->onResponse(o.get(), msgText(msg));
        }
    } catch (const std::exception &e) {
        std::cerr << "parkway-replay: " << e.what() << "\n";
    }
    nta_msg_discard(agent, msg);
    return 0;
}

} // namespace

// ---------------------------------------------------------------- setup and teardown

void Runner::Impl::openPhones() {
    bound["server.host"] = server.host;
    bound["server.port"] = std::to_string(server.port);
    for (size_t i = 0; i < fx.participants.size(); ++i) {
        auto ph = std::make_unique<Phone>();
        ph->impl = this;
        ph->p = &fx.participants[i];
        ph->host = nextAddress(opt.bindBase, i);
        ph->transport = ph->p->transport.empty() ? server.transport : ph->p->transport;
        if (ph->transport != "udp" && ph->transport != "tcp")
            throw RunInputError("participant " + ph->p->name + ": transport '" + ph->transport +
                                "' is not supported (udp, tcp)");
        std::string url = "sip:" + ph->host + ":*;transport=" + ph->transport;
        // RFC 3261 §17.1 timers: nta's defaults (T1 500 ms, T2 4 s, T4 5 s).
        ph->agent = nta_agent_create(root, URL_STRING_MAKE(url.c_str()), onStrayCb,
                                     reinterpret_cast<nta_agent_magic_t *>(ph.get()), NTATAG_UA(1), NTATAG_PASS_100(1),
                                     TAG_END());
        if (!ph->agent)
            throw RunInputError("participant " + ph->p->name + ": cannot listen on " + url);
        ph->leg = nta_leg_tcreate(ph->agent, onRequestCb, reinterpret_cast<nta_leg_magic_t *>(ph.get()),
                                  NTATAG_NO_DIALOG(1), TAG_END());
        sip_via_t *v = nta_agent_via(ph->agent);
        ph->port = v && v->v_port ? std::atoi(v->v_port) : 5060;
        bound[ph->p->name + ".host"] = ph->host;
        bound[ph->p->name + ".port"] = std::to_string(ph->port);
        byName[ph->p->name] = ph.get();
        phones.push_back(std::move(ph));
    }
}

Runner::Impl::~Impl() {
    for (auto &o : outs)
        if (o->orq)
            nta_outgoing_destroy(o->orq);
    for (auto &in : ins)
        if (in->irq) {
            nta_incoming_bind(in->irq, nullptr, nullptr);
            nta_incoming_destroy(in->irq);
        }
    for (auto &ph : phones) {
        if (ph->leg)
            nta_leg_destroy(ph->leg);
        if (ph->agent)
            nta_agent_destroy(ph->agent);
        for (int fd : ph->media)
            ::close(fd);
    }
    if (root)
        su_root_destroy(root);
    if (suInit)
        su_deinit();
}

Runner::Runner(const Fixture &fixture, const RunOptions &options) : impl_(std::make_unique<Impl>(fixture, options)) {
    if (su_init() != 0)
        throw RunInputError("cannot initialise sofia-sip");
    impl_->suInit = true;
    if (!std::getenv("PARKWAY_REPLAY_TRACE"))
        for (su_log_t *l : {su_log_default, nta_log, tport_log})
            su_log_set_level(l, 0);
    impl_->root = su_root_create(nullptr);
    if (!impl_->root)
        throw RunInputError("cannot create the event loop");
    for (const auto &s : fixture.steps) {
        if (s.participant == "server") // the fixture format allows the name; a step needs a phone
            throw RunInputError(fmt::format("step {}: 'server' sends or receives nothing itself: name a phone", s.id));
        impl_->index[s.id] = impl_->runs.size();
        StepRun r;
        r.step = &s;
        impl_->runs.push_back(r);
    }
    impl_->openPhones();
}

Runner::~Runner() = default;

// ---------------------------------------------------------------- partial order

bool Runner::Impl::satisfied(int stepId) const {
    auto it = index.find(stepId);
    if (it == index.end())
        return true;
    const StepRun &r = runs[it->second];
    if (r.state == State::Done || r.state == State::Skipped)
        return true;
    // An optional step that may still come does not hold anybody up.
    return r.state == State::Pending && r.step->optional && ready(it->second);
}

bool Runner::Impl::ready(size_t i, Clock::time_point *readyAt) const {
    Clock::time_point at = start;
    for (int a : runs[i].step->after) {
        if (!satisfied(a))
            return false;
        const StepRun &r = runs[index.at(a)];
        if (r.state != State::Pending && r.doneAt > at)
            at = r.doneAt;
    }
    if (readyAt)
        *readyAt = at;
    return true;
}

std::vector<bool> Runner::Impl::blocked() const {
    std::vector<bool> out(runs.size(), false);
    for (size_t i = 0; i < runs.size(); ++i)
        for (int a : runs[i].step->after) {
            size_t j = index.at(a);
            if (runs[j].state == State::Failed || out[j])
                out[i] = true;
        }
    return out;
}

bool Runner::Impl::finished() const {
    std::vector<bool> b = blocked();
    for (size_t i = 0; i < runs.size(); ++i)
        if (runs[i].state == State::Pending && !b[i] && !runs[i].step->optional)
            return false;
    return true;
}

void Runner::Impl::complete(size_t i) {
    StepRun &r = runs[i];
    Clock::time_point readyAt;
    ready(i, &readyAt);
    r.state = State::Done;
    r.doneAt = Clock::now();
    r.seconds = secondsBetween(readyAt, r.doneAt);
    if (opt.verbose)
        std::cout << fmt::format("  ok   {:<72} {:6.2f} s\n", stepName(*r.step), secondsBetween(start, r.doneAt))
                  << std::flush;
}

void Runner::Impl::fail(size_t i, const std::string &why) {
    StepRun &r = runs[i];
    r.state = State::Failed;
    r.doneAt = Clock::now();
    r.failure = why;
    if (opt.verbose)
        std::cout << fmt::format("  FAIL {:<72} {:6.2f} s\n", stepName(*r.step), secondsBetween(start, r.doneAt))
                  << std::flush;
}

// ---------------------------------------------------------------- sending

bool Runner::Impl::runSends() {
    bool acted = false;
    for (size_t i = 0; i < runs.size(); ++i) {
        StepRun &r = runs[i];
        Clock::time_point readyAt;
        if (r.state != State::Pending || r.step->kind != StepKind::Send || !ready(i, &readyAt))
            continue;
        if (Clock::now() < readyAt + secondsToDuration(r.step->delay / opt.speed))
            continue;
        try {
            runSend(i);
        } catch (const RunInputError &) {
            throw;
        } catch (const std::exception &e) {
            fail(i, stepName(*r.step) + ": cannot send: " + e.what());
        }
        acted = true;
    }
    return acted;
}

void Runner::Impl::runSend(size_t i) {
    const Step &s = *runs[i].step;
    Phone &ph = *byName.at(s.participant);
    if (s.message.front().rfind("SIP/2.0 ", 0) == 0)
        sendResponse(i, ph);
    else
        sendRequest(i, ph);
}

std::string Runner::Impl::fresh(const Symbol &sym, Phone &ph) {
    auto hex = [](size_t n) { return proxy::digest::randomHex(n); };
    if (sym.kind == "call-id")
        return hex(12) + "@" + ph.host;
    if (sym.kind == "tag")
        return hex(6);
    if (sym.kind == "branch")
        return "z9hG4bK" + hex(8);
    if (sym.kind == "cseq")
        return std::to_string(1 + rng() % 9000);
    if (sym.kind == "sdp-session" || sym.kind == "sdp-version")
        return std::to_string(100000 + rng() % 900000000);
    if (sym.kind == "media-port")
        return std::to_string(openMediaPort(ph));
    return hex(8);
}

// A real UDP socket per media port, so the server's RTP (music on hold) has somewhere to go. Even ports
// (RFC 3550 §11: RTP on an even port). Never read: the kernel drops what does not fit.
int Runner::Impl::openMediaPort(Phone &ph) {
    for (int attempt = 0; attempt < 16; ++attempt) {
        int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            break;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        inet_pton(AF_INET, ph.host.c_str(), &a.sin_addr);
        socklen_t len = sizeof a;
        if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0 &&
            (ntohs(a.sin_port) % 2 == 0 || attempt == 15)) {
            ph.media.push_back(fd);
            return ntohs(a.sin_port);
        }
        ::close(fd);
    }
    throw RunInputError("participant " + ph.p->name + ": cannot open a media port on " + ph.host);
}

SymbolLookup Runner::Impl::lookupFor(Phone &ph) {
    return [this, &ph](const std::string &name) -> std::optional<std::string> {
        if (auto it = bound.find(name); it != bound.end())
            return it->second;
        auto sym = fx.symbols.find(name);
        if (sym == fx.symbols.end())
            return std::nullopt;
        if (sym->second.owner == "server")
            throw std::runtime_error("{{" + name + "}} is the server's and no message from the server carried it");
        std::string v = fresh(sym->second, ph);
        bound[name] = v;
        return v;
    };
}

// Authorization / Proxy-Authorization lines are regenerated from the last challenge this phone received
// (docs/replay.md; RFC 3261 §22.2, §22.3). Without a challenge yet the line is dropped: the server challenges
// and the runner answers then.
std::vector<std::string> Runner::Impl::withCredentials(const Step &s, Phone &ph, const std::string &method) {
    std::vector<std::string> out;
    std::string uri = rt::requestUri(fillTemplate(s.message.front(), lookupFor(ph)));
    for (const auto &line : s.message) {
        bool www = rt::isHeaderLine(line, "Authorization"), prx = rt::isHeaderLine(line, "Proxy-Authorization");
        if (!www && !prx) {
            out.push_back(line);
            continue;
        }
        auto c = rt::pickChallenge(www ? ph.wwwAuth : ph.proxyAuth);
        if (!c)
            continue;
        std::string user = fillTemplate(rt::authParam(line.substr(line.find(':') + 1), "username"), lookupFor(ph));
        if (user.empty())
            user = ph.p->user;
        std::string password = opt.passwords.count(user) ? opt.passwords.at(user) : ph.p->password;
        if (password.empty() && !opt.passwords.count(user))
            throw RunInputError("step " + std::to_string(s.id) + ": the server challenged " + ph.p->name +
                                " and there is no password for user '" + user + "' (give --password " + user +
                                "=SECRET)");
        out.push_back(std::string(www ? "Authorization: " : "Proxy-Authorization: ") +
                      rt::credentials(*c, user, password, method, uri, ++ph.nc));
    }
    return out;
}

// The branch symbol of the template's Via, if any: nta writes the top Via and its branch (RFC 3261 §8.1.1.7),
// the symbol is bound to what was actually sent.
static std::string viaBranchSymbol(const std::vector<std::string> &lines) {
    for (const auto &line : lines)
        if (rt::isHeaderLine(line, "Via"))
            for (const auto &r : templateRefs(line))
                if (r.begin >= 7 && line.compare(r.begin - 7, 7, "branch=") == 0)
                    return r.symbol;
    return "";
}

void Runner::Impl::sendRequest(size_t i, Phone &ph) {
    const Step &s = *runs[i].step;
    std::string method = s.message.front().substr(0, s.message.front().find(' '));
    std::string branchSym = viaBranchSymbol(s.message);
    std::vector<std::string> lines;
    for (const auto &l : withCredentials(s, ph, method))
        if (!rt::isHeaderLine(l, "Via"))
            lines.push_back(l);
    std::string text = renderMessage(lines, lookupFor(ph));
    std::string callId = rt::header(text, "Call-ID");
    long cseq = rt::cseqNumber(text);
    if (method == "CANCEL")
        return sendCancel(i, ph, text);
    if (method == "ACK") {
        for (auto it = outs.rbegin(); it != outs.rend(); ++it)
            if ((*it)->phone == &ph && (*it)->method == "INVITE" && (*it)->callId == callId && (*it)->cseq == cseq)
                return sendAck(i, ph, text, it->get());
        return sendAck(i, ph, text, nullptr);
    }
    Outgoing *o = transmit(ph, text, s.id);
    o->method = method, o->callId = callId, o->cseq = cseq, o->text = text;
    if (!branchSym.empty() && !bound.count(branchSym))
        if (msg_t *req = nta_outgoing_getrequest(o->orq)) {
            sip_t *sip = sip_object(req);
            if (sip && sip->sip_via && sip->sip_via->v_branch)
                bound[branchSym] = sip->sip_via->v_branch;
            msg_destroy(req);
        }
    complete(i);
}

Outgoing *Runner::Impl::transmit(Phone &ph, const std::string &text, int step, bool ack) {
    std::string wire = rt::shiftCSeq(text, cseqShift[rt::header(text, "Call-ID")]);
    if (std::getenv("PARKWAY_REPLAY_TRACE"))
        std::cerr << ">>> " << ph.p->name << "\n" << wire << "\n";
    msg_t *msg = msg_make(sip_default_mclass(), 0, wire.data(), static_cast<ssize_t>(wire.size()));
    if (!msg || !sip_object(msg) || !sip_object(msg)->sip_request)
        throw std::runtime_error("the rendered request does not parse:\n" + wire);
    auto o = std::make_unique<Outgoing>();
    o->impl = this, o->phone = &ph, o->step = step;
    std::string route = fmt::format("sip:{}:{};transport={}", server.host, server.port, ph.transport);
    // The ACK of a 2xx has a branch of its own (RFC 3261 §8.1.1.7, §13.2.2.4). Named here, nta does not look for
    // the INVITE in this agent: a trace may ACK from another address than the INVITE's (nta would abort).
    std::string ackBranch = ack ? "z9hG4bK" + proxy::digest::randomHex(8) : std::string();
    o->orq = nta_outgoing_mcreate(ph.agent, onResponseCb, reinterpret_cast<nta_outgoing_magic_t *>(o.get()),
                                  URL_STRING_MAKE(route.c_str()), msg,
                                  TAG_IF(ack, NTATAG_ACK_BRANCH(ackBranch.c_str())), TAG_END());
    if (!o->orq) {
        msg_destroy(msg);
        throw std::runtime_error("nta refused to send it to " + route);
    }
    outs.push_back(std::move(o));
    return outs.back().get();
}

// ACK of a 2xx is its own transaction (RFC 3261 §13.2.2.4), sent as the fixture says; the ACK of a non-2xx
// final response belongs to the INVITE transaction and nta sent it already (§17.1.1.3): the step is skipped.
void Runner::Impl::sendAck(size_t i, Phone &ph, const std::string &text, Outgoing *invite) {
    if (invite && invite->final >= 300) {
        runs[i].state = State::Skipped;
        runs[i].doneAt = Clock::now();
        if (opt.verbose)
            std::cout << fmt::format("  --   {} (nta acknowledged the {})\n", stepName(*runs[i].step), invite->final);
        return;
    }
    Outgoing *o = transmit(ph, text, runs[i].step->id, true);
    nta_outgoing_destroy(o->orq); // no response to an ACK
    o->orq = nullptr;
    o->method = "ACK";
    if (invite)
        invite->ackText = text;
    complete(i);
}

// CANCEL matches the INVITE's transaction (same branch, RFC 3261 §9.1): nta builds it from the INVITE.
void Runner::Impl::sendCancel(size_t i, Phone &ph, const std::string &text) {
    std::string callId = rt::header(text, "Call-ID");
    long cseq = rt::cseqNumber(text);
    for (auto it = outs.rbegin(); it != outs.rend(); ++it) {
        Outgoing &inv = **it;
        if (inv.phone != &ph || inv.method != "INVITE" || inv.callId != callId || inv.cseq != cseq || !inv.orq)
            continue;
        auto o = std::make_unique<Outgoing>();
        o->impl = this, o->phone = &ph, o->step = runs[i].step->id, o->method = "CANCEL", o->callId = callId;
        o->cseq = cseq;
        o->orq =
            nta_outgoing_tcancel(inv.orq, onResponseCb, reinterpret_cast<nta_outgoing_magic_t *>(o.get()), TAG_END());
        if (!o->orq)
            throw std::runtime_error("nta could not CANCEL the INVITE (already answered?)");
        outs.push_back(std::move(o));
        return complete(i);
    }
    throw std::runtime_error("no INVITE with Call-ID " + callId + " and CSeq " + std::to_string(cseq) + " to CANCEL");
}

// The server request a phone's response answers: the latest request expect step of that phone (before this
// step) with the response's CSeq method that is not answered finally yet.
Incoming *Runner::Impl::requestToAnswer(size_t i, Phone &ph, const std::string &method) {
    for (size_t j = i; j-- > 0;) {
        const StepRun &r = runs[j];
        if (r.step->kind == StepKind::Expect && r.step->participant == ph.p->name && r.in && r.in->method == method &&
            r.state == State::Done && r.in->irq)
            return r.in;
    }
    return nullptr;
}

// Extra header lines of a rendered response: everything but the start line and what treply sets itself.
static std::string extraHeaders(const std::string &text) {
    std::string extra, head = text.substr(0, text.find("\r\n\r\n"));
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
        size_t e = head.find("\r\n", pos + 2);
        std::string line = head.substr(pos + 2, e == std::string::npos ? std::string::npos : e - pos - 2);
        if (!line.empty() && !rt::isHeaderLine(line, "To") && !rt::isHeaderLine(line, "Contact") &&
            !rt::isHeaderLine(line, "Content-Type") && !rt::isHeaderLine(line, "Content-Length"))
            extra += (extra.empty() ? "" : "\r\n") + line;
        pos = e;
    }
    return extra;
}

void Runner::Impl::sendResponse(size_t i, Phone &ph) {
    const Step &s = *runs[i].step;
    std::vector<std::string> lines;
    std::string raw;
    for (const auto &l : s.message) { // the request gives these (RFC 3261 §8.2.6.2)
        raw += l + "\r\n";
        if (!rt::isHeaderLine(l, "Via") && !rt::isHeaderLine(l, "From") && !rt::isHeaderLine(l, "Call-ID") &&
            !rt::isHeaderLine(l, "CSeq") && !rt::isHeaderLine(l, "Record-Route"))
            lines.push_back(l);
    }
    std::string method = rt::method(raw); // the CSeq line's method: no symbol in it
    if (method == "CANCEL") {             // nta answered the CANCEL itself, and the INVITE 487 (RFC 3261 §9.2)
        if (opt.verbose)
            std::cout << fmt::format("  ..   {}: nta answered the CANCEL\n", stepName(s));
        return complete(i);
    }
    Incoming *in = requestToAnswer(i, ph, method);
    if (!in)
        throw std::runtime_error("no " + method + " from the server is waiting for this answer");
    std::string text = renderMessage(lines, lookupFor(ph));
    int st = rt::status(text);
    if (in->answered >= 200 || (st == 100 && in->answered == 100)) {
        // Answered already (100 Trying sent on arrival, 487 after a CANCEL): nothing more to send.
        if (st != in->answered)
            throw std::runtime_error(fmt::format("the {} was answered {} already", method, in->answered));
        return complete(i);
    }
    reply(*in, text, method);
    complete(i);
}

// Sends a rendered response on the server's transaction: status and phrase, the To-tag of the template for a
// request outside a dialog, Contact, Content-Type, body and the other header lines.
void Runner::Impl::reply(Incoming &in, const std::string &text, const std::string &method) {
    int st = rt::status(text);
    std::string start = rt::startLine(text);
    std::string phrase = start.size() > 12 ? start.substr(12) : "";
    std::string tag = rt::param(rt::header(text, "To"), "tag");
    msg_t *reqMsg = nta_incoming_getrequest(in.irq);
    sip_t const *req = reqMsg ? sip_object(reqMsg) : nullptr;
    if (st > 100 && req && req->sip_to && !req->sip_to->a_tag && !nta_incoming_gettag(in.irq))
        nta_incoming_tag(in.irq, tag.empty() ? nullptr : tag.c_str());
    std::string extra = extraHeaders(text), contact = rt::header(text, "Contact");
    std::string ctype = rt::header(text, "Content-Type"), body = rt::body(text);
    bool copyRR = st < 300 && req && req->sip_record_route; // RFC 3261 §12.1.1
    int rc = nta_incoming_treply(in.irq, st, phrase.c_str(), SIPTAG_CONTACT_STR(orNull(contact)),
                                 TAG_IF(copyRR, SIPTAG_RECORD_ROUTE(copyRR ? req->sip_record_route : nullptr)),
                                 SIPTAG_HEADER_STR(orNull(extra)), SIPTAG_CONTENT_TYPE_STR(orNull(ctype)),
                                 SIPTAG_PAYLOAD_STR(orNull(body)), TAG_END());
    if (reqMsg)
        msg_destroy(reqMsg);
    if (rc != 0)
        throw std::runtime_error(fmt::format("nta could not send {} to the {}", st, method));
    in.answered = st;
}

// ---------------------------------------------------------------- receiving

void Runner::Impl::onResponse(Outgoing *o, const std::string &received) {
    if (std::getenv("PARKWAY_REPLAY_TRACE"))
        std::cerr << "<<< " << o->phone->p->name << "\n" << received << "\n";
    if (lingering && o->method != "INVITE")
        return;
    std::string text = rt::shiftCSeq(received, -cseqShift[o->callId]);
    int st = rt::status(text);
    if (!o->statuses.insert(st).second) { // a retransmission
        if (st >= 200 && st < 300 && !o->ackText.empty()) {
            Outgoing *ack = transmit(*o->phone, o->ackText, o->step, true);
            nta_outgoing_destroy(ack->orq);
            ack->orq = nullptr;
        }
        return;
    }
    if (st >= 200 && !o->final)
        o->final = st;
    if (st == 401) // the challenge the next Authorization answers (RFC 3261 §22.2)
        o->phone->wwwAuth = rt::headers(text, "WWW-Authenticate");
    if (st == 407)
        o->phone->proxyAuth = rt::headers(text, "Proxy-Authenticate");
    Inbound m{o->phone, text, nullptr, Clock::now()};
    if (offer(m) || lingering)
        return;
    if (st < 200)
        return; // extra provisional responses are ignored
    if ((st == 401 || st == 407) && resendWithCredentials(o, received))
        return;
    if (!failFinal(m))
        backlog.push_back(m);
}

void Runner::Impl::onRequest(Phone &ph, Incoming *in, const std::string &text) {
    if (std::getenv("PARKWAY_REPLAY_TRACE"))
        std::cerr << "<<< " << ph.p->name << "\n" << text << "\n";
    Inbound m{&ph, text, in, Clock::now()};
    if (offer(m) || in->method == "ACK")
        return;
    if (lingering)
        return answerUnexpected(in);
    bool optionsExpected = false;
    for (const auto &r : runs)
        optionsExpected =
            optionsExpected || (r.state == State::Pending && r.step->kind == StepKind::Expect &&
                                r.step->participant == ph.p->name && r.step->message.front().rfind("OPTIONS ", 0) == 0);
    if (in->method == "OPTIONS" && !optionsExpected) // keep-alive pings nobody recorded: answered, not counted
        return answerUnexpected(in);
    backlog.push_back(m); // an expect step may become ready in a moment
}

// couldMatch + compareMessage; nullopt when the step does not wait for this kind of message. A comparator that
// throws (a body it cannot parse) gives a difference, not a lost message.
std::optional<MatchResult> Runner::Impl::compare(const Step &s, const std::string &text) const {
    MatchResult res;
    try {
        if (!couldMatch(s, text, bound))
            return std::nullopt;
        return compareMessage(s, fx, text, bound);
    } catch (const std::exception &e) {
        res.differences.push_back({"comparison", "a message the comparator reads", e.what()});
    }
    return res;
}

bool Runner::Impl::offer(Inbound &m) {
    for (size_t i = 0; i < runs.size(); ++i) {
        StepRun &r = runs[i];
        const Step &s = *r.step;
        if (r.state != State::Pending || s.kind != StepKind::Expect || s.participant != m.phone->p->name || !ready(i))
            continue;
        std::optional<MatchResult> res = compare(s, m.text);
        if (!res)
            continue;
        if (res->matched) {
            for (const auto &[k, v] : res->learned)
                bound.emplace(k, v);
            r.in = m.in;
            complete(i);
            return true;
        }
        if (r.closest.empty() || res->differences.size() < r.closestCount) {
            r.closest = formatDifferences(s, fx, res->differences) + "  what came: " + rt::summary(m.text) + "\n";
            r.closestCount = res->differences.size();
            m.candidate = true; // reported with the step if it fails, not again as unexpected
        }
    }
    return false;
}

// A final response ends its transaction: the non-optional expect step waiting for a final response on it
// fails now with the difference, instead of at its deadline.
bool Runner::Impl::failFinal(Inbound &m) {
    for (size_t i = 0; i < runs.size(); ++i) {
        StepRun &r = runs[i];
        const Step &s = *r.step;
        if (r.state != State::Pending || s.kind != StepKind::Expect || s.optional ||
            s.participant != m.phone->p->name || !ready(i) || s.message.front().rfind("SIP/2.0 1", 0) == 0)
            continue;
        std::optional<MatchResult> res = compare(s, m.text);
        if (!res)
            continue;
        fail(i,
             formatDifferences(s, fx, res->differences) + "  what came: " + rt::summary(m.text) + "\n" + dialogLine(s));
        return true;
    }
    return false;
}

// A challenge the fixture does not show (the trace ran without authentication, or the server was asked
// again): the request goes again with credentials and CSeq + 1 (RFC 3261 §22.2, §8.1.3.5). Later requests in
// that Call-ID are shifted the same, and the responses shifted back before comparison.
bool Runner::Impl::resendWithCredentials(Outgoing *o, const std::string &received) {
    Phone &ph = *o->phone;
    bool www = rt::status(received) == 401;
    auto c = rt::pickChallenge(rt::headers(received, www ? "WWW-Authenticate" : "Proxy-Authenticate"));
    std::string user = ph.p->user;
    std::string password = opt.passwords.count(user) ? opt.passwords.at(user) : ph.p->password;
    if (!c || o->text.empty() || (password.empty() && !opt.passwords.count(user)) || o->statuses.count(-1))
        return false;
    std::string name = www ? "Authorization" : "Proxy-Authorization";
    std::string text = o->text,
                line = name + ": " + rt::credentials(*c, user, password, o->method, rt::requestUri(text), ++ph.nc);
    text.insert(text.find("\r\n") + 2, line + "\r\n");
    cseqShift[o->callId] += 1;
    Outgoing *again = transmit(ph, text, o->step);
    again->method = o->method, again->callId = o->callId, again->cseq = o->cseq, again->text = o->text;
    again->statuses.insert(-1); // challenged once already: a second challenge is a difference
    if (opt.verbose)
        std::cout << fmt::format("  ..   {} challenged ({}), sent again with credentials\n", ph.p->name,
                                 rt::status(received));
    return true;
}

void Runner::Impl::offerBacklog() {
    for (auto it = backlog.begin(); it != backlog.end();)
        it = offer(*it) ? backlog.erase(it) : std::next(it);
}

// A request from the server that no step took within a moment is unexpected: answered as a phone would
// (docs/replay.md), listed, and the run fails. Responses nobody took are listed too.
void Runner::Impl::expireBacklog(bool all) {
    double hold = std::min(2.0, opt.timeout);
    auto now = Clock::now();
    while (!backlog.empty() && (all || secondsBetween(backlog.front().at, now) > hold)) {
        Inbound m = backlog.front();
        backlog.pop_front();
        if (!all && !m.candidate)
            unexpected.push_back(m.phone->p->name + " got " + rt::summary(m.text));
        if (m.in)
            answerUnexpected(m.in);
    }
}

void Runner::Impl::answerUnexpected(Incoming *in) {
    if (!in->irq || in->answered >= 200)
        return;
    static const std::set<std::string> ok = {"OPTIONS", "BYE", "NOTIFY", "INFO", "UPDATE", "MESSAGE", "PRACK"};
    int st = ok.count(in->method) ? 200 : in->method == "INVITE" ? 480 : 501;
    nta_incoming_treply(in->irq, st, sip_status_phrase(st), TAG_END());
    in->answered = st;
}

// An expect step waits its trace delay plus --timeout after its `after` steps: the server's own timers (a
// recall after 30 s) are not shortened by --speed, that is its configuration's business.
void Runner::Impl::checkDeadlines() {
    auto now = Clock::now();
    for (size_t i = 0; i < runs.size(); ++i) {
        StepRun &r = runs[i];
        Clock::time_point readyAt;
        if (r.state != State::Pending || r.step->kind != StepKind::Expect || !ready(i, &readyAt))
            continue;
        double waited = secondsBetween(readyAt, now);
        if (waited < r.step->delay + opt.timeout)
            continue;
        if (r.step->optional) {
            r.state = State::Skipped;
            r.doneAt = readyAt;
            continue;
        }
        fail(i, r.closest.empty()
                    ? fmt::format("{}: nothing came within {:.1f} s\n", stepName(*r.step), waited) + dialogLine(*r.step)
                    : r.closest +
                          fmt::format("  nothing matched within {:.1f} s; above: the closest message\n", waited) +
                          dialogLine(*r.step));
    }
}

// ---------------------------------------------------------------- report

// "step 7 bob expect INVITE (re-INVITE: the parked call is bridged...)": method or status, then the note.
std::string Runner::Impl::stepName(const Step &s) const {
    std::string first = s.message.empty() ? "" : s.message.front();
    first = first.rfind("SIP/2.0 ", 0) == 0 ? first.substr(8) : first.substr(0, first.find(' '));
    std::string name =
        fmt::format("step {} {} {} {}", s.id, s.participant, s.kind == StepKind::Send ? "send" : "expect", first);
    if (!s.note.empty())
        name += " (" + (s.note.size() > 40 ? s.note.substr(0, 37) + "..." : s.note) + ")";
    return name;
}

std::string Runner::Impl::dialogLine(const Step &s) const {
    for (const auto &line : s.message)
        if (rt::isHeaderLine(line, "Call-ID"))
            for (const auto &r : templateRefs(line)) {
                auto it = bound.find(r.symbol);
                return "  dialog: {{" + r.symbol + "}}" + (it == bound.end() ? " (not seen yet)" : " = " + it->second) +
                       "\n";
            }
    return "";
}

RunReport Runner::Impl::report() {
    RunReport rep;
    std::vector<bool> b = blocked();
    for (size_t i = 0; i < runs.size(); ++i) {
        StepRun &r = runs[i];
        StepOutcome o;
        o.step = r.step->id;
        o.name = stepName(*r.step);
        o.seconds = r.seconds;
        if (r.state == State::Pending && r.step->optional)
            r.state = State::Skipped;
        o.passed = r.state == State::Done || r.state == State::Skipped;
        o.skipped = r.state == State::Skipped;
        if (r.state == State::Failed) {
            o.failure = r.failure;
            rep.failures.push_back(r.failure);
        } else if (r.state == State::Pending) {
            o.skipped = true;
            o.failure = b[i] ? "not reached: a step it waits for failed" : "not reached";
        }
        rep.outcomes.push_back(o);
    }
    rep.unexpected = unexpected;
    rep.undelivered = local;
    return rep;
}

RunReport Runner::run() {
    Impl &m = *impl_;
    m.start = Clock::now();
    for (;;) {
        while (m.runSends())
            m.offerBacklog();
        m.offerBacklog();
        m.expireBacklog(false);
        m.checkDeadlines();
        if (m.finished())
            break;
        su_root_step(m.root, 5);
    }
    // Let the last messages leave (a 200 to a BYE, an ACK) and answer what still comes, without judging it.
    m.lingering = true;
    m.expireBacklog(true);
    auto end = Clock::now() + std::chrono::milliseconds(300);
    while (Clock::now() < end)
        su_root_step(m.root, 5);
    RunReport rep = m.report();
    rep.seconds = secondsBetween(m.start, Clock::now());
    return rep;
}

} // namespace parkway::replay
