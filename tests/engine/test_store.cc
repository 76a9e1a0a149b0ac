// The store: reopen keeps calls and deadlines, stale claims, corrupt/newer/foreign databases.
#include "helpers.hh"

#include <fstream>
#include <csignal>
#include <sqlite3.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

using namespace parkway::engine;

namespace {
void rawExec(const std::string& path, const char* sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
}

std::string openError(const std::string& path, Clock& clock) {
    try {
        Engine::open(path, clock);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return {};
}
} // namespace

TEST_CASE("reopen after close: calls, deadlines, groups, rules and versions survive") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.db("park.db");
    CallId a = 0, b = 0;
    Millis deadlineA = 0;
    {
        auto e = Engine::open(path, clock);
        REQUIRE(e->setGroup({"a.example", "sales", {"201", "202"}, true, {}, {}}).ok);
        REQUIRE(e->setLot({"a.example", "main", 701, 720, SlotChoice::Next, {}, {}}).ok);
        Rule r;
        r.matchExp = "700";
        r.attrs = "action=park;lot=main";
        REQUIRE(e->setRule(r).empty());
        auto req = directed("103");
        req.requestKey = "key-a";
        req.blob = "dialog-state";
        auto pa = e->park(req);
        a = pa.call.id;
        deadlineA = pa.call.recallAt;
        clock.advanceSeconds(30);
        ParkRequest g;
        g.domain = "a.example";
        g.how = ParkHow::Group;
        g.parker = "201";
        b = e->park(g).call.id;
        REQUIRE(e->claimRetrieve(byExt("201")).ok); // in flight when the process "dies"
    }
    clock.advanceSeconds(100);
    auto e = Engine::open(path, clock);
    auto live = e->liveCalls();
    REQUIRE(live.size() == 2);
    CHECK(live[0].id == a); // ordered by deadline
    CHECK(live[0].recallAt == deadlineA);
    CHECK(live[0].blob == "dialog-state");
    CHECK(live[1].id == b);
    CHECK(live[1].state == CallState::Parked); // stale claim released
    CHECK(live[1].group == "sales");
    CHECK(e->park([] {
                auto r = directed("103");
                r.requestKey = "key-a";
                return r;
            }())
              .duplicate);
    CHECK(e->group("a.example", "sales")->notifyParker);
    CHECK(e->lot("a.example", "main")->choice == SlotChoice::Next);
    CHECK(e->classify("a.example", "1", "700").action == Action::Park);
    CHECK(e->targetVersion(Target{TargetKind::Extension, "a.example", "103", 0}) == 1);
    CHECK(e->lastEventSequence() == 3);
    clock.set(deadlineA);
    auto due = e->dueCalls();
    REQUIRE(due.size() == 1);
    CHECK(e->recallStep(a).ok);
}

TEST_CASE("a corrupt database file is a clear error naming the file, never a reset", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("garbage.db");
    {
        std::ofstream f(path, std::ios::binary);
        for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 7919) & 0xff));
    }
    auto msg = openError(path, clock);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("not a usable SQLite database") != std::string::npos);
    // The file is left as it was.
    CHECK(std::filesystem::file_size(path) == 4096);
}

TEST_CASE("a damaged page inside a real parkway database is reported as corrupt", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("damaged.db");
    {
        auto e = Engine::open(path, clock);
        DomainSettings d = e->domain("a.example");
        d.maxParked = 0; // 300 calls: past the default cap
        REQUIRE(e->setDomain(d).ok);
        for (int i = 0; i < 300; ++i) REQUIRE(e->park(directed(std::to_string(1000 + i))).ok);
    }
    rawExec(path, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;");
    auto size = std::filesystem::file_size(path);
    REQUIRE(size > 8192);
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(size / 2));
        for (int i = 0; i < 3000; ++i) f.put(static_cast<char>(0xA5));
    }
    auto msg = openError(path, clock);
    CHECK(msg.find(path) != std::string::npos);
    CHECK((msg.find("corrupt") != std::string::npos || msg.find("malformed") != std::string::npos));
}

TEST_CASE("a database with a newer schema version is refused", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("newer.db");
    { auto e = Engine::open(path, clock); }
    rawExec(path, ("PRAGMA user_version = " + std::to_string(Engine::schemaVersion() + 1)).c_str());
    auto msg = openError(path, clock);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("newer") != std::string::npos);
}

TEST_CASE("a foreign SQLite database is not taken over", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("other.db");
    rawExec(path, "CREATE TABLE customers (id INTEGER);");
    auto msg = openError(path, clock);
    CHECK(msg.find("not a parkway database") != std::string::npos);
    CHECK(openError(dir.file("no/such/dir/x.db"), clock).find("cannot open") != std::string::npos);
}

