#include "store.hh"

#include "pg.hh"

#include <fmt/format.h>

namespace parkway::engine {

Stmt::Stmt(sqlite3 *db, const char *sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s_, nullptr) != SQLITE_OK)
        throw StorageError(fmt::format("prepare failed: {} (SQL: {})", sqlite3_errmsg(db), sql));
}

Stmt::Stmt(PgStmt *pg) : pg_(pg) {}

Stmt::~Stmt() {
    if (pg_)
        delete pg_;
    else
        sqlite3_finalize(s_);
}

void Stmt::sqliteFailed() {
    std::string msg = fmt::format("{} (SQL: {})", sqlite3_errmsg(db_), sqlite3_sql(s_));
    sqlite3_reset(s_);
    throw StorageError(msg);
}

std::string Stmt::text(int col) const {
    if (pg_)
        return pg_->text(col);
    auto p = reinterpret_cast<const char *>(sqlite3_column_text(s_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string();
}

std::string Stmt::blob(int col) const {
    if (pg_)
        return pg_->blob(col);
    auto p = static_cast<const char *>(sqlite3_column_blob(s_, col));
    return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string();
}

void Stmt::pgReset() {
    pg_->reset();
}
void Stmt::pgBind(int i, std::int64_t v) {
    pg_->bind(i, v);
}
void Stmt::pgBindText(int i, std::string_view v) {
    pg_->bindText(i, v);
}
void Stmt::pgBindBlob(int i, std::string_view v) {
    pg_->bindBlob(i, v);
}
void Stmt::pgBindNull(int i) {
    pg_->bindNull(i);
}
bool Stmt::pgStep() {
    return pg_->step();
}
std::int64_t Stmt::pgI64(int col) const {
    return pg_->i64(col);
}
bool Stmt::pgIsNull(int col) const {
    return pg_->isNull(col);
}

Db::Db() = default;

Db::~Db() {
    cache_.clear(); // finalize statements before closing
    textCache_.clear();
    if (db_)
        sqlite3_close_v2(db_);
}

std::string Db::open(const std::string &path, int busyTimeoutMs) {
    int rc =
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK)
        return db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, busyTimeoutMs);
    return {};
}

std::string Db::openPostgres(const std::string &url) {
    pg_ = std::make_unique<PgConn>();
    return pg_->connect(url);
}

void Db::exec(const char *sql) {
    std::string state;
    std::string e;
    if (pg_) {
        e = pg_->exec(sql, &state);
        if (!e.empty())
            throw StorageError(e, state == "40001" || state == "40P01");
        return;
    }
    e = execError(sql);
    if (!e.empty())
        throw StorageError(e);
}

std::string Db::execError(const char *sql) {
    if (pg_)
        return pg_->exec(sql);
    char *err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) == SQLITE_OK)
        return {};
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return msg;
}

Stmt &Db::prepare(const char *sql) {
    if (pg_)
        return *new Stmt(new PgStmt(*pg_, sql)); // the caller puts it in a cache at once
    return *new Stmt(db_, sql);
}

void Db::reconnectIfBroken() {
    if (pg_ && !inTransaction)
        pg_->resetIfBroken();
}

Stmt &Db::q(const char *sql) {
    if (pg_ && !inTransaction)
        pg_->resetIfBroken(); // a field read when the connection is fine
    auto &slot = cache_[sql];
    if (!slot)
        slot.reset(&prepare(sql));
    return slot->reset();
}

Stmt &Db::qText(const std::string &sql) {
    if (pg_ && !inTransaction)
        pg_->resetIfBroken();
    auto &slot = textCache_[sql];
    if (!slot)
        slot.reset(&prepare(sql.c_str()));
    return slot->reset();
}

void Db::releaseReaders() {
    if (pg_)
        return;
    for (sqlite3_stmt *s = sqlite3_next_stmt(db_, nullptr); s; s = sqlite3_next_stmt(db_, s))
        if (sqlite3_stmt_busy(s))
            sqlite3_reset(s);
}

std::int64_t Db::changes() const {
    return pg_ ? pg_->changes : sqlite3_changes(db_);
}

