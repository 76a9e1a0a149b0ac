// registrar: REGISTER handling (RFC 3261 §10.3) with contacts kept in SQLite, and the location provider the
// router (and other modules) use. Pure plugin ABI; C++ inside.
#include "sip_uri.hh"

#include <parkway/module.h>
#include <parkway/module.hpp>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <list>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

using namespace parkway::modutil;

namespace {

struct Binding {
    std::string uri, received, path, callId, userAgent;
    int64_t expiresAt = 0; // unix seconds
    int32_t qMilli = 1000;
    uint32_t cseq = 0;
};

struct Registrar {
    const pw_host_api *api = nullptr;
    pw_host *host = nullptr;
    sqlite3 *db = nullptr;
    std::string dbPath;
    int64_t minExpires = 60, maxExpires = 3600, defaultExpires = 3600, maxContacts = 10, cleanupMs = 10000;
    // Caps (docs/limits.md "Registrar"): AORs with live contacts, in total and per domain; 0 = no cap.
    int64_t maxAors = 10000, maxAorsPerDomain = 0, retryAfter = 60;
    std::vector<std::string> serviceRoute; // "<uri>" values returned in Service-Route (RFC 3608 §6)
    // Known AORs (registered once, so an unknown user gets 404 and a known one 480), with their live bindings
    // (possibly none). Live ones are counted against the caps; AORs left with no live contact are remembered in
    // the order they went quiet, at most maxAors of them (then the oldest is forgotten).
    std::map<std::string, std::vector<Binding>> aors;
    size_t liveAors = 0;
    std::unordered_map<std::string, size_t> livePerDomain;
    std::list<std::string> quiet; // AORs without live contacts, oldest first
    std::unordered_map<std::string, std::list<std::string>::iterator> quietPos;
    pw_timer_id timer = 0;

    void log(pw_log_level level, const std::string &text) { api->log(host, level, view(text)); }
    // Whether a line at `level` would be written (v1.6 log_enabled; an older host: yes): build it only then.
    bool logs(pw_log_level level) const { return !PW_HOST_HAS(api, log_enabled) || api->log_enabled(host, level) != 0; }
    int64_t now() { return api->now_ms(host) / 1000; }
    bool exec(const char *sql) {
        char *err = nullptr;
        if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
            log(PW_LOG_ERROR, std::string("registrar: SQLite error on ") + dbPath + ": " + (err ? err : "?"));
            sqlite3_free(err);
            return false;
        }
        return true;
    }
};

// ------------------------------------------------------------------ storage

const char *kSchema = R"sql(
CREATE TABLE IF NOT EXISTS registrar_aor (aor TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS registrar_contact (
  aor TEXT NOT NULL, uri TEXT NOT NULL, received TEXT NOT NULL DEFAULT '', path TEXT NOT NULL DEFAULT '',
  expires_at INTEGER NOT NULL, q_milli INTEGER NOT NULL DEFAULT 1000, call_id TEXT NOT NULL DEFAULT '',
  cseq INTEGER NOT NULL DEFAULT 0, user_agent TEXT NOT NULL DEFAULT '', PRIMARY KEY (aor, uri));
)sql";

