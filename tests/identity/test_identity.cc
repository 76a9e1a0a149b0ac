// Who sent a request (docs/auth.md): digest challenges and checks in the core, third-party registration,
// trusted peers with P-Asserted-Identity, and no open relay. In-process: the proxy with the registrar and a hook
// module that records the identity the host gives it, phones on loopback.
#include "digest_client.hh"

#include <admin/metrics.hh>
#include <plugin/loader.hh>

#include <catch2/catch.hpp>

#include <set>

using namespace parkway;
using namespace parkway::test;

namespace {

const std::string kIdentityDomain = "parkway.test";
const std::string kSecret = "identity-test-secret-0123";

proxy::UserEntry user(const std::string &name, const std::string &password, std::vector<std::string> grants = {}) {
    return {kIdentityDomain, name,
            proxy::digest::ha1(proxy::digest::Algorithm::Sha256, name, kIdentityDomain, password),
            proxy::digest::ha1(proxy::digest::Algorithm::Md5, name, kIdentityDomain, password), std::move(grants)};
}

proxy::CoreConfig authConfig() {
    proxy::CoreConfig c = SipTestEnv::defaultConfig();
    c.auth.unauthenticatedDomains.clear();
    c.auth.secret = kSecret;
    c.auth.users = {user("1001", "correct horse 1001"), user("1002", "battery staple 1002", {"1099"})};
    return c;
}

// The proxy with the registrar behind a hook module that records what the host says about each request.
struct IdEnv {
    explicit IdEnv(proxy::CoreConfig cfg = authConfig()) : env(std::move(cfg), &metrics) {
        hook.onRequest = [this](pw_request *req) {
            int source = -1;
            pw_str id = hook.api->request_identity(req, &source);
            seen.push_back({hook.method(req), std::string(id.ptr ? id.ptr : "", id.len), source,
                            hook.header(req, "P-Asserted-Identity"), hook.header(req, "Privacy")});
            return PW_CONTINUE;
        };
        env.add(hook);
        env.load("registrar");
        env.start();
    }
    struct Seen {
        std::string method, identity;
        int source;
        std::string pai, privacy;
    };
    Client &finish(Client &c) {
        REQUIRE(env.runUntil([&] { return c.finalStatus != 0; }));
        return c;
    }
    // REGISTER of aor `ext` from `ua`, optionally with an Authorization line.
    Client &registerAs(TestUa &ua, const std::string &ext, const std::string &auth = {},
                       const std::string &callId = "reg-call") {
        RequestOptions o;
        o.from = o.to = "<sip:" + ext + "@" + kIdentityDomain + ">";
        o.callId = callId;
        o.headers = {"Contact: <" + ua.uri(ext) + ">", "Expires: 600"};
        if (!auth.empty())
            o.headers.push_back(auth);
        return finish(ua.send("REGISTER", "sip:" + kIdentityDomain, o));
    }
    proxy::Metrics metrics;
    SipTestEnv env;
    HookModule hook;
    std::vector<Seen> seen;
};

std::string without(const std::string &text, const std::regex &re) {
    return std::regex_replace(text, re, "X");
}

} // namespace

TEST_CASE("REGISTER without credentials: 401 with SHA-256 then MD5 challenges, qop=auth", "[identity][digest]") {
    IdEnv e;
    auto ua = e.env.makeUa("1001");
    Client &c = e.registerAs(*ua, "1001");
    REQUIRE(c.finalStatus == 401);
    const SipMessage *r = c.response(401);
    REQUIRE(r->headerCount("WWW-Authenticate") == 2);
    auto first = challengeParams(r->header("WWW-Authenticate", 0));
    auto second = challengeParams(r->header("WWW-Authenticate", 1));
    CHECK(first["algorithm"] == "SHA-256"); // RFC 8760 §2.4: most preferred first
    CHECK(second["algorithm"] == "MD5");
    CHECK(first["realm"] == kIdentityDomain);
    CHECK(first["qop"] == "auth");
    CHECK(first.count("stale") == 0);
    CHECK_FALSE(r->toTag().empty()); // RFC 3261 §8.2.6.2: a response the server makes carries its To-tag
    CHECK(e.seen.empty()); // no module saw the unauthenticated REGISTER
}

