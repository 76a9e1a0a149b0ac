// Shared helpers for the engine tests.
//
// The suite runs on both backends (docs/cluster.md): ctest's "engine: " tests on SQLite (":memory:" and temp
// files), its "engine-pg: " tests on PostgreSQL. There PARKWAY_TEST_PG names the state file of the fixture's
// server (tests/engine/pg_fixture.sh, one server per ctest run) holding its URL; every fresh database a test asks
// for is then a new schema on that server (the URL's search_path), and test cases tagged [sqlite] (file
// corruption, WAL, PRAGMA user_version) are left out.
#pragma once

#include "parkway/engine/engine.hh"

#include <catch2/catch.hpp>
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace pe = parkway::engine;

// The fixture server's URL, or "" when the suite runs on SQLite.
inline const std::string &pgBaseUrl() {
    static const std::string url = [] {
        const char *state = std::getenv("PARKWAY_TEST_PG");
        if (!state || !*state)
            return std::string();
        std::ifstream in(state);
        std::string u;
        std::getline(in, u);
        if (u.empty())
            throw std::runtime_error(std::string("PARKWAY_TEST_PG: no server URL in ") + state +
                                     " (did the fixture 'engine-pg: start server' run?)");
        return u;
    }();
    return url;
}
inline bool onPostgres() {
    return !pgBaseUrl().empty();
}

// A URL for schema `name` on the fixture server (created if missing): an empty database of its own.
inline std::string pgSchemaUrl(const std::string &name) {
    if (!onPostgres())
        throw std::runtime_error("this test needs the PostgreSQL fixture: run it through ctest (engine-pg:) or set "
                                 "PARKWAY_TEST_PG to a file holding a server URL");
    PGconn *c = PQconnectdb(pgBaseUrl().c_str());
    std::string err;
    if (PQstatus(c) != CONNECTION_OK) {
        err = PQerrorMessage(c);
    } else {
        PQsetNoticeProcessor(
            c, [](void *, const char *) {}, nullptr); // "already exists, skipping"
        PGresult *r = PQexec(c, ("CREATE SCHEMA IF NOT EXISTS " + name).c_str());
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            err = PQresultErrorMessage(r);
        PQclear(r);
    }
    PQfinish(c);
    if (!err.empty())
        throw std::runtime_error("test PostgreSQL: " + err);
    return pgBaseUrl() + "&options=-csearch_path%3D" + name;
}

// A new, empty park database: ":memory:" on SQLite, a new schema on PostgreSQL.
inline std::string freshDb() {
    static int n = 0;
    if (!onPostgres())
        return ":memory:";
    return pgSchemaUrl("t_" + std::to_string(::getpid()) + "_" + std::to_string(++n));
}

inline std::unique_ptr<pe::Engine> memEngine(pe::Clock &clock) {
    return pe::Engine::open(freshDb(), clock);
}

// A temporary directory removed at scope exit.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::random_device rd;
        path = std::filesystem::temp_directory_path() /
               ("parkway-engine-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const std::string& name) const { return (path / name).string(); }
    // A park database that can be opened again (reopen, two engines on one database): the file `name` on
    // SQLite, a schema named after this directory and `name` on PostgreSQL.
    std::string db(const std::string &name) const {
        if (!onPostgres())
            return file(name);
        return pgSchemaUrl("f_" + std::to_string(std::hash<std::string>{}(file(name))));
    }
};

inline pe::ParkRequest directed(const std::string& ext, const std::string& parker = "100",
                                const std::string& domain = "a.example") {
    pe::ParkRequest r;
    r.domain = domain;
    r.how = pe::ParkHow::Directed;
    r.extension = ext;
    r.parker = parker;
    r.parkedUri = "sip:caller@pstn.example";
    r.parkedDisplay = "Caller";
    return r;
}

inline pe::RetrieveRequest byExt(const std::string& ext, const std::string& who = "200",
                                 const std::string& domain = "a.example") {
    pe::RetrieveRequest r;
    r.domain = domain;
    r.by = pe::RetrieveRequest::By::Extension;
    r.extension = ext;
    r.retriever = who;
    return r;
}

// Records every event delivered to it.
struct EventLog {
    std::vector<pe::ChangeEvent> events;
    pe::Engine::ListenerId id = 0;
    explicit EventLog(pe::Engine& e) {
        id = e.addListener([this](const pe::ChangeEvent& ev) { events.push_back(ev); });
    }
    std::vector<pe::EventKind> kinds() const {
        std::vector<pe::EventKind> k;
        for (const auto& e : events) k.push_back(e.kind);
        return k;
    }
};