bool openDb(Registrar &r) {
    if (sqlite3_open_v2(r.dbPath.c_str(), &r.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        r.log(PW_LOG_ERROR,
              "registrar: cannot open database " + r.dbPath + ": " + (r.db ? sqlite3_errmsg(r.db) : "out of memory"));
        return false;
    }
    sqlite3_busy_timeout(r.db, 2000); // the file is shared with other modules
    if (!r.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;") || !r.exec(kSchema))
        return false;
    return true;
}

// The AOR key of a URI: the host's reading (uri_part PW_URI_AOR, ABI 1.4: one escaping rule for every module)
// with sips folded to sip as canonicalAor does; canonicalAor (sip_uri.hh, the same form) on an older host.
std::string aorKey(Registrar &r, const std::string &uri) {
    if (!PW_HOST_HAS(r.api, uri_part))
        return canonicalAor(uri);
    std::string scheme = str(r.api->uri_part(r.host, view(uri), PW_URI_SCHEME));
    if (scheme != "sip" && scheme != "sips")
        return "";
    std::string aor = str(r.api->uri_part(r.host, view(uri), PW_URI_AOR));
    return scheme == "sips" ? "sip" + aor.substr(4) : aor;
}

std::string domainOf(const std::string &aor) {
    return parseSipUri(aor).host;
}

void publishAorGauge(Registrar &r) {
    r.api->gauge_set(r.host, PW_STR_LIT("parkway_registrar_aors"), PW_STR_LIT(""), static_cast<double>(r.liveAors));
}

void forgetAor(Registrar &r, const std::string &aor) {
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(r.db, "DELETE FROM registrar_aor WHERE aor = ?", -1, &st, nullptr) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, aor.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    r.aors.erase(aor);
}

// Remember a known AOR with no live contact. A stranger registering many names and letting them lapse must
// not grow this memory without bound: beyond max_aors of them, the one quiet the longest is forgotten (it
// then gets 404 instead of 480 from the router).
void addQuiet(Registrar &r, const std::string &aor) {
    r.quietPos[aor] = r.quiet.insert(r.quiet.end(), aor);
    size_t keep = r.maxAors > 0 ? static_cast<size_t>(r.maxAors) : SIZE_MAX;
    while (r.quiet.size() > keep) {
        std::string oldest = r.quiet.front();
        r.quiet.pop_front();
        r.quietPos.erase(oldest);
        forgetAor(r, oldest);
    }
}

// Book-keeping when an AOR goes live (first live contact) or quiet (none left): the live counts the caps use,
// and the bounded memory of quiet AORs.
void noteLive(Registrar &r, const std::string &aor, bool wasLive, bool isLive) {
    if (wasLive == isLive)
        return;
    std::string domain = domainOf(aor);
    if (isLive) {
        ++r.liveAors;
        ++r.livePerDomain[domain];
        if (auto it = r.quietPos.find(aor); it != r.quietPos.end()) {
            r.quiet.erase(it->second);
            r.quietPos.erase(it);
        }
        return;
    }
    --r.liveAors;
    if (auto it = r.livePerDomain.find(domain); it != r.livePerDomain.end() && --it->second == 0)
        r.livePerDomain.erase(it);
    addQuiet(r, aor);
}

bool loadDb(Registrar &r) {
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(r.db, "SELECT aor FROM registrar_aor", -1, &st, nullptr) != SQLITE_OK)
        return false;
    while (sqlite3_step(st) == SQLITE_ROW)
        r.aors[reinterpret_cast<const char *>(sqlite3_column_text(st, 0))];
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(r.db,
                           "SELECT aor, uri, received, path, expires_at, q_milli, call_id, cseq, user_agent "
                           "FROM registrar_contact WHERE expires_at > ?",
                           -1, &st, nullptr) != SQLITE_OK)
        return false;
    sqlite3_bind_int64(st, 1, r.now());
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        auto col = [&](int i) { return std::string(reinterpret_cast<const char *>(sqlite3_column_text(st, i))); };
        Binding b;
        b.uri = col(1), b.received = col(2), b.path = col(3), b.callId = col(6), b.userAgent = col(8);
        b.expiresAt = sqlite3_column_int64(st, 4);
        b.qMilli = sqlite3_column_int(st, 5);
        b.cseq = static_cast<uint32_t>(sqlite3_column_int64(st, 7));
        r.aors[col(0)].push_back(b);
        ++n;
    }
    sqlite3_finalize(st);
    // The caps' counts; quiet AORs beyond what is kept are forgotten (a database from before the cap).
    std::vector<std::string> quiet;
    for (const auto &[aor, bs] : r.aors) {
        if (bs.empty())
            quiet.push_back(aor);
        else
            noteLive(r, aor, false, true);
    }
    for (const auto &aor : quiet)
        addQuiet(r, aor);
    r.log(PW_LOG_INFO, "registrar: " + std::to_string(n) + " live contact(s) of " + std::to_string(r.liveAors) +
                           " address(es)-of-record restored from " + r.dbPath);
    return true;
}