TEST_CASE("REGISTER answered with SHA-256 or MD5 credentials is accepted and binds the contact", "[identity][digest]") {
    for (std::string algo : {"SHA-256", "MD5"}) {
        DYNAMIC_SECTION(algo) {
            IdEnv e;
            auto ua = e.env.makeUa("1001");
            Client &c = e.registerAs(*ua, "1001");
            REQUIRE(c.finalStatus == 401);
            DigestAnswer a{"1001", "correct horse 1001", algo};
            Client &ok =
                e.registerAs(*ua, "1001", authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, a));
            CHECK(ok.finalStatus == 200);
            REQUIRE(e.seen.size() == 1);
            CHECK(e.seen[0].identity == "sip:1001@" + kIdentityDomain);
            CHECK(e.seen[0].source == PW_IDENTITY_DIGEST);
        }
    }
}

TEST_CASE("a domain with MD5 switched off offers and accepts SHA-256 only", "[identity][digest]") {
    auto cfg = authConfig();
    cfg.auth.md5OffDomains = {kIdentityDomain};
    IdEnv e(cfg);
    auto ua = e.env.makeUa("1001");
    Client &c = e.registerAs(*ua, "1001");
    REQUIRE(c.finalStatus == 401);
    REQUIRE(c.response(401)->headerCount("WWW-Authenticate") == 1);
    CHECK(challengeParams(c.response(401)->header("WWW-Authenticate"))["algorithm"] == "SHA-256");
    // MD5 credentials computed anyway (an old phone, or a downgrade attempt) are refused
    auto md5 =
        authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, {"1001", "correct horse 1001", "SHA-256"});
    md5 = std::regex_replace(md5, std::regex("algorithm=SHA-256"), "algorithm=MD5");
    CHECK(e.registerAs(*ua, "1001", md5).finalStatus == 401);
}

TEST_CASE("a stale nonce is answered with a new challenge and stale=true", "[identity][digest]") {
    IdEnv e;
    auto ua = e.env.makeUa("1001");
    Client &c = e.registerAs(*ua, "1001");
    // a nonce this server issued (same secret and realm) ten minutes ago: past the 300 s TTL
    proxy::digest::NonceCodec codec(kSecret, 300);
    DigestAnswer a{"1001", "correct horse 1001", "SHA-256"};
    a.nonceOverride = codec.make(kIdentityDomain, time(nullptr) - 600);
    Client &stale = e.registerAs(*ua, "1001", authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, a));
    REQUIRE(stale.finalStatus == 401);
    CHECK(challengeParams(stale.response(401)->header("WWW-Authenticate"))["stale"] == "true");
    CHECK(e.metrics.value("parkway_auth_failures_total", "reason=\"stale\"") == 0); // not a failure
}

TEST_CASE("a replayed nonce-count is refused, the next count is accepted", "[identity][digest]") {
    IdEnv e;
    auto ua = e.env.makeUa("1001");
    Client &c = e.registerAs(*ua, "1001");
    DigestAnswer a{"1001", "correct horse 1001", "SHA-256"};
    std::string line = authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, a);
    CHECK(e.registerAs(*ua, "1001", line).finalStatus == 200);
    CHECK(e.registerAs(*ua, "1001", line).finalStatus == 401); // the same request again: a replay
    CHECK(e.metrics.value("parkway_auth_failures_total", "reason=\"replay\"") == 1);
    a.nc = 2;
    CHECK(e.registerAs(*ua, "1001", authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, a)).finalStatus ==
          200);
}

TEST_CASE("wrong password and unknown user get the same answer", "[identity][digest]") {
    IdEnv e;
    auto ua = e.env.makeUa("1001");
    Client &c = e.registerAs(*ua, "1001");
    auto wrong =
        authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, {"1001", "not the password", "SHA-256"});
    auto unknown =
        authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, {"1077", "not the password", "SHA-256"});
    Client &w = e.registerAs(*ua, "1001", wrong, "call-w");
    Client &u = e.registerAs(*ua, "1077", unknown, "call-u");
    REQUIRE(w.finalStatus == 401);
    REQUIRE(u.finalStatus == 401);
    // Everything but the per-message values (nonce, tags, branch, Call-ID, CSeq, the To user) is identical.
    const SipMessage *rw = w.response(401), *ru = u.response(401);
    std::regex varying(R"(nonce="[0-9a-f]+"|tag=[^;\r\n>]+|branch=[^;\r\n]+|Call-ID: \S+|CSeq: \d+|10(01|77))");
    std::string headersW, headersU;
    for (const char *h : {"WWW-Authenticate", "Content-Length", "Server", "Warning"}) {
        for (unsigned i = 0; i < 3; ++i) {
            headersW += without(rw->header(h, i), varying) + "|";
            headersU += without(ru->header(h, i), varying) + "|";
        }
    }
    CHECK(headersW == headersU);
    CHECK(without(rw->text.substr(0, rw->text.find("\r\n")), varying) ==
          without(ru->text.substr(0, ru->text.find("\r\n")), varying));
    CHECK(e.metrics.value("parkway_auth_failures_total", "reason=\"bad_credentials\"") == 2);
    // per user only for users that exist (a stranger cannot grow the label set)
    CHECK(e.metrics.value("parkway_auth_user_failures_total", "domain=\"parkway.test\",user=\"1001\"") == 1);
    CHECK(e.metrics.value("parkway_auth_user_failures_total", "domain=\"parkway.test\",user=\"1077\"") == 0);
    CHECK(e.metrics.value("parkway_auth_source_failures_total", "source=\"127.0.0.1\"") == 2);
}