TEST_CASE("file databases run in WAL mode and are migrated to the current version", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("wal.db");
    { auto e = Engine::open(path, clock); }
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) == "wal");
    sqlite3_finalize(s);
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr);
    REQUIRE(sqlite3_step(s) == SQLITE_ROW);
    CHECK(sqlite3_column_int(s, 0) == Engine::schemaVersion());
    sqlite3_finalize(s);
    sqlite3_close(db);
}

TEST_CASE("a stored rule broken by hand does not stop the engine, it is reported", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("rules.db");
    { auto e = Engine::open(path, clock); }
    rawExec(path, "INSERT INTO rules (id, match_op, match_exp, attrs) VALUES (42, 1, '(', 'action=park')");
    auto e = Engine::open(path, clock);
    REQUIRE(e->ruleLoadErrors().size() == 1);
    CHECK(e->ruleLoadErrors()[0].ruleId == 42);
    CHECK(e->ruleLoadErrors()[0].message.find("rule 42") != std::string::npos);
    CHECK(e->classify("a.example", "1", "*68103").action == Action::Park);
    CHECK_FALSE(e->reloadRules().empty()); // still broken: reload refuses and keeps the current set
    CHECK(e->classify("a.example", "1", "*68103").action == Action::Park);
}

TEST_CASE("a park is durable once park() returns, even if the process is then killed with SIGKILL", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("kill9.db");
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // Child: park two calls and claim one, then die without closing anything (like kill -9).
        auto e = Engine::open(path, clock);
        bool ok = e->park(directed("103")).ok && e->park(directed("104")).ok && e->claimRetrieve(byExt("104")).ok;
        if (!ok) ::_exit(3);
        ::kill(::getpid(), SIGKILL);
        ::_exit(4);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    auto e = Engine::open(path, clock);
    auto live = e->liveCalls();
    REQUIRE(live.size() == 2);
    CHECK(live[0].extension == "103");
    CHECK(live[1].extension == "104");
    CHECK(live[1].state == CallState::Parked); // the claim died with its process
    CHECK(e->claimRetrieve(byExt("104")).ok);
}

TEST_CASE("a version-1 database is migrated step by step and keeps its data", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("v1.db");
    std::ifstream in(std::string(PARKWAY_SCHEMA_DIR) + "/001_initial.sql");
    REQUIRE(in);
    std::string v1((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    rawExec(path, (v1 + "PRAGMA user_version = 1;"
                        "INSERT INTO call_groups (domain, name) VALUES ('a.example', 'sales');"
                        "INSERT INTO group_members VALUES ('a.example', '201', 'sales', 0);"
                        "INSERT INTO parked_calls (domain, extension, parked_at, recall_at, recall_seconds, recall_mode,"
                        " ring_seconds, alternate_wait, retry_seconds) VALUES ('a.example', '103', 1, 2, 300, 'parker',"
                        " 30, 30, 10);")
                       .c_str());
    auto e = Engine::open(path, clock);
    REQUIRE(Engine::schemaVersion() >= 2);
    auto g = e->group("a.example", "sales");
    REQUIRE(g);
    CHECK(g->members == std::vector<std::string>{"201"});
    CHECK(g->access.empty());
    REQUIRE(e->liveCalls().size() == 1);
    CHECK(e->liveCalls()[0].recallAt == 2);
}

TEST_CASE("park-info versions: +1 per call and extension, kept across reopen, seeded from the target versions of "
          "a version-5 database",
          "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("v5.db");
    std::string v5;
    for (const char *f :
         {"001_initial.sql", "002_access_lists.sql", "003_watchers.sql", "004_park_caps.sql", "005_max_park.sql"}) {
        std::ifstream in(std::string(PARKWAY_SCHEMA_DIR) + "/" + f);
        REQUIRE(in);
        v5.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // Before step 6 the park-info NOTIFYs carried the target version: 103 was told up to version 7.
    rawExec(path, (v5 + "PRAGMA user_version = 5;"
                        "INSERT INTO target_versions VALUES ('a.example', 'ext:103', 7);"
                        "INSERT INTO target_versions VALUES ('a.example', 'group:sales', 9);")
                      .c_str());
    {
        auto e = Engine::open(path, clock);
        std::vector<std::int64_t> v;
        REQUIRE(e->nextParkInfoVersions("a.example", {"103", "104"}, &v).ok);
        CHECK(v == std::vector<std::int64_t>{8, 1});
        REQUIRE(e->nextParkInfoVersions("a.example", {"103"}, &v).ok);
        CHECK(v == std::vector<std::int64_t>{9});
        REQUIRE(e->nextParkInfoVersions("b.example", {"103"}, &v).ok); // per domain
        CHECK(v == std::vector<std::int64_t>{1});
        REQUIRE(e->nextParkInfoVersions("a.example", {}, &v).ok);
        CHECK(v.empty());
    }
    auto e = Engine::open(path, clock);
    std::vector<std::int64_t> v;
    REQUIRE(e->nextParkInfoVersions("a.example", {"104", "103"}, &v).ok);
    CHECK(v == std::vector<std::int64_t>{2, 10});
}

TEST_CASE("a database locked by another writer is a clear error at open, not a reset", "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("locked.db");
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "PRAGMA locking_mode = EXCLUSIVE; CREATE TABLE t (x); BEGIN EXCLUSIVE;", nullptr, nullptr,
                         nullptr) == SQLITE_OK);
    OpenOptions o;
    o.busyTimeoutMs = 50;
    std::string msg;
    try {
        Engine::open(path, clock, o);
    } catch (const std::runtime_error& e) {
        msg = e.what();
    }
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("locked") != std::string::npos);
}