// Write the whole AOR (it is small) in one transaction.
bool storeAor(Registrar &r, const std::string &aor) {
    if (!r.exec("BEGIN"))
        return false;
    bool ok = true;
    sqlite3_stmt *st = nullptr;
    ok &= sqlite3_prepare_v2(r.db, "INSERT OR IGNORE INTO registrar_aor(aor) VALUES(?)", -1, &st, nullptr) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, aor.c_str(), -1, SQLITE_TRANSIENT);
        ok &= sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    ok &= sqlite3_prepare_v2(r.db, "DELETE FROM registrar_contact WHERE aor = ?", -1, &st, nullptr) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, aor.c_str(), -1, SQLITE_TRANSIENT);
        ok &= sqlite3_step(st) == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    ok &= sqlite3_prepare_v2(r.db,
                             "INSERT INTO registrar_contact(aor, uri, received, path, expires_at, q_milli, call_id, "
                             "cseq, user_agent) VALUES(?,?,?,?,?,?,?,?,?)",
                             -1, &st, nullptr) == SQLITE_OK;
    if (ok) {
        for (const auto &b : r.aors[aor]) {
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, aor.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, b.uri.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 3, b.received.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 4, b.path.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 5, b.expiresAt);
            sqlite3_bind_int(st, 6, b.qMilli);
            sqlite3_bind_text(st, 7, b.callId.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 8, b.cseq);
            sqlite3_bind_text(st, 9, b.userAgent.c_str(), -1, SQLITE_TRANSIENT);
            ok &= sqlite3_step(st) == SQLITE_DONE;
        }
    }
    sqlite3_finalize(st);
    if (!ok) {
        r.log(PW_LOG_ERROR, "registrar: cannot store " + aor + " in " + r.dbPath + ": " + sqlite3_errmsg(r.db));
        r.exec("ROLLBACK");
        return false;
    }
    return r.exec("COMMIT");
}

size_t liveContacts(Registrar &r) {
    size_t n = 0;
    for (const auto &[aor, bs] : r.aors)
        n += bs.size();
    return n;
}

