#include "pg.hh"

#include "sql_dialect.hh"
#include "store.hh"

#include <fmt/format.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace parkway::engine {

namespace {

// Serialization failure and deadlock: the transaction did nothing and may simply run again (PostgreSQL
// manual, "Serialization Failure Handling").
bool retryable(const std::string &sqlstate) {
    return sqlstate == "40001" || sqlstate == "40P01";
}

void quiet(void *, const PGresult *) {} // NOTICEs (e.g. "relation already exists, skipping") are not ours to print

} // namespace

std::string PgResult::error(PGconn *conn, std::string *sqlstate) const {
    ExecStatusType st = r_ ? PQresultStatus(r_) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)
        return {};
    const char *code = r_ ? PQresultErrorField(r_, PG_DIAG_SQLSTATE) : nullptr;
    if (sqlstate)
        *sqlstate = code ? code : "";
    std::string msg = r_ ? PQresultErrorMessage(r_) : "";
    if (msg.empty())
        msg = PQerrorMessage(conn);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
        msg.pop_back();
    return msg.empty() ? std::string("unknown PostgreSQL error") : msg;
}

PgConn::~PgConn() {
    if (attempt_.valid()) { // a reconnect under way: wait for it (connect_timeout bounds it) and close it
        if (PGconn *n = attempt_.get())
            PQfinish(n);
    }
    if (c_)
        PQfinish(c_);
}

namespace {

std::string trimmed(std::string msg) {
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
        msg.pop_back();
    return msg;
}

// Blocking connect with our defaults; later keywords override earlier ones, so the URL's own settings win. The
// TCP settings bound how long a dead network can hold a statement (docs/cluster.md "Database outage"); libpq
// ignores them on a unix socket.
PGconn *connectTo(const std::string &url) {
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          nullptr};
    const char *values[] = {"5", "parkway", "1", "5", "2", "3", "10000", url.c_str(), nullptr};
    return PQconnectdbParams(keys, values, 1);
}

} // namespace

std::string PgConn::connect(const std::string &url) {
    url_ = url;
    c_ = connectTo(url);
    if (!c_)
        return "out of memory";
    if (PQstatus(c_) != CONNECTION_OK)
        return trimmed(PQerrorMessage(c_));
    PQsetNoticeReceiver(c_, quiet, nullptr);
    // The engine's times are integers: the session time zone is irrelevant.
    return exec(session_.c_str());
}

std::string PgConn::session(const std::string &sql) {
    session_ += "; " + sql;
    return exec(sql.c_str());
}

void PgConn::drop(const std::string &why) {
    if (c_)
        PQfinish(c_);
    c_ = nullptr;
    downReason_ = why;
}

std::string PgConn::downReason() const {
    return downReason_.empty() ? std::string("no connection to the server") : downReason_;
}

bool PgConn::resetIfBroken() {
    if (c_ && PQstatus(c_) == CONNECTION_OK)
        return true;
    if (c_) // lost: say how, until a reconnect tells more
        drop(trimmed(PQerrorMessage(c_)));
    using Clock = std::chrono::steady_clock;
    std::chrono::milliseconds wait{0};
    if (!attempt_.valid()) {
        if (Clock::now() < nextAttempt_)
            return false;
        attempt_ = std::async(std::launch::async, [url = url_] { return connectTo(url); });
        wait = std::chrono::milliseconds(kReconnectWaitMs); // a server that is back answers within this
    }
    if (attempt_.wait_for(wait) != std::future_status::ready)
        return false;
    PGconn *n = attempt_.get();
    if (!n || PQstatus(n) != CONNECTION_OK) {
        downReason_ = n ? "cannot reconnect: " + trimmed(PQerrorMessage(n)) : std::string("out of memory");
        if (n)
            PQfinish(n);
        nextAttempt_ = Clock::now() + std::chrono::milliseconds(kReconnectPauseMs);
        return false;
    }
    c_ = n;
    downReason_.clear();
    ++generation_; // prepared statements died with the old session
    PQsetNoticeReceiver(c_, quiet, nullptr);
    std::string e = exec(session_.c_str());
    if (!e.empty()) {
        drop("cannot reconnect: " + e);
        nextAttempt_ = Clock::now() + std::chrono::milliseconds(kReconnectPauseMs);
        return false;
    }
    return true;
}

std::string PgConn::await(int sent, PgResult *out, std::string *sqlstate) {
    if (sqlstate)
        sqlstate->clear();
    out->reset();
    if (!c_)
        return downReason();
    if (!sent)
        return trimmed(PQerrorMessage(c_));
    if (answerTimeoutMs_ > 0) {
        // The answer within the deadline, without blocking past it (a frozen server or a dead network).
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(answerTimeoutMs_);
        while (PQisBusy(c_)) {
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                std::string why =
                    fmt::format("no answer from the server within {} ms (connection closed)", answerTimeoutMs_);
                drop(why);
                return why;
            }
            pollfd p{PQsocket(c_), POLLIN, 0};
            int r = ::poll(&p, 1, static_cast<int>(left.count()));
            if (r < 0 && errno != EINTR)
                break;
            if (r > 0 && !PQconsumeInput(c_))
                break; // the connection failed: PQgetResult reports it
        }
    }
    // As PQexec: the last result, but an error wins over what follows it.
    PGresult *keep = nullptr;
    while (PGresult *r = PQgetResult(c_)) {
        bool failed = PQresultStatus(r) == PGRES_FATAL_ERROR;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR && !failed) {
            PQclear(r);
            continue;
        }
        PQclear(keep);
        keep = r;
    }
    *out = PgResult(keep);
    return out->error(c_, sqlstate);
}