// BEGIN/COMMIT as cached statements: sqlite3_exec would parse them again for every operation. On PostgreSQL
// a lost connection is re-established here, between transactions, where no statement is half-read.
Txn::Txn(Db &db) : db_(db) {
    if (db_.postgres()) {
        db_.reconnectIfBroken();
        db_.exec("BEGIN ISOLATION LEVEL READ COMMITTED");
        db_.inTransaction = true;
        // The writer lock (store.hh Txn). Every write transaction bumps this row anyway (the event sequence),
        // so taking it first costs no extra contention; it only moves the wait to where nothing is read yet.
        try {
            db_.q("SELECT value FROM meta WHERE key = 'event_sequence' FOR UPDATE").run();
        } catch (...) { // e.g. lock_timeout: no destructor runs for a constructor that throws
            db_.execError("ROLLBACK");
            db_.inTransaction = false;
            throw;
        }
        return;
    }
    db_.releaseReaders();
    db_.q("BEGIN IMMEDIATE").run();
}

Txn::~Txn() {
    if (!done_)
        db_.execError("ROLLBACK");
    db_.inTransaction = false;
}

void Txn::commit() {
    if (db_.postgres()) {
        db_.inTransaction = false;
        db_.exec("COMMIT"); // a serialization failure may surface here: StorageError::retry
        done_ = true;
        return;
    }
    db_.releaseReaders();
    db_.q("COMMIT").run();
    done_ = true;
}

// ---------------------------------------------------------------------------------------------------------
// Checkpointer

std::string Checkpointer::start(sqlite3 *writer, const std::string &path, bool fsyncFull, int pages) {
    pages_ = pages;
    int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    std::string err;
    if (rc == SQLITE_OK) {
        char *msg = nullptr;
        const char *sync = fsyncFull ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
        if (sqlite3_exec(db_, sync, nullptr, nullptr, &msg) != SQLITE_OK)
            err = msg ? msg : "PRAGMA synchronous";
        sqlite3_free(msg);
    } else {
        err = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    }
    if (!err.empty()) {
        sqlite3_close_v2(db_);
        db_ = nullptr;
        return err;
    }
    writer_ = writer;
    limitLogFile();
    thread_ = std::thread([this] { run(); });
    // Order matters: wal_autocheckpoint installs SQLite's own WAL hook; ours replaces it.
    sqlite3_wal_autocheckpoint(writer_, 0);
    sqlite3_wal_hook(writer_, &Checkpointer::onCommit, this);
    return {};
}

Checkpointer::~Checkpointer() {
    if (writer_)
        sqlite3_wal_hook(writer_, nullptr, nullptr);
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable())
        thread_.join();
    if (db_)
        sqlite3_close_v2(db_);
}

// A WAL file keeps the size of its longest log: a restart reuses it from the start rather than truncating it.
// With journal_size_limit, the commit that restarts the log truncates the file to the limit, so a burst that
// outran the checkpoints (a slow disk, a starved thread) does not leave a large file behind for good.
void Checkpointer::limitLogFile() {
    int pageSize = 4096;
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(writer_, "PRAGMA page_size", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        pageSize = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    const long long limit = static_cast<long long>(kStarvedFactor) * pages_ * pageSize;
    const std::string sql = "PRAGMA journal_size_limit = " + std::to_string(limit);
    sqlite3_exec(writer_, sql.c_str(), nullptr, nullptr, nullptr); // best effort: only the file's size is at stake
}

std::uint64_t Checkpointer::checkpoints() const {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
}

// Called by SQLite on the writer's thread after each commit, with the log's size in pages.
int Checkpointer::onCommit(void *self, sqlite3 *db, const char *name, int walPages) {
    auto *c = static_cast<Checkpointer *>(self);
    if (walPages < c->pages_)
        return SQLITE_OK;
    if (walPages >= kStarvedFactor * c->pages_) {
        // A writer that never pauses starves the background checkpoint: it never copies the whole log, so the
        // log never restarts. Finish here, as SQLite's automatic checkpoint would: most frames are already
        // copied, and nobody appends while this thread checkpoints, so the next commit restarts the log.
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        return SQLITE_OK;
    }
    {
        std::lock_guard<std::mutex> lock(c->mu_);
        if (c->due_)
            return SQLITE_OK; // already asked
        c->due_ = true;
    }
    c->cv_.notify_one();
    return SQLITE_OK;
}

void Checkpointer::run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
        cv_.wait(lock, [this] { return due_ || stop_; });
        if (stop_)
            return;
        lock.unlock();
        // PASSIVE: copies (and syncs) what no reader still needs without blocking the writer; the writer
        // restarts the log from its start once a checkpoint has copied all of it (onCommit: the fallback).
        sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
        lock.lock();
        due_ = false;
        ++done_;
    }
}

} // namespace parkway::engine
