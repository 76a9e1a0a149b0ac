// parkway/engine/types.hh — the park engine's data model: plain structs and enums, no SIP.
//
// Vocabulary (docs/engine.md):
//   domain     a tenant (the SIP domain). Every object belongs to exactly one domain.
//   extension  a user of a domain ("103"). Calls are parked *against* an extension (BroadWorks style)...
//   lot/slot   ...or into a numbered slot of a lot (orbit style: lot "main", slots 701–720).
//   group      a call-park group: ordered members, hunted by group park (`*58`).
//   parker     the extension that parked the call; parked party: the caller who hears music on hold.
#pragma once

#include "parkway/engine/clock.hh"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::engine {

using CallId = std::int64_t; // engine-assigned, unique for the life of the database, never reused

// Thrown by the engine's reads (get, list, targetState, watchers, ...) when the database cannot be read: a
// PostgreSQL server that is down or unreachable, an I/O error. Operations that write report ErrorCode::Storage
// instead. what() is the backend's message; Engine::path() names the database (docs/cluster.md "Database outage").
struct StorageFailure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------------------
// Enums (each with toString / parse helpers; parse returns std::nullopt on an unknown word)

enum class OccupiedPolicy { Reject, Stack }; // "reject" | "stack"
enum class RecallMode {
    Parker,
    ParkerThenAlternate,
    AlternateOnly
};                                                            // "parker" | "parker_then_alternate" | "alternate_only"
enum class SlotChoice { First, Next };                        // "first" | "next"
enum class CallState { Parked, Recalling, Retrieving, Gone }; // "parked" | "recalling" | "retrieving" | "gone"

// Expected outcomes of operations. Suggested SIP mapping for the module in comments.
enum class ErrorCode {
    None,
    Occupied,         // directed park onto an occupied extension/slot with policy reject      -> 486
    GroupFull,        // group park, every member occupied and stacking off                      -> 486 / 480
    NoGroup,          // group park by a user who is in no call-park group                       -> 404
    UnknownExtension, // directed park to an extension the domain does not know                  -> 404
    UnknownLot,       // lot park into a lot that does not exist                                 -> 404
    LotFull,          // lot park with no free slot                                              -> 486
    BadSlot,          // slot outside the lot's range                                            -> 404
    Forbidden,        // caller's domain differs from the call's domain                          -> 403
    NotFound,         // nothing parked there / no such call                                     -> 404
    Busy,             // the call is already being retrieved/answered by someone else            -> 486
    BadState,         // operation not valid in the call's current state (e.g. complete w/o claim) -> 481/500
    BadRequest,       // missing or invalid field (message says which)                            -> 400
    BadRule,          // a rule failed validation (message names the rule id and the problem)
    Storage,          // the database failed or is unreachable (message carries the backend's text) -> 503 + Retry-After
    DomainFull,       // the domain holds DomainSettings::maxParked calls already                -> 503 + Retry-After
    ExtensionFull,    // the extension holds maxParkedPerExtension calls already (even stacking)   -> 486
    // Ownership (docs/cluster.md "Ownership and failover"): the call belongs to another node, or no longer to this
    // one (taken over: the fence refused the write). `call.owner` names the owner when known. A retrieve claim of
    // a call another node owns fails with this and claims nothing: the SIP layer sends the request to the owner.
    NotOwner,
};

const char *toString(OccupiedPolicy v);
const char *toString(RecallMode v);
const char *toString(SlotChoice v);
const char *toString(CallState v);
const char *toString(ErrorCode v);
std::optional<OccupiedPolicy> parseOccupiedPolicy(std::string_view s);
std::optional<RecallMode> parseRecallMode(std::string_view s);
std::optional<SlotChoice> parseSlotChoice(std::string_view s);
std::optional<CallState> parseCallState(std::string_view s);

// ---------------------------------------------------------------------------------------------------------
// Settings. Resolution order: rule > group (or lot) > domain > built-in default.

// Where a recall rings. Written in settings/attrs as text:
//   "103" or "ext:103"     an extension of the same domain
//   "group:sales"          every member of a call-park group (parallel)
//   "number:+15551234567"  a number/URI handed to the router as is (also "sip:..."/"tel:..." verbatim)
//   "parker"               the parker (used inside ladders)
struct RecallTarget {
    enum class Kind { Parker, Extension, Group, Number };
    Kind kind = Kind::Parker;
    std::string value; // extension, group name or number; empty for Parker

