// In-dialog requests on the host's own dialogs come only from the dialog's peer (RFC 3261 §26.1.4): a stranger
// on another address (127.0.0.2: all of 127/8 is loopback on Linux) who knows the Call-ID and both tags gets
// 403 and the dialog is untouched; the peer's own requests still work; a trusted peer is accepted; the learnt
// address survives export/restore. docs/limits.md "In-dialog requests".
#include <sip_test.hh>

#include <admin/metrics.hh>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace parkway;
using namespace parkway::test;

namespace {

pw_str peerStr(const std::string &s) {
    return pw_str{s.data(), s.size()};
}
std::string peerString(pw_str v) {
    return v.ptr ? std::string(v.ptr, v.len) : std::string();
}

// Everything a module dialog reports.
struct Rec {
    const pw_host_api *api = nullptr;
    pw_dialog *dlg = nullptr;
    std::vector<std::string> requests; // on_request methods
    std::vector<std::string> identities;
    std::vector<int> identitySources;
    std::vector<int> ends;
    std::vector<uint32_t> refreshes;
    int acks = 0;
    std::vector<int> responses;

    static void cbRequest(void *arg, pw_dialog *, pw_request *req) {
        auto *r = static_cast<Rec *>(arg);
        r->requests.push_back(peerString(r->api->msg_method(r->api->request_msg(req))));
        int src = -1;
        r->identities.push_back(peerString(r->api->request_identity(req, &src)));
        r->identitySources.push_back(src);
        r->api->request_reply(req, 200, pw_str{}, nullptr, 0, pw_str{}, pw_str{});
    }
    static void cbAck(void *arg, pw_dialog *, const pw_msg *) { ++static_cast<Rec *>(arg)->acks; }
    static void cbRefresh(void *arg, pw_dialog *, uint32_t expires) {
        static_cast<Rec *>(arg)->refreshes.push_back(expires);
    }
    static void cbTerminated(void *arg, pw_dialog *, pw_dialog_end_reason reason) {
        auto *r = static_cast<Rec *>(arg);
        r->ends.push_back(reason);
        r->dlg = nullptr;
    }
    static void cbResponse(void *arg, pw_dialog *, int status, const pw_msg *) {
        static_cast<Rec *>(arg)->responses.push_back(status);
    }
    pw_dialog_callbacks cbs() const {
        pw_dialog_callbacks c{};
        c.struct_size = sizeof c;
        c.on_request = cbRequest;
        c.on_ack = cbAck;
        c.on_refresh = cbRefresh;
        c.on_terminated = cbTerminated;
        return c;
    }
    std::string get(pw_dialog_field f) const { return peerString(api->dialog_get(dlg, f)); }
};

// Accepts every INVITE and SUBSCRIBE with dialog_accept / subscription_accept.
struct PeerAcceptor {
    HookModule hook{"acceptor"};
    Rec rec;
    PeerAcceptor() {
        hook.onRequest = [this](pw_request *req) {
            rec.api = hook.api;
            auto cbs = rec.cbs();
            std::string m = hook.method(req);
            if (m == "INVITE") {
                std::string sdp = "v=0\r\no=park 1 1 IN IP4 127.0.0.1\r\n";
                rec.dlg = hook.api->dialog_accept(req, 200, nullptr, 0, PW_STR_LIT("application/sdp"), peerStr(sdp),
                                                  &cbs, &rec);
                return PW_STOP;
            }
            if (m == "SUBSCRIBE") {
                rec.dlg = hook.api->subscription_accept(req, 600, &cbs, &rec);
                return PW_STOP;
            }
            return PW_CONTINUE;
        };
    }
};

// What the dialog's peer would put in an in-dialog request: From = the peer (remote) with its tag, To = us.
struct DialogIds {
    std::string callId, localUri, localTag, remoteUri, remoteTag;
    static DialogIds of(const Rec &r) {
        return {r.get(PW_DLG_CALL_ID), r.get(PW_DLG_LOCAL_URI), r.get(PW_DLG_LOCAL_TAG), r.get(PW_DLG_REMOTE_URI),
                r.get(PW_DLG_REMOTE_TAG)};
    }
};

// A request in the dialog, written by hand (the sender's nta adds the Via), as a stranger forges it.
std::string forged(const DialogIds &ids, const std::string &method, const std::string &ruri, uint32_t cseq,
                   const std::string &contact, const std::string &extra = {}) {
    std::string body = method == "INVITE" || method == "UPDATE" ? "v=0\r\no=evil 1 1 IN IP4 127.0.0.2\r\n" : "";
    std::string t = method + " " + ruri + " SIP/2.0\r\n";
    t += "From: <" + ids.remoteUri + ">;tag=" + ids.remoteTag + "\r\n";
    t += "To: <" + ids.localUri + ">;tag=" + ids.localTag + "\r\n";
    t += "Call-ID: " + ids.callId + "\r\n";
    t += "CSeq: " + std::to_string(cseq) + " " + method + "\r\n";
    t += "Max-Forwards: 70\r\n";
    t += "Contact: <" + contact + ">\r\n";
    t += extra;
    if (method == "REFER")
        t += "Refer-To: <sip:666@parkway.test>\r\n";
    if (method == "NOTIFY" || method == "SUBSCRIBE")
        t += "Event: dialog\r\n";
    if (method == "NOTIFY")
        t += "Subscription-State: active;expires=60\r\n";
    if (!body.empty())
        t += "Content-Type: application/sdp\r\n";
    t += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return t;
}

// The stranger sends every in-dialog method the brief names; each must be refused with 403 and reach nobody.
void strangerIsRefused(SipTestEnv &env, TestUa &stranger, const Rec &rec, const DialogIds &ids, uint32_t cseqBase) {
    uint32_t cseq = cseqBase;
    std::string target = rec.get(PW_DLG_REMOTE_TARGET);
    for (const char *m : {"BYE", "INVITE", "UPDATE", "INFO", "REFER", "NOTIFY", "BYE"}) {
        INFO("stranger's " << m);
        auto &c = stranger.sendRaw(forged(ids, m, env.proxyUri(), ++cseq, stranger.uri()), env.proxyUri());
        REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
        CHECK(c.finalStatus == 403);
    }
    env.runFor(100);
    CHECK(rec.requests.empty());
    CHECK(rec.ends.empty());
    REQUIRE(rec.dlg);
    CHECK(rec.get(PW_DLG_STATE) == "confirmed");
    CHECK(rec.get(PW_DLG_REMOTE_TARGET) == target); // no target refresh either (RFC 3261 §12.2.2)
}

// One datagram from a socket bound to `fromHost` (an ACK: nta sends none without its INVITE transaction). The
// Via names that socket.
bool sendUdpFrom(const std::string &fromHost, uint16_t toPort, const std::string &requestWithoutVia) {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, fromHost.c_str(), &a.sin_addr);
    socklen_t len = sizeof a;
    bool ok = ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
              getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0;
    if (ok) {
        std::string text = requestWithoutVia;
        auto eol = text.find("\r\n");
        text.insert(eol + 2, "Via: SIP/2.0/UDP " + fromHost + ":" + std::to_string(ntohs(a.sin_port)) +
                                 ";branch=z9hG4bK" + std::to_string(ntohs(a.sin_port)) + "ack;rport\r\n");
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(toPort);
        inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
        ok = ::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<sockaddr *>(&to), sizeof to) ==
             static_cast<ssize_t>(text.size());
    }
    ::close(fd);
    return ok;
}

