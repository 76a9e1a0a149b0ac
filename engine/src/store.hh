// The engine's storage (internal): a connection, cached prepared statements, transactions, over SQLite (thin
// RAII over its C API, the default) or PostgreSQL (pg.hh, libpq) chosen by the park database string.
#pragma once

#include "parkway/engine/types.hh"

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

namespace parkway::engine {

class PgConn;
class PgStmt;

// Thrown inside the engine on an unexpected storage failure; operations turn it into ErrorCode::Storage.
// `retry`: the transaction failed only because a concurrent one won (PostgreSQL serialization failure or
// deadlock); running it again is safe and is what the engine does (Engine::Impl::transact).
// Reads let it through to the engine's caller as the public StorageFailure (types.hh).
struct StorageError : StorageFailure {
    explicit StorageError(const std::string &what, bool retry = false) : StorageFailure(what), retry(retry) {}
    bool retry = false;
};

// The backend behind a Db: SQLite (a file or ":memory:", the default) or PostgreSQL (a libpq URL).
enum class Backend { Sqlite, Postgres };

// A prepared statement. The engine writes its SQL once, in the subset both backends share, with `?`
// placeholders (sql_dialect.hh). The SQLite calls are inline and the backend is one predictable branch per
// call, not a virtual call: the SQLite path is the hot one and stays as it was.
class Stmt {
public:
    Stmt(sqlite3 *db, const char *sql);
    explicit Stmt(PgStmt *pg); // takes ownership
    ~Stmt();
    Stmt(const Stmt &) = delete;
    Stmt &operator=(const Stmt &) = delete;