// Drop expired bindings (memory and disk).
void purge(Registrar &r) {
    int64_t now = r.now();
    size_t dropped = 0;
    std::vector<std::string> wentQuiet;
    for (auto &[aor, bs] : r.aors) {
        size_t before = bs.size();
        bs.erase(std::remove_if(bs.begin(), bs.end(), [&](const Binding &b) { return b.expiresAt <= now; }), bs.end());
        dropped += before - bs.size();
        if (before && bs.empty())
            wentQuiet.push_back(aor);
    }
    for (const auto &aor : wentQuiet)
        noteLive(r, aor, true, false); // may forget old quiet AORs (erase)
    if (!wentQuiet.empty())
        publishAorGauge(r);
    if (dropped) {
        sqlite3_stmt *st = nullptr;
        if (sqlite3_prepare_v2(r.db, "DELETE FROM registrar_contact WHERE expires_at <= ?", -1, &st, nullptr) ==
            SQLITE_OK) {
            sqlite3_bind_int64(st, 1, now);
            sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (r.logs(PW_LOG_DEBUG))
            r.log(PW_LOG_DEBUG, "registrar: " + std::to_string(dropped) + " contact(s) expired");
        r.api->gauge_set(r.host, PW_STR_LIT("parkway_registrar_contacts"), PW_STR_LIT(""),
                         static_cast<double>(liveContacts(r)));
    }
}

void onTimer(void *arg) noexcept {
    auto *r = static_cast<Registrar *>(arg);
    r->timer = 0;
    parkway::sdk::guardVoid(r->api, r->host, "registrar", "cleanup", [r] { purge(*r); });
    r->timer = r->api->timer_start(r->host, static_cast<uint64_t>(r->cleanupMs), onTimer, r);
}

// ------------------------------------------------------------------ REGISTER

pw_verdict reply(Registrar &r, pw_request *req, int status, const char *reason,
                 const std::vector<std::pair<std::string, std::string>> &headers = {}) {
    std::vector<pw_header> hs;
    for (const auto &[n, v] : headers)
        hs.push_back(pw_header{view(n), view(v)});
    r.api->request_reply(req, status, pw_str{reason, std::strlen(reason)}, hs.data(), hs.size(), pw_str{nullptr, 0},
                         pw_str{nullptr, 0});
    std::string label = "status=\"" + std::to_string(status) + "\"";
    r.api->counter_add(r.host, PW_STR_LIT("parkway_registrar_requests_total"), view(label), 1);
    return PW_STOP;
}

// A cap refused the REGISTER: 503 with Retry-After (RFC 3261 §21.5.4), counted by cap.
pw_verdict refuse(Registrar &r, pw_request *req, const char *cap, const char *reason, int64_t retryAfter) {
    std::string label = std::string("reason=\"") + cap + "\"";
    r.api->counter_add(r.host, PW_STR_LIT("parkway_registrar_refused_total"), view(label), 1);
    return reply(r, req, 503, reason, {{"Retry-After", std::to_string(retryAfter)}});
}

struct Change {
    std::string uri;
    int64_t expires; // seconds; 0 = remove
    int qMilli;
};

pw_verdict onRegister(Registrar &r, pw_request *req) {
    const pw_host_api *api = r.api;
    const pw_msg *msg = api->request_msg(req);
    // RFC 3261 §10.3 step 1: only for our domains; others are proxied like any request.
    SipUri ruri = parseSipUri(str(api->msg_request_uri(msg)));
    if (!ruri.ok || !api->is_local_domain(r.host, view(ruri.host)))
        return PW_CONTINUE;

    // Step 5: the AOR from To must be in a domain we are responsible for.
    std::string toUri = str(api->msg_uri(msg, PW_STR_LIT("To")));
    SipUri to = parseSipUri(toUri);
    if (!to.ok)
        return reply(r, req, 400, "Bad To URI");
    if (!api->is_local_domain(r.host, view(to.host)))
        return reply(r, req, 404, "Not Found (not a local domain)");
    if (to.user.empty())
        return reply(r, req, 400, "To URI has no user part");
    std::string aor = aorKey(r, toUri);

    std::string callId = str(api->msg_header(msg, PW_STR_LIT("Call-ID"), 0));
    std::string cseqText = str(api->msg_header(msg, PW_STR_LIT("CSeq"), 0));
    long long cseq = parseDigits(cseqText.substr(0, cseqText.find(' ')));
    if (callId.empty() || cseq < 0)
        return reply(r, req, 400, "Bad Call-ID or CSeq");

    long long headerExpires = -1;
    std::string expiresText = str(api->msg_header(msg, PW_STR_LIT("Expires"), 0));
    if (!expiresText.empty())
        headerExpires = parseDigits(expiresText);

    std::vector<ContactValue> contacts;
    bool wildcard = false;
    for (unsigned i = 0;; ++i) {
        std::string v = str(api->msg_header(msg, PW_STR_LIT("Contact"), i));
        if (v.empty())
            break;
        ContactValue c = parseContactValue(v);
        if (!c.ok)
            return reply(r, req, 400, "Bad Contact");
        wildcard |= c.wildcard;
        contacts.push_back(c);
    }
    int64_t now = r.now();
    // Not created here: a refused, query-only or removal-only REGISTER leaves no trace of an unknown AOR.
    auto known = r.aors.find(aor);
    std::vector<Binding> bindings = known == r.aors.end() ? std::vector<Binding>() : known->second;
    // Live = has bindings in memory (the caps' counts; expired ones leave at the next purge).
    bool wasLive = !bindings.empty();

    // Step 6: "*" must be alone and come with Expires: 0.
    if (wildcard) {
        if (contacts.size() != 1 || headerExpires != 0)
            return reply(r, req, 400, "Invalid wildcard Contact (needs Expires: 0 and no other Contact)");
        // Step 7 for each binding: same Call-ID with a CSeq not higher keeps that binding.
        for (const auto &b : bindings)
            if (b.callId == callId && static_cast<long long>(b.cseq) >= cseq)
                return reply(r, req, 500, "Out of order REGISTER (CSeq)");
        bindings.clear();
    } else {
        std::vector<Change> changes;
        for (const auto &c : contacts) {
            long long e = -1;
            if (auto it = c.params.find("expires"); it != c.params.end())
                e = parseDigits(it->second);
            if (e < 0)
                e = headerExpires;
            if (e < 0)
                e = r.defaultExpires;
            // Step 7: too short an interval is refused with Min-Expires (RFC 3261 §10.3, §20.23).
            if (e > 0 && e < r.minExpires)
                return reply(r, req, 423, "Interval Too Brief", {{"Min-Expires", std::to_string(r.minExpires)}});
            if (e > r.maxExpires)
                e = r.maxExpires;
            int q = 1000;
            if (auto it = c.params.find("q"); it != c.params.end()) {
                q = parseQ(it->second);
                if (q < 0)
                    return reply(r, req, 400, "Bad q value in Contact");
            }
            changes.push_back(Change{c.uri, e, q});
        }
        // Step 7: out-of-order requests abort the whole REGISTER before anything changes.
        for (const auto &ch : changes)
            for (const auto &b : bindings)
                if (b.uri == ch.uri && b.callId == callId && static_cast<long long>(b.cseq) >= cseq)
                    return reply(r, req, 500, "Out of order REGISTER (CSeq)");
        std::string received = sourceToUri(str(api->msg_source(msg)));
        std::string path;
        for (unsigned i = 0;; ++i) {
            std::string p = str(api->msg_header(msg, PW_STR_LIT("Path"), i));
            if (p.empty())
                break;
            path += (path.empty() ? "" : ",") + p;
        }
        std::string ua = str(api->msg_header(msg, PW_STR_LIT("User-Agent"), 0));
        std::vector<Binding> next = bindings;
        for (const auto &ch : changes) {
            auto it = std::find_if(next.begin(), next.end(), [&](const Binding &b) { return b.uri == ch.uri; });
            if (ch.expires == 0) {
                if (it != next.end())
                    next.erase(it);
                continue;
            }
            Binding b;
            b.uri = ch.uri, b.received = received, b.path = path, b.callId = callId, b.userAgent = ua;
            b.expiresAt = now + ch.expires;
            b.qMilli = ch.qMilli;
            b.cseq = static_cast<uint32_t>(cseq);
            if (it != next.end())
                *it = b;
            else
                next.push_back(b);
        }
        // Drop expired ones before counting.
        next.erase(std::remove_if(next.begin(), next.end(), [&](const Binding &b) { return b.expiresAt <= now; }),
                   next.end());
        // Only a REGISTER that adds a contact can be refused: a refresh or a removal never is, even over a cap
        // lowered since. Kamailio's registrar answers max_contacts with 503 "Too Many Registered Contacts" (and
        // Retry-After when configured); phones treat it as "try later", not as a broken account (a 403 would
        // say the credentials are refused, RFC 3261 §21.4.4). Retry-After: when the soonest binding lapses.
        size_t added = 0;
        for (const auto &b : next)
            added += std::none_of(bindings.begin(), bindings.end(),
                                  [&](const Binding &o) { return o.uri == b.uri && o.expiresAt > now; });
        if (added && static_cast<int64_t>(next.size()) > r.maxContacts) {
            int64_t soonest = r.maxExpires;
            for (const auto &b : bindings)
                if (b.expiresAt > now)
                    soonest = std::min(soonest, b.expiresAt - now);
            return refuse(r, req, "max_contacts", "Too Many Registered Contacts", std::max<int64_t>(1, soonest));
        }
        // A new live AOR (none of its contacts live before) is what the AOR caps count: 503 + Retry-After
        // (RFC 3261 §21.5.4) when the registrar, or the domain, holds as many as it may.
        if (!wasLive && !next.empty()) {
            if (r.maxAors > 0 && static_cast<int64_t>(r.liveAors) >= r.maxAors)
                return refuse(r, req, "max_aors", "Registrar Capacity Reached", r.retryAfter);
            auto d = r.livePerDomain.find(domainOf(aor));
            if (r.maxAorsPerDomain > 0 && d != r.livePerDomain.end() &&
                static_cast<int64_t>(d->second) >= r.maxAorsPerDomain)
                return refuse(r, req, "max_aors_per_domain", "Domain Registration Capacity Reached", r.retryAfter);
        }
        bindings = std::move(next);
    }
    bool isLive = !bindings.empty();
    // An AOR we never knew that ends up with no contact (a query, a removal, a wildcard) is not stored.
    if (known != r.aors.end() || isLive) {
        r.aors[aor] = bindings;
        if (!storeAor(r, aor))
            return reply(r, req, 500, "Registrar database error");
        noteLive(r, aor, wasLive, isLive);
        publishAorGauge(r);
    }

    // Step 8: 200 OK listing every current binding with its remaining time.
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto &b : bindings) {
        std::string v = "<" + b.uri + ">;expires=" + std::to_string(std::max<int64_t>(0, b.expiresAt - now));
        if (b.qMilli != 1000) {
            char q[16];
            std::snprintf(q, sizeof q, "%d.%03d", b.qMilli / 1000, b.qMilli % 1000);
            v += std::string(";q=") + q;
        }
        headers.emplace_back("Contact", v);
    }
    for (const auto &sr : r.serviceRoute) // RFC 3608 §6: the route the UA preloads for its later requests
        headers.emplace_back("Service-Route", sr);
    headers.emplace_back("Date", [] {
        char buf[64];
        time_t t = time(nullptr);
        tm g{};
        gmtime_r(&t, &g);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &g);
        return std::string(buf);
    }());
    api->gauge_set(r.host, PW_STR_LIT("parkway_registrar_contacts"), PW_STR_LIT(""),
                   static_cast<double>(liveContacts(r)));
    // The event's JSON only when someone would read it (v1.5 event_listening; an older host: always).
    if (!PW_HOST_HAS(api, event_listening) || api->event_listening(r.host) != 0) {
        nlohmann::json ev{{"aor", aor}, {"contacts", bindings.size()}};
        std::string evText = ev.dump();
        api->event_publish(r.host, PW_STR_LIT("registration"), view(evText));
    }
    if (r.logs(PW_LOG_DEBUG))
        r.log(PW_LOG_DEBUG, "registrar: " + aor + " now has " + std::to_string(bindings.size()) + " contact(s)");
    return reply(r, req, 200, "OK", headers);
}

