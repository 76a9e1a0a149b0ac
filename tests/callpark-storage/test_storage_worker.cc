// The call-park storage thread's hand-back to the SIP thread (module/callpark/storage_worker.cc): results go
// through pw_host_api.post; what the host never runs (it stops running posted functions before it destroys
// modules, module.h) is freed with the worker, not leaked.
#include "storage_worker.hh"

#include <parkway/engine/clock.hh>
#include <parkway/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace parkway;

namespace {

// A host whose post() keeps what it is given: the test decides whether it ever runs.
std::mutex gMu;
std::vector<std::pair<pw_post_fn, void *>> gPosted;

int keepPost(pw_host *, pw_post_fn fn, void *arg) {
    std::lock_guard<std::mutex> g(gMu);
    gPosted.emplace_back(fn, arg);
    return PW_OK;
}

size_t postedCount() {
    std::lock_guard<std::mutex> g(gMu);
    return gPosted.size();
}

bool waitPosted(size_t n) {
    for (int i = 0; i < 400 && postedCount() < n; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return postedCount() >= n;
}

struct Fixture {
    testing::FakeHost fake;
    pw_host_api api = *fake.api();
    engine::FakeClock clock;
    std::filesystem::path db =
        std::filesystem::temp_directory_path() / ("parkway-storage-worker-" + std::to_string(::getpid()) + ".db");
    std::unique_ptr<engine::Engine> engine;
    Fixture() {
        api.post = keepPost;
        std::lock_guard<std::mutex> g(gMu);
        gPosted.clear();
        engine = engine::Engine::open(db.string(), clock);
    }
    ~Fixture() {
        engine.reset();
        for (const char *ext : {"", "-wal", "-shm"})
            std::filesystem::remove(db.string() + ext);
    }
};

} // namespace

TEST_CASE("storage worker: a result the host never runs is freed with the worker", "[storage]") {
    Fixture f;
    auto held = std::make_shared<int>(0); // captured by the continuation: its use count shows it is alive
    {
        callpark::StorageWorker w(&f.api, f.fake.raw());
        w.setEngine(f.engine.get());
        w.start(true, 16, 1000);
        REQUIRE(w.submit([](engine::Engine &) {}, [held] { ++*held; }));
        REQUIRE(waitPosted(1));
        CHECK(held.use_count() == 2); // posted, not run
    }                                 // the module is destroyed: the host never runs what it was posted
    CHECK(*held == 0);
    CHECK(held.use_count() == 1); // the continuation was freed with the worker
}

TEST_CASE("storage worker: a result the host runs runs once and is not freed again", "[storage]") {
    Fixture f;
    auto held = std::make_shared<int>(0);
    {
        callpark::StorageWorker w(&f.api, f.fake.raw());
        w.setEngine(f.engine.get());
        w.start(true, 16, 1000);
        REQUIRE(w.submit([](engine::Engine &) {}, [held] { ++*held; }));
        REQUIRE(waitPosted(1));
        auto [fn, arg] = gPosted.front();
        fn(arg); // the SIP thread runs it
        CHECK(*held == 1);
        CHECK(held.use_count() == 1);
    }
    CHECK(*held == 1); // (ASan: the worker's destructor did not free it a second time)
}
