// SIP users' credentials in SQLite (the [proxy] database): HA1 per algorithm, never the password, and which
// other users of the domain a user may register contacts for. docs/auth.md. SIP thread only.
#pragma once
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace parkway::proxy {

struct SipUser {
    std::string domain, user;
    std::string ha1Sha256, ha1Md5;        // hex; empty when that algorithm has no credentials
    std::vector<std::string> registerFor; // third-party registration grants (user parts of the same domain)
};

class UserStore {
public:
    // Opens (creating the table when missing). Throws std::runtime_error naming the file.
    explicit UserStore(const std::string &path);
    ~UserStore();
    UserStore(const UserStore &) = delete;
    UserStore &operator=(const UserStore &) = delete;

    std::optional<SipUser> find(const std::string &domain, const std::string &user) const;
    bool put(const SipUser &u); // true when created, false when replaced; throws on a database error
    bool remove(const std::string &domain, const std::string &user);
    std::vector<SipUser> list(const std::string &domain) const;
    // The nonce secret kept in the database (made at first use) when the config gives none.
    std::string secret();

private:
    void exec(const char *sql);
    sqlite3 *db_ = nullptr;
    std::string path_;
};

} // namespace parkway::proxy