// ------------------------------------------------------------------ location provider

int locate(void *ctx, pw_str aorText, pw_contact_cb each, void *arg) {
    auto *r = static_cast<Registrar *>(ctx);
    std::string aor = aorKey(*r, str(aorText));
    auto it = r->aors.find(aor);
    // Never registered: not found (router answers 404); known but no live contact: 0 (router answers 480).
    if (it == r->aors.end())
        return PW_ENOTFOUND;
    int64_t now = r->now();
    int n = 0;
    for (const auto &b : it->second) {
        if (b.expiresAt <= now)
            continue;
        pw_contact c{};
        c.struct_size = sizeof c;
        c.uri = view(b.uri);
        c.received = view(b.received);
        c.path = view(b.path);
        c.expires_at = b.expiresAt;
        c.q_milli = b.qMilli;
        if (each)
            each(arg, &c);
        ++n;
    }
    return n;
}

// ------------------------------------------------------------------ admin command

int cmdList(void *ctx, pw_str argsJson, pw_writer *out) {
    auto *r = static_cast<Registrar *>(ctx);
    auto args = nlohmann::json::parse(str(argsJson).empty() ? "{}" : str(argsJson), nullptr, false);
    if (args.is_discarded() || !args.is_object())
        return r->api->writer_error(out, 400, PW_STR_LIT("arguments must be a JSON object"));
    std::string filter;
    if (args.contains("aor")) {
        if (!args["aor"].is_string())
            return r->api->writer_error(out, 400, PW_STR_LIT("'aor' must be a string"));
        filter = aorKey(*r, args["aor"].get<std::string>());
        if (filter.empty())
            return r->api->writer_error(out, 400, PW_STR_LIT("'aor' is not a SIP URI"));
    }
    int64_t now = r->now();
    nlohmann::json list = nlohmann::json::array();
    for (const auto &[aor, bs] : r->aors) {
        if (!filter.empty() && aor != filter)
            continue;
        nlohmann::json contacts = nlohmann::json::array();
        for (const auto &b : bs) {
            if (b.expiresAt <= now)
                continue;
            contacts.push_back({{"uri", b.uri},
                                {"expires", b.expiresAt - now},
                                {"expires_at", b.expiresAt},
                                {"q", b.qMilli / 1000.0},
                                {"received", b.received},
                                {"path", b.path},
                                {"call_id", b.callId},
                                {"cseq", b.cseq},
                                {"user_agent", b.userAgent}});
        }
        if (contacts.empty() && filter.empty())
            continue;
        list.push_back({{"aor", aor}, {"contacts", contacts}});
    }
    if (!filter.empty() && list.empty())
        return r->api->writer_error(out, 404, PW_STR_LIT("no such address-of-record"));
    std::string text = nlohmann::json{{"registrations", list}}.dump();
    return r->api->writer_json(out, view(text));
}