std::string exportBlob(const Rec &rec) {
    int64_t need = rec.api->dialog_export(rec.dlg, nullptr, 0);
    REQUIRE(need > 0);
    std::string blob(static_cast<size_t>(need), '\0');
    REQUIRE(rec.api->dialog_export(rec.dlg, blob.data(), blob.size()) == need);
    return blob;
}

} // namespace

TEST_CASE("Dialog peers: a stranger's BYE and re-INVITE in a module's UAS dialog get 403, the peer's BYE works",
          "[dialog][peer]") {
    proxy::Metrics metrics;
    SipTestEnv env(SipTestEnv::defaultConfig(), &metrics);
    PeerAcceptor acc;
    env.add(acc.hook);
    env.start();
    auto a = env.makeUa("alice");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.2:*");
    REQUIRE(stranger->hostPort().rfind("127.0.0.2:", 0) == 0);
    auto &inv = a->send("INVITE", "sip:park@parkway.test");
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200 && acc.rec.acks == 1; }));
    DialogIds ids = DialogIds::of(acc.rec);
    CHECK(ids.remoteTag == inv.request.fromTag());

    strangerIsRefused(env, *stranger, acc.rec, ids, 100);
    CHECK(metrics.value("parkway_dialog_foreign_requests_total", "method=\"BYE\"") == 2);
    CHECK(metrics.value("parkway_dialog_foreign_requests_total", "method=\"INVITE\"") == 1);
    CHECK(metrics.value("parkway_dialog_foreign_requests_total", "method=\"REFER\"") == 1);

    // The peer's own requests: handed to the module with the dialog identity, and its BYE ends the dialog.
    auto &info = a->inDialog(inv, "INFO");
    REQUIRE(env.runUntil([&] { return info.finalStatus != 0; }));
    CHECK(info.finalStatus == 200);
    REQUIRE(acc.rec.requests == std::vector<std::string>{"INFO"});
    CHECK(acc.rec.identities[0] == a->uri());
    CHECK(acc.rec.identitySources[0] == PW_IDENTITY_DIALOG);
    auto &bye = a->inDialog(inv, "BYE");
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(acc.rec.ends.size() == 1);
    CHECK(acc.rec.ends[0] == PW_END_BYE);
}