    static std::optional<RecallTarget> parse(std::string_view text); // nullopt on empty/invalid
    std::string toString() const;
    bool operator==(const RecallTarget &o) const { return kind == o.kind && value == o.value; }
};

// Fully resolved recall settings (what a parked call carries; snapshot taken at park time so a later
// settings change does not alter a call already parked).
struct RecallSettings {
    int recallSeconds = 300; // park -> first recall, 1..3600 (docs/engine.md "Recall ladder")
    RecallMode mode = RecallMode::Parker;
    int ringSeconds = 30;                  // how long one recall attempt rings before it counts as no answer
    int alternateWaitSeconds = 30;         // parker_then_alternate: how long the parker rings before the alternate
    int retrySeconds = 10;                 // pause after an unanswered attempt before ringing again (PortSIP USER_ONLY)
    std::optional<RecallTarget> alternate; // required for parker_then_alternate / alternate_only
    // Maximum park time, 0..86400 (0 = no limit): the first recall step at or after parkedAt + this rings the
    // ladder's final target once; unanswered, the call is over (RecallStep::expired). Domain or rule (max_park).
    int maxParkSeconds = 1800;
};

// Partial settings: set fields override the level below (used by groups, lots and rule attrs).
struct RecallOverrides {
    std::optional<int> recallSeconds;
    std::optional<RecallMode> mode;
    std::optional<int> ringSeconds;
    std::optional<int> alternateWaitSeconds;
    std::optional<int> retrySeconds;
    std::optional<RecallTarget> alternate;
    std::optional<OccupiedPolicy> occupied;
    std::optional<int> maxParkSeconds; // rules only (attr max_park); groups and lots do not store it

    bool empty() const;
    void applyTo(RecallSettings &s) const; // occupied is not part of RecallSettings; read it separately
};

struct DomainSettings {
    std::string name;             // the SIP domain, e.g. "example.com"
    std::string parkCode = "*68"; // FAC for park (docs/engine.md "Model and settings")
    std::string groupParkCode = "*58";
    std::string retrieveCode = "*88";
    OccupiedPolicy occupied = OccupiedPolicy::Stack;
    RecallSettings recall;
    // Unknown-extension rule (decided here because the registrar, not the engine, owns users):
    // an extension is known if it is listed in the domain's extensions OR openExtensions is true.
    // Default true: with no extension list every user part is accepted; set false (and list extensions)
    // to get 404 for `*68999` when 999 is nobody.
    bool openExtensions = true;
    int dpid = 0;             // which dialplan rule set (Kamailio dpid) applies to this domain
    bool defaultRules = true; // generate the default feature-code rules for this domain (see rules.hh)
    // Caps (docs/limits.md): live calls the domain may hold at once, and calls one extension may hold (a
    // stack); 0 = no cap. Past the domain cap park() fails with DomainFull, past the extension cap with
    // ExtensionFull (a group park skips members at the cap; lot slots hold one call each anyway).
    int maxParked = 200;
    int maxParkedPerExtension = 10;
};

// Validation of a settings object: empty string when fine, else a message naming the field.
std::string validate(const DomainSettings &s);
std::string validate(const RecallOverrides &o);

struct Extension {
    std::string domain;
    std::string ext;
    std::string display; // optional display name
};

struct Group {
    std::string domain;
    std::string name;
    std::vector<std::string> members; // hunting order (docs/engine.md "Operations": always from the first)
    bool notifyParker = false;        // also notify the parker on group park
    RecallOverrides settings;         // group-level overrides (recall + occupied policy)
    // Who may retrieve calls parked by group park on this group (docs/engine.md "Operations" optional access list).
    // Empty = any user of the domain. Others get ErrorCode::Forbidden.
    std::vector<std::string> access;
};

struct Lot {
    std::string domain;
    std::string name;
    int firstSlot = 0;                     // inclusive, e.g. 701
    int lastSlot = 0;                      // inclusive, e.g. 720
    SlotChoice choice = SlotChoice::First; // first free from firstSlot, or next free after the last one used
    RecallOverrides settings;              // lot-level overrides (same level as group)
    // Who may park into and retrieve from this lot (docs/engine.md "Operations" optional access list). Empty = any user
    // of the domain. Others get ErrorCode::Forbidden.
    std::vector<std::string> access;
};

// ---------------------------------------------------------------------------------------------------------
// Parked calls

