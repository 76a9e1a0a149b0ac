// The park engine: operations over the SQLite store, events, rules.
#include "parkway/engine/engine.hh"

#include "change_feed.hh"
#include "pg.hh"
#include "rule_set.hh"
#include "schema.hh"
#include "sql_dialect.hh"
#include "store.hh"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace parkway::engine {

namespace {

#define CALL_COLS                                                                                                      \
    "id, domain, extension, lot, slot, parker, parked_uri, parked_display, grp, parked_at, recall_at, "                \
    "recall_stage, state, blob, version, request_key, retriever, recall_answered, recall_seconds, recall_mode, "       \
    "ring_seconds, alternate_wait, retry_seconds, alternate, max_park_seconds, final_recall, owner, owner_gen"

// The key and slot indexes are partial (request_key <> '', lot <> ''): a query repeats that condition so
// SQLite may use them; without it every lookup scanned all the domain's calls.
ParkedCall readCall(const Stmt &s) {
    ParkedCall c;
    c.id = s.i64(0);
    c.domain = s.text(1);
    c.extension = s.text(2);
    c.lot = s.text(3);
    c.slot = s.i32(4);
    c.parker = s.text(5);
    c.parkedUri = s.text(6);
    c.parkedDisplay = s.text(7);
    c.group = s.text(8);
    c.parkedAt = s.i64(9);
    c.recallAt = s.i64(10);
    c.recallStage = s.i32(11);
    c.state = parseCallState(s.text(12)).value_or(CallState::Parked);
    c.blob = s.blob(13);
    c.version = s.i64(14);
    c.requestKey = s.text(15);
    c.retriever = s.text(16);
    c.recallAnswered = s.i32(17) != 0;
    c.recall.recallSeconds = s.i32(18);
    c.recall.mode = parseRecallMode(s.text(19)).value_or(RecallMode::Parker);
    c.recall.ringSeconds = s.i32(20);
    c.recall.alternateWaitSeconds = s.i32(21);
    c.recall.retrySeconds = s.i32(22);
    c.recall.alternate = RecallTarget::parse(s.text(23));
    c.recall.maxParkSeconds = s.i32(24);
    c.finalRecall = s.i32(25) != 0;
    c.owner = s.text(26);
    c.ownerGeneration = s.i64(27);
    return c;
}

// Group/lot overrides are stored as nullable columns, in this order starting at `col`:
// occupied, recall_seconds, recall_mode, ring_seconds, alternate_wait, retry_seconds, alternate.
RecallOverrides readOverrides(const Stmt &s, int col) {
    RecallOverrides o;
    if (!s.isNull(col))
        o.occupied = parseOccupiedPolicy(s.text(col));
    if (!s.isNull(col + 1))
        o.recallSeconds = s.i32(col + 1);
    if (!s.isNull(col + 2))
        o.mode = parseRecallMode(s.text(col + 2));
    if (!s.isNull(col + 3))
        o.ringSeconds = s.i32(col + 3);
    if (!s.isNull(col + 4))
        o.alternateWaitSeconds = s.i32(col + 4);
    if (!s.isNull(col + 5))
        o.retrySeconds = s.i32(col + 5);
    if (!s.isNull(col + 6))
        o.alternate = RecallTarget::parse(s.text(col + 6));
    return o;
}

void bindOverrides(Stmt &s, int col, const RecallOverrides &o) {
    if (o.occupied)
        s.bind(col, toString(*o.occupied));
    else
        s.bindNull(col);
    if (o.recallSeconds)
        s.bind(col + 1, *o.recallSeconds);
    else
        s.bindNull(col + 1);
    if (o.mode)
        s.bind(col + 2, toString(*o.mode));
    else
        s.bindNull(col + 2);
    if (o.ringSeconds)
        s.bind(col + 3, *o.ringSeconds);
    else
        s.bindNull(col + 3);
    if (o.alternateWaitSeconds)
        s.bind(col + 4, *o.alternateWaitSeconds);
    else
        s.bindNull(col + 4);
    if (o.retrySeconds)
        s.bind(col + 5, *o.retrySeconds);
    else
        s.bindNull(col + 5);
    if (o.alternate)
        s.bind(col + 6, o.alternate->toString());
    else
        s.bindNull(col + 6);
}

std::string joinAccess(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &x : v)
        out += (out.empty() ? "" : ",") + x;
    return out;
}

