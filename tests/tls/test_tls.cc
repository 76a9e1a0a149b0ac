// SIP over TLS (RFC 3261 §26.2, RFC 5630) on the in-process proxy: handshakes with `openssl s_client` (TLS 1.3
// and 1.2 work, 1.1 is refused, a client certificate from another CA is refused), and phones that speak only
// TLS registering, parking (*68) and retrieving (*88) a call; Record-Route and Contact keep in-dialog requests
// on TLS (RFC 3261 §16.6 step 4, RFC 5658); outgoing TLS verifies the server's certificate.
#include "digest_client.hh"
#include "tls_env.hh"

using namespace parkway;
using namespace parkway::test;

namespace {

bool has(const std::string &text, const std::string &part) {
    return text.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("TLS 1.3 and TLS 1.2 handshakes with a client certificate from our CA carry SIP", "[tls]") {
    TlsEnv t;
    const Pki &pki = Pki::get();
    std::vector<std::string> cert = {"-cert", pki.file("phone.pem"), "-key", pki.file("phone.key")};
    for (const char *version : {"-tls1_3", "-tls1_2"}) {
        auto args = cert;
        args.push_back(version);
        std::string out = t.sClient(args);
        INFO(version << ":\n" << out);
        CHECK(has(out, std::string("Protocol version: TLSv1.") + (version[6] == '3' ? "3" : "2")));
        CHECK(has(out, "Verification: OK")); // our certificate verified against the CA (and its IP)
        CHECK(has(out, "SIP/2.0 200"));      // the OPTIONS sent over it was answered
    }
}

TEST_CASE("TLS 1.1 and older are refused with a protocol_version alert", "[tls]") {
    TlsEnv t;
    const Pki &pki = Pki::get();
    // @SECLEVEL=0 so that the client offers TLS 1.1 at all (OpenSSL 3 refuses it above level 0): the refusal
    // must be the server's minimum version, not the client's own policy.
    std::string out = t.sClient(
        {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-cert", pki.file("phone.pem"), "-key", pki.file("phone.key")});
    INFO(out);
    CHECK_FALSE(has(out, "SIP/2.0"));
    CHECK_FALSE(has(out, "Protocol version: TLSv1.1"));
    CHECK(has(out, "alert protocol version"));
}

TEST_CASE("a client certificate from another CA, or none, is refused when tls_verify_client = require", "[tls]") {
    TlsEnv t;
    const Pki &pki = Pki::get();
    for (const char *version : {"-tls1_3", "-tls1_2"}) {
        std::string out = t.sClient({version, "-cert", pki.file("stranger.pem"), "-key", pki.file("stranger.key")});
        INFO(version << " stranger:\n" << out);
        CHECK_FALSE(has(out, "SIP/2.0"));
        CHECK(has(out, "alert"));
        std::string none = t.sClient({version});
        INFO(version << " no certificate:\n" << none);
        CHECK_FALSE(has(none, "SIP/2.0"));
    }
    // the same phone with a certificate from our CA gets in (the listener is not simply refusing everybody)
    std::string ok = t.sClient({"-tls1_3", "-cert", pki.file("phone.pem"), "-key", pki.file("phone.key")});
    INFO(ok);
    CHECK(has(ok, "SIP/2.0 200"));
}

TEST_CASE("tls_verify_client = none lets a client without a certificate in", "[tls]") {
    TlsEnvOptions o;
    o.verifyClient = false;
    TlsEnv t(o);
    std::string out = t.sClient({"-tls1_3"});
    INFO(out);
    CHECK(has(out, "SIP/2.0 200"));
}

TEST_CASE("TLS-only phones register, park with *68 and retrieve with *88 over TLS", "[tls][park]") {
    TlsEnv t;
    auto &a = t.tlsUa("a");
    auto &r = t.tlsUa("r");
    REQUIRE(t.registerAs(a, "2001") == 200);
    REQUIRE(t.registerAs(r, "1005") == 200);

    // park: a dials *68103; the park answers with a Contact on our TLS listener, so the ACK (and later BYE)
    // come back over TLS (a has no other transport)
    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    auto &park = t.invite(a, "2001", "*68103", ma.port());
    REQUIRE(t.waitFinal(park));
    REQUIRE(park.finalStatus == 200);
    std::string contact = park.response(200)->header("Contact");
    INFO("park 200 Contact: " << contact);
    CHECK(has(contact, ":" + std::to_string(t.tlsPort())));
    CHECK(has(contact, "transport=tls"));
    CHECK(t.parkedCount() == 1);
    REQUIRE(t.env().runUntil([&] { return rtpCount(ma) >= 2; }, 3000)); // music on hold flows

    // retrieve: r dials *88103; the parked phone is re-INVITEd over a TLS connection the proxy opens to it
    // (its certificate verified: tls_verify_server)
    auto &ret = t.invite(r, "1005", "*88103", 5006);
    REQUIRE(t.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    CHECK(t.parkedCount() == 0);
    Incoming *reinv = a.last("INVITE");
    REQUIRE(reinv);
    CHECK(has(reinv->request.header("Via"), "SIP/2.0/TLS"));
    CHECK(sdpAudioPort(reinv->request.body()) == 5006);

    // the bridged call ends: BYE from the retriever reaches the parked phone
    auto &bye = r.inDialog(ret, "BYE");
    REQUIRE(t.waitFinal(bye));
    CHECK(bye.finalStatus == 200);
    REQUIRE(t.env().runUntil([&] { return a.count("BYE") == 1; }));
    CHECK(has(a.last("BYE")->request.header("Via"), "SIP/2.0/TLS"));
}

namespace {

proxy::UserEntry tlsUser(const std::string &name) {
    std::string pw = "tls-password-" + name;
    return {kDomain, name, proxy::digest::ha1(proxy::digest::Algorithm::Sha256, name, kDomain, pw), "", {}};
}

// Send, answer the 401/407 with SHA-256 credentials of `user`, send again (new Call-ID: one transaction per
// Call-ID and CSeq in the harness phone).
Client &authed(TlsEnv &t, TestUa &ua, const std::string &method, const std::string &ruri, RequestOptions o,
               const std::string &user) {
    o.callId = "tls-" + method + "-" + user;
    Client &first = ua.send(method, ruri, o);
    REQUIRE(t.waitFinal(first));
    REQUIRE((first.finalStatus == 401 || first.finalStatus == 407));
    o.headers.push_back(authorize(*first.response(first.finalStatus), method, ruri, {user, "tls-password-" + user}));
    o.callId += "-2";
    Client &second = ua.send(method, ruri, o);
    REQUIRE(t.waitFinal(second));
    return second;
}

} // namespace

TEST_CASE("authenticated users register, park and retrieve over TLS", "[tls][park][identity]") {
    TlsEnvOptions opts;
    opts.users = {tlsUser("2001"), tlsUser("1005")};
    TlsEnv t(opts);
    auto &a = t.tlsUa("a");
    auto &r = t.tlsUa("r");
    CHECK(t.registerAs(a, "2001") == 401); // digest is asked for over TLS too
    RequestOptions reg;
    reg.from = reg.to = "<" + aorOf("2001") + ">";
    reg.headers = {"Contact: <" + a.uri("2001") + ">", "Expires: 3600"};
    CHECK(authed(t, a, "REGISTER", "sip:" + kDomain, reg, "2001").finalStatus == 200);

    RawUdp ma;
    a.autoAnswer("INVITE", 200, answerSdp(ma.port()), "application/sdp");
    RequestOptions inv;
    inv.from = "<" + aorOf("2001") + ">";
    inv.to = "<sip:*68103@" + kDomain + ">";
    inv.body = offerSdp(ma.port());
    inv.contentType = "application/sdp";
    Client &park = authed(t, a, "INVITE", "sip:*68103@" + kDomain, inv, "2001");
    REQUIRE(park.finalStatus == 200);
    CHECK(t.parkedCount() == 1);

    RequestOptions ret = inv;
    ret.from = "<" + aorOf("1005") + ">";
    ret.to = "<sip:*88103@" + kDomain + ">";
    ret.body = offerSdp(5006);
    Client &got = authed(t, r, "INVITE", "sip:*88103@" + kDomain, ret, "1005");
    REQUIRE(got.finalStatus == 200);
    CHECK(t.parkedCount() == 0);
}

TEST_CASE("a call between two TLS phones is record-routed on the TLS listener", "[tls][route]") {
    TlsEnv t;
    auto &a = t.tlsUa("a");
    auto &b = t.tlsUa("b");
    REQUIRE(t.registerAs(a, "3001") == 200);
    REQUIRE(t.registerAs(b, "3002") == 200);
    b.autoAnswer("INVITE", 200, answerSdp(7000), "application/sdp");
    b.autoAnswer("BYE", 200);
    auto &call = t.invite(a, "3001", "3002", 7002);
    REQUIRE(t.waitFinal(call));
    REQUIRE(call.finalStatus == 200);
    Incoming *in = b.last("INVITE");
    REQUIRE(in);
    INFO(in->request.text);
    REQUIRE(in->request.headerCount("Record-Route") == 1);
    CHECK(has(in->request.header("Record-Route"), "127.0.0.1:" + std::to_string(t.tlsPort()) + ";transport=tls"));
    // the BYE follows the route set over TLS through the proxy
    auto &bye = a.inDialog(call, "BYE");
    REQUIRE(t.waitFinal(bye));
    CHECK(bye.finalStatus == 200);
    CHECK(b.count("BYE") == 1);
}

TEST_CASE("a call from a TLS phone to a UDP phone is record-routed twice (RFC 5658)", "[tls][route]") {
    TlsEnv t;
    auto &a = t.tlsUa("a");
    auto &b = t.plainUa("b");
    REQUIRE(t.registerAs(a, "3001") == 200);
    REQUIRE(t.registerAs(b, "3002") == 200);
    b.autoAnswer("INVITE", 200, answerSdp(7000), "application/sdp");
    b.autoAnswer("BYE", 200);
    a.autoAnswer("BYE", 200);
    auto &call = t.invite(a, "3001", "3002", 7002);
    REQUIRE(t.waitFinal(call));
    REQUIRE(call.finalStatus == 200);
    Incoming *in = b.last("INVITE");
    REQUIRE(in);
    INFO(in->request.text);
    REQUIRE(in->request.headerCount("Record-Route") == 2);
    // the top one is for b (UDP side), the second for a (TLS side)
    CHECK_FALSE(has(in->request.header("Record-Route", 0), "transport=tls"));
    CHECK(has(in->request.header("Record-Route", 1), std::to_string(t.tlsPort()) + ";transport=tls"));
    // both directions of in-dialog requests pass: a's BYE goes out over TLS, b's over UDP
    auto &bye = a.inDialog(call, "BYE");
    REQUIRE(t.waitFinal(bye));
    CHECK(bye.finalStatus == 200);
    CHECK(b.count("BYE") == 1);
}

TEST_CASE("a sips: request gets a sips: Record-Route (RFC 3261 §16.6 step 4)", "[tls][route]") {
    TlsEnv t;
    auto &a = t.tlsUa("a");
    auto &b = t.tlsUa("b");
    REQUIRE(t.registerAs(a, "3001") == 200);
    REQUIRE(t.registerAs(b, "3002") == 200);
    b.autoAnswer("INVITE", 200, answerSdp(7000), "application/sdp");
    RequestOptions o;
    o.from = "<sips:3001@" + kDomain + ">";
    o.to = "<sips:3002@" + kDomain + ">";
    o.body = offerSdp(7002);
    o.contentType = "application/sdp";
    auto &call = a.send("INVITE", "sips:3002@" + kDomain, o);
    REQUIRE(t.waitFinal(call));
    INFO("status " << call.finalStatus);
    Incoming *in = b.last("INVITE");
    REQUIRE(in);
    INFO(in->request.text);
    REQUIRE(in->request.headerCount("Record-Route") == 1);
    CHECK(has(in->request.header("Record-Route"), "sips:127.0.0.1:" + std::to_string(t.tlsPort()) + ";lr"));
    CHECK(call.finalStatus == 200);
}

TEST_CASE("outgoing TLS: a server certificate for another name, or from another CA, is refused", "[tls]") {
    TlsEnv t;
    auto &a = t.tlsUa("a");
    auto &wrong = t.tlsUa("wrong", "wrongname");
    auto &stranger = t.tlsUa("stranger", "stranger");
    REQUIRE(t.registerAs(a, "3001") == 200);
    REQUIRE(t.registerAs(wrong, "3003") == 200);    // as a client it is fine: its certificate is from our CA
    REQUIRE(t.registerAs(stranger, "3004") != 200); // not even a client: its CA is not ours
    wrong.autoAnswer("INVITE", 200, answerSdp(7000), "application/sdp");
    auto &call = t.invite(a, "3001", "3003", 7002);
    REQUIRE(t.waitFinal(call, 10000));
    CHECK(call.finalStatus >= 400);
    CHECK(wrong.count("INVITE") == 0); // the proxy never sent it: the certificate names wrong.example
}

TEST_CASE("tls_verify_server = false accepts any server certificate", "[tls]") {
    TlsEnvOptions o;
    o.verifyServer = false;
    TlsEnv t(o);
    auto &a = t.tlsUa("a");
    auto &wrong = t.tlsUa("wrong", "wrongname");
    REQUIRE(t.registerAs(a, "3001") == 200);
    REQUIRE(t.registerAs(wrong, "3003") == 200);
    wrong.autoAnswer("INVITE", 200, answerSdp(7000), "application/sdp");
    auto &call = t.invite(a, "3001", "3003", 7002);
    REQUIRE(t.waitFinal(call, 10000));
    CHECK(call.finalStatus == 200);
}

TEST_CASE("the certificate folder handed to sofia-sip is gone once the proxy listens", "[tls]") {
    TlsEnv t;
    std::string leftovers = slurpFile("/dev/null");
    FILE *p = popen("ls -d ${TMPDIR:-/tmp}/parkway-tls-?????? 2>/dev/null | while read d; do "
                    "ls -la \"$d\" >/dev/null 2>&1 && echo \"$d\"; done",
                    "r");
    REQUIRE(p);
    char buf[512];
    while (fgets(buf, sizeof buf, p))
        leftovers += buf;
    pclose(p);
    // only the test's own PKI folder (parkway-tls-test-XXXXXX) may exist; our 6-letter folders are removed
    CHECK(leftovers.empty());
}