TEST_CASE("Dialog peers: a module's UAC dialog (dialog_invite) refuses a stranger, accepts the callee's BYE",
          "[dialog][peer]") {
    SipTestEnv env;
    HookModule mod("uac");
    env.add(mod);
    env.start();
    auto b = env.makeUa("bob");
    b->autoAnswer("INVITE", 200, "v=0\r\nanswer\r\n", "application/sdp");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.2:*");
    Rec rec;
    rec.api = mod.api;
    auto cbs = rec.cbs();
    std::string ruri = b->uri();
    pw_uac_params p{};
    p.struct_size = sizeof p;
    p.request_uri = peerStr(ruri);
    p.content_type = PW_STR_LIT("application/sdp");
    p.body = PW_STR_LIT("v=0\r\noffer\r\n");
    rec.dlg = mod.api->dialog_invite(mod.host, &p, Rec::cbResponse, &cbs, &rec);
    REQUIRE(rec.dlg);
    REQUIRE(env.runUntil([&] {
        return !rec.responses.empty() && rec.responses.back() == 200 && b->last("INVITE") &&
               !b->last("INVITE")->acks.empty();
    }));
    DialogIds ids = DialogIds::of(rec);
    CHECK(nlohmann::json::parse(exportBlob(rec))["peer"] == nlohmann::json::array({"127.0.0.1"})); // the 2xx's source

    strangerIsRefused(env, *stranger, rec, ids, 100);

    Incoming *in = b->last("INVITE");
    REQUIRE(in->leg);
    auto &bye = b->inDialog(*in, "BYE");
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(rec.ends.size() == 1);
    CHECK(rec.ends[0] == PW_END_BYE);
}

TEST_CASE("Dialog peers: a trusted peer's in-dialog requests are accepted", "[dialog][peer]") {
    proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
    cfg.trustedPeers = {"127.0.0.2"};
    SipTestEnv env(cfg);
    PeerAcceptor acc;
    env.add(acc.hook);
    env.start();
    auto a = env.makeUa("alice");
    auto relay = env.makeUa("kamailio", "sip:127.0.0.2:*");
    auto &inv = a->send("INVITE", "sip:park@parkway.test");
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200 && acc.rec.acks == 1; }));
    DialogIds ids = DialogIds::of(acc.rec);
    auto &info = relay->sendRaw(forged(ids, "INFO", env.proxyUri(), 50, a->uri()), env.proxyUri());
    REQUIRE(env.runUntil([&] { return info.finalStatus != 0; }));
    CHECK(info.finalStatus == 200);
    CHECK(acc.rec.requests == std::vector<std::string>{"INFO"});
    auto &bye = relay->sendRaw(forged(ids, "BYE", env.proxyUri(), 51, a->uri()), env.proxyUri());
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(acc.rec.ends.size() == 1);
    CHECK(acc.rec.ends[0] == PW_END_BYE);
}

TEST_CASE("Dialog peers: a subscription refresh from a stranger gets 403 and changes nothing", "[dialog][peer]") {
    SipTestEnv env;
    PeerAcceptor acc;
    env.add(acc.hook);
    env.start();
    auto a = env.makeUa("alice");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.2:*");
    RequestOptions o;
    o.headers = {"Event: dialog", "Expires: 600"};
    auto &sub = a->send("SUBSCRIBE", "sip:701@parkway.test", o);
    REQUIRE(env.runUntil([&] { return sub.finalStatus == 200; }));
    DialogIds ids = DialogIds::of(acc.rec);
    // An un-SUBSCRIBE from the stranger would end the subscription: refused.
    auto &evil = stranger->sendRaw(forged(ids, "SUBSCRIBE", env.proxyUri(), 100, stranger->uri(), "Expires: 0\r\n"),
                                   env.proxyUri());
    REQUIRE(env.runUntil([&] { return evil.finalStatus != 0; }));
    CHECK(evil.finalStatus == 403);
    env.runFor(100);
    CHECK(acc.rec.refreshes.empty());
    CHECK(acc.rec.ends.empty());
    REQUIRE(acc.rec.dlg);
    RequestOptions r;
    r.headers = {"Event: dialog", "Expires: 120"};
    auto &ref = a->inDialog(sub, "SUBSCRIBE", r);
    REQUIRE(env.runUntil([&] { return ref.finalStatus != 0; }));
    CHECK(ref.finalStatus == 200);
    CHECK(acc.rec.refreshes == std::vector<uint32_t>{120});
}

