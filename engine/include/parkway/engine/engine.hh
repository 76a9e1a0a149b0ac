// parkway/engine/engine.hh — the park engine: one object per park database, a SQLite file (the default) or a
// PostgreSQL database shared by several nodes (docs/cluster.md).
//
// Threading: an Engine is used from one thread (the proxy's SIP thread). Other threads (the admin plane)
// post closures to that thread. Several Engine objects (in several processes, on several hosts with
// PostgreSQL) may open the same database: every operation is one transaction, write transactions run one at
// a time, and a retrieve claim is a conditional UPDATE, so two concurrent retrievers cannot both win.
//
// Durability: every operation is committed before it returns (docs/engine.md "Rules of the road"); listeners run after
// the commit.
#pragma once

#include "parkway/engine/clock.hh"
#include "parkway/engine/rules.hh"
#include "parkway/engine/types.hh"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parkway::engine {

struct OpenOptions {
    // How long a writer waits for another connection's write lock (SQLite busy_timeout; PostgreSQL lock_timeout
    // on the writer lock, docs/cluster.md "Concurrency"); then the operation fails with ErrorCode::Storage.
    int busyTimeoutMs = 5000;
    // SQLite `synchronous` in WAL mode: false = NORMAL (survives a process crash / kill -9; the last
    // commits may be lost on power failure), true = FULL (fsync on every commit; survives power loss).
    bool fsyncEveryCommit = false;
    bool integrityCheck = true; // run PRAGMA quick_check at open (corruption is an error, never a reset)
    // Put calls left in `retrieving` (their SIP transaction died with the previous process) back to
    // parked/recalling at open. Turn off when several live processes share one database (several nodes on
    // one PostgreSQL database: it would release the other nodes' claims in flight).
    bool releaseStaleClaims = true;
};

// A node of a cluster (docs/cluster.md "Ownership and failover"): its name, the SIP address other nodes reach it
// at, its lease and its incarnation (+1 each time it registers).
struct NodeInfo {
    std::string name;
    std::string address;
    Millis leaseUntil = 0;
    std::int64_t incarnation = 0;
    bool live = false; // leaseUntil >= now by this engine's clock
};

// What registerNode / heartbeat found.
struct NodeStatus {
    bool ok = false;
    ErrorCode error = ErrorCode::None;
    std::string message;
    // The heartbeat found this node's lease run out (or its row gone: another node took its calls over): it
    // registered again (new incarnation). Calls it held may belong to other nodes now; the fence refuses its
    // writes to those (NotOwner), and the caller should drop their SIP state without signalling.
    bool lapsed = false;
    explicit operator bool() const { return ok; }
};

// A stored watcher: the module's id and its opaque blob.
struct StoredWatcher {
    std::string id;
    std::string blob;
};

// What takeOver() took: the dead nodes, their calls (now ours, generation bumped, claims in flight released)
// and their stored watchers.
struct TakeoverResult {
    bool ok = false;
    ErrorCode error = ErrorCode::None;
    std::string message;
    std::vector<std::string> nodes; // the expired nodes whose leases were removed
    std::vector<ParkedCall> calls;
    std::vector<StoredWatcher> watchers;
    explicit operator bool() const { return ok; }
};

class Engine {
public:
    // Opens (creating if needed) the database at `path` and migrates it to the current schema. `path` is a
    // SQLite file (or ":memory:"), or a libpq URL "postgresql://..." / "postgres://..." (the database must
    // exist; the tables go in the connection's current schema). Throws std::runtime_error with a message
    // naming the file or URL (never its password) on: cannot open / connect, not a database / corrupt /
    // foreign tables, schema newer than this engine, a failed migration. `clock` must outlive the Engine.
    // Calls left in state `retrieving` by a crash are put back to parked/recalling (their SIP transaction
    // is gone); liveCalls() then lists every live call with its deadline so the caller re-arms its timers.
    static std::unique_ptr<Engine> open(const std::string &path, Clock &clock, OpenOptions options = {});
    ~Engine();
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    const std::string &path() const; // the file, or the PostgreSQL URL without its password
    // WAL checkpoints run so far by the engine's background thread (a file database: commits never wait for
    // a checkpoint; 0 for ":memory:"). Diagnostics and tests.
    std::uint64_t backgroundCheckpoints() const;
    static int schemaVersion(); // the user_version this engine migrates to

