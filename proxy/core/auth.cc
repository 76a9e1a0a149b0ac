// Identity of a request's sender (docs/auth.md): digest authentication of local users (RFC 3261 §22, RFC 7616,
// RFC 8760), trusted peers that assert identity with P-Asserted-Identity (RFC 3325), no open relay, and the
// users' credentials (admin API).
#include "core_impl.hh"
#include "digest.hh"
#include "user_store.hh"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#ifdef PARKWAY_HAVE_METRICS
#include "../admin/metrics.hh"
#endif

namespace parkway::proxy {

struct AuthState {
    std::unique_ptr<UserStore> store;
    std::unique_ptr<digest::NonceCodec> nonces;
    struct Seen {
        uint32_t nc = 0;
        int64_t untilS = 0;
    };
    std::unordered_map<std::string, Seen> ncSeen; // nonce -> highest nonce-count used (replay protection)
    struct Failures {
        uint32_t count = 0;
        int64_t sinceS = 0;
    };
    std::unordered_map<IpKey, Failures, IpKeyHash> failures; // per source, within the failure window
    size_t sourceLabels = 0;                                 // distinct source labels given to metrics
};

namespace {

constexpr size_t kMaxNonceEntries = 200000; // replay table bound (about 20 MB)
constexpr size_t kMaxFailureSources = 65536;
constexpr size_t kMaxSourceLabels = 1000; // beyond, failures are counted under source="other"

enum class Outcome { Ok, Missing, Stale, Failed };
struct Verdict {
    Outcome outcome = Outcome::Missing;
    std::string user; // the username of the credentials (Ok, Failed)
    const char *reason = "missing";
};

int64_t nowS() {
    return static_cast<int64_t>(time(nullptr));
}

std::string lower(std::string s) {
    for (auto &ch : s)
        ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
    return s;
}

// A parameter of Authorization / Proxy-Authorization, without quotes and backslash escapes (RFC 3261 §25.1).
std::string authParam(const msg_auth_t *au, const char *name) {
    const char *v = msg_params_find(au->au_params, name);
    if (!v)
        return {};
    std::string s(v);
    if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
        std::string out;
        for (size_t i = 1; i + 1 < s.size(); ++i) {
            if (s[i] == '\\' && i + 2 < s.size())
                ++i;
            out += s[i];
        }
        return out;
    }
    return s;
}

digest::Credentials credentialsOf(const msg_auth_t *au) {
    digest::Credentials c;
    c.username = authParam(au, "username=");
    c.realm = authParam(au, "realm=");
    c.nonce = authParam(au, "nonce=");
    c.uri = authParam(au, "uri=");
    c.response = authParam(au, "response=");
    c.algorithm = authParam(au, "algorithm=");
    c.cnonce = authParam(au, "cnonce=");
    c.nc = authParam(au, "nc=");
    c.qop = authParam(au, "qop=");
    c.opaque = authParam(au, "opaque=");
    return c;
}

// nonce-count: exactly 8 hex digits (RFC 7616 §3.4)
bool parseNc(const std::string &nc, uint32_t &out) {
    if (nc.size() != 8)
        return false;
    out = 0;
    for (char ch : nc) {
        if (!isxdigit(static_cast<unsigned char>(ch)))
            return false;
        out = out * 16 + static_cast<uint32_t>(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
    }
    return out > 0;
}

bool listed(const std::vector<std::string> &names, const std::string &domain) {
    for (const auto &n : names)
        if (n == "*" || !strcasecmp(n.c_str(), domain.c_str()))
            return true;
    return false;
}

// First URI of P-Asserted-Identity: "Name" <sip:...>, <tel:...> or a bare URI.
std::string assertedUri(msg_t *msg) {
    std::string v = sofia::headerValue(msg, "P-Asserted-Identity");
    auto lt = v.find('<'), gt = v.find('>');
    if (lt != std::string::npos && gt != std::string::npos && gt > lt)
        return v.substr(lt + 1, gt - lt - 1);
    auto semi = v.find(';');
    v = v.substr(0, semi);
    while (!v.empty() && isspace(static_cast<unsigned char>(v.back())))
        v.pop_back();
    while (!v.empty() && isspace(static_cast<unsigned char>(v.front())))
        v.erase(0, 1);
    return v;
}

std::string userPart(const url_t *u) {
    return u && u->url_user ? u->url_user : "";
}

} // namespace

bool Proxy::Impl::isLocalDomain(const std::string &host) const {
    if (servesDomain(host))
        return true;
    for (const auto &hp : localHostPorts)
        if (!strcasecmp(hp.first.c_str(), host.c_str()))
            return true;
    return false;
}

void Proxy::Impl::setUpAuth() {
    auto a = std::make_shared<AuthState>();
    a->store = std::make_unique<UserStore>(cfg.database);
    std::string secret = cfg.auth.secret.empty() ? a->store->secret() : cfg.auth.secret;
    a->nonces = std::make_unique<digest::NonceCodec>(secret, cfg.auth.nonceTtlS);
    auth = std::move(a);
    applyUsers(cfg.auth.users);
}

void Proxy::Impl::applyUsers(const std::vector<UserEntry> &users) {
    for (const auto &u : users)
        auth->store->put(SipUser{lower(u.domain), u.user, u.ha1Sha256, u.ha1Md5, u.registerFor});
}

void Proxy::Impl::authHousekeep(int64_t now) {
    if (!auth)
        return;
    for (auto it = auth->ncSeen.begin(); it != auth->ncSeen.end();)
        it = it->second.untilS < now ? auth->ncSeen.erase(it) : std::next(it);
    for (auto it = auth->failures.begin(); it != auth->failures.end();)
        it = now - it->second.sinceS > cfg.auth.failureWindowS ? auth->failures.erase(it) : std::next(it);
}

// ---------------------------------------------------------------- challenges

namespace {

// The domain whose user sent the request, and the realm we challenge in: REGISTER speaks for the AOR in To
// (RFC 3261 §10.2), anything else for From.
std::string realmOf(const sip_t *sip) {
    const sip_addr_t *a = sip->sip_request->rq_method == sip_method_register ? sip->sip_to : sip->sip_from;
    return a && a->a_url->url_host ? lower(a->a_url->url_host) : std::string();
}

std::string challengeLines(const char *header, const std::string &realm, const std::string &nonce, bool stale,
                           bool md5) {
    std::string out;
    for (digest::Algorithm a : {digest::Algorithm::Sha256, digest::Algorithm::Md5}) {
        if (a == digest::Algorithm::Md5 && !md5)
            continue;
        // RFC 8760 §2.4: one challenge per algorithm, the preferred (SHA-256) first
        out += fmt::format("{}: Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"{}\r\n", header, realm,
                           nonce, digest::name(a), stale ? ", stale=true" : "");
    }
    return out;
}

} // namespace

static bool sendChallenge(Proxy::Impl &impl, pw_request *tx, const std::string &realm, bool stale) {
    bool registerReq = tx->method == sip_method_register;
    // RFC 3261 §22.1: a registrar (UAS) answers 401 with WWW-Authenticate, a proxy 407 with Proxy-Authenticate
    int status = registerReq ? 401 : 407;
    const char *header = registerReq ? "WWW-Authenticate" : "Proxy-Authenticate";
    bool md5 = !listed(impl.cfg.auth.md5OffDomains, realm);
    std::string nonce = impl.auth->nonces->make(realm, nowS());
#ifdef PARKWAY_HAVE_METRICS
    if (impl.metrics)
        impl.metrics->counterAdd("parkway_auth_challenges_total", "", 1);
#endif
    return impl.replyLocal(tx, status, nullptr, challengeLines(header, realm, nonce, stale, md5));
}

bool Proxy::Impl::challenge(pw_request *tx) {
    const sip_t *sip = tx->req.sip();
    if (!auth || !sip || tx->kind != TxKind::Proxied || !tx->irq)
        return false;
    std::string realm = realmOf(sip);
    if (realm.empty() || !isLocalDomain(realm) || listed(cfg.auth.unauthenticatedDomains, realm))
        return false;
    if (tx->identitySource == PW_IDENTITY_ASSERTED || tx->identitySource == PW_IDENTITY_TRUSTED_PEER)
        return false;
    return sendChallenge(*this, tx, realm, false);
}

// ---------------------------------------------------------------- verification

namespace {

Verdict verifyDigest(Proxy::Impl &impl, const sip_t *sip, const std::string &realm) {
    AuthState &st = *impl.auth;
    bool registerReq = sip->sip_request->rq_method == sip_method_register;
    const msg_auth_t *au = registerReq ? sip->sip_authorization : sip->sip_proxy_authorization;
    for (; au; au = au->au_next) {
        if (!au->au_scheme || strcasecmp(au->au_scheme, "Digest"))
            continue;
        if (strcasecmp(authParam(au, "realm=").c_str(), realm.c_str()))
            continue; // another hop's credentials
        break;
    }
    if (!au)
        return {Outcome::Missing, "", "missing"};
    digest::Credentials c = credentialsOf(au);
    Verdict v{Outcome::Failed, c.username, "bad_credentials"};
    auto algo = digest::parse(c.algorithm);
    if (!algo || (*algo == digest::Algorithm::Md5 && listed(impl.cfg.auth.md5OffDomains, realm))) {
        v.reason = "algorithm";
        return v;
    }
    uint32_t nc = 0;
    if (c.qop != "auth" || !parseNc(c.nc, nc) || c.cnonce.empty()) { // we offer qop=auth only (RFC 7616 §3.3)
        v.reason = "qop";
        return v;
    }
    int64_t issued = 0;
    auto check = st.nonces->check(c.nonce, realm, nowS(), &issued);
    if (check == digest::NonceCodec::Check::Bad) {
        v.reason = "nonce";
        return v;
    }
    if (check == digest::NonceCodec::Check::Stale)
        return {Outcome::Stale, c.username, "stale"};
    // RFC 7616 §3.4.6: the digest-uri names the Request-URI
    sofia::Home home;
    url_t *du = url_make(home.get(), c.uri.c_str());
    if (!du || url_cmp(du, sip->sip_request->rq_url) != 0) {
        v.reason = "uri";
        return v;
    }
    auto user = st.store->find(realm, c.username);
    std::string ha1 = !user ? "" : (*algo == digest::Algorithm::Sha256 ? user->ha1Sha256 : user->ha1Md5);
    // An unknown user costs the same work as a known one and gets the same answer (no enumeration).
    std::string expected =
        digest::expectedResponse(*algo, ha1.empty() ? std::string(64, '0') : ha1, sip->sip_request->rq_method_name, c);
    if (!digest::sameHex(expected, c.response) || ha1.empty())
        return v;
    auto &seen = st.ncSeen[c.nonce];
    if (nc <= seen.nc) { // RFC 7616 §3.4: a nonce-count used before is a replay
        v.reason = "replay";
        return v;
    }
    seen.nc = nc;
    seen.untilS = issued + st.nonces->ttlS() + 1;
    if (st.ncSeen.size() > kMaxNonceEntries)
        impl.authHousekeep(nowS());
    return {Outcome::Ok, c.username, "ok"};
}

} // namespace

static void noteFailure(Proxy::Impl &impl, pw_request *tx, const std::string &realm, const Verdict &v) {
    su_sockaddr_t su;
    socklen_t len = sizeof su;
    IpKey ip;
    bool haveIp = msg_get_address(tx->req.get(), &su, &len) == 0 && ipKeyOf(&su.su_sa, ip);
#ifdef PARKWAY_HAVE_METRICS
    if (impl.metrics) {
        impl.metrics->counterAdd("parkway_auth_failures_total", fmt::format("reason=\"{}\"", v.reason), 1);
        if (impl.auth->store->find(realm, v.user)) // labels only for users that exist (bounded)
            impl.metrics->counterAdd("parkway_auth_user_failures_total",
                                     fmt::format("domain=\"{}\",user=\"{}\"", realm, v.user), 1);
        if (haveIp) {
            bool known = impl.auth->failures.count(ip) > 0;
            if (!known && impl.auth->sourceLabels < kMaxSourceLabels)
                ++impl.auth->sourceLabels;
            std::string src = known || impl.auth->sourceLabels < kMaxSourceLabels ? ip.text() : "other";
            impl.metrics->counterAdd("parkway_auth_source_failures_total", fmt::format("source=\"{}\"", src), 1);
        }
    }
#endif
    if (!haveIp || impl.cfg.auth.maxFailures == 0)
        return;
    auto &failures = impl.auth->failures;
    if (failures.size() >= kMaxFailureSources && !failures.count(ip))
        return;
    auto &f = failures[ip];
    int64_t now = nowS();
    if (now - f.sinceS > impl.cfg.auth.failureWindowS)
        f = {0, now};
    if (++f.count < impl.cfg.auth.maxFailures)
        return;
    // Too many failures: the rate limiter's ban (docs/limits.md), as for a flood
    f = {0, now};
    impl.limiter.ban(ip, impl.nowMs());
    if (impl.sockets)
        impl.sockets->closeFrom(ip); // its TCP connections too
    impl.reportLimit("auth_ban", ip.text());
}

// ---------------------------------------------------------------- identity of each request

bool Proxy::Impl::establishIdentity(pw_request *tx) {
    msg_t *msg = tx->req.get();
    sip_t *sip = tx->req.sip();
    su_sockaddr_t su;
    socklen_t len = sizeof su;
    IpKey ip;
    if (msg_get_address(msg, &su, &len) == 0 && ipKeyOf(&su.su_sa, ip) && trusted.contains(ip)) {
        // RFC 3325 §9.1: a trusted peer's P-Asserted-Identity is the caller's identity
        std::string pai = assertedUri(msg);
        tx->identity = pai.empty() ? sofia::urlString(sip->sip_from->a_url) : pai;
        tx->identitySource = pai.empty() ? PW_IDENTITY_TRUSTED_PEER : PW_IDENTITY_ASSERTED;
        return true;
    }
    // RFC 3325 §5: P-Asserted-Identity (and the Privacy that goes with it) from outside the trust domain is
    // removed, so nobody downstream believes what a stranger asserts.
    if (sofia::removeHeaders(msg, "P-Asserted-Identity") + sofia::removeHeaders(msg, "Privacy") > 0)
        tx->headersEdited = true;
    if (!auth)
        return true;
    bool inDialog = sip->sip_to && sip->sip_to->a_tag;
    std::string realm = realmOf(sip);
    if (realm.empty() || !isLocalDomain(realm))
        return true; // a foreign domain's user: nobody we know
    if (listed(cfg.auth.unauthenticatedDomains, realm)) {
        const sip_addr_t *a = tx->method == sip_method_register ? sip->sip_to : sip->sip_from;
        tx->identity = sofia::urlString(a->a_url);
        tx->identitySource = PW_IDENTITY_UNAUTHENTICATED;
        return true;
    }
    // OPTIONS to the server itself (keep-alive pings) is answered without asking who is there.
    if (tx->method == sip_method_options && !sip->sip_request->rq_url->url_user && isOurs(sip->sip_request->rq_url))
        return true;
    Verdict v = verifyDigest(*this, sip, realm);
    // In-dialog requests are challenged only when a module asks (request_challenge: e.g. a REFER that parks);
    // the answer to that challenge carries credentials and is checked here like any other.
    if (inDialog && v.outcome == Outcome::Missing)
        return true;
    if (v.outcome != Outcome::Ok) {
        if (v.outcome == Outcome::Failed)
            noteFailure(*this, tx, realm, v);
        sendChallenge(*this, tx, realm, v.outcome == Outcome::Stale);
        return false;
    }
    tx->identity = fmt::format("sip:{}@{}", v.user, realm);
    tx->identitySource = PW_IDENTITY_DIGEST;
    if (tx->method == sip_method_register) {
        // A user registers contacts for itself, or for the users it was granted (docs/auth.md)
        std::string aor = userPart(sip->sip_to->a_url);
        auto user = auth->store->find(realm, v.user);
        bool granted =
            user && std::find(user->registerFor.begin(), user->registerFor.end(), aor) != user->registerFor.end();
        if (aor != v.user && !granted) {
            replyLocal(tx, 403, "Forbidden (Not Your Address of Record)");
            return false;
        }
    } else if (sofia::removeHeaders(msg, "Proxy-Authorization") > 0) {
        // RFC 3261 §22.3: credentials for our realm are consumed here (we forward no other realm's either:
        // the next hop would not know our users)
        tx->headersEdited = true;
    }
    return true;
}

// ---------------------------------------------------------------- open relay

bool Proxy::Impl::mayRelay(pw_request *tx) const {
    if (tx->identitySource != PW_IDENTITY_NONE || !tx->targets.empty())
        return true; // someone we know / a module
    const sip_t *sip = tx->req.sip();
    if (tx->viaOurRoute)
        return true; // a dialog we record-routed (RFC 3261 §16.12 loose routing)
    if (sip->sip_route)
        return false; // a stranger's pre-loaded route
    // Ours: one of our listeners, or a domain we serve (a bare IP with another port is somebody else)
    const url_t *ruri = sip->sip_request->rq_url;
    if (!ruri->url_host)
        return false;
    return isOurs(ruri) || servesDomain(ruri->url_host);
}

// ---------------------------------------------------------------- users (admin API)

namespace {

bool validName(const std::string &s, size_t max) {
    if (s.empty() || s.size() > max)
        return false;
    for (unsigned char ch : s)
        if (!(isalnum(ch) || strchr("-_.!~*'()&=+$,;?/%", ch)))
            return false; // RFC 3261 §25.1 user chars
    return true;
}

nlohmann::json userJson(const SipUser &u) {
    nlohmann::json algos = nlohmann::json::array();
    if (!u.ha1Sha256.empty())
        algos.push_back("SHA-256");
    if (!u.ha1Md5.empty())
        algos.push_back("MD5");
    return {{"user", u.user}, {"algorithms", algos}, {"register_for", u.registerFor}};
}

CommandResult error(int status, const std::string &text) {
    return {status, nlohmann::json{{"error", text}}.dump()};
}

} // namespace

CommandResult Proxy::setUser(const std::string &domain, const std::string &user, const std::string &password,
                             const std::vector<std::string> &registerFor) {
    Impl &i = *impl_;
    if (!i.auth)
        return error(503, "users: not started");
    if (!i.isLocalDomain(domain))
        return error(404, fmt::format("domain {} is not local", domain));
    if (!validName(user, 64))
        return error(400, "user: 1 to 64 characters of a SIP user part");
    if (password.size() < 8 || password.size() > 256)
        return error(400, "password: 8 to 256 characters");
    for (const auto &g : registerFor)
        if (!validName(g, 64))
            return error(400, fmt::format("register_for: bad user {}", g));
    std::string realm = lower(domain);
    SipUser u{realm, user, digest::ha1(digest::Algorithm::Sha256, user, realm, password),
              listed(i.cfg.auth.md5OffDomains, realm) ? "" : digest::ha1(digest::Algorithm::Md5, user, realm, password),
              registerFor};
    bool created = i.auth->store->put(u);
    return {200, nlohmann::json{{"domain", realm}, {"user", user}, {"created", created}}.dump()};
}

CommandResult Proxy::deleteUser(const std::string &domain, const std::string &user) {
    Impl &i = *impl_;
    if (!i.auth)
        return error(503, "users: not started");
    if (!i.auth->store->remove(lower(domain), user))
        return error(404, fmt::format("no user {}@{}", user, domain));
    return {200, nlohmann::json{{"domain", lower(domain)}, {"user", user}, {"deleted", true}}.dump()};
}

CommandResult Proxy::listUsers(const std::string &domain) {
    Impl &i = *impl_;
    if (!i.auth)
        return error(503, "users: not started");
    if (!i.isLocalDomain(domain))
        return error(404, fmt::format("domain {} is not local", domain));
    nlohmann::json out = nlohmann::json::array();
    for (const auto &u : i.auth->store->list(lower(domain)))
        out.push_back(userJson(u));
    return {200, out.dump()};
}

} // namespace parkway::proxy