TEST_CASE("Dialog peers: the learnt address survives export/restore", "[dialog][peer][restore]") {
    SipTestEnv env;
    PeerAcceptor acc;
    env.add(acc.hook);
    env.start();
    auto a = env.makeUa("alice");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.2:*");
    auto &inv = a->send("INVITE", "sip:park@parkway.test");
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200 && acc.rec.acks == 1; }));
    std::string blob = exportBlob(acc.rec);
    auto j = nlohmann::json::parse(blob);
    CHECK(j["peer"] == nlohmann::json::array({"127.0.0.1"}));

    SECTION("a current blob") {}
    SECTION("a blob of an older version (no peer): the remote target's address is the peer") {
        j.erase("peer");
        blob = j.dump();
    }
    SECTION("a current blob whose remote target is not the peer: the learnt address alone lets it in") {
        // The peer moved its Contact to a host name (a target refresh): only "peer" can accept it now.
        j["remoteTarget"] = "sip:alice@alice.invalid";
        blob = j.dump();
    }
    HookModule fresh("restored");
    env.restart({fresh.loaded()});
    Rec rec;
    rec.api = fresh.api;
    auto cbs = rec.cbs();
    rec.dlg = fresh.api->dialog_restore(fresh.host, peerStr(blob), &cbs, &rec);
    REQUIRE(rec.dlg);
    DialogIds ids = DialogIds::of(rec);

    strangerIsRefused(env, *stranger, rec, ids, 100);

    auto &bye = a->inDialog(inv, "BYE");
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(rec.ends.size() == 1);
    CHECK(rec.ends[0] == PW_END_BYE);
}

TEST_CASE("Dialog peers: an older blob naming no address learns the peer from the first request after restore",
          "[dialog][peer][restore]") {
    SipTestEnv env;
    PeerAcceptor acc;
    env.add(acc.hook);
    env.start();
    auto a = env.makeUa("alice");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.2:*");
    auto &inv = a->send("INVITE", "sip:park@parkway.test");
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200 && acc.rec.acks == 1; }));
    auto j = nlohmann::json::parse(exportBlob(acc.rec));
    j.erase("peer");
    j["remoteTarget"] = "sip:alice@alice.invalid"; // a host name: nothing to go by
    HookModule fresh("restored");
    env.restart({fresh.loaded()});
    Rec rec;
    rec.api = fresh.api;
    auto cbs = rec.cbs();
    rec.dlg = fresh.api->dialog_restore(fresh.host, peerStr(j.dump()), &cbs, &rec);
    REQUIRE(rec.dlg);
    auto &info = a->inDialog(inv, "INFO");
    REQUIRE(env.runUntil([&] { return info.finalStatus != 0; }));
    CHECK(info.finalStatus == 200);
    rec.requests.clear();
    strangerIsRefused(env, *stranger, rec, DialogIds::of(rec), 100);
    // The learnt address is exported again.
    CHECK(nlohmann::json::parse(exportBlob(rec))["peer"] == nlohmann::json::array({"127.0.0.1"}));
}

TEST_CASE("Dialog peers: an INVITE relayed by a proxy that does not record-route, the phone's own BYE is accepted",
          "[dialog][peer]") {
    SipTestEnv env;
    PeerAcceptor acc;
    env.add(acc.hook);
    env.start();
    // The phone (127.0.0.1) is reached at its Contact; its INVITE came through a proxy at 127.0.0.2 that
    // left no Record-Route. A third address (127.0.0.3) is a stranger.
    auto phone = env.makeUa("alice");
    auto proxy2 = env.makeUa("relay", "sip:127.0.0.2:*");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.3:*");
    std::string invite = "INVITE sip:park@parkway.test SIP/2.0\r\nFrom: <" + phone->uri() +
                         ">;tag=ph1\r\nTo: <sip:park@parkway.test>\r\nCall-ID: relayed@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
                         "Max-Forwards: 69\r\nContact: <" +
                         phone->uri() + ">\r\nContent-Length: 0\r\n\r\n";
    auto &inv = proxy2->sendRaw(invite, env.proxyUri());
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200 && acc.rec.dlg; }));
    DialogIds ids = DialogIds::of(acc.rec);
    // The ACK of the 2xx is end to end (RFC 3261 §13.2.2.4): a stranger's is dropped, the phone's is taken.
    REQUIRE(sendUdpFrom("127.0.0.3", env.port(), forged(ids, "ACK", env.proxyUri(), 1, stranger->uri())));
    env.runFor(150);
    CHECK(acc.rec.acks == 0);
    REQUIRE(sendUdpFrom("127.0.0.1", env.port(), forged(ids, "ACK", env.proxyUri(), 1, phone->uri())));
    REQUIRE(env.runUntil([&] { return acc.rec.acks == 1; }));
    strangerIsRefused(env, *stranger, acc.rec, ids, 100);
    auto &bye = phone->sendRaw(forged(ids, "BYE", env.proxyUri(), 200, phone->uri()), env.proxyUri());
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(acc.rec.ends.size() == 1);
    CHECK(acc.rec.ends[0] == PW_END_BYE);
}