    // ---- Restart ------------------------------------------------------------------------------------
    // Every live call (parked, recalling, retrieving), ordered by recallAt: re-arm a timer for each at
    // call.recallAt and call recallStep() when it fires.
    std::vector<ParkedCall> liveCalls() const;
    // The calls whose recallAt <= now, in deadline order (for a caller that polls instead of arming timers).
    std::vector<ParkedCall> dueCalls() const;

    // ---- Ownership and failover (docs/cluster.md) -----------------------------------------------------------
    // Until a node registers, ownership is off: every call is this engine's (one node, SQLite's default), no
    // fence is checked and nothing here costs anything. registerNode(name, address, leaseMs) turns it on: the
    // node's row gets a lease of leaseMs from now and a new incarnation; calls this engine parks are owned by
    // `name` (generation 0); calls and watchers with no owner become this node's; liveCalls() and watchers()
    // list only this node's; owner-side writes (recallStep, recallNoAnswer, recallAnswered, completeRetrieve,
    // abortRetrieve, abandon, updateBlob) fail with NotOwner unless the call's (owner, generation) is the one
    // this engine holds; a retrieve claim of a call another node owns fails with NotOwner (claiming nothing).
    // Calls in `retrieving` owned by this node are put back (their transaction died with the last process).
    NodeStatus registerNode(const std::string &name, const std::string &address, Millis leaseMs);
    // Renews the lease (now + leaseMs). See NodeStatus::lapsed.
    NodeStatus heartbeat();
    // One transaction: every node whose lease ran out loses its row; its calls become this node's with their
    // generation +1 (a claim in flight goes back to parked/recalling; recall
    // deadlines unchanged), its watchers too. Two nodes taking over at once: each call goes to exactly one.
    TakeoverResult takeOver();
    std::vector<NodeInfo> nodes() const;
    std::optional<NodeInfo> node(const std::string &name) const;
    const std::string &nodeName() const; // "" until registerNode

    // ---- Domains, extensions, groups, lots ------------------------------------------------------------
    // A domain never configured behaves as DomainSettings{} with that name (open extensions, defaults).
    DomainSettings domain(const std::string &name) const;
    std::vector<DomainSettings> domains() const;      // configured domains
    Status setDomain(const DomainSettings &settings); // validated; the default rules follow the new codes
    Status removeDomain(const std::string &name);     // refused (BadState) while calls are live in it

    Status setExtension(const Extension &e);
    Status removeExtension(const std::string &domain, const std::string &ext);
    std::vector<Extension> extensions(const std::string &domain) const;
    bool isKnownExtension(const std::string &domain, const std::string &ext) const;

    // Replaces the group wholesale. Fails (BadRequest) when a member is already in another group of the
    // domain (a user is in at most one group per domain, docs/engine.md "Operations") or listed twice.
    Status setGroup(const Group &g);
    Status removeGroup(const std::string &domain, const std::string &name);
    std::optional<Group> group(const std::string &domain, const std::string &name) const;
    std::optional<Group> groupOf(const std::string &domain, const std::string &user) const;
    std::vector<Group> groups(const std::string &domain) const;

    Status setLot(const Lot &lot); // slot ranges of a domain's lots must not overlap
    Status removeLot(const std::string &domain, const std::string &name); // refused while calls sit in it
    std::optional<Lot> lot(const std::string &domain, const std::string &name) const;
    std::optional<Lot> lotForSlot(const std::string &domain, int slot) const; // the lot whose range has it
    std::vector<Lot> lots(const std::string &domain) const;

    // ---- Parking ------------------------------------------------------------------------------------
    // Parks per `req.how` (docs/engine.md "Operations"): directed/own obey the occupied policy; group park hunts the
    // parker's group in order from the first member (first member with no call; with stacking the first with the fewest
    // calls); lot park takes the given slot or picks one. Idempotent on (domain, requestKey) while the call is live:
    // the same key returns the existing call with duplicate=true and changes nothing. Emits Parked.
    ParkResult park(const ParkRequest &req);

