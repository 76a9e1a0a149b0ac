// The storage thread: see storage_worker.hh and docs/cluster.md "Threads".
#include "storage_worker.hh"

namespace parkway::callpark {

namespace {
thread_local bool tlsStorageThread = false;
} // namespace

bool StorageWorker::onStorageThread() {
    return tlsStorageThread;
}

void StorageWorker::start(bool threaded, size_t maxQueue, int64_t maxWaitMs) {
    threaded_ = threaded;
    maxQueue_ = maxQueue ? maxQueue : 1;
    maxWaitMs_ = maxWaitMs;
    stopped_ = false;
    link_ = std::make_shared<Link>();
    link_->w = this;
    if (!threaded_)
        return;
    quit_ = false;
    thread_ = std::thread([this] { loop(); });
}

void StorageWorker::stop() {
    if (stopped_)
        return;
    stopped_ = true;
    if (link_)
        link_->w = nullptr; // results still in the SIP loop's queue do nothing
    {
        std::lock_guard<std::mutex> g(qMu_);
        quit_ = true; // the thread finishes what is queued (saves, abandons: the restart reads them), then ends
    }
    qCv_.notify_all();
    if (thread_.joinable())
        thread_.join();
    std::lock_guard<std::mutex> g(notesMu_);
    notes_.clear();
}

size_t StorageWorker::queued() const {
    std::lock_guard<std::mutex> g(qMu_);
    return queue_.size() + (busy_ ? 1 : 0);
}

bool StorageWorker::accepting() const {
    if (stopped_)
        return false;
    if (!threaded_)
        return true;
    std::lock_guard<std::mutex> g(qMu_);
    if (queue_.size() >= maxQueue_)
        return false;
    // The oldest job not done: the one running (it waits for the database now) or else the head of the queue.
    auto oldest = busy_             ? busySince_
                  : !queue_.empty() ? queue_.front().queuedAt
                                    : std::chrono::steady_clock::time_point{};
    if (oldest == std::chrono::steady_clock::time_point{})
        return true;
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - oldest);
    return waited.count() <= maxWaitMs_;
}

bool StorageWorker::submit(std::function<void(eng::Engine &)> op, std::function<void()> done, bool critical) {
    if (stopped_ || !engine_)
        return false;
    if (!threaded_) {
        {
            Locked l(*this);
            op(*engine_);
        } // the notes it raised are delivered here, before the continuation
        if (done)
            done();
        return true;
    }
    if (beforeQueue_)
        beforeQueue_();
    {
        std::lock_guard<std::mutex> g(qMu_);
        if (!critical && queue_.size() >= maxQueue_)
            return false;
        queue_.push_back(Job{std::move(op), std::move(done), std::chrono::steady_clock::now()});
    }
    qCv_.notify_one();
    return true;
}

void StorageWorker::loop() {
    tlsStorageThread = true;
    for (;;) {
        Job job;
        {
            std::unique_lock<std::mutex> g(qMu_);
            qCv_.wait(g, [this] { return quit_ || !queue_.empty(); });
            if (queue_.empty())
                return; // quit_, nothing left
            job = std::move(queue_.front());
            queue_.pop_front();
            busy_ = true;
            busySince_ = job.queuedAt;
        }
        {
            std::lock_guard<std::recursive_mutex> e(engineMu_);
            try {
                job.op(*engine_);
            } catch (...) {
                // An operation reports storage trouble in its result; anything else thrown is the op's bug: its
                // continuation still runs (with no result, run<R> skips it).
            }
        }
        {
            std::lock_guard<std::mutex> g(qMu_);
            busy_ = false;
        }
        if (!link_->w.load())
            continue; // stopped: nobody takes the result
        auto *p = new Posted{link_, std::move(job.done)};
        {
            std::lock_guard<std::mutex> g(link_->mu);
            link_->inFlight.insert(p);
        }
        if (api_->post(host_, &StorageWorker::posted, p) != PW_OK) {
            std::lock_guard<std::mutex> g(link_->mu);
            link_->inFlight.erase(p);
            delete p; // the host is going away: nothing would run it anyway
        }
    }
}

void StorageWorker::dropInFlight() {
    if (!link_)
        return;
    std::unordered_set<Posted *> left;
    {
        std::lock_guard<std::mutex> g(link_->mu);
        left.swap(link_->inFlight);
    }
    for (Posted *p : left)
        delete p; // never to run: the host is destroying its modules (a leak at exit before)
}

void StorageWorker::posted(void *arg) {
    std::unique_ptr<Posted> p(static_cast<Posted *>(arg));
    {
        std::lock_guard<std::mutex> g(p->link->mu);
        p->link->inFlight.erase(p.get());
    }
    StorageWorker *w = p->link->w.load();
    if (!w)
        return;
    w->drainNotes(); // the job's events first, in commit order
    if (p->done)
        p->done();
}

StorageWorker::Locked::Locked(StorageWorker &w) : w_(&w) {
    w_->engineMu_.lock();
    ++w_->sipDepth_;
}

StorageWorker::Locked::~Locked() {
    if (!w_)
        return;
    bool outer = --w_->sipDepth_ == 0;
    w_->engineMu_.unlock();
    if (outer)
        w_->drainNotes();
}

void StorageWorker::note(Note n) {
    std::lock_guard<std::mutex> g(notesMu_);
    notes_.push_back(std::move(n));
}

void StorageWorker::drainNotes() {
    if (draining_ || !sink_)
        return;
    draining_ = true;
    for (;;) {
        Note n;
        {
            std::lock_guard<std::mutex> g(notesMu_);
            if (notes_.empty())
                break;
            n = std::move(notes_.front());
            notes_.pop_front();
        }
        try {
            sink_(n);
        } catch (...) {
        }
    }
    draining_ = false;
}

} // namespace parkway::callpark