std::vector<std::string> splitAccess(const std::string &s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < s.size()) {
        size_t comma = s.find(',', start);
        if (comma == std::string::npos)
            comma = s.size();
        if (comma > start)
            out.push_back(s.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

bool allowed(const std::vector<std::string> &access, const std::string &user) {
    return access.empty() || std::find(access.begin(), access.end(), user) != access.end();
}

std::string checkAccessList(const char *what, const std::string &name, const std::vector<std::string> &access) {
    for (const auto &a : access)
        if (a.empty() || a.find(',') != std::string::npos)
            return fmt::format("{} {}: access entry '{}' must be a non-empty extension without commas", what, name, a);
    return {};
}

CallResult fail(ErrorCode e, std::string msg) {
    CallResult r;
    r.error = e;
    r.message = std::move(msg);
    return r;
}

CallResult okCall(ParkedCall c) {
    CallResult r;
    r.ok = true;
    r.call = std::move(c);
    return r;
}

CallResult okEmpty() {
    CallResult r;
    r.ok = true;
    return r;
}

} // namespace

struct Engine::Impl {
    Impl(Clock &c, std::string p, OpenOptions o) : clock(c), path(std::move(p)), options(o) {}

    Clock &clock;
    std::string path;
    OpenOptions options;
    Db db;
    std::map<std::string, DomainSettings, std::less<>> domains;
    std::shared_ptr<const RuleSet> rules;
    std::vector<RuleError> ruleLoadErrors;
    std::vector<std::pair<ListenerId, Listener>> listeners;
    ListenerId nextListener = 1;
    std::vector<ChangeEvent> pending;
    // Ownership (registerNode): this node's name ("" = ownership off), address, lease and incarnation, and the
    // fencing generation of every call this engine holds.
    std::string node;
    std::string nodeAddress;
    Millis leaseMs = 0;
    std::int64_t incarnation = 0;
    std::unordered_map<CallId, std::int64_t> held;
    bool owning() const { return !node.empty(); }
    // The fence: may this engine write to `c` as its owner? Always with ownership off.
    bool mine(const ParkedCall &c) const {
        if (node.empty())
            return true;
        if (c.owner != node)
            return false;
        auto it = held.find(c.id);
        return it != held.end() && it->second == c.ownerGeneration;
    }
    CallResult notOwner(const ParkedCall &c) const {
        CallResult r;
        r.error = ErrorCode::NotOwner;
        r.message = c.owner == node
                        ? fmt::format("call {}: this node ({}) no longer holds it (generation {})", c.id, node,
                                      c.ownerGeneration)
                        : fmt::format("call {} is owned by node '{}', not by this node ('{}')", c.id, c.owner, node);
        r.call = c;
        return r;
    }
    RecallStep notOwnerStep(const ParkedCall &c) const {
        CallResult n = notOwner(c);
        RecallStep r;
        r.error = n.error;
        r.message = std::move(n.message);
        r.call = c;
        return r;
    }
    void release(CallId id) {
        if (!held.empty())
            held.erase(id);
    }
    // Put a call this node takes (or takes back) out of `retrieving`: its SIP transaction is gone.
    void releaseClaim(ParkedCall &c) {
        c.state = c.recallStage > 0 ? CallState::Recalling : CallState::Parked;
        c.retriever.clear();
        c.recallAnswered = false;
        saveCall(c);
        emit(EventKind::RetrieveAborted, c);
    }

    // Last member: stopped (and its connection closed) before `db` closes.
    std::unique_ptr<Checkpointer> checkpointer;

    // ---- Change events across nodes (PostgreSQL only; docs/cluster.md "Change events across nodes") ----
    std::string url;                   // the libpq URL as given (with its password: the listening connection needs it)
    std::string channel;               // NOTIFY channel of this store (channelFor(current schema))
    std::int64_t origin = 0;           // this engine instance in change_log.origin and the payloads
    std::int64_t seenSequence = 0;     // events up to this sequence are delivered here (own or caught up)
    std::int64_t configGeneration = 0; // the configuration generation the caches hold
    std::vector<std::pair<ListenerId, SyncListener>> syncListeners;
    std::uint64_t catchUps = 0, remoteEvents = 0, configReloads = 0, resyncs = 0;
    // Stopped first (declared last): its thread calls the owner's wake, never the engine.
    std::unique_ptr<ChangeFeed> feed;
    // Events the engine keeps in change_log for a node that missed NOTIFYs; older ones are deleted (every
    // kPruneEvery events). A node further behind resyncs fully.
    static constexpr std::int64_t kChangeLogKeep = 10000;
    static constexpr std::int64_t kPruneEvery = 500;

    // ---- helpers ----
    Millis now() const { return clock.nowMs(); }

    DomainSettings domainSettings(const std::string &name) const {
        auto it = domains.find(name);
        if (it != domains.end())
            return it->second;
        DomainSettings d; // never configured: defaults under that name
        d.name = name;
        return d;
    }

    bool openExtensions(const std::string &name) const {
        auto it = domains.find(name);
        return it == domains.end() || it->second.openExtensions;
    }

    std::optional<ParkedCall> callById(CallId id) {
        Stmt &s = db.q("SELECT " CALL_COLS " FROM parked_calls WHERE id = ?");
        s.bind(1, id);
        if (!s.step())
            return std::nullopt;
        return readCall(s);
    }

    std::int64_t liveCountInDomain(const std::string &domain) {
        Stmt &s = db.q("SELECT count(*) FROM parked_calls WHERE domain = ?");
        s.bind(1, domain);
        s.step();
        return s.i64(0);
    }

    std::int64_t liveCountOnExt(const std::string &domain, const std::string &ext) {
        Stmt &s = db.q("SELECT count(*) FROM parked_calls WHERE domain = ? AND extension = ?");
        s.bind(1, domain).bind(2, ext);
        s.step();
        return s.i64(0);
    }

    bool slotTaken(const std::string &domain, const std::string &lot, int slot) {
        Stmt &s = db.q("SELECT 1 FROM parked_calls WHERE domain = ? AND lot = ? AND slot = ? AND lot <> ''");
        s.bind(1, domain).bind(2, lot).bind(3, slot);
        return s.step();
    }

    bool knownExtension(const std::string &domain, const std::string &ext) {
        if (openExtensions(domain))
            return true;
        Stmt &s = db.q("SELECT 1 FROM extensions WHERE domain = ? AND ext = ?");
        s.bind(1, domain).bind(2, ext);
        return s.step();
    }

    std::optional<Group> loadGroup(const std::string &domain, const std::string &name) {
        Stmt &s = db.q("SELECT notify_parker, occupied, recall_seconds, recall_mode, ring_seconds, alternate_wait, "
                       "retry_seconds, alternate, access FROM call_groups WHERE domain = ? AND name = ?");
        s.bind(1, domain).bind(2, name);
        if (!s.step())
            return std::nullopt;
        Group g;
        g.domain = domain;
        g.name = name;
        g.notifyParker = s.i32(0) != 0;
        g.settings = readOverrides(s, 1);
        g.access = splitAccess(s.text(8));
        Stmt &m = db.q("SELECT ext FROM group_members WHERE domain = ? AND grp = ? ORDER BY position");
        m.bind(1, domain).bind(2, name);
        while (m.step())
            g.members.push_back(m.text(0));
        return g;
    }

    std::optional<std::string> groupNameOf(const std::string &domain, const std::string &user) {
        Stmt &s = db.q("SELECT grp FROM group_members WHERE domain = ? AND ext = ?");
        s.bind(1, domain).bind(2, user);
        if (!s.step())
            return std::nullopt;
        return s.text(0);
    }

    std::optional<Lot> loadLot(const std::string &domain, const std::string &name) {
        Stmt &s = db.q("SELECT first_slot, last_slot, choice, occupied, recall_seconds, recall_mode, ring_seconds, "
                       "alternate_wait, retry_seconds, alternate, access FROM lots WHERE domain = ? AND name = ?");
        s.bind(1, domain).bind(2, name);
        if (!s.step())
            return std::nullopt;
        Lot l;
        l.domain = domain;
        l.name = name;
        l.firstSlot = s.i32(0);
        l.lastSlot = s.i32(1);
        l.choice = parseSlotChoice(s.text(2)).value_or(SlotChoice::First);
        l.settings = readOverrides(s, 3);
        l.access = splitAccess(s.text(10));
        return l;
    }

    std::vector<Target> targetsOf(const ParkedCall &c) {
        std::vector<Target> t;
        if (!c.extension.empty())
            t.push_back({TargetKind::Extension, c.domain, c.extension, 0});
        if (!c.lot.empty()) {
            t.push_back({TargetKind::Slot, c.domain, c.lot, c.slot});
            t.push_back({TargetKind::Lot, c.domain, c.lot, 0});
        }
        if (!c.group.empty())
            t.push_back({TargetKind::Group, c.domain, c.group, 0});
        return t;
    }

    std::int64_t bumpTarget(const Target &t) {
        Stmt &s =
            db.q("INSERT INTO target_versions (domain, target, version) VALUES (?, ?, 1) "
                 "ON CONFLICT (domain, target) DO UPDATE SET version = target_versions.version + 1 RETURNING version");
        s.bind(1, t.domain).bind(2, t.key());
        s.step();
        std::int64_t v = s.i64(0);
        s.run();
        return v;
    }

    std::int64_t versionOf(const Target &t) {
        Stmt &s = db.q("SELECT version FROM target_versions WHERE domain = ? AND target = ?");
        s.bind(1, t.domain).bind(2, t.key());
        return s.step() ? s.i64(0) : 0;
    }

    // Record an event inside the current transaction (versions and sequence are bumped now, in the same
    // commit); it is delivered after the commit by flush().
    void emit(EventKind kind, const ParkedCall &call, const std::optional<ParkedCall> &previous = std::nullopt) {
        ChangeEvent e;
        e.kind = kind;
        e.at = now();
        e.call = call;
        e.previous = previous;
        std::vector<Target> ts = targetsOf(call);
        if (previous)
            for (const Target &t : targetsOf(*previous))
                if (std::find(ts.begin(), ts.end(), t) == ts.end())
                    ts.push_back(t);
        for (const Target &t : ts)
            e.targets.push_back({t, bumpTarget(t)});
        if (db.postgres()) {
            logEvent(e);
        } else {
            Stmt &s = db.q("UPDATE meta SET value = value + 1 WHERE key = 'event_sequence' RETURNING value");
            s.step();
            e.sequence = s.i64(0);
            s.run();
        }
        pending.push_back(std::move(e));
    }

    // PostgreSQL: the next sequence, the event in change_log and the NOTIFY, in one round trip inside the
    // write transaction (the server delivers the NOTIFY only if it commits, docs/cluster.md).
    void logEvent(ChangeEvent &e) {
        Stmt &s = db.q(
            "WITH s AS (UPDATE meta SET value = value + 1 WHERE key = 'event_sequence' RETURNING value), "
            "l AS (INSERT INTO change_log (sequence, origin, body) SELECT value, CAST(? AS BIGINT), CAST(? AS TEXT) "
            "FROM s) SELECT value, pg_notify(CAST(? AS TEXT), 'event ' || value || ' ' || CAST(? AS TEXT) || "
            "' ' || CAST(? AS TEXT)) FROM s");
        s.bind(1, origin).bind(2, encodeEvent(e)).bind(3, channel).bind(4, std::to_string(origin));
        s.bind(5, eventPayloadTail(e));
        s.step();
        e.sequence = s.i64(0);
        s.run();
        if (e.sequence % kPruneEvery == 0) {
            Stmt &d = db.q("DELETE FROM change_log WHERE sequence <= ?");
            d.bind(1, e.sequence - kChangeLogKeep);
            d.run();
        }
    }

    // PostgreSQL: a configuration change (inside its write transaction): the generation moves and the other
    // nodes are told. Returns the new generation (0 on SQLite, where nothing is done). After the commit,
    // configCommitted(generation).
    std::int64_t configChange(const char *what, const std::string &domain, const std::string &name) {
        if (!db.postgres())
            return 0;
        Stmt &s = db.q(
            "WITH g AS (UPDATE meta SET value = value + 1 WHERE key = 'config_generation' RETURNING "
            "value) SELECT value, pg_notify(CAST(? AS TEXT), 'config ' || value || ' ' || CAST(? AS TEXT) || ' ' || "
            "CAST(? AS TEXT)) FROM g");
        std::string tail = fmt::format("{} {} {}", what, domain.empty() ? "-" : domain, name.empty() ? "-" : name);
        if (tail.size() > kMaxPayload - 64)
            tail.resize(kMaxPayload - 64);
        s.bind(1, channel).bind(2, std::to_string(origin)).bind(3, tail);
        std::int64_t g = s.step() ? s.i64(0) : 0;
        s.run();
        return g;
    }
    // A configuration write that is a single statement: on PostgreSQL inside a transaction that tells the other
    // nodes on commit; on SQLite the statement as it was (autocommit).
    struct ConfigTxn {
        Impl &impl;
        std::optional<Txn> txn;
        explicit ConfigTxn(Impl &i) : impl(i) {
            if (impl.db.postgres())
                txn.emplace(impl.db);
        }
        void commit(const char *what, const std::string &domain, const std::string &name) {
            if (!txn)
                return;
            std::int64_t g = impl.configChange(what, domain, name);
            txn->commit();
            impl.configCommitted(g);
        }
    };

    // Our own change is in our caches already; when no other node's change came between, the caches are at
    // that generation (else catchUp reloads them).
    void configCommitted(std::int64_t g) {
        if (g != 0 && g == configGeneration + 1)
            configGeneration = g;
    }

    void flush() {
        std::vector<ChangeEvent> events;
        events.swap(pending);
        // Our own events are delivered here; with no other node's event between them and the last one seen,
        // catchUp need not read them back (it skips them anyway: their origin is ours).
        for (const ChangeEvent &e : events)
            if (e.sequence == seenSequence + 1)
                seenSequence = e.sequence;
        deliver(events);
    }

    void deliver(const std::vector<ChangeEvent> &events) {
        auto ls = listeners; // a listener may add/remove listeners
        for (const ChangeEvent &e : events)
            for (auto &[id, l] : ls) {
                try {
                    l(e);
                } catch (...) {
                    // A listener cannot undo a committed change; its failure is its own.
                }
            }
    }

    // Run `body` inside BEGIN IMMEDIATE .. COMMIT; storage failures become ErrorCode::Storage; events are
    // delivered only when the body succeeded and the commit went through.
    // On PostgreSQL a transaction that lost a conflict to another node's (serialization failure) did
    // nothing and runs again, the body included: it reads the state afresh (retrying()).
    template <class R, class F> R transact(F &&body) {
        R r;
        try {
            r = retrying([&] {
                pending.clear();
                Txn txn(db);
                R out = body();
                if (out.ok)
                    txn.commit();
                return out;
            });
        } catch (const StorageError &e) {
            pending.clear();
            R f;
            f.ok = false;
            f.error = ErrorCode::Storage;
            f.message = fmt::format("database {}: {}", path, e.what());
            return f;
        }
        if (r.ok)
            flush();
        else
            pending.clear();
        return r;
    }

    // Runs `attempt` (one whole transaction) again while it fails with a retryable StorageError (only
    // PostgreSQL raises those), after a short random pause that grows with each try so two nodes that keep
    // colliding fall out of step. After kMaxAttempts the error stands.
    static constexpr int kMaxAttempts = 30;
    template <class F> auto retrying(F &&attempt) -> decltype(attempt()) {
        for (int n = 1;; ++n) {
            try {
                return attempt();
            } catch (const StorageError &e) {
                if (!e.retry)
                    throw;
                if (n >= kMaxAttempts)
                    throw StorageError(fmt::format("{} (gave up after {} attempts)", e.what(), n));
                ++retries;
                std::uniform_int_distribution<int> pause(0, 100 * std::min(n, 10));
                std::this_thread::sleep_for(std::chrono::microseconds(pause(rng)));
            }
        }
    }
    std::minstd_rand rng{std::random_device{}()};
    std::uint64_t retries = 0;

    void insertCall(ParkedCall &c) {
#define PW_INSERT_CALL                                                                                                 \
    "INSERT INTO parked_calls (domain, extension, lot, slot, parker, parked_uri, parked_display, grp, parked_at, "     \
    "recall_at, recall_stage, state, blob, version, request_key, retriever, recall_answered, recall_seconds, "         \
    "recall_mode, ring_seconds, alternate_wait, retry_seconds, alternate, max_park_seconds, owner) "                   \
    "VALUES (?,?,?,?,?,?,?,?,?,?,0,'parked',?,1,?,'',0,?,?,?,?,?,?,?,?)"
        // The new id: RETURNING on PostgreSQL; on SQLite the connection's last rowid, cheaper on this hot path
        // than RETURNING (which SQLite runs to completion into a buffer before the first row).
        const bool pg = db.postgres();
        Stmt &s = pg ? db.q(PW_INSERT_CALL " RETURNING id") : db.q(PW_INSERT_CALL);
#undef PW_INSERT_CALL
        s.bind(1, c.domain).bind(2, c.extension).bind(3, c.lot).bind(4, c.slot).bind(5, c.parker);
        s.bind(6, c.parkedUri).bind(7, c.parkedDisplay).bind(8, c.group).bind(9, c.parkedAt).bind(10, c.recallAt);
        s.bindBlob(11, c.blob).bind(12, c.requestKey);
        s.bind(13, c.recall.recallSeconds).bind(14, toString(c.recall.mode)).bind(15, c.recall.ringSeconds);
        s.bind(16, c.recall.alternateWaitSeconds).bind(17, c.recall.retrySeconds);
        s.bind(18, c.recall.alternate ? c.recall.alternate->toString() : std::string());
        s.bind(19, c.recall.maxParkSeconds).bind(20, node);
        c.owner = node;
        c.ownerGeneration = 0;
        if (pg) {
            s.step();
            c.id = s.i64(0);
            s.run();
        } else {
            s.run();
            c.id = sqlite3_last_insert_rowid(db.handle());
        }
        c.version = 1;
        c.state = CallState::Parked;
        if (owning())
            held[c.id] = 0;
    }

    // Persist the mutable fields of a call and bump its version.
    void saveCall(ParkedCall &c) {
        c.version += 1;
        Stmt &s = db.q("UPDATE parked_calls SET extension = ?, lot = ?, slot = ?, grp = ?, recall_at = ?, "
                       "recall_stage = ?, state = ?, version = ?, retriever = ?, recall_answered = ?, final_recall = ? "
                       "WHERE id = ?");
        s.bind(1, c.extension).bind(2, c.lot).bind(3, c.slot).bind(4, c.group).bind(5, c.recallAt);
        s.bind(6, c.recallStage).bind(7, toString(c.state)).bind(8, c.version).bind(9, c.retriever);
        s.bind(10, c.recallAnswered ? 1 : 0).bind(11, c.finalRecall ? 1 : 0).bind(12, c.id);
        s.run();
    }

    void deleteCall(ParkedCall &c) {
        Stmt &s = db.q("DELETE FROM parked_calls WHERE id = ?");
        s.bind(1, c.id);
        s.run();
        c.version += 1;
        c.state = CallState::Gone;
    }

    // Pick a slot of `lot`: `want` if given (must be free; with `orNext` a taken one gives the next free slot
    // after it, wrapping inside the lot), else by the lot's choice. Updates last_used.
    std::pair<int, CallResult> pickSlot(const std::string &domain, const Lot &lot, int want, CallId ignore = 0,
                                        bool orNext = false) {
        (void)ignore;
        if (want != 0) {
            if (want < lot.firstSlot || want > lot.lastSlot)
                return {0, fail(ErrorCode::BadSlot, fmt::format("slot {} is outside lot {} ({}-{})", want, lot.name,
                                                                lot.firstSlot, lot.lastSlot))};
            if (!slotTaken(domain, lot.name, want))
                return {want, okEmpty()};
            if (!orNext)
                return {0, fail(ErrorCode::Occupied, fmt::format("slot {} of lot {} is occupied", want, lot.name))};
            int n = lot.lastSlot - lot.firstSlot + 1;
            for (int i = 1; i < n; ++i) {
                int slot = lot.firstSlot + (want - lot.firstSlot + i) % n;
                if (!slotTaken(domain, lot.name, slot))
                    return {slot, okEmpty()};
            }
            return {0, fail(ErrorCode::LotFull,
                            fmt::format("lot {} is full ({}-{})", lot.name, lot.firstSlot, lot.lastSlot))};
        }
        std::set<int> taken;
        Stmt &s = db.q("SELECT slot FROM parked_calls WHERE domain = ? AND lot = ? AND lot <> ''");
        s.bind(1, domain).bind(2, lot.name);
        while (s.step())
            taken.insert(s.i32(0));
        int start = lot.firstSlot;
        if (lot.choice == SlotChoice::Next) {
            Stmt &l = db.q("SELECT last_used FROM lots WHERE domain = ? AND name = ?");
            l.bind(1, domain).bind(2, lot.name);
            int last = l.step() ? l.i32(0) : 0;
            if (last >= lot.firstSlot && last < lot.lastSlot)
                start = last + 1;
        }
        int n = lot.lastSlot - lot.firstSlot + 1;
        for (int i = 0; i < n; ++i) {
            int slot = lot.firstSlot + (start - lot.firstSlot + i) % n;
            if (!taken.count(slot))
                return {slot, okEmpty()};
        }
        return {0,
                fail(ErrorCode::LotFull, fmt::format("lot {} is full ({}-{})", lot.name, lot.firstSlot, lot.lastSlot))};
    }

    void markSlotUsed(const std::string &domain, const std::string &lot, int slot) {
        Stmt &s = db.q("UPDATE lots SET last_used = ? WHERE domain = ? AND name = ?");
        s.bind(1, slot).bind(2, domain).bind(3, lot);
        s.run();
    }

    // Where a park would land and with which settings; shared by park() and explain().
    struct Plan {
        CallResult error = okEmpty();
        std::string extension, lot, group;
        int slot = 0;
        RecallSettings recall;
        OccupiedPolicy occupied = OccupiedPolicy::Stack;
    };

    Plan planPark(const ParkRequest &req) {
        Plan p;
        const DomainSettings d = domainSettings(req.domain);
        p.recall = d.recall;
        p.occupied = d.occupied;
        auto failWith = [&](ErrorCode e, std::string m) {
            p.error = fail(e, std::move(m));
            return p;
        };
        if (d.maxParked > 0) {
            std::int64_t live = liveCountInDomain(req.domain);
            if (live >= d.maxParked)
                return failWith(ErrorCode::DomainFull, fmt::format("domain {} already holds {} parked calls "
                                                                   "(max_parked)",
                                                                   req.domain, live));
        }
        auto applyRule = [&] {
            req.overrides.applyTo(p.recall);
            if (req.overrides.occupied)
                p.occupied = *req.overrides.occupied;
        };
        switch (req.how) {
        case ParkHow::Own:
        case ParkHow::Directed: {
            std::string ext = req.how == ParkHow::Own ? req.parker : req.extension;
            if (ext.empty())
                return failWith(ErrorCode::BadRequest, req.how == ParkHow::Own ? "own-extension park needs the parker"
                                                                               : "directed park needs an extension");
            if (!knownExtension(req.domain, ext))
                return failWith(ErrorCode::UnknownExtension,
                                fmt::format("extension {} is not known in domain {}", ext, req.domain));
            applyRule();
            std::int64_t here = liveCountOnExt(req.domain, ext);
            if (p.occupied == OccupiedPolicy::Reject && here > 0)
                return failWith(ErrorCode::Occupied, fmt::format("extension {} already has a parked call", ext));
            if (d.maxParkedPerExtension > 0 && here >= d.maxParkedPerExtension)
                return failWith(ErrorCode::ExtensionFull, fmt::format("extension {} already holds {} parked calls "
                                                                      "(max_parked_per_extension)",
                                                                      ext, here));
            p.extension = ext;
            break;
        }
        case ParkHow::Group: {
            if (req.parker.empty())
                return failWith(ErrorCode::BadRequest, "group park needs the parker");
            auto gname = groupNameOf(req.domain, req.parker);
            if (!gname)
                return failWith(ErrorCode::NoGroup,
                                fmt::format("{} is in no call-park group of domain {}", req.parker, req.domain));
            auto g = loadGroup(req.domain, *gname);
            if (!g || g->members.empty())
                return failWith(ErrorCode::NoGroup, fmt::format("call-park group {} has no members", *gname));
            g->settings.applyTo(p.recall);
            if (g->settings.occupied)
                p.occupied = *g->settings.occupied;
            applyRule();
            // docs/engine.md "Operations": hunt in configured order, always from the first; first member with no call,
            // or with stacking the first member with the fewest calls.
            std::int64_t best = -1;
            for (const std::string &m : g->members) {
                std::int64_t n = liveCountOnExt(req.domain, m);
                if (d.maxParkedPerExtension > 0 && n >= d.maxParkedPerExtension)
                    continue; // at its cap
                if (best < 0 || n < best) {
                    best = n;
                    p.extension = m;
                }
                if (n == 0)
                    break;
            }
            if (best < 0) // every member is at max_parked_per_extension
                return failWith(ErrorCode::GroupFull, fmt::format("every member of call-park group {} holds "
                                                                  "max_parked_per_extension calls",
                                                                  *gname));
            if (best > 0 && p.occupied == OccupiedPolicy::Reject) {
                p.extension.clear();
                return failWith(ErrorCode::GroupFull,
                                fmt::format("every member of call-park group {} has a parked call", *gname));
            }
            p.group = *gname;
            break;
        }
        case ParkHow::Lot: {
            if (req.lot.empty())
                return failWith(ErrorCode::BadRequest, "lot park needs a lot");
            auto lot = loadLot(req.domain, req.lot);
            if (!lot)
                return failWith(ErrorCode::UnknownLot,
                                fmt::format("lot {} does not exist in domain {}", req.lot, req.domain));
            if (!allowed(lot->access, req.parker))
                return failWith(ErrorCode::Forbidden, fmt::format("{} may not park into lot {}",
                                                                  req.parker.empty() ? "?" : req.parker, lot->name));
            lot->settings.applyTo(p.recall);
            if (lot->settings.occupied)
                p.occupied = *lot->settings.occupied;
            applyRule();
            auto [slot, r] = pickSlot(req.domain, *lot, req.slot, 0, req.slotOrNext);
            if (!r.ok) {
                p.error = r;
                return p;
            }
            p.lot = lot->name;
            p.slot = slot;
            break;
        }
        }
        // A ladder that needs an alternate but has none rings the parker only (documented in docs/engine.md).
        if (p.recall.mode != RecallMode::Parker && !p.recall.alternate)
            p.recall.mode = RecallMode::Parker;
        p.recall.recallSeconds = std::clamp(p.recall.recallSeconds, 1, 3600);
        // The first recall comes no later than the maximum park time (it is then the final one).
        if (p.recall.maxParkSeconds > 0)
            p.recall.recallSeconds = std::min(p.recall.recallSeconds, p.recall.maxParkSeconds);
        return p;
    }

    std::optional<ParkedCall> byKey(const std::string &domain, const std::string &key) {
        Stmt &s =
            db.q("SELECT " CALL_COLS " FROM parked_calls WHERE domain = ? AND request_key = ? AND request_key <> ''");
        s.bind(1, domain).bind(2, key);
        if (!s.step())
            return std::nullopt;
        return readCall(s);
    }

    // The call a retrieve request designates (not yet claimed), or the error.
    CallResult findForRetrieve(const RetrieveRequest &req) {
        if (req.domain.empty())
            return fail(ErrorCode::BadRequest, "retrieve needs the retriever's domain");
        std::vector<ParkedCall> calls;
        switch (req.by) {
        case RetrieveRequest::By::Own:
        case RetrieveRequest::By::Extension: {
            const std::string &ext = req.by == RetrieveRequest::By::Own ? req.retriever : req.extension;
            if (ext.empty())
                return fail(ErrorCode::BadRequest, "retrieve needs an extension");
            Stmt &s = db.q("SELECT " CALL_COLS " FROM parked_calls WHERE domain = ? AND extension = ? "
                           "ORDER BY parked_at, id");
            s.bind(1, req.domain).bind(2, ext);
            while (s.step())
                calls.push_back(readCall(s));
            if (calls.empty())
                return fail(ErrorCode::NotFound, fmt::format("nothing is parked on {}", ext));
            break;
        }
        case RetrieveRequest::By::Slot: {
            Stmt &s =
                db.q("SELECT " CALL_COLS " FROM parked_calls WHERE domain = ? AND lot = ? AND slot = ? AND lot <> ''");
            s.bind(1, req.domain).bind(2, req.lot).bind(3, req.slot);
            while (s.step())
                calls.push_back(readCall(s));
            if (calls.empty())
                return fail(ErrorCode::NotFound,
                            fmt::format("nothing is parked in slot {} of lot {}", req.slot, req.lot));
            break;
        }
        case RetrieveRequest::By::Id: {
            auto c = callById(req.id);
            if (!c)
                return fail(ErrorCode::NotFound, fmt::format("no parked call {}", req.id));
            if (c->domain != req.domain)
                return fail(ErrorCode::Forbidden, fmt::format("call {} belongs to another domain", req.id));
            calls.push_back(*c);
            break;
        }
        }
        // Optional access lists (docs/engine.md "Operations"): calls the retriever may not take are skipped.
        std::vector<ParkedCall> mayTake;
        for (const ParkedCall &c : calls)
            if (mayRetrieve(c, req.retriever))
                mayTake.push_back(c);
        if (mayTake.empty())
            return fail(ErrorCode::Forbidden, fmt::format("{} may not retrieve that call (access list)",
                                                          req.retriever.empty() ? "?" : req.retriever));
        for (const ParkedCall &c : mayTake)
            if (c.state == CallState::Parked || c.state == CallState::Recalling)
                return mine(c) ? okCall(c) : notOwner(c); // oldest first; another node's: its owner retrieves it
        CallResult r = fail(ErrorCode::Busy, "the parked call is already being retrieved");
        r.call = mayTake.front();
        return r;
    }

    bool mayRetrieve(const ParkedCall &c, const std::string &user) {
        if (!c.lot.empty()) {
            auto lot = loadLot(c.domain, c.lot);
            if (lot && !allowed(lot->access, user))
                return false;
        }
        if (!c.group.empty()) {
            auto g = loadGroup(c.domain, c.group);
            if (g && !allowed(g->access, user))
                return false;
        }
        return true;
    }

    // Whom a recall attempt rings.
    RecallStep describe(const ParkedCall &c, int attempt) {
        RecallStep st;
        st.ok = true;
        st.call = c;
        st.attempt = attempt;
        auto ladder = recallLadder(c.recall);
        size_t idx = std::min(static_cast<size_t>(std::max(attempt, 1) - 1), ladder.size() - 1);
        const LadderRung &rung = ladder[idx];
        st.target = rung.target;
        st.ringSeconds = rung.ringSeconds;
        st.ring = ringList(c, rung.target);
        const LadderRung &next = ladder[std::min(idx + 1, ladder.size() - 1)];
        st.nextAttempt = attempt + 1;
        st.nextTarget = next.target;
        st.nextDelaySeconds = rung.delayAfterSeconds;
        return st;
    }

    std::vector<std::string> ringList(const ParkedCall &c, const RecallTarget &t) {
        switch (t.kind) {
        case RecallTarget::Kind::Parker:
            if (!c.parker.empty())
                return {c.parker};
            if (!c.extension.empty())
                return {c.extension}; // parker unknown: ring the parked-on extension
            if (c.recall.alternate && c.recall.alternate->kind != RecallTarget::Kind::Parker)
                return ringList(c, *c.recall.alternate);
            return {};
        case RecallTarget::Kind::Extension:
        case RecallTarget::Kind::Number:
            return {t.value};
        case RecallTarget::Kind::Group: {
            auto g = loadGroup(c.domain, t.value);
            return g ? g->members : std::vector<std::string>{};
        }
        }
        return {};
    }

    void loadDomains() {
        domains.clear();
        Stmt &s = db.q("SELECT name, park_code, group_park_code, retrieve_code, occupied, recall_seconds, recall_mode, "
                       "ring_seconds, alternate_wait, retry_seconds, alternate, open_extensions, dpid, default_rules, "
                       "max_parked, max_parked_per_extension, max_park_seconds FROM domains");
        while (s.step()) {
            DomainSettings d;
            d.name = s.text(0);
            d.parkCode = s.text(1);
            d.groupParkCode = s.text(2);
            d.retrieveCode = s.text(3);
            d.occupied = parseOccupiedPolicy(s.text(4)).value_or(OccupiedPolicy::Stack);
            d.recall.recallSeconds = s.i32(5);
            d.recall.mode = parseRecallMode(s.text(6)).value_or(RecallMode::Parker);
            d.recall.ringSeconds = s.i32(7);
            d.recall.alternateWaitSeconds = s.i32(8);
            d.recall.retrySeconds = s.i32(9);
            d.recall.alternate = RecallTarget::parse(s.text(10));
            d.openExtensions = s.i32(11) != 0;
            d.dpid = s.i32(12);
            d.defaultRules = s.i32(13) != 0;
            d.maxParked = s.i32(14);
            d.maxParkedPerExtension = s.i32(15);
            d.recall.maxParkSeconds = s.i32(16);
            domains[d.name] = d;
        }
    }

    std::vector<Rule> loadStoredRules() {
        std::vector<Rule> out;
        Stmt &s = db.q("SELECT id, domain, dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs, "
                       "disabled, continue FROM rules ORDER BY dpid, pr, id");
        while (s.step()) {
            Rule r;
            r.id = s.i64(0);
            r.domain = s.text(1);
            r.dpid = s.i32(2);
            r.pr = s.i32(3);
            r.matchOp = static_cast<MatchOp>(s.i32(4));
            r.matchExp = s.text(5);
            r.matchLen = s.i32(6);
            r.substExp = s.text(7);
            r.replExp = s.text(8);
            r.attrs = s.text(9);
            r.disabled = s.i32(10) != 0;
            r.cont = s.i32(11) != 0;
            out.push_back(std::move(r));
        }
        return out;
    }

    std::vector<DomainSettings> domainList() const {
        std::vector<DomainSettings> v;
        for (const auto &[n, d] : domains)
            v.push_back(d);
        return v;
    }

    // Rebuild the compiled rule set from `stored` + current domains; swap only on success.
    std::vector<RuleError> rebuildRules(const std::vector<Rule> &stored) {
        std::vector<RuleError> errors;
        auto set = buildRuleSet(stored, domainList(), errors);
        if (set)
            std::atomic_store(&rules, std::shared_ptr<const RuleSet>(std::move(set)));
        return errors;
    }

    void insertRule(Rule &r) {
        // id 0: the database assigns one (the column's default; PostgreSQL refuses an explicit NULL there).
        const bool explicitId = r.id > 0;
        Stmt &s = explicitId ? db.q("INSERT INTO rules (id, domain, dpid, pr, match_op, match_exp, match_len, "
                                    "subst_exp, repl_exp, attrs, disabled, continue) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                                    "RETURNING id")
                             : db.q("INSERT INTO rules (domain, dpid, pr, match_op, match_exp, match_len, subst_exp, "
                                    "repl_exp, attrs, disabled, continue) VALUES (?,?,?,?,?,?,?,?,?,?,?) RETURNING id");
        const int k = explicitId ? 1 : 0; // the first column after id
        if (explicitId)
            s.bind(1, r.id);
        s.bind(k + 1, r.domain).bind(k + 2, r.dpid).bind(k + 3, r.pr).bind(k + 4, static_cast<int>(r.matchOp));
        s.bind(k + 5, r.matchExp).bind(k + 6, r.matchLen).bind(k + 7, r.substExp).bind(k + 8, r.replExp);
        s.bind(k + 9, r.attrs).bind(k + 10, r.disabled ? 1 : 0).bind(k + 11, r.cont ? 1 : 0);
        s.step();
        r.id = s.i64(0);
        s.run();
        // PostgreSQL: an identity column's sequence does not see ids given explicitly; move it past them so
        // the next assigned id is free (SQLite's AUTOINCREMENT does this by itself).
        if (explicitId && db.postgres())
            db.q("SELECT setval(pg_get_serial_sequence('rules', 'id'), (SELECT max(id) FROM rules))").run();
    }
};

// ---------------------------------------------------------------------------------------------------------
// Open

namespace {

// PostgreSQL keeps the schema version in a table (there is no PRAGMA user_version). One row.
constexpr const char *kPgVersionTable = "parkway_schema";
// Held (transaction-scoped) while a node checks and migrates the schema, so two nodes starting together do
// not both run a step. An arbitrary constant: 'P','W' + 1.
constexpr const char *kPgMigrationLock = "SELECT pg_advisory_xact_lock(2087001)";

// Connects, checks the schema version and applies the missing steps of schema/*.sql (translated,
// sql_dialect.hh), all in one transaction: PostgreSQL's DDL is transactional, so a failed step leaves the
// database as it was. `die` makes the error naming the (password-less) URL.
template <class Die> void openPostgres(Db &db, const std::string &url, const OpenOptions &options, Die &&die) {
    std::string e = db.openPostgres(url);
    if (!e.empty())
        throw die("cannot connect: " + e);
    // A writer waits for the writer lock (store.hh Txn) at most busyTimeoutMs, as a SQLite writer waits for the
    // file's; and a session that stalls inside a transaction (a node frozen mid-operation) is ended by the
    // server after 10 s, releasing the lock for the other nodes.
    e = db.pg()->session(fmt::format("SET lock_timeout = {}; SET idle_in_transaction_session_timeout = 10000",
                                     std::max(options.busyTimeoutMs, 1)));
    if (!e.empty())
        throw die(e);
    const int latest = migrations().empty() ? 0 : migrations().back().version;
    try {
        db.exec("BEGIN");
        db.exec(kPgMigrationLock);
        Stmt &has = db.q("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
                         "AND table_name = 'parkway_schema'");
        has.step();
        int version = 0;
        if (has.i64(0) == 0) {
            Stmt &n = db.q("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()");
            n.step();
            if (n.i64(0) > 0)
                throw die(fmt::format("has tables but no parkway schema version (no table {} in the connection's "
                                      "schema); not a parkway database",
                                      kPgVersionTable));
            db.exec("CREATE TABLE parkway_schema (version INTEGER NOT NULL)");
            db.exec("INSERT INTO parkway_schema (version) VALUES (0)");
        } else {
            Stmt &v = db.q("SELECT version FROM parkway_schema");
            if (v.step())
                version = v.i32(0);
        }
        if (version > latest)
            throw die(fmt::format("schema version {} is newer than this engine supports ({}); upgrade parkway", version,
                                  latest));
        for (const Migration &m : migrations()) {
            if (m.version <= version)
                continue;
            std::string sql = schemaForPostgres(m.sql);
            std::string err = db.execError(sql.c_str());
            if (!err.empty())
                throw die(fmt::format("migration {} failed: {}", m.name, err));
            Stmt &set = db.q("UPDATE parkway_schema SET version = ?");
            set.bind(1, m.version);
            set.run();
        }
        db.exec("COMMIT");
    } catch (const StorageError &err) {
        db.execError("ROLLBACK");
        throw die(err.what());
    } catch (...) {
        db.execError("ROLLBACK");
        throw;
    }
}

// Opens the SQLite file, checks it (not a database, corrupt, newer, foreign) and migrates it by PRAGMA
// user_version, one transaction per step.
template <class Die> void openSqlite(Db &db, const std::string &path, const OpenOptions &options, Die &&die) {
    std::string e = db.open(path, options.busyTimeoutMs);
    if (!e.empty())
        throw die("cannot open: " + e);
    int userVersion = 0;
    try {
        Stmt s(db.handle(), "PRAGMA user_version");
        s.step();
        userVersion = s.i32(0);
    } catch (const StorageError &err) {
        std::string why = err.what();
        if (why.find("not a database") != std::string::npos || why.find("malformed") != std::string::npos)
            throw die(fmt::format("not a usable SQLite database ({}); refusing to reset it", why));
        throw die(fmt::format("cannot read the schema version ({})", why)); // e.g. locked by another process
    }
    const int latest = migrations().empty() ? 0 : migrations().back().version;
    if (userVersion > latest)
        throw die(fmt::format("schema version {} is newer than this engine supports ({}); upgrade parkway", userVersion,
                              latest));
    if (userVersion == 0) {
        Stmt s(db.handle(), "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
        s.step();
        if (s.i64(0) > 0)
            throw die("has tables but no parkway schema version (PRAGMA user_version = 0); not a parkway database");
    }
    if (path != ":memory:" && path.rfind("file::memory:", 0) != 0) {
        e = db.execError("PRAGMA journal_mode = WAL");
        if (!e.empty())
            throw die("cannot enable WAL: " + e);
    }
    e = db.execError(options.fsyncEveryCommit ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
    if (!e.empty())
        throw die(e);
    if (options.integrityCheck && userVersion > 0) {
        try {
            Stmt s(db.handle(), "PRAGMA quick_check");
            std::string problems;
            while (s.step()) {
                std::string line = s.text(0);
                if (line != "ok")
                    problems += (problems.empty() ? "" : "; ") + line;
            }
            if (!problems.empty())
                throw die("corrupt (quick_check: " + problems + ")");
        } catch (const StorageError &err) {
            throw die(fmt::format("corrupt ({})", err.what()));
        }
    }
    for (const Migration &m : migrations()) {
        if (m.version <= userVersion)
            continue;
        e = db.execError("BEGIN IMMEDIATE");
        if (e.empty())
            e = db.execError(m.sql);
        if (e.empty())
            e = db.execError(fmt::format("PRAGMA user_version = {}", m.version).c_str());
        if (e.empty())
            e = db.execError("COMMIT");
        if (!e.empty()) {
            db.execError("ROLLBACK");
            throw die(fmt::format("migration {} failed: {}", m.name, e));
        }
    }
}

} // namespace

std::unique_ptr<Engine> Engine::open(const std::string &path, Clock &clock, OpenOptions options) {
    const bool pg = isPostgresUrl(path);
    // Errors and path() name a PostgreSQL URL without its password.
    auto impl = std::make_unique<Impl>(clock, pg ? redactUrl(path) : path, options);
    const std::string &shown = impl->path;
    auto die = [&](const std::string &what) -> std::runtime_error {
        return std::runtime_error(fmt::format("park engine database '{}': {}", shown, what));
    };
    if (pg) {
        openPostgres(impl->db, path, options, die);
        // From now on a statement's answer must come within the writer-lock wait (lock_timeout, the longest a
        // healthy server makes us wait) plus 2 s, or the connection is closed (docs/cluster.md "Database outage").
        impl->db.pg()->setAnswerTimeout(std::max(options.busyTimeoutMs, 1) + 2000);
    } else
        openSqlite(impl->db, path, options, die);
    Db &db = impl->db;
    try {
        // Several live nodes on one PostgreSQL database: each opens with releaseStaleClaims = false, or it would
        // release the others' claims in flight (until ownership and leases exist, docs/cluster.md).
        if (options.releaseStaleClaims)
            db.exec("UPDATE parked_calls SET state = CASE WHEN recall_stage > 0 THEN 'recalling' ELSE 'parked' END, "
                    "retriever = '', recall_answered = 0, version = version + 1 WHERE state = 'retrieving'");
        impl->loadDomains();
        auto stored = impl->loadStoredRules();
        std::vector<RuleError> errors;
        auto set = buildRuleSet(stored, impl->domainList(), errors);
        if (!set) {
            // Leave the broken rules out so parking keeps working; report them (ruleLoadErrors()).
            impl->ruleLoadErrors = errors;
            std::set<std::int64_t> bad;
            for (const auto &re : errors)
                bad.insert(re.ruleId);
            std::vector<Rule> good;
            for (const auto &r : stored)
                if (!bad.count(r.id))
                    good.push_back(r);
            std::vector<RuleError> again;
            set = buildRuleSet(good, impl->domainList(), again);
            if (!set)
                throw die("cannot compile rules: " + (again.empty() ? std::string("?") : again.front().message));
        }
        std::atomic_store(&impl->rules, std::shared_ptr<const RuleSet>(set));
    } catch (const StorageError &err) {
        throw die(err.what());
    }
    if (pg) {
        // Change events across nodes: where this engine starts reading other nodes' changes (catchUp).
        try {
            impl->url = path;
            Stmt &sc = db.q("SELECT current_schema()");
            sc.step();
            impl->channel = channelFor(sc.text(0));
            sc.run();
            Stmt &m = db.q("SELECT key, value FROM meta WHERE key IN ('event_sequence', 'config_generation')");
            while (m.step())
                (m.text(0) == "event_sequence" ? impl->seenSequence : impl->configGeneration) = m.i64(1);
            std::random_device rd;
            std::uniform_int_distribution<std::int64_t> any(1, std::numeric_limits<std::int64_t>::max());
            impl->origin = any(rd);
        } catch (const StorageError &err) {
            throw die(err.what());
        }
    }
    if (!pg && path != ":memory:" && path.rfind("file:", 0) != 0) {
        // WAL checkpoints on a thread of their own (store.hh Checkpointer); should its connection not open,
        // SQLite's automatic checkpoints on this connection stay (slower, as safe).
        auto cp = std::make_unique<Checkpointer>();
        if (cp->start(db.handle(), path, options.fsyncEveryCommit).empty())
            impl->checkpointer = std::move(cp);
    }
    return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::uint64_t Engine::backgroundCheckpoints() const {
    return impl_->checkpointer ? impl_->checkpointer->checkpoints() : 0;
}

const std::string &Engine::path() const {
    return impl_->path;
}
int Engine::schemaVersion() {
    return migrations().empty() ? 0 : migrations().back().version;
}
const std::vector<RuleError> &Engine::ruleLoadErrors() const {
    return impl_->ruleLoadErrors;
}

std::vector<ParkedCall> Engine::liveCalls() const {
    std::vector<ParkedCall> v;
    Impl &I = *impl_;
    if (I.owning()) { // this node's calls only; the engine holds them at their current generation
        Stmt &s = I.db.q("SELECT " CALL_COLS " FROM parked_calls WHERE owner = ? ORDER BY recall_at, id");
        s.bind(1, I.node);
        while (s.step()) {
            v.push_back(readCall(s));
            I.held[v.back().id] = v.back().ownerGeneration;
        }
        return v;
    }
    Stmt &s = I.db.q("SELECT " CALL_COLS " FROM parked_calls ORDER BY recall_at, id");
    while (s.step())
        v.push_back(readCall(s));
    return v;
}

std::vector<ParkedCall> Engine::dueCalls() const {
    std::vector<ParkedCall> v;
    Stmt &s = impl_->db.q("SELECT " CALL_COLS " FROM parked_calls WHERE recall_at <= ? AND state <> 'retrieving' "
                          "ORDER BY recall_at, id");
    s.bind(1, impl_->now());
    while (s.step()) {
        v.push_back(readCall(s));
        if (impl_->owning() && v.back().owner != impl_->node)
            v.pop_back(); // another node's recall
    }
    return v;
}

// ---------------------------------------------------------------------------------------------------------
// Domains, extensions, groups, lots

DomainSettings Engine::domain(const std::string &name) const {
    return impl_->domainSettings(name);
}

std::vector<DomainSettings> Engine::domains() const {
    return impl_->domainList();
}

Status Engine::setDomain(const DomainSettings &d) {
    std::string e = validate(d);
    if (!e.empty())
        return Status::failure(ErrorCode::BadRequest, fmt::format("domain {}: {}", d.name, e));
    std::int64_t generation = 0;
    try {
        Txn txn(impl_->db);
        // Upserts are written ON CONFLICT .. DO UPDATE (SQLite and PostgreSQL alike), never INSERT OR REPLACE.
        Stmt &s = impl_->db.q(
            "INSERT INTO domains (name, park_code, group_park_code, retrieve_code, occupied, recall_seconds, "
            "recall_mode, ring_seconds, alternate_wait, retry_seconds, alternate, open_extensions, dpid, "
            "default_rules, max_parked, max_parked_per_extension, max_park_seconds) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET "
            "park_code = excluded.park_code, group_park_code = excluded.group_park_code, "
            "retrieve_code = excluded.retrieve_code, occupied = excluded.occupied, "
            "recall_seconds = excluded.recall_seconds, recall_mode = excluded.recall_mode, "
            "ring_seconds = excluded.ring_seconds, alternate_wait = excluded.alternate_wait, "
            "retry_seconds = excluded.retry_seconds, alternate = excluded.alternate, "
            "open_extensions = excluded.open_extensions, dpid = excluded.dpid, "
            "default_rules = excluded.default_rules, max_parked = excluded.max_parked, "
            "max_parked_per_extension = excluded.max_parked_per_extension, "
            "max_park_seconds = excluded.max_park_seconds");
        s.bind(1, d.name).bind(2, d.parkCode).bind(3, d.groupParkCode).bind(4, d.retrieveCode);
        s.bind(5, toString(d.occupied)).bind(6, d.recall.recallSeconds).bind(7, toString(d.recall.mode));
        s.bind(8, d.recall.ringSeconds).bind(9, d.recall.alternateWaitSeconds).bind(10, d.recall.retrySeconds);
        s.bind(11, d.recall.alternate ? d.recall.alternate->toString() : std::string());
        s.bind(12, d.openExtensions ? 1 : 0).bind(13, d.dpid).bind(14, d.defaultRules ? 1 : 0);
        s.bind(15, d.maxParked).bind(16, d.maxParkedPerExtension).bind(17, d.recall.maxParkSeconds);
        s.run();
        generation = impl_->configChange("domain", d.name, "");
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    impl_->configCommitted(generation);
    impl_->domains[d.name] = d;
    // The default rules follow the domain's feature codes: only this domain's plan is made again.
    std::vector<RuleError> errors;
    if (!impl_->rules)
        errors = impl_->rebuildRules(impl_->loadStoredRules());
    else if (auto set = withDomain(*impl_->rules, d, errors))
        std::atomic_store(&impl_->rules, std::shared_ptr<const RuleSet>(std::move(set)));
    if (!errors.empty())
        return Status::failure(ErrorCode::BadRule, errors.front().message);
    return Status::success();
}

Status Engine::removeDomain(const std::string &name) {
    std::int64_t generation = 0;
    try {
        Txn txn(impl_->db);
        Stmt &c = impl_->db.q("SELECT count(*) FROM parked_calls WHERE domain = ?");
        c.bind(1, name);
        c.step();
        if (c.i64(0) > 0)
            return Status::failure(ErrorCode::BadState, fmt::format("domain {} still has parked calls", name));
        static const char *const kDeletes[] = {
            "DELETE FROM domains WHERE name = ?", "DELETE FROM extensions WHERE domain = ?",
            "DELETE FROM call_groups WHERE domain = ?", "DELETE FROM group_members WHERE domain = ?",
            "DELETE FROM lots WHERE domain = ?"};
        for (const char *sql : kDeletes) {
            Stmt &s = impl_->db.q(sql);
            s.bind(1, name);
            s.run();
        }
        generation = impl_->configChange("domain-removed", name, "");
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    impl_->configCommitted(generation);
    impl_->domains.erase(name);
    impl_->rebuildRules(impl_->loadStoredRules());
    return Status::success();
}

Status Engine::setExtension(const Extension &e) {
    if (e.domain.empty() || e.ext.empty())
        return Status::failure(ErrorCode::BadRequest, "extension: domain and ext are required");
    try {
        Impl::ConfigTxn txn(*impl_); // PostgreSQL: a transaction, to tell the other nodes on commit
        Stmt &s = impl_->db.q("INSERT INTO extensions (domain, ext, display) VALUES (?,?,?) "
                              "ON CONFLICT (domain, ext) DO UPDATE SET display = excluded.display");
        s.bind(1, e.domain).bind(2, e.ext).bind(3, e.display);
        s.run();
        txn.commit("extension", e.domain, e.ext);
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    return Status::success();
}

Status Engine::removeExtension(const std::string &domain, const std::string &ext) {
    try {
        Impl::ConfigTxn txn(*impl_);
        Stmt &s = impl_->db.q("DELETE FROM extensions WHERE domain = ? AND ext = ?");
        s.bind(1, domain).bind(2, ext);
        s.run();
        txn.commit("extension-removed", domain, ext);
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    return Status::success();
}

std::vector<Extension> Engine::extensions(const std::string &domain) const {
    std::vector<Extension> v;
    Stmt &s = impl_->db.q("SELECT ext, display FROM extensions WHERE domain = ? ORDER BY ext");
    s.bind(1, domain);
    while (s.step())
        v.push_back({domain, s.text(0), s.text(1)});
    return v;
}

bool Engine::isKnownExtension(const std::string &domain, const std::string &ext) const {
    return impl_->knownExtension(domain, ext);
}

Status Engine::setGroup(const Group &g) {
    if (g.domain.empty() || g.name.empty())
        return Status::failure(ErrorCode::BadRequest, "group: domain and name are required");
    std::string e = validate(g.settings);
    if (!e.empty())
        return Status::failure(ErrorCode::BadRequest, fmt::format("group {}: {}", g.name, e));
    if (auto bad = checkAccessList("group", g.name, g.access); !bad.empty())
        return Status::failure(ErrorCode::BadRequest, bad);
    std::set<std::string> seen;
    for (const auto &m : g.members) {
        if (m.empty())
            return Status::failure(ErrorCode::BadRequest, fmt::format("group {}: empty member", g.name));
        if (!seen.insert(m).second)
            return Status::failure(ErrorCode::BadRequest, fmt::format("group {}: member {} listed twice", g.name, m));
    }
    std::int64_t generation = 0;
    try {
        Db &db = impl_->db;
        Txn txn(db);
        for (const auto &m : g.members) {
            auto other = impl_->groupNameOf(g.domain, m);
            if (other && *other != g.name)
                return Status::failure(ErrorCode::BadRequest,
                                       fmt::format("group {}: {} is already in group {} (a user is in at most one "
                                                   "call-park group per domain)",
                                                   g.name, m, *other));
        }
        Stmt &s = db.q("INSERT INTO call_groups (domain, name, notify_parker, occupied, recall_seconds, "
                       "recall_mode, ring_seconds, alternate_wait, retry_seconds, alternate, access) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (domain, name) DO UPDATE SET "
                       "notify_parker = excluded.notify_parker, occupied = excluded.occupied, "
                       "recall_seconds = excluded.recall_seconds, recall_mode = excluded.recall_mode, "
                       "ring_seconds = excluded.ring_seconds, alternate_wait = excluded.alternate_wait, "
                       "retry_seconds = excluded.retry_seconds, alternate = excluded.alternate, "
                       "access = excluded.access");
        s.bind(1, g.domain).bind(2, g.name).bind(3, g.notifyParker ? 1 : 0);
        bindOverrides(s, 4, g.settings);
        s.bind(11, joinAccess(g.access));
        s.run();
        Stmt &d = db.q("DELETE FROM group_members WHERE domain = ? AND grp = ?");
        d.bind(1, g.domain).bind(2, g.name);
        d.run();
        int pos = 0;
        for (const auto &m : g.members) {
            Stmt &i = db.q("INSERT INTO group_members (domain, ext, grp, position) VALUES (?,?,?,?)");
            i.bind(1, g.domain).bind(2, m).bind(3, g.name).bind(4, pos++);
            i.run();
        }
        generation = impl_->configChange("group", g.domain, g.name);
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    impl_->configCommitted(generation);
    return Status::success();
}

Status Engine::removeGroup(const std::string &domain, const std::string &name) {
    std::int64_t generation = 0;
    try {
        Txn txn(impl_->db);
        Stmt &s = impl_->db.q("DELETE FROM call_groups WHERE domain = ? AND name = ?");
        s.bind(1, domain).bind(2, name);
        s.run();
        if (impl_->db.changes() == 0)
            return Status::failure(ErrorCode::NotFound, fmt::format("no group {} in domain {}", name, domain));
        Stmt &m = impl_->db.q("DELETE FROM group_members WHERE domain = ? AND grp = ?");
        m.bind(1, domain).bind(2, name);
        m.run();
        generation = impl_->configChange("group-removed", domain, name);
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    impl_->configCommitted(generation);
    return Status::success();
}

std::optional<Group> Engine::group(const std::string &domain, const std::string &name) const {
    return impl_->loadGroup(domain, name);
}

std::optional<Group> Engine::groupOf(const std::string &domain, const std::string &user) const {
    auto n = impl_->groupNameOf(domain, user);
    if (!n)
        return std::nullopt;
    return impl_->loadGroup(domain, *n);
}

std::vector<Group> Engine::groups(const std::string &domain) const {
    std::vector<std::string> names;
    Stmt &s = impl_->db.q("SELECT name FROM call_groups WHERE domain = ? ORDER BY name");
    s.bind(1, domain);
    while (s.step())
        names.push_back(s.text(0));
    std::vector<Group> v;
    for (const auto &n : names)
        if (auto g = impl_->loadGroup(domain, n))
            v.push_back(std::move(*g));
    return v;
}

Status Engine::setLot(const Lot &l) {
    if (l.domain.empty() || l.name.empty())
        return Status::failure(ErrorCode::BadRequest, "lot: domain and name are required");
    if (l.firstSlot <= 0 || l.lastSlot < l.firstSlot || l.lastSlot - l.firstSlot >= 100000)
        return Status::failure(ErrorCode::BadRequest,
                               fmt::format("lot {}: slot range {}-{} is invalid", l.name, l.firstSlot, l.lastSlot));
    std::string e = validate(l.settings);
    if (!e.empty())
        return Status::failure(ErrorCode::BadRequest, fmt::format("lot {}: {}", l.name, e));
    if (auto bad = checkAccessList("lot", l.name, l.access); !bad.empty())
        return Status::failure(ErrorCode::BadRequest, bad);
    std::int64_t generation = 0;
    try {
        Db &db = impl_->db;
        Txn txn(db);
        Stmt &o = db.q("SELECT name, first_slot, last_slot FROM lots WHERE domain = ? AND name <> ? "
                       "AND first_slot <= ? AND last_slot >= ?");
        o.bind(1, l.domain).bind(2, l.name).bind(3, l.lastSlot).bind(4, l.firstSlot);
        if (o.step())
            return Status::failure(ErrorCode::BadRequest,
                                   fmt::format("lot {}: slots {}-{} overlap lot {} ({}-{})", l.name, l.firstSlot,
                                               l.lastSlot, o.text(0), o.i32(1), o.i32(2)));
        Stmt &c = db.q("SELECT count(*) FROM parked_calls WHERE domain = ? AND lot = ? AND (slot < ? OR slot > ?)");
        c.bind(1, l.domain).bind(2, l.name).bind(3, l.firstSlot).bind(4, l.lastSlot);
        c.step();
        if (c.i64(0) > 0)
            return Status::failure(ErrorCode::BadState,
                                   fmt::format("lot {}: calls are parked outside the new range", l.name));
        Stmt &s =
            db.q("INSERT INTO lots (domain, name, first_slot, last_slot, choice, occupied, recall_seconds, "
                 "recall_mode, ring_seconds, alternate_wait, retry_seconds, alternate, access) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
                 "ON CONFLICT (domain, name) DO UPDATE SET first_slot = excluded.first_slot, "
                 "last_slot = excluded.last_slot, choice = excluded.choice, occupied = excluded.occupied, "
                 "recall_seconds = excluded.recall_seconds, recall_mode = excluded.recall_mode, "
                 "ring_seconds = excluded.ring_seconds, alternate_wait = excluded.alternate_wait, "
                 "retry_seconds = excluded.retry_seconds, alternate = excluded.alternate, access = excluded.access");
        s.bind(1, l.domain).bind(2, l.name).bind(3, l.firstSlot).bind(4, l.lastSlot).bind(5, toString(l.choice));
        bindOverrides(s, 6, l.settings);
        s.bind(13, joinAccess(l.access));
        s.run();
        generation = impl_->configChange("lot", l.domain, l.name);
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    impl_->configCommitted(generation);
    return Status::success();
}

Status Engine::removeLot(const std::string &domain, const std::string &name) {
    std::int64_t generation = 0;
    try {
        Txn txn(impl_->db);
        Stmt &c = impl_->db.q("SELECT count(*) FROM parked_calls WHERE domain = ? AND lot = ?");
        c.bind(1, domain).bind(2, name);
        c.step();
        if (c.i64(0) > 0)
            return Status::failure(ErrorCode::BadState, fmt::format("lot {} still has parked calls", name));
        Stmt &s = impl_->db.q("DELETE FROM lots WHERE domain = ? AND name = ?");
        s.bind(1, domain).bind(2, name);
        s.run();
        if (impl_->db.changes() == 0)
            return Status::failure(ErrorCode::NotFound, fmt::format("no lot {} in domain {}", name, domain));
        generation = impl_->configChange("lot-removed", domain, name);
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, err.what());
    }
    impl_->configCommitted(generation);
    return Status::success();
}

std::optional<Lot> Engine::lot(const std::string &domain, const std::string &name) const {
    return impl_->loadLot(domain, name);
}

std::optional<Lot> Engine::lotForSlot(const std::string &domain, int slot) const {
    Stmt &s = impl_->db.q("SELECT name FROM lots WHERE domain = ? AND first_slot <= ? AND last_slot >= ?");
    s.bind(1, domain).bind(2, slot).bind(3, slot);
    if (!s.step())
        return std::nullopt;
    std::string name = s.text(0);
    return impl_->loadLot(domain, name);
}

std::vector<Lot> Engine::lots(const std::string &domain) const {
    std::vector<std::string> names;
    Stmt &s = impl_->db.q("SELECT name FROM lots WHERE domain = ? ORDER BY first_slot");
    s.bind(1, domain);
    while (s.step())
        names.push_back(s.text(0));
    std::vector<Lot> v;
    for (const auto &n : names)
        if (auto l = impl_->loadLot(domain, n))
            v.push_back(std::move(*l));
    return v;
}

// ---------------------------------------------------------------------------------------------------------
// Parking

ParkResult Engine::park(const ParkRequest &req) {
    if (req.domain.empty())
        return fail(ErrorCode::BadRequest, "park needs a domain");
    std::string e = validate(req.overrides);
    if (!e.empty())
        return fail(ErrorCode::BadRequest, e);
    Impl &I = *impl_;
    return I.transact<ParkResult>([&]() -> ParkResult {
        if (!req.requestKey.empty()) {
            if (auto existing = I.byKey(req.domain, req.requestKey)) {
                ParkResult r = okCall(*existing);
                // A retransmitted or duplicated REFER or INVITE parks once (docs/engine.md "Operations").
                r.duplicate = true;
                return r;
            }
        }
        Impl::Plan p = I.planPark(req);
        if (!p.error.ok)
            return p.error;
        ParkedCall c;
        c.domain = req.domain;
        c.extension = p.extension;
        c.lot = p.lot;
        c.slot = p.slot;
        c.parker = req.parkerIsParked ? std::string() : req.parker;
        c.parkedUri = req.parkedUri;
        c.parkedDisplay = req.parkedDisplay;
        c.group = p.group;
        c.parkedAt = I.now();
        c.recall = p.recall;
        c.recallAt = c.parkedAt + static_cast<Millis>(p.recall.recallSeconds) * 1000;
        c.blob = req.blob;
        c.requestKey = req.requestKey;
        I.insertCall(c);
        if (!c.lot.empty())
            I.markSlotUsed(c.domain, c.lot, c.slot);
        I.emit(EventKind::Parked, c);
        return okCall(c);
    });
}

CallResult Engine::updateBlob(CallId id, const std::string &blob) {
    Impl &I = *impl_;
    return I.transact<CallResult>([&]() -> CallResult {
        // One statement: the update returns the row as it is now (no read of the old row and its blob first).
        if (I.owning()) { // fenced: only on this node's (owner, generation)
            auto held = I.held.find(id);
            Stmt &f = I.db.q("UPDATE parked_calls SET blob = ?, version = version + 1 WHERE id = ? AND owner = ? AND "
                             "owner_gen = ? RETURNING " CALL_COLS);
            f.bindBlob(1, blob).bind(2, id).bind(3, I.node).bind(4, held == I.held.end() ? -1 : held->second);
            if (!f.step()) {
                auto c = I.callById(id);
                if (!c)
                    return fail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
                return I.notOwner(*c);
            }
            ParkedCall c = readCall(f);
            f.run();
            return okCall(std::move(c));
        }
        Stmt &s = I.db.q("UPDATE parked_calls SET blob = ?, version = version + 1 WHERE id = ? RETURNING " CALL_COLS);
        s.bindBlob(1, blob).bind(2, id);
        if (!s.step())
            return fail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        ParkedCall c = readCall(s);
        s.run();
        return okCall(std::move(c));
    });
}

// ---------------------------------------------------------------------------------------------------------
// Retrieving

CallResult Engine::claimRetrieve(const RetrieveRequest &req) {
    Impl &I = *impl_;
    return I.transact<CallResult>([&]() -> CallResult {
        CallResult found = I.findForRetrieve(req);
        if (!found.ok)
            return found;
        ParkedCall c = found.call;
        // The claim is a conditional update: of two retrievers only one changes the row (docs/engine.md "Operations").
        Stmt &s = I.db.q("UPDATE parked_calls SET state = 'retrieving', retriever = ?, recall_answered = 0, "
                         "version = version + 1 WHERE id = ? AND state IN ('parked', 'recalling')");
        s.bind(1, req.retriever).bind(2, c.id);
        s.run();
        if (I.db.changes() != 1)
            return fail(ErrorCode::Busy, "the parked call is already being retrieved");
        c.state = CallState::Retrieving;
        c.retriever = req.retriever;
        c.recallAnswered = false;
        c.version += 1;
        I.emit(EventKind::RetrieveStarted, c);
        return okCall(c);
    });
}

CallResult Engine::completeRetrieve(CallId id) {
    Impl &I = *impl_;
    return I.transact<CallResult>([&]() -> CallResult {
        auto c = I.callById(id);
        if (!c)
            return fail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        if (!I.mine(*c))
            return I.notOwner(*c);
        if (c->state != CallState::Retrieving)
            return fail(ErrorCode::BadState, fmt::format("call {} is {}, not being retrieved", id, toString(c->state)));
        I.deleteCall(*c);
        I.release(id);
        I.emit(EventKind::Retrieved, *c);
        return okCall(*c);
    });
}

CallResult Engine::abortRetrieve(CallId id) {
    Impl &I = *impl_;
    return I.transact<CallResult>([&]() -> CallResult {
        auto c = I.callById(id);
        if (!c)
            return fail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        if (!I.mine(*c))
            return I.notOwner(*c);
        if (c->state != CallState::Retrieving)
            return fail(ErrorCode::BadState, fmt::format("call {} is {}, not being retrieved", id, toString(c->state)));
        c->state = c->recallStage > 0 ? CallState::Recalling : CallState::Parked;
        c->retriever.clear();
        c->recallAnswered = false;
        I.saveCall(*c);
        I.emit(EventKind::RetrieveAborted, *c);
        return okCall(*c);
    });
}

CallResult Engine::abandon(CallId id) {
    Impl &I = *impl_;
    return I.transact<CallResult>([&]() -> CallResult {
        auto c = I.callById(id);
        if (!c)
            return fail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        if (!I.mine(*c))
            return I.notOwner(*c);
        I.deleteCall(*c);
        I.release(id);
        I.emit(EventKind::Abandoned, *c);
        return okCall(*c);
    });
}

// ---------------------------------------------------------------------------------------------------------
// Recall

namespace {
RecallStep stepFail(ErrorCode e, std::string m) {
    RecallStep s;
    s.error = e;
    s.message = std::move(m);
    return s;
}

// Maximum park time reached (RecallSettings::maxParkSeconds): from now on the ladder's final rung rings once.
bool pastMaxPark(const ParkedCall &c, Millis now) {
    return c.recall.maxParkSeconds > 0 && now - c.parkedAt >= static_cast<Millis>(c.recall.maxParkSeconds) * 1000;
}

void startFinalRecall(ParkedCall &c) {
    c.finalRecall = true;
    c.recallStage = static_cast<int>(recallLadder(c.recall).size()); // the final target
}
} // namespace

RecallStep Engine::recallStep(CallId id) {
    Impl &I = *impl_;
    return I.transact<RecallStep>([&]() -> RecallStep {
        auto c = I.callById(id);
        if (!c)
            return stepFail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        if (!I.mine(*c))
            return I.notOwnerStep(*c);
        if (c->state == CallState::Retrieving)
            return stepFail(ErrorCode::Busy, fmt::format("call {} is being retrieved", id));
        Millis now = I.now();
        if (now < c->recallAt)
            return stepFail(ErrorCode::BadState,
                            fmt::format("call {}: next recall action is due in {} ms", id, c->recallAt - now));
        if (c->state == CallState::Parked || c->recallStage == 0)
            c->recallStage = 1;
        if (!c->finalRecall && pastMaxPark(*c, now))
            startFinalRecall(*c);
        c->state = CallState::Recalling;
        RecallStep st = I.describe(*c, c->recallStage);
        c->recallAt = now + static_cast<Millis>(st.ringSeconds) * 1000;
        I.saveCall(*c);
        st.call = *c;
        st.final = c->finalRecall;
        if (st.final)
            st.nextDelaySeconds = 0;
        I.emit(EventKind::RecallStarted, *c);
        return st;
    });
}

RecallStep Engine::recallNoAnswer(CallId id) {
    Impl &I = *impl_;
    return I.transact<RecallStep>([&]() -> RecallStep {
        auto c = I.callById(id);
        if (!c)
            return stepFail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        if (!I.mine(*c))
            return I.notOwnerStep(*c);
        if (c->state != CallState::Recalling)
            return stepFail(ErrorCode::BadState, fmt::format("call {} is {}, not recalling", id, toString(c->state)));
        RecallStep done = I.describe(*c, c->recallStage);
        I.emit(EventKind::RecallFailed, *c);
        if (c->finalRecall) { // the final attempt went unanswered: nothing follows, the caller ends the call
            done.call = *c;
            done.final = done.expired = true;
            done.nextDelaySeconds = 0;
            return done;
        }
        c->recallStage += 1;
        c->recallAt = I.now() + static_cast<Millis>(done.nextDelaySeconds) * 1000;
        if (pastMaxPark(*c, I.now())) { // the final target rings once more, at once
            startFinalRecall(*c);
            c->recallAt = I.now();
        }
        I.saveCall(*c);
        RecallStep next = I.describe(*c, c->recallStage);
        next.nextAttempt = c->recallStage;
        next.nextTarget = next.target;
        next.nextDelaySeconds = c->finalRecall ? 0 : done.nextDelaySeconds;
        next.final = c->finalRecall;
        next.call = *c;
        return next;
    });
}

CallResult Engine::recallAnswered(CallId id, const std::string &answeredBy) {
    Impl &I = *impl_;
    return I.transact<CallResult>([&]() -> CallResult {
        auto c = I.callById(id);
        if (!c)
            return fail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        if (!I.mine(*c))
            return I.notOwner(*c);
        if (c->state == CallState::Retrieving)
            return fail(ErrorCode::Busy, fmt::format("call {} is being retrieved", id));
        if (c->state != CallState::Recalling)
            return fail(ErrorCode::BadState, fmt::format("call {} is {}, not recalling", id, toString(c->state)));
        c->state = CallState::Retrieving;
        c->retriever = answeredBy;
        c->recallAnswered = true;
        I.saveCall(*c);
        I.emit(EventKind::RetrieveStarted, *c);
        return okCall(*c);
    });
}

// ---------------------------------------------------------------------------------------------------------
// Move, list, get

CallResult Engine::move(CallId id, const Target &to) {
    Impl &I = *impl_;
    return I.transact<CallResult>([&]() -> CallResult {
        auto c = I.callById(id);
        if (!c)
            return fail(ErrorCode::NotFound, fmt::format("no parked call {}", id));
        if (!to.domain.empty() && to.domain != c->domain)
            return fail(ErrorCode::Forbidden, fmt::format("call {} belongs to another domain", id));
        if (c->state == CallState::Retrieving)
            return fail(ErrorCode::Busy, fmt::format("call {} is being retrieved", id));
        ParkedCall before = *c;
        switch (to.kind) {
        case TargetKind::Extension: {
            if (to.name.empty())
                return fail(ErrorCode::BadRequest, "move needs an extension");
            if (!I.knownExtension(c->domain, to.name))
                return fail(ErrorCode::UnknownExtension, fmt::format("extension {} is not known", to.name));
            if (c->extension == to.name && c->lot.empty())
                return fail(ErrorCode::BadRequest, "the call is already there");
            if (I.domainSettings(c->domain).occupied == OccupiedPolicy::Reject &&
                I.liveCountOnExt(c->domain, to.name) > 0)
                return fail(ErrorCode::Occupied, fmt::format("extension {} already has a parked call", to.name));
            c->extension = to.name;
            c->lot.clear();
            c->slot = 0;
            break;
        }
        case TargetKind::Slot:
        case TargetKind::Lot: {
            auto lot = I.loadLot(c->domain, to.name);
            if (!lot)
                return fail(ErrorCode::UnknownLot, fmt::format("lot {} does not exist", to.name));
            int want = to.kind == TargetKind::Slot ? to.slot : 0;
            if (want != 0 && c->lot == lot->name && c->slot == want)
                return fail(ErrorCode::BadRequest, "the call is already there");
            auto [slot, r] = I.pickSlot(c->domain, *lot, want);
            if (!r.ok)
                return r;
            c->extension.clear();
            c->lot = lot->name;
            c->slot = slot;
            I.markSlotUsed(c->domain, c->lot, slot);
            break;
        }
        case TargetKind::Group:
            return fail(ErrorCode::BadRequest, "a call moves to an extension or a slot, not a group");
        }
        c->group.clear();
        I.saveCall(*c);
        I.emit(EventKind::Moved, *c, before);
        return okCall(*c);
    });
}

std::optional<ParkedCall> Engine::get(CallId id) const {
    return impl_->callById(id);
}

std::optional<ParkedCall> Engine::get(const std::string &domain, CallId id) const {
    auto c = impl_->callById(id);
    if (!c || c->domain != domain)
        return std::nullopt;
    return c;
}

std::optional<ParkedCall> Engine::getByRequestKey(const std::string &domain, const std::string &key) const {
    if (key.empty())
        return std::nullopt;
    return impl_->byKey(domain, key);
}

std::vector<ParkedCall> Engine::list(const ListFilter &f) const {
    std::string sql = "SELECT " CALL_COLS " FROM parked_calls WHERE 1 = 1";
    std::vector<std::string> args;
    auto add = [&](const char *cond, std::string v) {
        sql += cond;
        args.push_back(std::move(v));
    };
    if (!f.domain.empty())
        add(" AND domain = ?", f.domain);
    if (!f.extension.empty())
        add(" AND extension = ?", f.extension);
    if (!f.group.empty())
        add(" AND grp = ?", f.group);
    if (!f.lot.empty())
        add(" AND lot = ? AND lot <> ''", f.lot);
    if (!f.lot.empty() && f.slot != 0)
        add(" AND slot = ?", std::to_string(f.slot));
    if (f.state)
        add(" AND state = ?", toString(*f.state));
    sql += " ORDER BY parked_at, id";
    std::vector<ParkedCall> v;
    if (f.state == CallState::Gone)
        return v;
    Stmt &s = impl_->db.qText(sql);
    for (size_t i = 0; i < args.size(); ++i)
        s.bind(static_cast<int>(i + 1), args[i]);
    while (s.step())
        v.push_back(readCall(s));
    return v;
}

// ---------------------------------------------------------------------------------------------------------
// Events

Engine::ListenerId Engine::addListener(Listener l) {
    ListenerId id = impl_->nextListener++;
    impl_->listeners.emplace_back(id, std::move(l));
    return id;
}

void Engine::removeListener(ListenerId id) {
    auto &ls = impl_->listeners;
    ls.erase(std::remove_if(ls.begin(), ls.end(), [&](const auto &p) { return p.first == id; }), ls.end());
    auto &ss = impl_->syncListeners;
    ss.erase(std::remove_if(ss.begin(), ss.end(), [&](const auto &p) { return p.first == id; }), ss.end());
}

TargetState Engine::targetState(const Target &t) const {
    TargetState st;
    st.target = t;
    st.version = impl_->versionOf(t);
    ListFilter f;
    f.domain = t.domain;
    switch (t.kind) {
    case TargetKind::Extension:
        f.extension = t.name;
        break;
    case TargetKind::Slot:
        f.lot = t.name;
        f.slot = t.slot;
        break;
    case TargetKind::Group:
        f.group = t.name;
        break;
    case TargetKind::Lot:
        f.lot = t.name;
        break;
    }
    if (f.extension.empty() && f.group.empty() && f.lot.empty())
        return st;
    st.calls = list(f);
    return st;
}

std::int64_t Engine::targetVersion(const Target &t) const {
    return impl_->versionOf(t);
}

std::int64_t Engine::lastEventSequence() const {
    Stmt &s = impl_->db.q("SELECT value FROM meta WHERE key = 'event_sequence'");
    return s.step() ? s.i64(0) : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Change events across nodes (docs/cluster.md "Change events across nodes")

bool Engine::shared() const {
    return impl_->db.postgres();
}

std::string Engine::watchChanges(std::function<void()> wake, int retryMs) {
    Impl &I = *impl_;
    if (!I.db.postgres())
        return {};
    I.feed.reset();
    auto feed = std::make_unique<ChangeFeed>(I.url, I.channel, I.origin, std::move(wake), retryMs);
    std::string e = feed->start();
    if (!e.empty())
        return fmt::format("park engine database '{}': change events: {}", I.path, e);
    I.feed = std::move(feed);
    return {};
}

void Engine::stopWatching() {
    impl_->feed.reset();
}

Engine::CatchUp Engine::catchUp() {
    Impl &I = *impl_;
    CatchUp out;
    if (!I.db.postgres())
        return out;
    ++I.catchUps;
    SyncNotice notice;
    std::vector<ChangeEvent> events;
    try {
        // One round trip for both counters. The configuration first: the events that follow are handled with the
        // caches they were made with.
        std::int64_t generation = I.configGeneration, last = 0;
        Stmt &m = I.db.q("SELECT key, value FROM meta WHERE key IN ('config_generation', 'event_sequence')");
        while (m.step())
            (m.text(0) == "event_sequence" ? last : generation) = m.i64(1);
        if (generation != I.configGeneration) {
            // Read before the data: a change committed meanwhile moves it again and is caught next time.
            I.loadDomains();
            I.rebuildRules(I.loadStoredRules());
            I.configGeneration = generation;
            notice.configChanged = true;
            ++I.configReloads;
        }
        // Then the events after the last one seen. Writers commit in sequence order (the writer lock), so
        // the log holds a gap-free run after it unless the oldest were pruned: then resync.
        Stmt &l = I.db.q("SELECT sequence, origin, body FROM change_log WHERE sequence > ? ORDER BY sequence");
        l.bind(1, I.seenSequence);
        std::int64_t expect = I.seenSequence + 1, seen = I.seenSequence;
        bool gap = false;
        while (l.step()) {
            std::int64_t seq = l.i64(0);
            if (seq != expect) {
                gap = true;
                break;
            }
            ++expect;
            seen = seq;
            if (l.i64(1) == I.origin)
                continue; // ours: delivered at commit
            ChangeEvent e;
            if (!decodeEvent(l.text(2), &e)) {
                gap = true; // unreadable: take the state as a whole instead
                break;
            }
            e.sequence = seq;
            e.remote = true;
            events.push_back(std::move(e));
        }
        l.reset();
        if (!gap && seen < last && expect == I.seenSequence + 1)
            gap = true; // nothing in the log although the sequence moved: pruned
        if (gap) {
            events.clear();
            I.seenSequence = std::max(last, seen);
            notice.resync = true;
            ++I.resyncs;
            // What another node changed is unknown: reload the configuration too.
            I.loadDomains();
            I.rebuildRules(I.loadStoredRules());
        } else {
            I.seenSequence = seen;
        }
    } catch (const StorageError &) {
        // The store is unreachable: nothing was delivered; the next wake (a reconnect) tries again.
        return out;
    }
    notice.sequence = I.seenSequence;
    notice.configGeneration = I.configGeneration;
    out.events = events.size();
    out.configChanged = notice.configChanged;
    out.resync = notice.resync;
    I.remoteEvents += events.size();
    I.deliver(events);
    if (notice.configChanged || notice.resync) {
        auto ls = I.syncListeners;
        for (auto &[id, l] : ls) {
            try {
                l(notice);
            } catch (...) {
            }
        }
    }
    return out;
}

Engine::ListenerId Engine::addSyncListener(SyncListener l) {
    ListenerId id = impl_->nextListener++;
    impl_->syncListeners.emplace_back(id, std::move(l));
    return id;
}

Engine::FeedStats Engine::feedStats() const {
    const Impl &I = *impl_;
    FeedStats st;
    if (I.feed) {
        ChangeFeed::Stats f = I.feed->stats();
        st.connects = f.connects;
        st.disconnects = f.disconnects;
        st.notifications = f.notifications;
        st.wakes = f.wakes;
        st.backendPid = f.backendPid;
    }
    st.catchUps = I.catchUps;
    st.remoteEvents = I.remoteEvents;
    st.configReloads = I.configReloads;
    st.resyncs = I.resyncs;
    return st;
}

// ---------------------------------------------------------------------------------------------------------
// Rules

Classification Engine::classify(const std::string &domain, const std::string &caller, const std::string &dial) const {
    Classification c;
    // Any thread, concurrently with one other engine call (engine.hh): the rule set is published atomically
    // and never changed once published.
    const std::shared_ptr<const RuleSet> set = std::atomic_load(&impl_->rules);
    evaluate(set->planFor(domain), caller, dial, c, nullptr);
    return c;
}

Explanation Engine::explain(const std::string &domain, const std::string &caller, const std::string &dial) const {
    Impl &I = *impl_;
    Explanation x;
    x.domain = domain;
    x.caller = caller;
    x.dial = dial;
    evaluate(I.rules->planFor(domain), caller, dial, x.result, &x.trace);
    const DomainSettings d = I.domainSettings(domain);
    x.recall = d.recall;
    x.occupied = d.occupied;
    try {
        // Everything below reads inside a transaction that is always rolled back: explain changes nothing.
        I.db.exec("BEGIN");
        const Classification &c = x.result;
        if (c.action == Action::Park || c.action == Action::GroupPark) {
            ParkRequest req = makeParkRequest(c, domain, caller);
            Impl::Plan p = I.planPark(req);
            x.recall = p.recall;
            x.occupied = p.occupied;
            if (!p.error.ok) {
                x.wouldFail = p.error.error;
                x.wouldFailMessage = p.error.message;
            }
            x.wouldParkOn = p.extension;
            x.wouldParkLot = p.lot;
            x.wouldParkSlot = p.slot;
        } else if (c.action == Action::Retrieve) {
            CallResult r = I.findForRetrieve(makeRetrieveRequest(c, domain, caller));
            if (r.ok)
                x.wouldRetrieve = r.call;
            else {
                x.wouldFail = r.error;
                x.wouldFailMessage = r.message;
            }
        }
        I.db.exec("ROLLBACK");
    } catch (const StorageError &e) {
        I.db.execError("ROLLBACK");
        x.wouldFail = ErrorCode::Storage;
        x.wouldFailMessage = e.what();
    }
    x.ladder = recallLadder(x.recall);
    return x;
}

std::vector<Rule> Engine::rules() const {
    return impl_->loadStoredRules();
}

std::vector<Rule> Engine::effectiveRules(const std::string &domain) const {
    std::vector<Rule> v;
    for (const auto &r : impl_->rules->planFor(domain).rules)
        v.push_back(r->rule);
    return v;
}

std::vector<RuleError> Engine::checkRules(const std::vector<Rule> &rules) const {
    std::vector<RuleError> errors;
    buildRuleSet(rules, impl_->domainList(), errors);
    return errors;
}

std::vector<RuleError> Engine::replaceRules(const std::vector<Rule> &rules) {
    Impl &I = *impl_;
    std::vector<RuleError> errors;
    auto set = buildRuleSet(rules, I.domainList(), errors);
    if (!set)
        return errors;
    std::vector<Rule> stored = rules;
    std::int64_t generation = 0;
    try {
        Txn txn(I.db);
        I.db.exec("DELETE FROM rules");
        for (Rule &r : stored)
            I.insertRule(r);
        generation = I.configChange("rules", "", "");
        txn.commit();
    } catch (const StorageError &e) {
        return {{0, 0, fmt::format("database {}: {}", I.path, e.what())}};
    }
    I.configCommitted(generation);
    // Ids may have been assigned: rebuild from what was stored, then swap in one step.
    return I.rebuildRules(stored);
}

std::vector<RuleError> Engine::loadRulesFile(const std::string &path) {
    std::vector<RuleError> errors;
    auto rules = readRulesFile(path, errors);
    if (!errors.empty())
        return errors;
    return replaceRules(rules);
}

std::vector<RuleError> Engine::setRule(Rule &rule) {
    Impl &I = *impl_;
    std::vector<Rule> all = I.loadStoredRules();
    Rule candidate = rule;
    if (candidate.id < 0)
        return {{rule.id, 0, fmt::format("rule {}: default rules cannot be stored", rule.id)}};
    bool replaced = false;
    for (auto &r : all)
        if (candidate.id != 0 && r.id == candidate.id) {
            r = candidate;
            replaced = true;
        }
    if (!replaced)
        all.push_back(candidate);
    std::vector<RuleError> errors;
    if (!buildRuleSet(all, I.domainList(), errors))
        return errors;
    std::int64_t generation = 0;
    try {
        Txn txn(I.db);
        if (replaced) {
            Stmt &d = I.db.q("DELETE FROM rules WHERE id = ?");
            d.bind(1, candidate.id);
            d.run();
        }
        I.insertRule(candidate);
        generation = I.configChange("rule", candidate.domain, std::to_string(candidate.id));
        txn.commit();
    } catch (const StorageError &e) {
        return {{rule.id, 0, fmt::format("database {}: {}", I.path, e.what())}};
    }
    I.configCommitted(generation);
    rule.id = candidate.id;
    return I.rebuildRules(I.loadStoredRules());
}

Status Engine::removeRule(std::int64_t id) {
    Impl &I = *impl_;
    try {
        Impl::ConfigTxn txn(I);
        Stmt &d = I.db.q("DELETE FROM rules WHERE id = ?");
        d.bind(1, id);
        d.run();
        if (I.db.changes() == 0)
            return Status::failure(ErrorCode::NotFound, fmt::format("no rule {}", id));
        txn.commit("rule-removed", "", std::to_string(id));
    } catch (const StorageError &e) {
        return Status::failure(ErrorCode::Storage, e.what());
    }
    auto errors = I.rebuildRules(I.loadStoredRules());
    if (!errors.empty())
        return Status::failure(ErrorCode::BadRule, errors.front().message);
    return Status::success();
}

std::vector<RuleError> Engine::reloadRules() {
    Impl &I = *impl_;
    try {
        I.loadDomains();
        return I.rebuildRules(I.loadStoredRules());
    } catch (const StorageError &e) {
        return {{0, 0, fmt::format("database {}: {}", I.path, e.what())}};
    }
}

} // namespace parkway::engine

namespace parkway::engine {

// ---------------------------------------------------------------------------------------------------------
// Watchers: opaque subscription records (autocommit: each statement is committed before it returns)

Status Engine::putWatcher(const std::string &id, const std::string &blob) {
    return putWatchers({StoredWatcher{id, blob}});
}

Status Engine::putWatchers(const std::vector<StoredWatcher> &watchers) {
    for (const StoredWatcher &w : watchers)
        if (w.id.empty())
            return Status::failure(ErrorCode::BadRequest, "watcher: id is required");
    if (watchers.empty())
        return Status::success();
    try {
        Txn txn(impl_->db);
        for (const StoredWatcher &w : watchers) {
            Stmt &s = impl_->db.q("INSERT INTO watchers (id, blob, owner) VALUES (?, ?, ?) "
                                  "ON CONFLICT (id) DO UPDATE SET blob = excluded.blob, owner = excluded.owner");
            s.bind(1, w.id).bindBlob(2, w.blob).bind(3, impl_->node);
            s.run();
        }
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, fmt::format("database {}: {}", impl_->path, err.what()));
    }
    return Status::success();
}

Status Engine::removeWatcher(const std::string &id) {
    try {
        Stmt &s = impl_->db.q("DELETE FROM watchers WHERE id = ?");
        s.bind(1, id);
        s.run();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, fmt::format("database {}: {}", impl_->path, err.what()));
    }
    return Status::success();
}

Status Engine::nextParkInfoVersions(const std::string &domain, const std::vector<std::string> &extensions,
                                    std::vector<std::int64_t> *versions) {
    versions->clear();
    if (extensions.empty())
        return Status::success();
    std::vector<std::int64_t> out;
    out.reserve(extensions.size());
    try {
        Txn txn(impl_->db);
        for (const std::string &ext : extensions) {
            Stmt &s = impl_->db.q(
                "INSERT INTO park_info_versions (domain, ext, version) VALUES (?, ?, 1) "
                "ON CONFLICT (domain, ext) DO UPDATE SET version = park_info_versions.version + 1 RETURNING version");
            s.bind(1, domain).bind(2, ext);
            s.step();
            out.push_back(s.i64(0));
            s.run();
        }
        txn.commit();
    } catch (const StorageError &err) {
        return Status::failure(ErrorCode::Storage, fmt::format("database {}: {}", impl_->path, err.what()));
    }
    *versions = std::move(out);
    return Status::success();
}

std::vector<StoredWatcher> Engine::watchers() const {
    std::vector<StoredWatcher> v;
    if (impl_->owning()) { // this node's (registerNode adopted those nobody owned)
        Stmt &s = impl_->db.q("SELECT id, blob FROM watchers WHERE owner = ? ORDER BY id");
        s.bind(1, impl_->node);
        while (s.step())
            v.push_back({s.text(0), s.blob(1)});
        return v;
    }
    Stmt &s = impl_->db.q("SELECT id, blob FROM watchers ORDER BY id");
    while (s.step())
        v.push_back({s.text(0), s.blob(1)});
    return v;
}

// ---------------------------------------------------------------------------------------------------------
// Ownership and failover (docs/cluster.md "Ownership and failover")

namespace {
NodeStatus nodeFail(ErrorCode e, std::string m) {
    NodeStatus r;
    r.error = e;
    r.message = std::move(m);
    return r;
}

NodeInfo readNode(const Stmt &s, Millis now) {
    NodeInfo n;
    n.name = s.text(0);
    n.address = s.text(1);
    n.leaseUntil = s.i64(2);
    n.incarnation = s.i64(3);
    n.live = n.leaseUntil >= now;
    return n;
}
} // namespace

NodeStatus Engine::registerNode(const std::string &name, const std::string &address, Millis leaseMs) {
    if (name.empty())
        return nodeFail(ErrorCode::BadRequest, "node: a name is required");
    if (leaseMs <= 0)
        return nodeFail(ErrorCode::BadRequest, "node: the lease must be positive");
    Impl &I = *impl_;
    if (!I.node.empty() && I.node != name)
        return nodeFail(ErrorCode::BadRequest, fmt::format("node: this engine is node '{}' already", I.node));
    NodeStatus r = I.transact<NodeStatus>([&]() -> NodeStatus {
        Stmt &s = I.db.q("INSERT INTO nodes (name, address, lease_until, incarnation) VALUES (?, ?, ?, 1) "
                         "ON CONFLICT (name) DO UPDATE SET address = excluded.address, lease_until = "
                         "excluded.lease_until, incarnation = nodes.incarnation + 1 RETURNING incarnation");
        s.bind(1, name).bind(2, address).bind(3, I.now() + leaseMs);
        s.step();
        std::int64_t inc = s.i64(0);
        s.run();
        // A new incarnation fences the last one: every call this node owns moves to the next generation, so a
        // previous process under the same name (frozen, not dead) can no longer write to them.
        Stmt &g = I.db.q("UPDATE parked_calls SET owner_gen = owner_gen + 1 WHERE owner = ?");
        g.bind(1, name);
        g.run();
        // Calls and watchers no node owns (stored by an engine without ownership, or before it existed) are ours.
        Stmt &o = I.db.q("UPDATE parked_calls SET owner = ?, owner_gen = owner_gen + 1 WHERE owner = ''");
        o.bind(1, name);
        o.run();
        Stmt &ow = I.db.q("UPDATE watchers SET owner = ? WHERE owner = ''");
        ow.bind(1, name);
        ow.run();
        std::vector<ParkedCall> claimed;
        Stmt &c = I.db.q("SELECT " CALL_COLS " FROM parked_calls WHERE owner = ? AND state = 'retrieving'");
        c.bind(1, name);
        while (c.step())
            claimed.push_back(readCall(c));
        for (ParkedCall &call : claimed)
            I.releaseClaim(call);
        NodeStatus ok;
        ok.ok = true;
        I.incarnation = inc;
        return ok;
    });
    if (r.ok) {
        I.node = name;
        I.nodeAddress = address;
        I.leaseMs = leaseMs;
        I.held.clear(); // liveCalls() fills it with the generations just set
    }
    return r;
}

NodeStatus Engine::heartbeat() {
    Impl &I = *impl_;
    if (!I.owning())
        return nodeFail(ErrorCode::BadState, "node: heartbeat before registerNode");
    return I.transact<NodeStatus>([&]() -> NodeStatus {
        NodeStatus r;
        r.ok = true;
        Millis now = I.now();
        Stmt &s = I.db.q("UPDATE nodes SET lease_until = ? WHERE name = ? AND incarnation = ? AND lease_until >= ?");
        s.bind(1, now + I.leaseMs).bind(2, I.node).bind(3, I.incarnation).bind(4, now);
        s.run();
        if (I.db.changes() == 1)
            return r;
        // The lease ran out (or a survivor removed our row): register again. Calls nobody took keep their
        // owner and generation (still ours); those taken are fenced by their new owner.
        r.lapsed = true;
        Stmt &u = I.db.q("INSERT INTO nodes (name, address, lease_until, incarnation) VALUES (?, ?, ?, 1) "
                         "ON CONFLICT (name) DO UPDATE SET address = excluded.address, lease_until = "
                         "excluded.lease_until, incarnation = nodes.incarnation + 1 RETURNING incarnation");
        u.bind(1, I.node).bind(2, I.nodeAddress).bind(3, now + I.leaseMs);
        u.step();
        I.incarnation = u.i64(0);
        u.run();
        return r;
    });
}

TakeoverResult Engine::takeOver() {
    Impl &I = *impl_;
    if (!I.owning()) {
        TakeoverResult r;
        r.error = ErrorCode::BadState;
        r.message = "node: takeOver before registerNode";
        return r;
    }
    try {
        // The common case, every heartbeat: nobody died. One read, no write transaction (no writer lock).
        Stmt &any = I.db.q("SELECT count(*) FROM nodes WHERE lease_until < ? AND name <> ?");
        any.bind(1, I.now()).bind(2, I.node);
        any.step();
        std::int64_t expired = any.i64(0);
        any.run();
        if (expired == 0) {
            TakeoverResult none;
            none.ok = true;
            return none;
        }
    } catch (const StorageFailure &e) { // the database went away: an error to report, as transact's are
        TakeoverResult failed;
        failed.error = ErrorCode::Storage;
        failed.message = e.what();
        return failed;
    }
    TakeoverResult r = I.transact<TakeoverResult>([&]() -> TakeoverResult {
        TakeoverResult out;
        Millis now = I.now();
        // Only a live node takes over: one whose own lease lapsed may be the one presumed dead.
        Stmt &me = I.db.q("SELECT lease_until FROM nodes WHERE name = ? AND incarnation = ?");
        me.bind(1, I.node).bind(2, I.incarnation);
        if (!me.step() || me.i64(0) < now) {
            me.run();
            out.error = ErrorCode::BadState;
            out.message = fmt::format("node '{}': its own lease lapsed; it takes nothing over until it renews", I.node);
            return out;
        }
        me.run();
        Stmt &dead = I.db.q("SELECT name FROM nodes WHERE lease_until < ? AND name <> ? ORDER BY name");
        dead.bind(1, now).bind(2, I.node);
        while (dead.step())
            out.nodes.push_back(dead.text(0));
        if (!out.nodes.empty()) {
            Stmt &del = I.db.q("DELETE FROM nodes WHERE lease_until < ? AND name <> ?");
            del.bind(1, now).bind(2, I.node);
            del.run();
        }
        // The expired nodes' calls become ours, one generation up. Under the writer lock (docs/cluster.md
        // "Concurrency"): a second survivor running this after us finds no expired node left and takes nothing.
        for (const std::string &dead : out.nodes) {
            Stmt &take = I.db.q("UPDATE parked_calls SET owner = ?, owner_gen = owner_gen + 1 WHERE owner = ? "
                                "RETURNING " CALL_COLS);
            take.bind(1, I.node).bind(2, dead);
            while (take.step())
                out.calls.push_back(readCall(take));
        }
        std::sort(out.calls.begin(), out.calls.end(), [](const ParkedCall &a, const ParkedCall &b) {
            return a.recallAt != b.recallAt ? a.recallAt < b.recallAt : a.id < b.id;
        });
        for (ParkedCall &c : out.calls)
            if (c.state == CallState::Retrieving) // its retrieve died with the node
                I.releaseClaim(c);
        for (const std::string &dead : out.nodes) {
            Stmt &w = I.db.q("UPDATE watchers SET owner = ? WHERE owner = ? RETURNING id, blob");
            w.bind(1, I.node).bind(2, dead);
            while (w.step())
                out.watchers.push_back({w.text(0), w.blob(1)});
        }
        std::sort(out.watchers.begin(), out.watchers.end(),
                  [](const StoredWatcher &a, const StoredWatcher &b) { return a.id < b.id; });
        out.ok = true;
        return out;
    });
    if (r.ok)
        for (const ParkedCall &c : r.calls)
            I.held[c.id] = c.ownerGeneration;
    return r;
}

std::vector<NodeInfo> Engine::nodes() const {
    std::vector<NodeInfo> v;
    Stmt &s = impl_->db.q("SELECT name, address, lease_until, incarnation FROM nodes ORDER BY name");
    while (s.step())
        v.push_back(readNode(s, impl_->now()));
    return v;
}

std::optional<NodeInfo> Engine::node(const std::string &name) const {
    Stmt &s = impl_->db.q("SELECT name, address, lease_until, incarnation FROM nodes WHERE name = ?");
    s.bind(1, name);
    if (!s.step())
        return std::nullopt;
    NodeInfo n = readNode(s, impl_->now());
    s.run();
    return n;
}

const std::string &Engine::nodeName() const {
    return impl_->node;
}

} // namespace parkway::engine