    // Replace the call's opaque blob (dialog state after a re-INVITE, new SDP, ...). No event.
    CallResult updateBlob(CallId id, const std::string &blob);

    // ---- Retrieving ---------------------------------------------------------------------------------
    // Claims a call for retrieve: parked/recalling -> retrieving (docs/engine.md "Operations"). Oldest first by
    // extension. Nothing there -> NotFound; only calls already claimed by someone else -> Busy; by id in another
    // domain, or every call there closed to the retriever by an access list (Lot/Group::access) -> Forbidden. Emits
    // RetrieveStarted. The SIP layer then completes or aborts the claim.
    CallResult claimRetrieve(const RetrieveRequest &req);
    // The retrieve succeeded (the parties are connected): the call leaves the engine. Emits Retrieved.
    CallResult completeRetrieve(CallId id);
    // The retrieve failed (re-INVITE refused, retriever hung up): back to parked (or recalling if a recall
    // had started), deadline unchanged. Emits RetrieveAborted.
    CallResult abortRetrieve(CallId id);
    // The parked party hung up (any live state): the call leaves. Emits Abandoned.
    CallResult abandon(CallId id);

    // ---- Recall (docs/engine.md "Recall ladder") -------------------------------------------------------
    // Called when call.recallAt has come. A parked call starts recalling (attempt 1, emits RecallStarted);
    // a recalling call re-rings its current attempt (e.g. after a restart). Sets recallAt = now + ring time
    // and says whom to ring, for how long, and what follows. Before the deadline -> BadState.
    RecallStep recallStep(CallId id);
    // The current attempt was not answered (ring time over, every branch failed): emits RecallFailed,
    // advances the ladder and sets recallAt = now + the pause; the returned step describes the next attempt
    // (target, ring time) and nextDelaySeconds = the pause. Call recallStep again at call.recallAt.
    RecallStep recallNoAnswer(CallId id);
    // Somebody answered the recall: like a retrieve claim (recalling -> retrieving, retriever = who).
    // Then completeRetrieve / abortRetrieve. Emits RetrieveStarted.
    CallResult recallAnswered(CallId id, const std::string &answeredBy);

    // ---- Move, list, get ----------------------------------------------------------------------------
    // Move a live (not retrieving) call to another extension (`to.kind == Extension`) or lot slot
    // (`Slot`, slot 0 = pick). Occupied target -> Occupied (moves never stack onto a slot; an extension
    // follows the domain's occupied policy). Emits Moved with `previous`.
    CallResult move(CallId id, const Target &to);

    std::optional<ParkedCall> get(CallId id) const;
    // The call if it belongs to `domain` (tenant view), else nullopt.
    std::optional<ParkedCall> get(const std::string &domain, CallId id) const;
    std::optional<ParkedCall> getByRequestKey(const std::string &domain, const std::string &key) const;
    std::vector<ParkedCall> list(const ListFilter &filter = {}) const; // oldest first

    // ---- Change events ------------------------------------------------------------------------------
    using Listener = std::function<void(const ChangeEvent &)>;
    using ListenerId = std::uint64_t;
    // Listeners run synchronously, after the commit, in registration order. Exceptions they throw are
    // swallowed (a listener must not undo a committed change). A listener may call the engine.
    ListenerId addListener(Listener l);
    void removeListener(ListenerId id);
    // Full state of one watched target (for a full-state NOTIFY) and its current version.
    TargetState targetState(const Target &t) const;
    std::int64_t targetVersion(const Target &t) const;
    std::int64_t lastEventSequence() const;