TEST_CASE("a user registers for itself, another user's AOR only with a grant", "[identity][register]") {
    IdEnv e;
    auto ua = e.env.makeUa("attacker");
    Client &c = e.registerAs(*ua, "1002");
    // 1001 authenticates correctly but asks to bind 1002's AOR (To): refused, 1002 keeps its contacts
    Client &other = e.registerAs(
        *ua, "1002", authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, {"1001", "correct horse 1001"}));
    CHECK(other.finalStatus == 403);
    // 1002 holds a grant for 1099
    Client &c2 = e.registerAs(*ua, "1099", {}, "call-2");
    Client &granted = e.registerAs(
        *ua, "1099",
        authorize(*c2.response(401), "REGISTER", "sip:" + kIdentityDomain, {"1002", "battery staple 1002"}), "call-2");
    CHECK(granted.finalStatus == 200);
}

TEST_CASE("initial requests of a local user get 407, with credentials their identity is the user, not From",
          "[identity][digest]") {
    IdEnv e;
    auto ua = e.env.makeUa("1001");
    auto callee = e.env.makeUa("callee");
    callee.get()->autoAnswer("MESSAGE", 200);
    RequestOptions o;
    o.from = "<sip:1002@" + kIdentityDomain + ">"; // claims to be 1002
    o.nextHop = e.env.proxyUri();
    std::string target = callee->uri("bob");
    Client &c = e.finish(ua->send("MESSAGE", target, o));
    REQUIRE(c.finalStatus == 407);
    REQUIRE(c.response(407)->headerCount("Proxy-Authenticate") == 2);
    o.headers = {authorize(*c.response(407), "MESSAGE", target, {"1001", "correct horse 1001"})};
    Client &ok = e.finish(ua->send("MESSAGE", target, o));
    CHECK(ok.finalStatus == 200);
    REQUIRE(!e.seen.empty());
    CHECK(e.seen.back().identity == "sip:1001@" + kIdentityDomain); // who authenticated, whatever From says
    // our credentials do not travel on to the next hop (RFC 3261 §22.3)
    REQUIRE(callee->last("MESSAGE"));
    CHECK(callee->last("MESSAGE")->request.header("Proxy-Authorization").empty());
}

TEST_CASE("P-Asserted-Identity and Privacy from an untrusted sender are removed", "[identity][trust]") {
    IdEnv e;
    auto ua = e.env.makeUa("stranger");
    auto callee = e.env.makeUa("callee");
    callee.get()->autoAnswer("MESSAGE", 200);
    RequestOptions o;
    o.from = "<sip:someone@elsewhere.example>";
    o.nextHop = e.env.proxyUri();
    o.headers = {"P-Asserted-Identity: <sip:1001@" + kIdentityDomain + ">", "Privacy: id"};
    // to a local user (not a relay): routed by the hook as a target
    e.hook.onRequest = [&](pw_request *req) {
        int source = -1;
        pw_str id = e.hook.api->request_identity(req, &source);
        e.seen.push_back({e.hook.method(req), std::string(id.ptr ? id.ptr : "", id.len), source,
                          e.hook.header(req, "P-Asserted-Identity"), e.hook.header(req, "Privacy")});
        e.hook.addTarget(req, callee->uri("bob"));
        return PW_CONTINUE;
    };
    Client &c = e.finish(ua->send("MESSAGE", "sip:bob@" + kIdentityDomain, o));
    CHECK(c.finalStatus == 200);
    REQUIRE(e.seen.size() == 1);
    CHECK(e.seen[0].identity.empty());
    CHECK(e.seen[0].source == PW_IDENTITY_NONE);
    CHECK(e.seen[0].pai.empty());
    CHECK(e.seen[0].privacy.empty());
    REQUIRE(callee->last("MESSAGE"));
    CHECK(callee->last("MESSAGE")->request.header("P-Asserted-Identity").empty());
}

