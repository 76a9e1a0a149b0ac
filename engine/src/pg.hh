// Thin RAII over libpq (internal): a connection, its prepared statements and their results.
// The engine reaches it through store.hh (Db / Stmt / Txn), never directly.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::engine {

// One PGresult, cleared when replaced or destroyed.
class PgResult {
public:
    PgResult() = default;
    explicit PgResult(PGresult *r) : r_(r) {}
    ~PgResult() { PQclear(r_); }
    PgResult(const PgResult &) = delete;
    PgResult &operator=(const PgResult &) = delete;
    PgResult(PgResult &&o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    PgResult &operator=(PgResult &&o) noexcept {
        if (this != &o) {
            PQclear(r_);
            r_ = o.r_;
            o.r_ = nullptr;
        }
        return *this;
    }
    PGresult *get() const { return r_; }
    void reset() {
        PQclear(r_);
        r_ = nullptr;
    }
    // Empty when the command succeeded; else the server's (or libpq's) message. *sqlstate gets the SQLSTATE.
    std::string error(PGconn *conn, std::string *sqlstate = nullptr) const;

private:
    PGresult *r_ = nullptr;
};

class PgConn {
public:
    PgConn() = default;
    ~PgConn();
    PgConn(const PgConn &) = delete;
    PgConn &operator=(const PgConn &) = delete;

    // Connects to a libpq URL; empty on success, else libpq's message. A URL without connect_timeout gets 5 s.
    std::string connect(const std::string &url);
    PGconn *get() const { return c_; }
    // After a lost connection: reconnects (PQreset). Statements prepare again on their next use.
    bool resetIfBroken();
    std::uint64_t generation() const { return generation_; }
    std::string nextStatementName() { return "pw" + std::to_string(++statements_); }
    // Session settings (SET ...): run now and again after every reconnect. Empty on success, else the message.
    std::string session(const std::string &sql);
    // A simple-protocol command (several statements allowed); empty on success, else the message.
    std::string exec(const char *sql, std::string *sqlstate = nullptr);
    std::int64_t changes = 0; // rows changed by the last statement run through a PgStmt

private:
    PGconn *c_ = nullptr;
    std::uint64_t generation_ = 1;
    std::uint64_t statements_ = 0;
    std::string session_ = "SET bytea_output = 'hex'"; // bytea comes back in hex (PgStmt::blob)
};

// A named prepared statement. Parameters are sent as text (integers) or binary (bytea); results come back as
// text. Memory for parameters is kept between executions.
class PgStmt {
public:
    PgStmt(PgConn &conn, std::string_view sql); // `sql` with ? placeholders (sql_dialect.hh)
    PgStmt(const PgStmt &) = delete;
    PgStmt &operator=(const PgStmt &) = delete;

    void reset();
    void bind(int i, std::int64_t v);
    void bindText(int i, std::string_view v);
    void bindBlob(int i, std::string_view v);
    void bindNull(int i);
    bool step(); // executes on the first step after reset; then walks the rows

    std::int64_t i64(int col) const;
    bool isNull(int col) const { return row_ < 0 || row_ >= rows_ || PQgetisnull(res_.get(), row_, col) != 0; }
    std::string text(int col) const;
    std::string blob(int col) const; // bytea in hex text form
    const std::string &sql() const { return sql_; }

private:
    void param(int i, std::string_view v, int format);
    void execute();

    PgConn &conn_;
    std::string name_, sql_;
    int n_ = 0;
    std::uint64_t preparedIn_ = 0; // the connection generation it was prepared in (0 = not yet)
    std::vector<std::string> values_;
    std::vector<const char *> ptrs_;
    std::vector<int> lengths_, formats_;
    PgResult res_;
    bool executed_ = false;
    int row_ = -1, rows_ = 0;
};

} // namespace parkway::engine