    Stmt &reset() { // reset + clear bindings; returns *this for chaining
        if (pg_) {
            pgReset();
        } else {
            sqlite3_reset(s_);
            sqlite3_clear_bindings(s_);
        }
        return *this;
    }
    Stmt &bind(int i, std::int64_t v) {
        if (pg_)
            pgBind(i, v);
        else
            sqlite3_bind_int64(s_, i, v);
        return *this;
    }
    Stmt &bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt &bind(int i, std::string_view v) {
        if (pg_)
            pgBindText(i, v);
        else
            sqlite3_bind_text(s_, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt &bind(int i, const std::string &v) { return bind(i, std::string_view(v)); }
    Stmt &bind(int i, const char *v) { return bind(i, std::string_view(v)); }
    Stmt &bindBlob(int i, std::string_view v) {
        if (pg_)
            pgBindBlob(i, v);
        else
            sqlite3_bind_blob(s_, i, v.data() ? v.data() : "", static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    Stmt &bindNull(int i) {
        if (pg_)
            pgBindNull(i);
        else
            sqlite3_bind_null(s_, i);
        return *this;
    }
    bool step() { // true = a row is available; false = done; throws on error
        if (pg_)
            return pgStep();
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW)
            return true;
        if (rc == SQLITE_DONE)
            return false;
        sqliteFailed();
    }
    void run() {
        while (step()) {
        }
    } // execute to completion

    std::int64_t i64(int col) const { return pg_ ? pgI64(col) : sqlite3_column_int64(s_, col); }
    int i32(int col) const { return pg_ ? static_cast<int>(pgI64(col)) : sqlite3_column_int(s_, col); }
    bool isNull(int col) const { return pg_ ? pgIsNull(col) : sqlite3_column_type(s_, col) == SQLITE_NULL; }
    std::string text(int col) const;
    std::string blob(int col) const;

private:
    [[noreturn]] void sqliteFailed();
    // PostgreSQL (pg.hh), out of line so this header does not need libpq.
    void pgReset();
    void pgBind(int i, std::int64_t v);
    void pgBindText(int i, std::string_view v);
    void pgBindBlob(int i, std::string_view v);
    void pgBindNull(int i);
    bool pgStep();
    std::int64_t pgI64(int col) const;
    bool pgIsNull(int col) const;

    sqlite3 *db_ = nullptr;
    sqlite3_stmt *s_ = nullptr;
    PgStmt *pg_ = nullptr;
};

class Db {
public:
    Db();
    ~Db();
    Db(const Db &) = delete;
    Db &operator=(const Db &) = delete;

    // Opens the SQLite file; returns an error message (empty on success).
    std::string open(const std::string &path, int busyTimeoutMs);
    // Connects to PostgreSQL (a libpq URL); returns libpq's message (empty on success).
    std::string openPostgres(const std::string &url);
    Backend backend() const { return pg_ ? Backend::Postgres : Backend::Sqlite; }
    bool postgres() const { return pg_ != nullptr; }
    sqlite3 *handle() const { return db_; } // SQLite only (nullptr on PostgreSQL)
    PgConn *pg() const { return pg_.get(); }
    void exec(const char *sql);             // throws StorageError
    std::string execError(const char *sql); // returns the backend's message, empty on success
    // A cached prepared statement for a SQL string literal (keyed by its address), reset and unbound.
    Stmt &q(const char *sql);
    // The same for SQL built at run time (keyed by its text), e.g. list() with its optional filters.
    Stmt &qText(const std::string &sql);
    // Reset every statement still positioned on a row. A cached statement left mid-result keeps a read
    // transaction open, and in WAL mode an open reader stops checkpoints from ever resetting the log (it
    // then grows without bound and every read walks it). Called before BEGIN and before COMMIT. SQLite only:
    // a PostgreSQL result is already complete on the client.
    void releaseReaders();
    std::int64_t changes() const; // rows changed by the last INSERT/UPDATE/DELETE
    // PostgreSQL: re-establishes a lost connection, only between transactions (inside one, the statements that
    // follow must fail, never run outside it). Called by Txn and before a statement outside a transaction.
    void reconnectIfBroken();
    bool inTransaction = false; // set by Txn

private:
    Stmt &prepare(const char *sql);
    sqlite3 *db_ = nullptr;
    std::unique_ptr<PgConn> pg_;
    std::unordered_map<const void *, std::unique_ptr<Stmt>> cache_;
    std::unordered_map<std::string, std::unique_ptr<Stmt>> textCache_;
};

// WAL checkpoints off the writer's thread. SQLite's automatic checkpoint runs inside the COMMIT that pushes the
// log past wal_autocheckpoint pages, on the committing thread, with an fsync of the log and of the database
// file: the engine's caller (the SIP thread) stalls for it. Instead the writer's connection gets
// wal_autocheckpoint = 0 and a WAL hook that only wakes this thread, which runs a PASSIVE checkpoint on a
// connection of its own. Durability is unchanged: a COMMIT is in the log when it returns (the log is what
// recovery replays after kill -9); a checkpoint only copies committed pages into the database file, and a
// PASSIVE one never blocks or waits for the writer (https://sqlite.org/wal.html "Checkpointing").
class Checkpointer {
public:
    // Opens its own connection to `path` (synchronous as given: FULL or NORMAL) and hooks `writer`. Empty
    // message on success; on failure nothing is hooked and the writer keeps SQLite's automatic checkpoints.
    std::string start(sqlite3 *writer, const std::string &path, bool fsyncFull, int pages = 1000);
    ~Checkpointer(); // stops and joins the thread, closes its connection (the writer's hook is removed)
    std::uint64_t checkpoints() const;

private:
    static int onCommit(void *self, sqlite3 *db, const char *name, int walPages);
    static constexpr int kStarvedFactor = 4; // log this many times `pages` long: the writer checkpoints itself
    void run();
    void limitLogFile();
    sqlite3 *writer_ = nullptr;
    sqlite3 *db_ = nullptr;
    int pages_ = 1000;
    std::thread thread_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool due_ = false, stop_ = false;
    std::uint64_t done_ = 0;
};

// One write transaction; rolls back if not committed (exception or early return). Write transactions run one at
// a time, on both backends, so the engine's read-then-write decisions (occupied policy, caps, group hunting,
// slot choice, the oldest call) see every earlier commit and no other writer in between:
// - SQLite: BEGIN IMMEDIATE takes the database's write lock at once (writers queue on busy_timeout).
// - PostgreSQL: BEGIN (READ COMMITTED), then the row of the cluster-wide event sequence is locked FOR UPDATE
//   before anything is read: a writer on another node waits there until this one commits, and as each READ
//   COMMITTED statement sees everything committed before it starts, the transaction then reads the latest
//   state. Claims are conditional statements as well (retrieve: UPDATE .. WHERE state IN (..); a slot: the
//   unique index), so they stay single even without the lock. docs/cluster.md "Concurrency" has the why.
class Txn {
public:
    explicit Txn(Db &db);
    ~Txn();
    void commit();

private:
    Db &db_;
    bool done_ = false;
};

} // namespace parkway::engine
