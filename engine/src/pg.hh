// Thin RAII over libpq (internal): a connection, its prepared statements and their results.
// The engine reaches it through store.hh (Db / Stmt / Txn), never directly.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <future>
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

// One connection to the server. Lost connections are re-established only between transactions
// (resetIfBroken, called by store.cc), and never by blocking the caller for long: docs/cluster.md
// "Database outage" has the bounds.
class PgConn {
public:
    PgConn() = default;
    ~PgConn();
    PgConn(const PgConn &) = delete;
    PgConn &operator=(const PgConn &) = delete;

    // Connects to a libpq URL (blocking: at open); empty on success, else libpq's message. Defaults the URL may
    // override: connect_timeout 5 s, TCP keepalives after 5 s idle, tcp_user_timeout 10 s.
    std::string connect(const std::string &url);
    PGconn *get() const { return c_; }
    // True when the connection is usable. After a lost connection, a new one is made on a thread of its own
    // (connect_timeout bounds it there, not here): the first call after the loss starts it and waits for it at
    // most kReconnectWaitMs; later calls only look whether it is done. A failed attempt is tried again
    // kReconnectPauseMs later at the earliest. Statements prepare again on their next use.
    bool resetIfBroken();
    // Why there is no connection now (the last reconnect failure, or how it was lost); for error messages.
    std::string downReason() const;
    // Every statement's answer must arrive within `ms` (0 = wait as long as it takes, the default: migrations
    // at open may be long); past it the connection is closed (the server rolls back what was in flight) and the
    // statement fails. Set by the engine after open.
    void setAnswerTimeout(int ms) { answerTimeoutMs_ = ms; }
    std::uint64_t generation() const { return generation_; }
    std::string nextStatementName() { return "pw" + std::to_string(++statements_); }
    // Session settings (SET ...): run now and again after every reconnect. Empty on success, else the message.
    std::string session(const std::string &sql);
    // A simple-protocol command (several statements allowed); empty on success, else the message.
    std::string exec(const char *sql, std::string *sqlstate = nullptr);
    // The answer to what was just sent (`sent`: the PQsend* call's result) into *out, within the answer
    // timeout; empty on success, else the error message (and *sqlstate).
    std::string await(int sent, PgResult *out, std::string *sqlstate);
    std::int64_t changes = 0; // rows changed by the last statement run through a PgStmt

    static constexpr int kReconnectWaitMs = 250;
    static constexpr int kReconnectPauseMs = 1000;

private:
    void drop(const std::string &why); // closes the connection; resetIfBroken makes a new one

    PGconn *c_ = nullptr;
    std::string url_;
    std::uint64_t generation_ = 1;
    std::uint64_t statements_ = 0;
    std::string session_ = "SET bytea_output = 'hex'"; // bytea comes back in hex (PgStmt::blob)
    int answerTimeoutMs_ = 0;
    std::future<PGconn *> attempt_; // a reconnect under way
    std::chrono::steady_clock::time_point nextAttempt_{};
    std::string downReason_;
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