// The location provider as the host calls it: no exception crosses the C ABI (parkway/module.hpp).
int guardedLocate(void *ctx, pw_str aor, pw_contact_cb each, void *arg) noexcept {
    auto *r = static_cast<Registrar *>(ctx);
    return parkway::sdk::guardInt(
        r->api, r->host, "registrar", "location lookup", [&] { return locate(ctx, aor, each, arg); }, PW_ENOMEM);
}

// ------------------------------------------------------------------ hooks

// service_route: URIs separated by newlines (a TOML array) or commas, each as "<uri>" for the header.
std::string parseServiceRoute(const std::string &text, std::vector<std::string> &out) {
    std::istringstream in(text);
    for (std::string item; std::getline(in, item, '\n');) {
        std::istringstream parts(item);
        for (std::string u; std::getline(parts, u, ',');) {
            u = trim(u);
            if (u.empty())
                continue;
            if (u.size() > 2 && u.front() == '<' && u.back() == '>')
                u = u.substr(1, u.size() - 2);
            if (!parseSipUri(u).ok)
                return "service_route: '" + u + "' is not a sip: URI";
            out.push_back("<" + u + ">");
        }
    }
    return "";
}

int regInit(const pw_host_api *api, pw_host *host, void **ctx) {
    auto *r = new Registrar;
    r->api = api;
    r->host = host;
    r->minExpires = api->param_int(host, "min_expires");
    r->maxExpires = api->param_int(host, "max_expires");
    r->defaultExpires = api->param_int(host, "default_expires");
    r->maxContacts = api->param_int(host, "max_contacts");
    r->cleanupMs = api->param_int(host, "cleanup_interval");
    r->maxAors = api->param_int(host, "max_aors");
    r->maxAorsPerDomain = api->param_int(host, "max_aors_per_domain");
    r->retryAfter = api->param_int(host, "retry_after") / 1000;
    r->dbPath = str(api->param_str(host, "database"));
    if (r->dbPath.empty())
        r->dbPath = str(api->core_setting(host, "database"));
    std::string bad;
    if (std::string e = parseServiceRoute(str(api->param_str(host, "service_route")), r->serviceRoute); !e.empty())
        bad = e;
    else if (r->minExpires < 1)
        bad = "min_expires must be at least 1";
    else if (r->maxExpires < r->minExpires)
        bad = "max_expires must not be smaller than min_expires";
    else if (r->defaultExpires < r->minExpires || r->defaultExpires > r->maxExpires)
        bad = "default_expires must lie between min_expires and max_expires";
    else if (r->maxContacts < 1)
        bad = "max_contacts must be at least 1";
    else if (r->cleanupMs < 100)
        bad = "cleanup_interval must be at least 100ms";
    else if (r->maxAors < 0)
        bad = "max_aors must not be negative (0 = no cap)";
    else if (r->maxAorsPerDomain < 0)
        bad = "max_aors_per_domain must not be negative (0 = no cap)";
    else if (r->retryAfter < 1 || r->retryAfter > 86400)
        bad = "retry_after must lie between 1s and 24h";
    else if (r->dbPath.empty())
        bad = "no database (set proxy.database or module.registrar.database)";
    if (!bad.empty()) {
        r->log(PW_LOG_ERROR, "registrar: " + bad);
        delete r;
        return PW_EINVAL;
    }
    if (!openDb(*r) || !loadDb(*r)) {
        if (r->db)
            sqlite3_close(r->db);
        delete r;
        return PW_EINVAL;
    }
    api->location_register_provider(host, guardedLocate, r);
    *ctx = r;
    return PW_OK;
}

