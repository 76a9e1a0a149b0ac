// Change events across nodes (docs/cluster.md "Change events across nodes"): several nodes share one PostgreSQL
// park database. The engine's listening thread (LISTEN/NOTIFY) wakes us when another node committed a change;
// the wake crosses to the SIP thread only through pw_host_api.post(), and there the engine catches up: other
// nodes' events reach onEngineEvent (BLF/dialog-info, presence and call-info watchers, event lists, the admin
// stream) as our own do, a configuration change reloads the engine's caches, and a resync re-sends every
// watcher the current state. park-info is never sent for another node's change: that node sent it.
#include "callpark.hh"

#include <atomic>

namespace parkway::callpark {

// Shared between the module and its posted wake-ups: a wake-up still queued when the module stops finds no
// module (cp = nullptr) and does nothing. `posted` lets one wake-up at a time wait in the SIP loop's queue.
struct FeedLink {
    std::atomic<CallPark *> cp{nullptr};
    std::atomic<bool> posted{false};
    const pw_host_api *api = nullptr;
    pw_host *host = nullptr;
};

namespace {

void feedPosted(void *arg) {
    std::unique_ptr<std::shared_ptr<FeedLink>> link(static_cast<std::shared_ptr<FeedLink> *>(arg));
    (*link)->posted = false; // a change committed from here on posts again
    if (CallPark *cp = (*link)->cp.load()) {
        try {
            cp->catchUpChanges();
        } catch (...) {
            // catchUp reports storage trouble by delivering nothing; the next wake tries again.
        }
    }
}

} // namespace

void CallPark::startChangeFeed() {
    if (!engine()->shared())
        return; // SQLite: one node, nothing else writes the store
    feedLink_ = std::make_shared<FeedLink>();
    feedLink_->cp = this;
    feedLink_->api = host_.api();
    feedLink_->host = host_.raw();
    // Fires on the thread that runs catchUp (the storage thread): noted, handled on the SIP thread.
    engine()->addSyncListener([this](const eng::SyncNotice &n) { storage_.note(n); });
    // Called on the engine's listening thread: only post.
    std::string err = engine()->watchChanges([link = feedLink_] {
        if (link->posted.exchange(true))
            return;
        auto *arg = new std::shared_ptr<FeedLink>(link);
        if (link->api->post(link->host, feedPosted, arg) != PW_OK) {
            delete arg;
            link->posted = false;
        }
    });
    if (!err.empty()) // the node still parks; its watchers miss other nodes' changes until a restart
        host_.log(PW_LOG_ERROR, "callpark: {}; other nodes' changes will not be seen here", err);
    else
        host_.log(PW_LOG_INFO, "callpark: watching the park database for other nodes' changes");
}

void CallPark::stopChangeFeed() {
    if (feedLink_)
        feedLink_->cp = nullptr;
    if (engine_)
        engine()->stopWatching(); // joins the listening thread: no wake-up is posted after this
}

void CallPark::catchUpChanges() {
    if (stopping_ || catchUpInFlight_)
        return; // one in flight at a time; the wake that comes meanwhile is seen by it or by the next
    // On the storage thread: the other nodes' events and the sync notice reach onEngineEvent and onEngineSync on
    // the SIP thread (in commit order, before the continuation). After a resync the live calls are read there too,
    // so the counts start again from the store without a read on the SIP thread.
    struct Result {
        eng::Engine::CatchUp cu;
        std::vector<eng::ParkedCall> live;
    };
    catchUpInFlight_ = storage_.run<Result>(
        [](eng::Engine &e) {
            Result r;
            r.cu = e.catchUp();
            if (r.cu.resync) {
                try {
                    r.live = e.liveCalls();
                } catch (...) {
                    r.cu.resync = false; // the store went away again: the next resync counts
                }
            }
            return r;
        },
        [this](Result &r) {
            catchUpInFlight_ = false;
            if (stopping_ || !r.cu.resync)
                return;
            // Events were missed and cannot be replayed: the counts start again from the store.
            std::set<std::pair<std::string, std::string>> labels;
            for (const auto &[key, count] : parkedCounts_)
                labels.insert(key);
            parkedCounts_.clear();
            for (const eng::ParkedCall &call : r.live) {
                ++parkedCounts_[{call.domain, call.lot}];
                labels.insert({call.domain, call.lot});
            }
            for (const auto &[domain, lot] : labels)
                updateGauges(domain, lot);
        },
        true);
}

void CallPark::onEngineSync(const eng::SyncNotice &n) {
    if (n.configChanged || n.resync) {
        host_.log(PW_LOG_INFO, "callpark: {} by another node; configuration reloaded (generation {})",
                  n.resync ? "changes missed" : "configuration changed", n.configGeneration);
        // A domain another node provisioned is served here too: the domains are read on the storage thread when
        // there is one (docs/cluster.md "Threads"), and declared here when they come back.
        storage_.run<std::optional<std::vector<eng::DomainSettings>>>(
            [](eng::Engine &e) -> std::optional<std::vector<eng::DomainSettings>> {
                try {
                    return e.domains();
                } catch (...) {
                    return std::nullopt; // the store went away: the next change or resync declares them
                }
            },
            [this](std::optional<std::vector<eng::DomainSettings>> &domains) {
                if (domains && !stopping_)
                    serveDomains(*domains);
            },
            true);
    }
    bool lists = n.configChanged; // group lists show members' extensions: membership may have changed
    if (n.resync) {
        // Events were missed and cannot be replayed: every watcher is sent the current state (its NOTIFY reads
        // the store; an unchanged state is sent once more); the counts start again from the store in
        // catchUpChanges' continuation.
        if (host_.eventListening())
            host_.event("resync", fmt::format("{{\"sequence\":{}}}", n.sequence));
    }
    for (auto &[p, sub] : subs_)
        if (n.resync || (lists && sub->eventList))
            queueNotify(*sub);
}

} // namespace parkway::callpark