TEST_CASE("watchers: put, replace, remove and list, committed and kept across a reopen") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.db("park.db");
    std::string binary("a\0b{\"v\":1}", 10); // opaque: any bytes
    {
        auto e = Engine::open(path, clock);
        CHECK(e->watchers().empty());
        REQUIRE(e->putWatcher("call-1;tag-1", "first").ok);
        REQUIRE(e->putWatcher("call-1;tag-1", binary).ok); // replaces
        REQUIRE(e->putWatchers({{"call-2;tag-2", "two"}, {"call-3;tag-3", "three"}}).ok);
        REQUIRE(e->removeWatcher("call-3;tag-3").ok);
        CHECK(e->removeWatcher("never-stored").ok);
        auto bad = e->putWatcher("", "x");
        CHECK_FALSE(bad.ok);
        CHECK(bad.error == ErrorCode::BadRequest);
        // Another connection sees them at once: each call committed before it returned.
        auto other = Engine::open(path, clock);
        CHECK(other->watchers().size() == 2);
    }
    auto e = Engine::open(path, clock);
    auto ws = e->watchers();
    REQUIRE(ws.size() == 2);
    CHECK(ws[0].id == "call-1;tag-1");
    CHECK(ws[0].blob == binary);
    CHECK(ws[1].id == "call-2;tag-2");
    CHECK(ws[1].blob == "two");
}

TEST_CASE("WAL checkpoints run on the engine's own thread, the log stays bounded and nothing committed is lost",
          "[sqlite]") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.file("park.db");
    const std::string blob(2000, 'b'); // about a page per park: the log passes 1000 pages in a few hundred
    std::vector<CallId> kept;
    {
        auto e = Engine::open(path, clock);
        REQUIRE(e->backgroundCheckpoints() == 0);
        for (int i = 0; i < 3000; ++i) {
            auto req = directed(std::to_string(1000 + i));
            req.blob = blob;
            auto r = e->park(req);
            INFO(r.message);
            REQUIRE(r.ok);
            if (i % 20 == 0) // 150 stay parked (the domain's default cap is 200)
                kept.push_back(r.call.id);
            else
                REQUIRE(e->abandon(r.call.id).ok);
        }
        // The checkpoint is asked for by the commit that fills the log and runs on the checkpoint thread.
        for (int i = 0; i < 500 && e->backgroundCheckpoints() == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        CHECK(e->backgroundCheckpoints() > 0);
        // A commit after a checkpoint that copied the whole log restarts it, and the restart truncates the file
        // to journal_size_limit (4 x 1000 pages): the file does not keep the size of the burst. On a loaded
        // machine the checkpoint thread may still be copying when the burst ends, so commit a few more times.
        std::error_code ec;
        std::uintmax_t wal = 0;
        int extra = 0;
        for (; extra < 200; ++extra) {
            auto r = e->park(directed(std::to_string(9000 + extra)));
            REQUIRE(r.ok);
            REQUIRE(e->abandon(r.call.id).ok);
            wal = std::filesystem::file_size(path + "-wal", ec);
            REQUIRE(!ec);
            if (wal <= 16u * 1024 * 1024)
                break;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        INFO("log file " << wal << " bytes after " << extra << " more commits");
        CHECK(wal <= 16u * 1024 * 1024); // 3,000 parks and abandons wrote over 90 MB of log
        REQUIRE(e->park(directed("9999")).ok);
        CHECK(e->liveCalls().size() == kept.size() + 1);
    }
    auto e = Engine::open(path, clock);
    CHECK(e->liveCalls().size() == kept.size() + 1);
    CHECK(e->get(kept.back()).has_value());
}
