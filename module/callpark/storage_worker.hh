// The storage thread (docs/cluster.md "Threads: the SIP thread must not wait on the network").
//
// One per node. The engine stays single-threaded and synchronous inside; this class decides on which thread
// each engine call runs and keeps the engine to one thread at a time:
//   - The engine is guarded by one mutex. A job on the storage thread holds it for the whole job; a call that
//     stays synchronous on the SIP thread takes it through lock() (a Locked guard: no call site can forget).
//     Engine::classify is the one exception: it reads the compiled rule set, published atomically, and takes
//     no lock (engine.hh).
//   - submit(op, done): op runs with the engine locked, on the storage thread when threaded(), else inline on
//     the SIP thread; done always runs on the SIP thread afterwards (posted through pw_host_api.post(), the one
//     host function other threads may call).
//   - The engine's listeners fire on the thread that ran the operation. The module's listeners only call
//     note(): the notes (change events, sync notices) go into one FIFO in commit order, and the SIP thread
//     drains it before each continuation and whenever a Locked guard is released. So a job's events reach the
//     module before the job's continuation, and events of the two threads stay in commit order.
//   - Bounded: accepting() is false while the queue is full or its oldest job has waited too long; the module
//     refuses new parks and retrieves then (503 + Retry-After).
//   - stop(): the thread runs what is queued (the saves and abandons a restart will read; against a database
//     that is away each fails at once after the first), then is joined; no continuation runs after stop(), and a
//     result still in the SIP loop's queue does nothing.
#pragma once
#include <parkway/engine/engine.hh>
#include <parkway/module.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <variant>
#include <vector>

namespace parkway::callpark {

namespace eng = parkway::engine;

class StorageWorker {
public:
    // What an engine listener raised, for the SIP thread.
    using Note = std::variant<eng::ChangeEvent, eng::SyncNotice>;

    StorageWorker(const pw_host_api *api, pw_host *host) : api_(api), host_(host) {}
    ~StorageWorker() {
        stop();
        dropInFlight();
    }
    StorageWorker(const StorageWorker &) = delete;
    StorageWorker &operator=(const StorageWorker &) = delete;

    void setEngine(eng::Engine *e) { engine_ = e; }
    // Where the notes go (SIP thread). Set before the engine fires anything.
    void setNoteSink(std::function<void(const Note &)> sink) { sink_ = std::move(sink); }
    // Runs on the SIP thread before a job is queued (the module's clock takes the host's time then).
    void setBeforeQueue(std::function<void()> fn) { beforeQueue_ = std::move(fn); }

    // threaded = false: every job runs inline (SQLite: today's latency, no thread hop).
    void start(bool threaded, size_t maxQueue, int64_t maxWaitMs);
    void stop();
    bool threaded() const { return threaded_; }
    bool running() const { return !stopped_; }
    // True on the storage thread (the module's listeners and clock ask).
    static bool onStorageThread();

    // The engine, locked, for a call that stays synchronous on the SIP thread. Releasing it delivers the notes
    // the call raised.
    class Locked {
    public:
        explicit Locked(StorageWorker &w);
        ~Locked();
        Locked(Locked &&o) noexcept : w_(o.w_) { o.w_ = nullptr; }
        Locked(const Locked &) = delete;
        Locked &operator=(const Locked &) = delete;
        eng::Engine *operator->() const { return w_->engine_; }
        eng::Engine &operator*() const { return *w_->engine_; }

    private:
        StorageWorker *w_;
    };
    Locked lock() { return Locked(*this); }

    // Room for one more park or retrieve: the queue is not full and its oldest job has not waited too long.
    bool accepting() const;
    // Runs op(engine) with the engine locked (storage thread or inline), then done() on the SIP thread. False
    // when stopped or the queue is full (critical = false) : neither runs then. Fire-and-forget writes pass
    // critical = true: they queue beyond the bound (a saved blob or an abandon must not be dropped for load).
    bool submit(std::function<void(eng::Engine &)> op, std::function<void()> done, bool critical = false);
    // The same with a result handed to the continuation.
    template <typename R>
    bool run(std::function<R(eng::Engine &)> op, std::function<void(R &)> done, bool critical = false) {
        auto res = std::make_shared<std::optional<R>>();
        return submit([op = std::move(op), res](eng::Engine &e) { res->emplace(op(e)); },
                      [done = std::move(done), res] {
                          if (*res)
                              done(**res);
                      },
                      critical);
    }

    // Called by the module's engine listeners, on whichever thread runs the engine (the engine is locked).
    void note(Note n);
    // SIP thread: hand every queued note to the sink, in order (not re-entrant: a nested call returns at once).
    void drainNotes();

    size_t queued() const;

private:
    struct Job {
        std::function<void(eng::Engine &)> op;
        std::function<void()> done;
        std::chrono::steady_clock::time_point queuedAt;
    };
    struct Posted;
    struct Link { // shared with posted results: a result posted after stop() finds no worker
        std::atomic<StorageWorker *> w{nullptr};
        // Results posted and not run yet. The host runs no posted function once it destroys modules (module.h
        // post), so the worker's destructor frees what is left here; a result that runs takes itself out first.
        std::mutex mu;
        std::unordered_set<Posted *> inFlight;
    };
    struct Posted {
        std::shared_ptr<Link> link;
        std::function<void()> done;
    };
    void dropInFlight();
    static void posted(void *arg);
    void loop();

    const pw_host_api *api_;
    pw_host *host_;
    eng::Engine *engine_ = nullptr;
    std::function<void(const Note &)> sink_;
    std::function<void()> beforeQueue_;
    bool threaded_ = false;
    bool stopped_ = true;
    size_t maxQueue_ = 1000;
    int64_t maxWaitMs_ = 2000;

    std::recursive_mutex engineMu_; // the engine: one thread at a time
    int sipDepth_ = 0;              // nesting of Locked guards on the SIP thread (drain when it drops to 0)

    mutable std::mutex qMu_;
    std::condition_variable qCv_;
    std::deque<Job> queue_;
    bool quit_ = false;
    bool busy_ = false; // a job runs now
    std::chrono::steady_clock::time_point busySince_{};
    std::thread thread_;
    std::shared_ptr<Link> link_;

    std::mutex notesMu_;
    std::deque<Note> notes_;
    bool draining_ = false; // SIP thread only
};

} // namespace parkway::callpark