int regStart(void *ctx) {
    auto *r = static_cast<Registrar *>(ctx);
    r->timer = r->api->timer_start(r->host, static_cast<uint64_t>(r->cleanupMs), onTimer, r);
    r->api->gauge_set(r->host, PW_STR_LIT("parkway_registrar_contacts"), PW_STR_LIT(""),
                      static_cast<double>(liveContacts(*r)));
    publishAorGauge(*r);
    return PW_OK;
}

void regStop(void *ctx) {
    auto *r = static_cast<Registrar *>(ctx);
    if (r->timer)
        r->api->timer_cancel(r->host, r->timer);
    r->timer = 0;
}

void regDestroy(void *ctx) {
    auto *r = static_cast<Registrar *>(ctx);
    if (r->db)
        sqlite3_close(r->db);
    delete r;
}

pw_verdict regOnRequest(void *ctx, pw_request *req) {
    auto *r = static_cast<Registrar *>(ctx);
    pw_str method = r->api->msg_method(r->api->request_msg(req));
    if (str(method) != "REGISTER")
        return PW_CONTINUE;
    return onRegister(*r, req);
}

// The hooks as the host calls them: noexcept trampolines (parkway/module.hpp). A throwing REGISTER is answered
// 500 (RFC 3261 §21.5.1), any other entry logs and fails.
namespace sdk = parkway::sdk;
int hookInit(const pw_host_api *api, pw_host *host, void **ctx) noexcept {
    return sdk::guardInt(api, host, "registrar", "init", [&] { return regInit(api, host, ctx); });
}
int hookStart(void *ctx) noexcept {
    auto *r = static_cast<Registrar *>(ctx);
    return sdk::guardInt(r->api, r->host, "registrar", "start", [&] { return regStart(ctx); });
}
void hookStop(void *ctx) noexcept {
    auto *r = static_cast<Registrar *>(ctx);
    sdk::guardVoid(r->api, r->host, "registrar", "stop", [&] { regStop(ctx); });
}
void hookDestroy(void *ctx) noexcept {
    auto *r = static_cast<Registrar *>(ctx);
    const pw_host_api *api = r->api;
    pw_host *host = r->host;
    sdk::guardVoid(api, host, "registrar", "destroy", [&] { regDestroy(ctx); });
}
pw_verdict hookRequest(void *ctx, pw_request *req) noexcept {
    auto *r = static_cast<Registrar *>(ctx);
    return sdk::guardRequest(r->api, r->host, "registrar", req, [&] { return regOnRequest(ctx, req); });
}
int hookList(void *ctx, pw_str args, pw_writer *out) noexcept {
    auto *r = static_cast<Registrar *>(ctx);
    return sdk::guardCommand(r->api, r->host, "registrar", "registrations.list", out,
                             [&] { return cmdList(ctx, args, out); });
}