    // ---- Change events across nodes (PostgreSQL; docs/cluster.md "Change events across nodes") ---------------
    // Other engines (nodes) sharing a PostgreSQL database change it too. watchChanges() opens a listening
    // connection (LISTEN) and a thread of its own; that thread calls `wake` (from itself: it must only post
    // work to the engine's thread) when another engine committed a change and when it (re)connected. The
    // engine's thread then calls catchUp(), which reads what changed since the last sequence this engine saw:
    // other engines' events go to the listeners (ChangeEvent::remote), a configuration change reloads the
    // cached domain settings and rules, and when events were lost for good the listeners get a resync notice.
    // Returns an error message (empty on success). On SQLite nothing is watched (one node): returns "".
    // `retryMs`: first pause before reconnecting a lost listening connection (it doubles up to 2 s).
    bool shared() const; // PostgreSQL: other engines may change the store
    std::string watchChanges(std::function<void()> wake, int retryMs = 100);
    void stopWatching(); // stops and joins the thread (also done by the destructor); wake is not called after
    struct CatchUp {
        std::size_t events = 0; // other engines' events delivered
        bool configChanged = false, resync = false;
    };
    CatchUp catchUp();
    using SyncListener = std::function<void(const SyncNotice &)>;
    // Called by catchUp after the events, when the configuration changed or a resync is needed. Removed by
    // removeListener like a change listener.
    ListenerId addSyncListener(SyncListener l);
    struct FeedStats {
        std::uint64_t connects = 0, disconnects = 0, notifications = 0, wakes = 0;
        std::uint64_t catchUps = 0, remoteEvents = 0, configReloads = 0, resyncs = 0;
        int backendPid = 0; // the listening connection's server process, 0 while down (diagnostics, tests)
    };
    FeedStats feedStats() const;

    // ---- Dialplan rules (docs/engine.md "Dialplan rules") ----------------------------------------------
    // Decide what a dial string means for `caller` in `domain`. Fast path: no SQLite, no allocation beyond
    // the result's strings; uses the rule set compiled at the last (re)load. The one call that may run on
    // another thread concurrently with any other engine call: the compiled rule set is an immutable
    // shared_ptr published atomically (docs/cluster.md "Threads").
    Classification classify(const std::string &domain, const std::string &caller, const std::string &dial) const;
    // Everything classify does plus the trace, the slot/extension it would pick, the resolved recall
    // settings and ladder. Changes nothing.
    Explanation explain(const std::string &domain, const std::string &caller, const std::string &dial) const;

    // Stored rules (not the generated defaults), ordered by dpid, pr, id.
    std::vector<Rule> rules() const;
    // The rules that apply to a domain in evaluation order (stored + generated defaults).
    std::vector<Rule> effectiveRules(const std::string &domain) const;
    // Validate every rule (regex compiles, attrs parse, action known, values in range, back-references
    // within the group count); on any error nothing changes and the errors name each rule.
    std::vector<RuleError> checkRules(const std::vector<Rule> &rules) const;
    // Replace ALL stored rules with `rules` in one transaction and swap the compiled set atomically.
    std::vector<RuleError> replaceRules(const std::vector<Rule> &rules);
    // readRulesFile + replaceRules.
    std::vector<RuleError> loadRulesFile(const std::string &path);
    // Insert or update one rule (id 0 = assign; the assigned id is written back), then swap.
    std::vector<RuleError> setRule(Rule &rule);
    Status removeRule(std::int64_t id);
    // Re-read the rules from SQLite (edited by another process or by hand) and swap atomically; on error
    // the previous compiled set stays in force.
    std::vector<RuleError> reloadRules();
    // Stored rules that failed to compile when the database was opened (e.g. edited by hand). They are
    // left out of the compiled set (the rest, and the defaults, still work); log these loudly.
    const std::vector<RuleError> &ruleLoadErrors() const;

    // ---- Watchers (appended) ---------------------------------------------------------------------------
    // Opaque records of subscriptions a module resumes after a restart (BLF / call-info watchers). Each is
    // committed before the call returns; put replaces a record with the same id.
    Status putWatcher(const std::string &id, const std::string &blob);
    Status putWatchers(const std::vector<StoredWatcher> &watchers); // one transaction for all
    Status removeWatcher(const std::string &id);                    // an unknown id is not an error
    std::vector<StoredWatcher> watchers() const;                    // ordered by id

    // park-info versions (docs/park-info.md): for each extension of `domain`, the version of the park-info
    // notification about to be sent to it, +1 per call (RFC 4235 §4.1 style: one step per notification, never
    // by events that notify nobody). Committed, in one transaction for all, before it returns; *versions[i]
    // belongs to extensions[i].
    Status nextParkInfoVersions(const std::string &domain, const std::vector<std::string> &extensions,
                                std::vector<std::int64_t> *versions);

private:
    struct Impl;
    explicit Engine(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace parkway::engine