TEST_CASE("a trusted peer is not challenged and its P-Asserted-Identity is the identity", "[identity][trust]") {
    auto cfg = authConfig();
    cfg.trustedPeers = {"127.0.0.2"};
    IdEnv e(cfg);
    auto peer = e.env.makeUa("peer", "sip:127.0.0.2:*");
    auto callee = e.env.makeUa("callee");
    callee.get()->autoAnswer("MESSAGE", 200);
    RequestOptions o;
    o.from = "<sip:1002@" + kIdentityDomain + ">";
    o.nextHop = e.env.proxyUri();
    o.headers = {"P-Asserted-Identity: \"Alice\" <sip:1001@" + kIdentityDomain + ">", "Privacy: id"};
    std::string target = callee->uri("bob");
    Client &c = e.finish(peer->send("MESSAGE", target, o));
    CHECK(c.finalStatus == 200);
    REQUIRE(e.seen.size() == 1);
    CHECK(e.seen[0].identity == "sip:1001@" + kIdentityDomain);
    CHECK(e.seen[0].source == PW_IDENTITY_ASSERTED);
    CHECK(e.seen[0].privacy == "id"); // kept inside the trust domain
    // without PAI: its From
    o.headers.clear();
    Client &c2 = e.finish(peer->send("MESSAGE", target, o));
    CHECK(c2.finalStatus == 200);
    CHECK(e.seen.back().identity == "sip:1002@" + kIdentityDomain);
    CHECK(e.seen.back().source == PW_IDENTITY_TRUSTED_PEER);
}

TEST_CASE("no open relay: a stranger cannot reach a foreign host, an authenticated user can", "[identity][relay]") {
    IdEnv e;
    auto stranger = e.env.makeUa("stranger");
    auto far = e.env.makeUa("far"); // stands for a host of another domain (not in proxy.domains)
    far.get()->autoAnswer("MESSAGE", 200);
    std::string target = far->uri("victim");
    RequestOptions o;
    o.from = "<sip:spam@elsewhere.example>";
    o.nextHop = e.env.proxyUri();
    Client &c = e.finish(stranger->send("MESSAGE", target, o));
    CHECK(c.finalStatus == 403);
    CHECK(far->count("MESSAGE") == 0);
    // a pre-loaded Route towards the far host does not help either
    RequestOptions r = o;
    r.headers = {"Route: <" + far->uri() + ";lr>"};
    Client &routed = e.finish(stranger->send("MESSAGE", "sip:victim@elsewhere.example", r));
    CHECK(routed.finalStatus == 403);
    CHECK(far->count("MESSAGE") == 0);
    // 1001, authenticated, may call out
    RequestOptions a;
    a.from = "<sip:1001@" + kIdentityDomain + ">";
    a.nextHop = e.env.proxyUri();
    Client &ch = e.finish(stranger->send("MESSAGE", target, a));
    REQUIRE(ch.finalStatus == 407);
    a.headers = {authorize(*ch.response(407), "MESSAGE", target, {"1001", "correct horse 1001"})};
    CHECK(e.finish(stranger->send("MESSAGE", target, a)).finalStatus == 200);
    CHECK(far->count("MESSAGE") == 1);
}

TEST_CASE("repeated authentication failures from one address ban it", "[identity][ban]") {
    auto cfg = authConfig();
    cfg.auth.maxFailures = 3;
    IdEnv e(cfg);
    auto ua = e.env.makeUa("1001");
    Client &c = e.registerAs(*ua, "1001");
    for (int i = 0; i < 3; ++i) {
        DigestAnswer a{"1001", "guess " + std::to_string(i), "SHA-256"};
        a.nc = static_cast<unsigned>(i + 1);
        CHECK(e.registerAs(*ua, "1001", authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, a),
                           "guess-" + std::to_string(i))
                  .finalStatus == 401);
    }
    // banned: even the right password gets no answer now (datagrams dropped)
    DigestAnswer right{"1001", "correct horse 1001", "SHA-256"};
    right.nc = 9;
    RequestOptions o;
    o.from = o.to = "<sip:1001@" + kIdentityDomain + ">";
    o.headers = {"Contact: <" + ua->uri("1001") + ">",
                 authorize(*c.response(401), "REGISTER", "sip:" + kIdentityDomain, right)};
    Client &after = ua->send("REGISTER", "sip:" + kIdentityDomain, o);
    e.env.runFor(400);
    CHECK(after.finalStatus != 200);
    CHECK(e.metrics.value("parkway_limit_refusals_total", "limit=\"auth_ban\"") == 1);
}
