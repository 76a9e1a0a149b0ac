// Shared helpers for the engine tests.
#pragma once

#include "parkway/engine/engine.hh"

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <unistd.h>

namespace pe = parkway::engine;

inline std::unique_ptr<pe::Engine> memEngine(pe::Clock& clock) { return pe::Engine::open(":memory:", clock); }

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
