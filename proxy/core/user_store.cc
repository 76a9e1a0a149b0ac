#include "user_store.hh"

#include "digest.hh"

#include <sqlite3.h>

#include <fmt/format.h>
#include <memory>
#include <stdexcept>

namespace parkway::proxy {

namespace {

struct StmtDel {
    void operator()(sqlite3_stmt *s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDel>;

std::string joinComma(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &s : v)
        out += (out.empty() ? "" : ",") + s;
    return out;
}

std::vector<std::string> splitComma(const std::string &s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos)
            end = s.size();
        if (end > start)
            out.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

std::string column(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char *>(t) : "";
}

SipUser rowToUser(sqlite3_stmt *s) {
    return SipUser{column(s, 0), column(s, 1), column(s, 2), column(s, 3), splitComma(column(s, 4))};
}

} // namespace

UserStore::UserStore(const std::string &path) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        std::string err = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw std::runtime_error(fmt::format("database {} (SIP users): {}", path, err));
    }
    sqlite3_busy_timeout(db_, 2000);
    exec("CREATE TABLE IF NOT EXISTS sip_users (domain TEXT NOT NULL, user TEXT NOT NULL, ha1_sha256 TEXT NOT "
         "NULL DEFAULT '', ha1_md5 TEXT NOT NULL DEFAULT '', register_for TEXT NOT NULL DEFAULT '', "
         "PRIMARY KEY (domain, user))");
    exec("CREATE TABLE IF NOT EXISTS sip_auth_secret (id INTEGER PRIMARY KEY CHECK (id = 1), secret TEXT NOT NULL)");
}

UserStore::~UserStore() {
    sqlite3_close(db_);
}

void UserStore::exec(const char *sql) {
    char *err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db_);
        sqlite3_free(err);
        throw std::runtime_error(fmt::format("database {} (SIP users): {}", path_, msg));
    }
}

std::optional<SipUser> UserStore::find(const std::string &domain, const std::string &user) const {
    sqlite3_stmt *raw = nullptr;
    sqlite3_prepare_v2(db_,
                       "SELECT domain, user, ha1_sha256, ha1_md5, register_for FROM sip_users WHERE domain = ?1 "
                       "COLLATE NOCASE AND user = ?2",
                       -1, &raw, nullptr);
    Stmt s(raw);
    if (!s)
        return std::nullopt;
    sqlite3_bind_text(s.get(), 1, domain.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, user.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s.get()) != SQLITE_ROW)
        return std::nullopt;
    return rowToUser(s.get());
}

bool UserStore::put(const SipUser &u) {
    bool existed = find(u.domain, u.user).has_value();
    sqlite3_stmt *raw = nullptr;
    sqlite3_prepare_v2(db_,
                       "INSERT OR REPLACE INTO sip_users (domain, user, ha1_sha256, ha1_md5, register_for) "
                       "VALUES (?1, ?2, ?3, ?4, ?5)",
                       -1, &raw, nullptr);
    Stmt s(raw);
    if (!s)
        throw std::runtime_error(fmt::format("database {} (SIP users): {}", path_, sqlite3_errmsg(db_)));
    std::string grants = joinComma(u.registerFor);
    sqlite3_bind_text(s.get(), 1, u.domain.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, u.user.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 3, u.ha1Sha256.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 4, u.ha1Md5.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 5, grants.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s.get()) != SQLITE_DONE)
        throw std::runtime_error(fmt::format("database {} (SIP users): {}", path_, sqlite3_errmsg(db_)));
    return !existed;
}

bool UserStore::remove(const std::string &domain, const std::string &user) {
    sqlite3_stmt *raw = nullptr;
    sqlite3_prepare_v2(db_, "DELETE FROM sip_users WHERE domain = ?1 COLLATE NOCASE AND user = ?2", -1, &raw, nullptr);
    Stmt s(raw);
    if (!s)
        throw std::runtime_error(fmt::format("database {} (SIP users): {}", path_, sqlite3_errmsg(db_)));
    sqlite3_bind_text(s.get(), 1, domain.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s.get(), 2, user.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s.get()) != SQLITE_DONE)
        throw std::runtime_error(fmt::format("database {} (SIP users): {}", path_, sqlite3_errmsg(db_)));
    return sqlite3_changes(db_) > 0;
}

std::vector<SipUser> UserStore::list(const std::string &domain) const {
    std::vector<SipUser> out;
    sqlite3_stmt *raw = nullptr;
    sqlite3_prepare_v2(db_,
                       "SELECT domain, user, ha1_sha256, ha1_md5, register_for FROM sip_users WHERE domain = ?1 "
                       "COLLATE NOCASE ORDER BY user",
                       -1, &raw, nullptr);
    Stmt s(raw);
    if (!s)
        return out;
    sqlite3_bind_text(s.get(), 1, domain.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(s.get()) == SQLITE_ROW)
        out.push_back(rowToUser(s.get()));
    return out;
}

std::string UserStore::secret() {
    for (int attempt = 0; attempt < 2; ++attempt) {
        sqlite3_stmt *raw = nullptr;
        sqlite3_prepare_v2(db_, "SELECT secret FROM sip_auth_secret WHERE id = 1", -1, &raw, nullptr);
        Stmt s(raw);
        if (s && sqlite3_step(s.get()) == SQLITE_ROW)
            return column(s.get(), 0);
        // hex only: safe inside the literal. OR IGNORE: another process sharing the file may have been first.
        exec(fmt::format("INSERT OR IGNORE INTO sip_auth_secret (id, secret) VALUES (1, '{}')", digest::randomHex(32))
                 .c_str());
    }
    throw std::runtime_error(fmt::format("database {} (SIP users): cannot keep the nonce secret", path_));
}

} // namespace parkway::proxy
