// Thin RAII over the SQLite C API (internal): a connection, cached prepared statements, transactions.
#pragma once

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

// Thrown inside the engine on an unexpected SQLite failure; operations turn it into ErrorCode::Storage.
struct StorageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Stmt {
public:
    Stmt(sqlite3 *db, const char *sql);
    ~Stmt();
    Stmt(const Stmt &) = delete;
    Stmt &operator=(const Stmt &) = delete;

    Stmt &reset(); // reset + clear bindings; returns *this for chaining
    Stmt &bind(int i, std::int64_t v);
    Stmt &bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Stmt &bind(int i, std::string_view v);
    Stmt &bind(int i, const std::string &v) { return bind(i, std::string_view(v)); }
    Stmt &bind(int i, const char *v) { return bind(i, std::string_view(v)); }
    Stmt &bindBlob(int i, std::string_view v);
    Stmt &bindNull(int i);
    bool step(); // true = a row is available; false = done; throws on error
    void run() {
        while (step()) {
        }
    } // execute to completion

    std::int64_t i64(int col) const { return sqlite3_column_int64(s_, col); }
    int i32(int col) const { return sqlite3_column_int(s_, col); }
    bool isNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
    std::string text(int col) const;
    std::string blob(int col) const;

private:
    sqlite3 *db_;
    sqlite3_stmt *s_ = nullptr;
};

class Db {
public:
    Db() = default;
    ~Db();
    Db(const Db &) = delete;
    Db &operator=(const Db &) = delete;

    // Opens the file; returns an error message (empty on success).
    std::string open(const std::string &path, int busyTimeoutMs);
    sqlite3 *handle() const { return db_; }
    void exec(const char *sql);             // throws StorageError
    std::string execError(const char *sql); // returns sqlite's message, empty on success
    // A cached prepared statement for a SQL string literal (keyed by its address), reset and unbound.
    Stmt &q(const char *sql);
    // The same for SQL built at run time (keyed by its text), e.g. list() with its optional filters.
    Stmt &qText(const std::string &sql);
    // Reset every statement still positioned on a row. A cached statement left mid-result keeps a read
    // transaction open, and in WAL mode an open reader stops checkpoints from ever resetting the log (it
    // then grows without bound and every read walks it). Called before BEGIN and before COMMIT.
    void releaseReaders();
    int changes() const { return sqlite3_changes(db_); }
    std::int64_t lastInsertId() const { return sqlite3_last_insert_rowid(db_); }

private:
    sqlite3 *db_ = nullptr;
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
    sqlite3 *writer_ = nullptr;
    sqlite3 *db_ = nullptr;
    int pages_ = 1000;
    std::thread thread_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool due_ = false, stop_ = false;
    std::uint64_t done_ = 0;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back if not committed (exception or early return).
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