std::string PgConn::exec(const char *sql, std::string *sqlstate) {
    PgResult r;
    return await(c_ ? PQsendQuery(c_, sql) : 0, &r, sqlstate);
}

PgStmt::PgStmt(PgConn &conn, std::string_view sql) : conn_(conn), name_(conn.nextStatementName()) {
    sql_ = statementForPostgres(sql, &n_);
    values_.resize(static_cast<size_t>(n_));
    ptrs_.assign(static_cast<size_t>(n_), nullptr);
    lengths_.assign(static_cast<size_t>(n_), 0);
    formats_.assign(static_cast<size_t>(n_), 0);
}

void PgStmt::reset() {
    res_.reset();
    executed_ = false;
    row_ = -1;
    rows_ = 0;
    std::fill(ptrs_.begin(), ptrs_.end(), nullptr);
}

void PgStmt::param(int i, std::string_view v, int format) {
    if (i < 1 || i > n_)
        throw StorageError(fmt::format("parameter {} out of range (SQL: {})", i, sql_));
    auto k = static_cast<size_t>(i - 1);
    values_[k].assign(v.data() ? v.data() : "", v.size());
    ptrs_[k] = values_[k].data();
    lengths_[k] = static_cast<int>(v.size());
    formats_[k] = format;
}

void PgStmt::bind(int i, std::int64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    param(i, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), 0);
}

namespace {
// Length of the valid UTF-8 sequence at s[i] (RFC 3629 §4), 0 if invalid. NUL counts as invalid: PostgreSQL text
// cannot hold it.
size_t utf8Len(std::string_view s, size_t i) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = b(i);
    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (n == 0 || c > 0xF4 || i + n > s.size())
        return 0;
    for (size_t k = 1; k < n; ++k)
        if ((b(i + k) & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) > 0x9F) || (c == 0xF0 && b(i + 1) < 0x90) ||
        (c == 0xF4 && b(i + 1) > 0x8F))
        return 0; // overlong, surrogate, beyond U+10FFFF
    return n;
}
} // namespace

// PostgreSQL refuses text that is not valid in the database encoding (UTF-8), where SQLite stores any bytes; a
// phone may send ISO-8859-1 in a display name. Invalid bytes are stored as U+FFFD, as the engine's JSON views
// show them anyway (json.hh), rather than failing the park.
void PgStmt::bindText(int i, std::string_view v) {
    size_t at = 0;
    while (at < v.size()) {
        size_t n = utf8Len(v, at);
        if (n == 0)
            break;
        at += n;
    }
    if (at == v.size()) {
        param(i, v, 0);
        return;
    }
    std::string clean(v.substr(0, at));
    while (at < v.size()) {
        size_t n = utf8Len(v, at);
        if (n == 0) {
            clean += "\xEF\xBF\xBD";
            ++at;
        } else {
            clean.append(v.substr(at, n));
            at += n;
        }
    }
    param(i, clean, 0);
}

void PgStmt::bindBlob(int i, std::string_view v) {
    param(i, v, 1); // binary: bytea as the raw bytes
}

void PgStmt::bindNull(int i) {
    if (i < 1 || i > n_)
        throw StorageError(fmt::format("parameter {} out of range (SQL: {})", i, sql_));
    ptrs_[static_cast<size_t>(i - 1)] = nullptr;
}

void PgStmt::execute() {
    PGconn *c = conn_.get();
    std::string state;
    if (preparedIn_ != conn_.generation() || !c) {
        PgResult p;
        std::string e = conn_.await(c ? PQsendPrepare(c, name_.c_str(), sql_.c_str(), n_, nullptr) : 0, &p, &state);
        if (!e.empty())
            throw StorageError(fmt::format("prepare failed: {} (SQL: {})", e, sql_), retryable(state));
        preparedIn_ = conn_.generation();
    }
    std::string e = conn_.await(
        PQsendQueryPrepared(c, name_.c_str(), n_, ptrs_.data(), lengths_.data(), formats_.data(), 0), &res_, &state);
    if (!e.empty()) {
        res_.reset();
        throw StorageError(fmt::format("{} (SQL: {})", e, sql_), retryable(state));
    }
    rows_ = PQntuples(res_.get());
    const char *n = PQcmdTuples(res_.get());
    conn_.changes = (n && *n) ? std::strtoll(n, nullptr, 10) : 0;
    executed_ = true;
}

bool PgStmt::step() {
    if (!executed_)
        execute();
    if (row_ + 1 >= rows_) {
        row_ = rows_;
        return false;
    }
    ++row_;
    return true;
}

std::int64_t PgStmt::i64(int col) const {
    if (row_ < 0 || row_ >= rows_)
        return 0; // as sqlite3_column_int64 on a statement without a row
    const char *v = PQgetvalue(res_.get(), row_, col);
    std::int64_t out = 0;
    std::from_chars(v, v + std::strlen(v), out);
    return out;
}

std::string PgStmt::text(int col) const {
    if (row_ < 0 || row_ >= rows_)
        return {};
    return std::string(PQgetvalue(res_.get(), row_, col), static_cast<size_t>(PQgetlength(res_.get(), row_, col)));
}

std::string PgStmt::blob(int col) const {
    if (row_ < 0 || row_ >= rows_)
        return {};
    // libpq decodes bytea's text output, in either format the server's bytea_output may choose
    size_t n = 0;
    unsigned char *raw =
        PQunescapeBytea(reinterpret_cast<const unsigned char *>(PQgetvalue(res_.get(), row_, col)), &n);
    if (!raw)
        throw StorageError("PostgreSQL: out of memory decoding a bytea value");
    std::string out(reinterpret_cast<const char *>(raw), n);
    PQfreemem(raw);
    return out;
}

} // namespace parkway::engine