const pw_param_def kParams[] = {
    {sizeof(pw_param_def), "database", PW_PARAM_STRING, "",
     "SQLite file for contacts; empty = the core's proxy.database"},
    {sizeof(pw_param_def), "min_expires", PW_PARAM_INT, "60",
     "shortest registration accepted; shorter gets 423 with Min-Expires (RFC 3261 §10.3 step 7)"},
    {sizeof(pw_param_def), "max_expires", PW_PARAM_INT, "3600", "longer registrations are shortened to this"},
    {sizeof(pw_param_def), "default_expires", PW_PARAM_INT, "3600",
     "used when neither the Contact expires parameter nor an Expires header is given"},
    {sizeof(pw_param_def), "max_contacts", PW_PARAM_INT, "10",
     "most contacts per address-of-record; a REGISTER adding one beyond gets 503 Too Many Registered Contacts with "
     "Retry-After (when the soonest contact lapses); a refresh is never refused"},
    {sizeof(pw_param_def), "max_aors", PW_PARAM_INT, "10000",
     "most addresses-of-record with live contacts; a new one beyond gets 503 + Retry-After; also how many AORs "
     "without live contacts are remembered (404 vs 480); 0 = no cap"},
    {sizeof(pw_param_def), "max_aors_per_domain", PW_PARAM_INT, "0",
     "most addresses-of-record with live contacts per domain (503 + Retry-After beyond); 0 = no cap"},
    {sizeof(pw_param_def), "retry_after", PW_PARAM_DURATION, "60s",
     "Retry-After of a 503 when max_aors or max_aors_per_domain is reached"},
    {sizeof(pw_param_def), "cleanup_interval", PW_PARAM_DURATION, "10s", "how often expired contacts are removed"},
    {sizeof(pw_param_def), "service_route", PW_PARAM_STRING, "",
     "SIP URIs (a TOML array, e.g. [\"sip:edge.example;lr\"]) returned in Service-Route headers of the 200 to a "
     "REGISTER (RFC 3608): the route the phone preloads on its requests; empty = none"},
    {sizeof(pw_param_def), nullptr, PW_PARAM_STRING, nullptr, nullptr},
};

const pw_command_def kCommands[] = {
    {sizeof(pw_command_def), "registrations.list",
     "list current registrations; args {\"aor\": \"sip:1001@pbx\"} to show one", hookList},
    {sizeof(pw_command_def), nullptr, nullptr, nullptr},
};

// REST routes the admin API serves (module.h pw_route_def, ABI 1.4).
const pw_route_def kRoutes[] = {
    {sizeof(pw_route_def), "GET", "/api/registrations", "registrations.list", PW_ROUTE_ARGS_QUERY, "aor", 0},
    {sizeof(pw_route_def), nullptr, nullptr, nullptr, PW_ROUTE_ARGS_NONE, nullptr, 0},
};

const pw_module kModule = {
    sizeof(pw_module), PW_ABI_MAJOR, PW_ABI_MINOR,
    "registrar",       "1.0.0",      "SIP registrar (RFC 3261 §10) with SQLite-backed contacts and location lookup",
    kParams,           kCommands,    hookInit,
    hookStart,         hookStop,     hookDestroy,
    hookRequest,       nullptr,      nullptr,
    kRoutes,
    nullptr, // domain_release (v1.4): the registrar holds no domain
    nullptr, // overload_priority (v1.6)
};

} // namespace

extern "C" PW_EXPORT const pw_module *pw_module_entry(uint32_t host_abi_major) {
    return host_abi_major == PW_ABI_MAJOR ? &kModule : nullptr;
}