TEST_CASE("Dialog peers: a UAC dialog routed through Parkway's own proxy takes the callee's BYE from its Contact",
          "[dialog][peer]") {
    // Like a recall to a number: dialog_invite to our own address, the core routes it (record-routing itself) to
    // the callee at 127.0.0.2. The 2xx reaches the dialog from our own socket; the callee's BYE comes straight
    // from 127.0.0.2, a stranger's from 127.0.0.3.
    SipTestEnv env;
    HookModule router("router");
    std::string callee;
    router.onRequest = [&](pw_request *req) {
        if (router.method(req) == "INVITE")
            router.addTarget(req, callee);
        return PW_CONTINUE;
    };
    env.add(router);
    env.start();
    auto b = env.makeUa("bob", "sip:127.0.0.2:*");
    b->autoAnswer("INVITE", 200, "v=0\r\nb\r\n", "application/sdp");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.3:*");
    callee = b->uri();
    Rec rec;
    rec.api = router.api;
    auto cbs = rec.cbs();
    std::string hop = env.proxyUri();
    pw_uac_params p{};
    p.struct_size = sizeof p;
    p.request_uri = PW_STR_LIT("sip:5551234@parkway.test");
    p.next_hop = peerStr(hop);
    rec.dlg = router.api->dialog_invite(router.host, &p, Rec::cbResponse, &cbs, &rec);
    REQUIRE(rec.dlg);
    REQUIRE(env.runUntil([&] { return !rec.responses.empty() && rec.responses.back() == 200; }));
    Incoming *in = b->last("INVITE");
    REQUIRE(in);
    CHECK(in->request.headerCount("Record-Route") == 1);
    REQUIRE(env.runUntil([&] { return !in->acks.empty(); }));

    strangerIsRefused(env, *stranger, rec, DialogIds::of(rec), 100);

    REQUIRE(in->leg);
    auto &bye = b->inDialog(*in, "BYE");
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(rec.ends.size() == 1);
    CHECK(rec.ends[0] == PW_END_BYE);
}

TEST_CASE("Dialog peers: a phone behind NAT (Contact with a private address) is known by the INVITE's source",
          "[dialog][peer]") {
    SipTestEnv env;
    PeerAcceptor acc;
    env.add(acc.hook);
    env.start();
    auto phone = env.makeUa("alice");
    auto stranger = env.makeUa("mallory", "sip:127.0.0.2:*");
    std::string contact = "sip:alice@192.0.2.10:5060"; // what the phone believes its address is
    std::string invite = "INVITE sip:park@parkway.test SIP/2.0\r\nFrom: <" + phone->uri() +
                         ">;tag=nat1\r\nTo: <sip:park@parkway.test>\r\nCall-ID: nat@192.0.2.10\r\nCSeq: 1 INVITE\r\n"
                         "Max-Forwards: 70\r\nContact: <" +
                         contact + ">\r\nContent-Length: 0\r\n\r\n";
    auto &inv = phone->sendRaw(invite, env.proxyUri());
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200 && acc.rec.dlg; }));
    DialogIds ids = DialogIds::of(acc.rec);
    CHECK(acc.rec.get(PW_DLG_REMOTE_TARGET) == contact);
    REQUIRE(sendUdpFrom("127.0.0.1", env.port(), forged(ids, "ACK", env.proxyUri(), 1, contact)));
    REQUIRE(env.runUntil([&] { return acc.rec.acks == 1; }));
    strangerIsRefused(env, *stranger, acc.rec, ids, 100);
    auto &bye = phone->sendRaw(forged(ids, "BYE", env.proxyUri(), 2, contact), env.proxyUri());
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    REQUIRE(acc.rec.ends.size() == 1);
    CHECK(acc.rec.ends[0] == PW_END_BYE);
}