struct ParkedCall {
    CallId id = 0;
    std::string domain;
    std::string extension;     // parked-on extension; empty for a lot park
    std::string lot;           // lot name when orbit style, else empty
    int slot = 0;              // slot number when orbit style, else 0
    std::string parker;        // parker's extension (may be empty if unknown)
    std::string parkedUri;     // the parked party's URI (e.g. "sip:alice@example.com")
    std::string parkedDisplay; // the parked party's display name
    std::string group;         // call-park group when parked by group park, else empty
    Millis parkedAt = 0;
    Millis recallAt = 0; // absolute deadline of the next recall action (always set while live)
    int recallStage = 0; // 0 = not recalling yet; n >= 1 = n-th recall attempt
    CallState state = CallState::Parked;
    std::string blob;            // opaque bytes owned by the SIP layer (dialog state, SDP)
    std::int64_t version = 1;    // +1 on every change of this call
    std::string requestKey;      // idempotency key given at park time (may be empty)
    std::string retriever;       // who holds the retrieve claim (state Retrieving), else empty
    RecallSettings recall;       // resolved at park time
    bool recallAnswered = false; // the current claim came from an answered recall, not a retrieve
    bool finalRecall = false;    // max park time reached: the current (or next) attempt is the last one
    // Ownership (docs/cluster.md "Ownership and failover"): the node that holds the call's SIP dialog ("" when
    // ownership is off: one node) and the fencing generation, +1 at every takeover.
    std::string owner;
    std::int64_t ownerGeneration = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Requests and results

enum class ParkHow {
    Directed, // onto `extension` (`*68103`)
    Own,      // onto the parker's own extension (`*68`)
    Group,    // group park: hunt the parker's group (`*58`), docs/engine.md "Operations"
    Lot,      // into a lot slot: `slot` 0 = pick one by the lot's choice, else that slot
};

struct ParkRequest {
    std::string domain; // the parker's domain (tenant); the call lands in this domain
    ParkHow how = ParkHow::Own;
    std::string parker; // parker's extension; required for Own and Group
    // The parker is the parked party itself (it dialled the park code: no REFER, no Referred-By). `parker` still
    // chooses the extension / group / lot access, but the call is stored without a parker, so the recall never
    // rings the parked party: it goes to the parked-on extension, else the alternate (ringList).
    bool parkerIsParked = false;
    std::string extension; // for Directed
    std::string lot;       // for Lot
    int slot = 0;          // for Lot
    // Lot with a slot: when that slot is taken, park into the next free slot after it (wrapping inside the
    // lot; `LotFull` when none) instead of failing with `Occupied`. Set by makeParkRequest for a transfer to a
    // slot whose rule says `transfer=park_or_next`.
    bool slotOrNext = false;
    std::string parkedUri;
    std::string parkedDisplay;
    std::string requestKey; // e.g. Call-ID + CSeq, or the transferee dialog id: same key parks once
    std::string blob;
    RecallOverrides overrides; // from the matched rule (highest precedence)
};

struct RetrieveRequest {
    enum class By {
        Extension, // oldest call parked on `extension` (`*88103`)
        Own,       // oldest call parked on the retriever's own extension (`*88`)
        Slot,      // the call in lot `lot`, slot `slot`
        Id,        // a specific call (Replaces pickup, admin)
    };
    std::string domain; // the retriever's domain: other domains' calls are invisible (NotFound/Forbidden)
    By by = By::Own;
    std::string retriever; // retriever's extension (required for Own; recorded as claim owner)
    std::string extension;
    std::string lot;
    int slot = 0;
    CallId id = 0;
};

// Result of every call operation. `ok` false => `error` says why and `message` says it for humans.
struct CallResult {
    bool ok = false;
    ErrorCode error = ErrorCode::None;
    std::string message;
    ParkedCall call;        // the affected call (after the change); for errors, filled when meaningful
    bool duplicate = false; // park: the request key was seen before; `call` is the existing one
    explicit operator bool() const { return ok; }
};
using ParkResult = CallResult;

// Result of admin/config operations.
struct Status {
    bool ok = true;
    ErrorCode error = ErrorCode::None;
    std::string message;
    explicit operator bool() const { return ok; }
    static Status success() { return {}; }
    static Status failure(ErrorCode e, std::string m) { return {false, e, std::move(m)}; }
};

// ---------------------------------------------------------------------------------------------------------
// Recall ladder

// What the SIP layer must do now for a call whose recall deadline has come (see Engine::recallStep).
struct RecallStep {
    bool ok = false;
    ErrorCode error = ErrorCode::None;
    std::string message;
    ParkedCall call;
    int attempt = 0;               // 1-based attempt number (== call.recallStage)
    RecallTarget target;           // whom to ring now (Kind::Parker resolved into `ring` below)
    std::vector<std::string> ring; // concrete extensions to ring (group expanded; parker's ext), or
                                   // one number/URI for Kind::Number
    int ringSeconds = 0;           // ring that long; then call Engine::recallNoAnswer
    // What happens after no answer (also returned by recallNoAnswer):
    int nextAttempt = 0; // attempt number that follows
    RecallTarget nextTarget;
    int nextDelaySeconds = 0; // pause before the next attempt (0 = at once; retry interval else)
    // Maximum park time (RecallSettings::maxParkSeconds): `final` = this attempt rings the final target and is
    // the last; `expired` (from recallNoAnswer) = the final attempt went unanswered: end the call (the SIP
    // layer hangs up with a reason and abandons it), there is no next attempt.
    bool final = false;
    bool expired = false;
    explicit operator bool() const { return ok; }
};

// One rung of a recall ladder, for explain and docs: attempt n rings `target` for `ringSeconds`, then
// waits `delayAfterSeconds`; the last rung repeats until answered, retrieved or abandoned, or until the
// maximum park time: then the final target rings once more and the call ends.
struct LadderRung {
    int attempt = 0;
    RecallTarget target;
    int ringSeconds = 0;
    int delayAfterSeconds = 0;
    bool repeats = false;
};
std::vector<LadderRung> recallLadder(const RecallSettings &s);

// ---------------------------------------------------------------------------------------------------------
// Watched targets and change events

enum class TargetKind { Extension, Slot, Group, Lot };
const char *toString(TargetKind k);

struct Target {
    TargetKind kind = TargetKind::Extension;
    std::string domain;
    std::string name;        // extension, group name or lot name (for Slot: the lot name)
    int slot = 0;            // for Slot
    std::string key() const; // stable text key, e.g. "ext:103", "slot:main/701", "group:sales", "lot:main"
    bool operator==(const Target &o) const {
        return kind == o.kind && domain == o.domain && name == o.name && slot == o.slot;
    }
};

struct TargetVersion {
    Target target;
    std::int64_t version = 0; // strictly increasing per target, persisted (survives restarts)
};

enum class EventKind {
    Parked,
    RetrieveStarted,
    Retrieved,
    RetrieveAborted,
    RecallStarted,
    RecallFailed,
    Abandoned,
    Moved
};
const char *toString(EventKind k); // "parked", "retrieve-started", "retrieved", "retrieve-aborted", ...

struct ChangeEvent {
    EventKind kind = EventKind::Parked;
    Millis at = 0;
    ParkedCall call;                    // state after the change (state Gone for retrieved/abandoned)
    std::optional<ParkedCall> previous; // Moved: where it was before
    std::vector<TargetVersion> targets; // every watched target affected, with its new version
    std::int64_t sequence = 0;          // engine-wide event counter (persisted), for the admin stream
    // Committed by another engine on the same PostgreSQL database (another node) and delivered here by
    // Engine::catchUp(); false for this engine's own changes. The call carries no blob then.
    bool remote = false;
};

// What Engine::catchUp() did besides delivering other nodes' events (docs/cluster.md "Change events across
// nodes"): given to sync listeners after the events.
struct SyncNotice {
    // Another node changed the configuration (domains, extensions, groups, lots, rules): the cached domain
    // settings and compiled rules were reloaded.
    bool configChanged = false;
    std::int64_t configGeneration = 0;
    // Events were missed and cannot be replayed (the change log no longer holds them): listeners must take the
    // current state as a whole (re-read what they show), as after a restart.
    bool resync = false;
    std::int64_t sequence = 0; // the last event sequence seen
};

// Current state of one target, for a full-state NOTIFY.
struct TargetState {
    Target target;
    std::int64_t version = 0;
    std::vector<ParkedCall> calls; // live calls on it, oldest first
};

struct ListFilter {
    std::string domain;    // required for tenant views; empty = all domains (admin only)
    std::string extension; // empty = any
    std::string group;
    std::string lot;
    int slot = 0; // with lot
    std::optional<CallState> state;
};

} // namespace parkway::engine
