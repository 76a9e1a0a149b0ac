// The call-park module's state: the engine, music on hold, the calls it holds as a UAS/UAC, subscriptions.
//
// Where things happen (one file per flow):
//   callpark_module.cc  descriptor, parameter and command tables, hooks -> CallPark
//   dispatch.cc         on_request: which request is ours (REFER, park/retrieve INVITE, Replaces, SUBSCRIBE)
//   refer_handler.cc    REFER to a park code: passthrough memory and takeover (202, sipfrag NOTIFYs, Replaces)
//   park_flow.cc        parking an INVITE, holding the park dialog, music on hold, abandon
//   retrieve_flow.cc    retrieve (bridge / replaces), the B2BUA relay between two legs, transfers from a bridge
//   recall_flow.cc      recall timers, ringing branches, connect on answer
//   watchers.cc         dialog / call-info subscriptions, park-info NOTIFYs, metrics and admin events
//   restore.cc          start(): parked calls back from the engine after a restart
//   admin_commands.cc   parked.*, groups.*, lots.*, rules.*, domains.*, stats
//   provision.cc        provision_file (TOML) -> domains, groups, lots
#pragma once
#include "host.hh"
#include "pending.hh"
#include "settings.hh"
#include "storage_worker.hh"
#include "wire/bodies.hh"
#include "wire/moh.hh"
#include "wire/sip_text.hh"

#include <parkway/engine/engine.hh>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace parkway::callpark {

namespace eng = parkway::engine;

class CallPark;
struct Session;
struct FeedLink; // change_feed.cc

// One dialog the module is an endpoint of. Lives exactly as long as its host dialog (freed after
// on_terminated); the session refers to it by pointer and clears the pointer on termination.
struct Leg {
    CallPark *mod = nullptr;
    uint64_t id = 0;  // for closures that may outlive the leg (responses after on_terminated)
    uint64_t sid = 0; // owning session (0 = none)
    pw_dialog *dlg = nullptr;
    std::string role;                 // "parked", "retriever", "recall", "target", "transferor"
    std::string peerUri, peerDisplay; // identity of the far end (for P-Asserted-Identity / From of relays)
    std::string remoteSdp;            // last SDP the far end sent
    // Our SDP origin on this dialog (RFC 3264 §8): o=parkway <sdpSession> <sdpVersion> IN IP4|IP6 <moh_ip>, and the
    // last SDP sent on it. Not used while the leg is its session's parked leg (Session::a): the session holds it
    // then (sdpSession, sdpVersion, localSdp; stored for restarts). CallPark::setParkedLeg moves it.
    uint64_t sdpSession = 0, sdpVersion = 0;
    std::string localSdp;
    bool confirmed = false;
    bool failed = false;    // UAC: final non-2xx
    bool answered = false;  // UAC: got a 2xx
    uint64_t ackToId = 0;   // relay the ACK's answer to this leg (offerless re-INVITE relayed)
    bool finalSeen = false; // UAC INVITE: the first final response arrived
    // UAC INVITE: called once with the first final response (2xx: the dialog is up, ACK still owed).
    std::function<void(Leg *, int, const pw_msg *)> onAnswer;
};

enum class SessionState {
    Parked,     // parked party alone with MOH
    Retrieving, // re-INVITE to the parked party for a retriever in flight
    Recalling,  // recall branches ringing
    Connecting, // recall answered: re-INVITE to the parked party in flight
    Bridged,    // two legs relayed (retrieved / recalled / transferred)
    Ended,
};

// A parked call as the module holds it (one per engine call while parked, then the bridge it became).
struct Session {
    uint64_t sid = 0;
    eng::CallId callId = 0;       // engine call id while it is in the engine (0 once retrieved)
    eng::CallId parkedCallId = 0; // the engine call this session parked, kept after it left (for logs)
    std::string domain;
    SessionState state = SessionState::Parked;
    Leg *a = nullptr;   // the parked party
    Leg *b = nullptr;   // retriever / recall answerer / transfer target once connected
    std::string parker; // parker extension
    std::string parkedOnUri;

    // music on hold and our SDP towards the parked party
    uint64_t mohId = 0;
    uint16_t mohPort = 0;
    // the parked party's SIP source while parking: shared MOH ports spread by it ("" when a trusted peer relayed it)
    std::string partySource;
    int mohPt = -1;
    uint64_t sdpSession = 0, sdpVersion = 0;
    std::string localSdp; // what we last answered/offered to the parked party
    std::string remoteMediaIp;
    uint16_t remoteMediaPort = 0;

    // retrieve in flight
    pw_request *retrieveReq = nullptr; // retained INVITE of the retriever
    bool retrieveOfferless = false;
    std::string retrieverUri, retrieverDisplay;
    std::string replacesCallId; // retrieve_mode=replaces: Call-ID of the retriever's INVITE we let through

    // recall
    pw_timer_id recallTimer = 0; // deadline -> recallStep
    pw_timer_id ringTimer = 0;   // ring time over -> recallNoAnswer
    std::vector<Leg *> branches; // ringing recall branches
    Leg *winner = nullptr;
    uint64_t winnerId = 0; // the winner's leg id while its recallAnswered runs on the storage thread

    // REFER from a bridged leg carried out by us (blind transfer or re-park)
    Leg *transferor = nullptr;
    std::string referEvent = "refer";
    bool transferIsPark = false;
};

// A dialog-package, call-info or presence subscription (RFC 4235 / BroadWorks / RFC 3856).
struct Subscription {
    CallPark *mod = nullptr;
    pw_dialog *dlg = nullptr;
    eng::Target target;
    bool broadworks = false; // Event: call-info with the BroadWorks body
    bool presence = false;   // Event: presence (RFC 3856) with PIDF bodies (RFC 3863), else dialog-info
    std::string entity;      // entity URI in dialog-info
    uint64_t version = 0;    // next version to send (RFC 4235 §4.1: starts at 0, +1 per NOTIFY)
    int64_t expiresAtMs = 0;
    bool ending = false;
    std::string storeId;    // key of its record in the engine's watchers table ("" = not stored)
    uint64_t id = 0;        // never reused: the paced NOTIFY queue names subscriptions by id
    std::string subscriber; // From address-of-record (sip:user@host), counted against its cap
    bool counted = false;   // in the watcher counts (caps, gauges)
    bool queued = false;    // a NOTIFY with the then-current state is queued (newest state wins)
    bool inFlight = false;  // a NOTIFY of ours awaits its final response
    bool owed = false;      // the state changed while one was in flight: send the newest when it is answered
    // RFC 4662 event list (event_lists.cc): a SUBSCRIBE with Supported: eventlist to a lot's or a group's list
    // URI; `target` is the lot / group, `version` the RLMI list version.
    bool eventList = false;
    bool listFull = true; // the next list NOTIFY carries the full state (first, refresh, restart)
    struct ListResource {
        uint64_t version = 0; // next dialog-info version of this resource in this subscription
        std::string sent;     // the dialog-info last sent for it, without its version (what changed?)
    };
    std::map<std::string, ListResource> listResources; // by resource URI
};

// REFER intent remembered in passthrough mode, keyed by the transferee's dialog.
struct ReferIntent {
    std::string transfereeUri; // To of the REFER (the referee)
    std::string targetUser;    // unescaped Refer-To user, e.g. "*68103"
    std::string parker;        // From URI of the REFER
    std::string parkerDisplay;
    int64_t expiresAtMs = 0;
};

class CallPark {
public:
    CallPark(const pw_host_api *api, pw_host *host) : host_(api, host), storage_(api, host) {}
    ~CallPark();

    int init();
    int start();
    void stop();
    int reload();
    // Tenants (docs/callpark.md "Tenants"): every domain provisioned in the engine is served (host domain_serve),
    // and one no longer in the engine (removed here or on another node, docs/cluster.md) is served no more;
    // a domain with live calls is neither released (domain_release) nor deprovisioned.
    void declareDomains();
    void serveDomains(const std::vector<eng::DomainSettings> &domains); // declareDomains with the domains read
    // The same with the provisioned domains already read (SIP thread, no engine call; e.g. after a storage job).
    void declareDomains(const std::vector<std::string> &provisioned);
    size_t liveCallsIn(const std::string &domain) const;
    int releaseDomain(std::string_view domain, pw_writer *why);
    pw_verdict onRequest(pw_request *req);
    void onResponse(const pw_msg *resp);

    Host &host() { return host_; }
    // The engine for a call that stays synchronous on the SIP thread: locked against the storage thread
    // (storage_worker.hh). engine_->classify alone needs no lock.
    StorageWorker::Locked engine() const { return storage_.lock(); }
    StorageWorker &storage() { return storage_; }
    const Settings &settings() const { return settings_; }

    // ---- dispatch.cc
    pw_verdict onInvite(pw_request *req, const pw_msg *m);
    int overloadPriority(const pw_msg *m); // pw_module.overload_priority (dispatch.cc)
    // The sender's established identity (docs/auth.md): parker, retriever and watcher are who authenticated,
    // never what From says. Empty uri: a stranger.
    Host::Who who(pw_request *req) const { return host_.identity(req); }
    // A request that needs a known local user and came from nobody we know: ask it to authenticate when the
    // host can, else 403. Always PW_STOP.
    pw_verdict refuseStranger(pw_request *req);
    struct ParkerChoice {
        std::string uri, display;
        bool withoutParker = false; // the sender parks itself via a front proxy: store no parker
    };
    ParkerChoice chooseParker(const pw_msg *m, const Host::Who &sender, const std::optional<ReferIntent> &intent) const;
    std::string requestDomain(const pw_msg *m) const; // host of the R-URI

    // ---- refer_handler.cc
    pw_verdict onRefer(pw_request *req, const pw_msg *m);
    std::optional<ReferIntent> takeReferIntent(const std::string &fromUri, const std::string &targetUser);
    void referTakeoverResponse(uint64_t sid, pw_dialog *dlg, int status, const pw_msg *resp);
    struct ReferTakeover { // what the takeover needs of the REFER once its park is stored
        std::string toTag, fromTag, ruri, fromDisplay, targetUser;
    };
    void referTakeoverParked(const eng::ParkResult &r, const eng::ParkRequest &pr, const ReferTakeover &t,
                             const std::function<void(int, bool)> &notify, const std::string &domain,
                             const std::string &fromUri, const std::string &callId);

    // ---- park_flow.cc
    pw_verdict parkInvite(pw_request *req, const pw_msg *m, const eng::Classification &c, const std::string &domain,
                          const std::string &parker, const std::string &parkerDisplay, bool withoutParker = false);
    int engineErrorStatus(eng::ErrorCode e) const;
    // Our SDP for a parked party, or "" once the park INVITE was refused (503 + Retry-After: no music-on-hold port;
    // 488: unusable offer). Sets the session's party source.
    std::string holdSdpOrRefuse(Session &s, pw_request *req, const pw_msg *m, const std::string &offer);
    std::string partySourceOf(pw_request *req, const pw_msg *m) const;
    // The duplicate check and the park as one storage-thread operation (merged: the request key parked already).
    struct ParkOnce {
        bool merged = false;
        eng::ParkResult r;
    };
    static ParkOnce parkOnce(eng::Engine &e, const eng::ParkRequest &pr);
    // parkInvite with a storage thread: the park runs there, the INVITE held (PW_SUSPEND) until its result.
    pw_verdict parkInviteQueued(pw_request *req, const pw_msg *m, eng::ParkRequest pr, const std::string &domain,
                                const std::string &parker);
    // Fire-and-forget writes (storage thread or inline): an abandon, and what any write's failure means.
    void abandonLater(eng::CallId id);
    void writeDone(const eng::CallResult &r, const std::string &what, eng::CallId id);
    // MOH + SDP for the parked party given its offer; returns the answer SDP ("" when the offer is unusable or
    // no music-on-hold port is free; *why says which).
    enum class HoldError { None, BadOffer, NoMediaPort };
    std::string holdAnswerFor(Session &s, const std::string &offer, HoldError *why = nullptr);
    std::string holdOfferFor(Session &s, HoldError *why = nullptr);
    bool allocateMoh(Session &s); // a music-on-hold port (sending nothing yet); false when none is free
    // What resuming the call after a restart needs (dialog export, SDPs, MOH port, peer identity), as stored.
    std::string parkBlob(Session &s, const std::string &dialogExport);
    // Answer a park INVITE the engine or a cap refused (503 + Retry-After when capacity is out).
    int refusePark(pw_request *req, const std::string &domain, eng::ErrorCode error, const std::string &message);
    void startMohFromAnswer(Session &s, const std::string &answer);
    void stopMoh(Session &s);
    void saveBlob(Session &s);
    void onParkedRequest(Session &s, Leg *leg, pw_request *req);
    void legTerminated(Leg *leg, pw_dialog_end_reason reason);
    void sessionAbandoned(Session &s);

    // ---- retrieve_flow.cc
    pw_verdict retrieveInvite(pw_request *req, const pw_msg *m, const eng::RetrieveRequest &rr);
    void retrieveResponse(uint64_t sid, int status, const pw_msg *resp);
    pw_verdict retrieveClaimed(pw_request *req, const pw_msg *m, const eng::RetrieveRequest &rr, eng::CallResult claim);
    void answerRetriever(Session &s, pw_request *r, const std::string &body, const eng::CallResult *pre);
    // abortRetrieve on the storage thread (or inline); the recall is re-armed when the call is still parked here.
    void abortLater(uint64_t sid, eng::CallId id);
    void onBridgedRequest(Session &s, Leg *from, pw_request *req);
    void onBridgedAck(Session &s, Leg *from, const pw_msg *ack);
    void endBridge(Session &s, Leg *from);
    void onBridgedRefer(Session &s, Leg *from, pw_request *req);
    void bridgedReferParked(uint64_t sid, uint64_t fromId, uint64_t otherId, bool fromWasA, const std::string &domain,
                            const std::string &caller, const eng::ParkResult &r,
                            const std::function<void(int, bool)> &notify);
    void connectParked(Session &s, Leg *other, const std::string &offer, bool fromRecall);
    // The SDP we send on `leg` (ours, or relayed from the other leg): `body` with the leg's own o= line, its
    // version +1 exactly when the body changed since the last SDP sent on the leg (RFC 3264 §8). A body without
    // a readable o= (not SDP, multipart) is returned as is.
    std::string legSdp(Session &s, Leg *leg, const std::string &body);
    // The offer legSdp() made for `leg` was refused: the next SDP on the leg counts as a change even when it is
    // the same again (the refused version is not reused for the session the peer kept; RFC 3264 §8).
    void sdpRefused(Session &s, Leg *leg);
    // Make `leg` the session's parked leg (Session::a), moving the SDP origin state between it and the old one.
    void setParkedLeg(Session &s, Leg *leg);
    // P-Asserted-Identity of the party a leg is now connected to (setting connected_identity).
    void addConnectedIdentity(Headers &h, const std::string &display, const std::string &uri) const;

    // ---- recall_flow.cc
    void armRecall(Session &s, eng::Millis at);
    void recallFire(uint64_t sid);
    // The continuations of the recall steps run on the storage thread (recallStep, recallNoAnswer).
    void recallStepped(uint64_t sid, eng::CallId id, const eng::RecallStep &step,
                       const std::optional<eng::ParkedCall> &call, const std::vector<std::string> *altGroup = nullptr);
    void recallUnanswered(Session &s, const eng::RecallStep &next);
    // altGroup: the members of the call's alternate group when the step's storage job read them (else read here).
    void ringStep(Session &s, const eng::RecallStep &step, const std::vector<std::string> *altGroup = nullptr);
    void recallClaimed(uint64_t sid, uint64_t legId, eng::CallId id, const std::string &offer,
                       const eng::CallResult &claim);
    void ringTimeout(uint64_t sid);
    void branchResponse(Leg *leg, int status, const pw_msg *resp);
    void cancelBranches(Session &s, Leg *except);
    // An admin "recall now" (admin_commands.cc parked.recall) in three parts, so that the step can run on the
    // storage thread: the SIP side stops what rings or waits, the step runs with the engine locked (any thread),
    // the continuation (SIP thread) finds the session again and rings.
    void forceRecallPrepare(Session &s);
    // altMembers: the alternate group's members when the step may ring them (read with the step).
    eng::RecallStep forceRecallStep(eng::Engine &e, eng::CallId id, int64_t nowMs,
                                    std::optional<std::vector<std::string>> *altMembers);
    void forceRecallStepped(uint64_t sid, eng::CallId id, const eng::RecallStep &step,
                            const std::optional<std::vector<std::string>> &altMembers);
    void endParkedTooLong(Session &s, const eng::ParkedCall &call); // max park time over: BYE with Reason

    // ---- watchers.cc
    pw_verdict onSubscribe(pw_request *req, const pw_msg *m);
    void onEngineEvent(const eng::ChangeEvent &e);
    void handleEvent(const eng::ChangeEvent &ev); // on the loop turn after the commit (onEngineEvent)
    // What the NOTIFYs of some subscriptions show, read in one engine operation (on the storage thread when there
    // is one, docs/cluster.md "Threads"); the SIP thread builds and sends the NOTIFYs from it afterwards.
    struct ListEntry { // one resource of an event list: its URI user (slot, member) and what a BLF on it watches
        std::string user;
        eng::Target target;
    };
    struct NotifyRead {
        std::vector<eng::Target> targets;                                // asked: the plain watchers' targets
        std::vector<eng::Target> lists;                                  // asked: the event lists' lots / groups
        std::unordered_map<std::string, eng::TargetState> states;        // by target key; absent: nothing parked
        std::unordered_map<std::string, std::string> retrieveCodes;      // by domain (of the states read)
        std::unordered_map<std::string, std::vector<ListEntry>> entries; // by list target key
        std::string error;                                               // "" = read
    };
    static void readNotify(eng::Engine &e, NotifyRead &rd);
    void mergeRead(const NotifyRead &rd); // into lastRead_
    // What every dialog-info NOTIFY of one target shows (computed once per target per batch).
    struct TargetView {
        eng::TargetState st;
        std::string retrieveCode; // of the target's domain
        std::vector<DialogInfoDialog> dialogs;
        bool dialogsBuilt = false;
    };
    using Views = std::unordered_map<std::string, TargetView>;
    TargetView &viewOf(const NotifyRead &rd, Views &views, const eng::Target &t);
    // A NOTIFY with the current state: read first (the subscription counts as in flight meanwhile), then sent. A
    // terminated one with a storage thread is sent at once from the last state read (lastRead_): the host ends the
    // dialog right after on_refresh(0).
    void notifySubscription(Subscription &sub, bool terminated = false);
    void readThenNotify(std::vector<uint64_t> ids, bool terminated);
    void notifyRead(const NotifyRead &rd, const std::vector<uint64_t> &ids, bool terminated);
    void notifySubscription(Subscription &sub, bool terminated, const NotifyRead &rd, Views &views);
    // What a SUBSCRIBE's answer needs (onSubscribe): taken from the request, then the configuration read
    // (access lists, list URIs; for a fetch, the state) on the storage thread when it needs any.
    struct SubscribeAsk {
        std::string event, ruri, domain, dial, caller, expires;
        Host::Who watcher;
        bool broadworks = false, presence = false;
        std::vector<std::string> accepts; // Accept headers (presence)
        bool eventlist = false;           // Supported: eventlist (RFC 4662 §4.1)
        eng::Classification c;
        std::optional<eng::Target> fallback; // the target when the URI is no event list
        // read: lots and groups of the request's domain by name (nullopt: none such), the fetch's state
        std::optional<std::string> listLot, listGroup; // names after the list URI prefixes
        std::map<std::string, std::optional<eng::Lot>> lots;
        std::map<std::string, std::optional<eng::Group>> groups;
        bool fetch = false; // Expires: 0 (RFC 6665 §4.4.3): the state is read before the answer
        NotifyRead state;
    };
    pw_verdict subscribeRead(pw_request *req, SubscribeAsk &a);
    bool mayWatch(const SubscribeAsk &a, const eng::Target &target, const std::string &user) const;
    // Persist what resuming a subscription needs (after each NOTIFY: version and CSeq moved); batched.
    eng::StoredWatcher watcherRecord(Subscription &sub);
    void saveWatchers(const std::vector<Subscription *> &subs);
    void forgetWatcher(Subscription &sub);
    void removeStoredWatcher(const std::string &storeId); // fire and forget, in order with the saves
    void sendParkInfo(const eng::ChangeEvent &e);         // reads the group and domain (storage thread), then:
    void sendParkInfoTo(const eng::ChangeEvent &e, const std::vector<std::string> &users,
                        const std::string &retrieveCode); // the versions (storage thread), then the NOTIFYs
    // Caps and the paced fan-out (docs/limits.md, docs/notifications.md "Pacing"). countWatcher adds a live
    // subscription to the counts (and the per-target index the fan-out uses) or removes it.
    void countWatcher(Subscription &sub, bool add);
    // 0 when a new subscription of `subscriber` to `t` fits every cap; else the SIP status to answer.
    int watcherCapStatus(const std::string &subscriber, const eng::Target &t, std::string *reason);
    void queueNotify(Subscription &sub); // sent on a later loop turn, with the state current then
    void drainNotifies();
    void notifyAnswered(uint64_t subscriptionId); // a NOTIFY got its final response (or never will)
    void restoreWatcherBatch();
    Subscription *addSubscription(std::unique_ptr<Subscription> sub);
    void updateGauges(const std::string &domain, const std::string &lot);

    // ---- change_feed.cc (other nodes' changes on a shared PostgreSQL store, docs/cluster.md)
    void startChangeFeed(); // start(): the engine's listening thread, waking us through pw_host_api.post()
    void stopChangeFeed();  // stop(): joins it; a wake-up still queued does nothing
    void catchUpChanges();  // on the SIP thread, after a wake-up: the catch-up runs on the storage thread
    bool catchUpInFlight_ = false;
    void onEngineSync(const eng::SyncNotice &n);
    std::shared_ptr<FeedLink> feedLink_;

    // ---- event_lists.cc (RFC 4662 list subscriptions to lots and groups)
    // 0: not a list URI; 1: *target is the list's lot / group; -1: answered (421), stop.
    int eventListTarget(pw_request *req, const SubscribeAsk &a, eng::Target *target);
    static std::optional<eng::Target> listTarget(const SubscribeAsk &a); // the list URI's lot / group, if it exists
    static void readListEntries(eng::Engine &e, const eng::Target &list, std::vector<ListEntry> *out);
    void notifyEventList(Subscription &sub, bool terminated, const NotifyRead &rd, Views &views);
    void queueEventLists(const eng::ChangeEvent &e); // group lists whose member's extension changed
    void buildViewDialogs(TargetView &view);         // the dialog-info <dialog>s of a view

    // ---- restore.cc (and restoreWatchers in watchers.cc)
    void restoreCalls(); // reads the store and queues every call; batches follow on later loop turns
    void restoreCallBatch();
    // takeover: the call was another node's (cluster.cc): the music comes from a new address, so the parked
    // party always gets a re-INVITE (which also carries our Contact: the dialog's remote target moves to us).
    bool restoreCall(eng::CallId id, bool takeover = false);
    void finishCallRestore();
    void restoreWatchers(); // the stored subscriptions are read on the storage thread, resumed on the SIP thread
    void restoreFinished(); // calls and watchers are back: the "restore complete" line
    Session *restoreOnDemand(eng::CallId id);
    void resumeMoh(Session &s, int pt, uint16_t oldPort, const std::string &signalingIp);
    void armRestoredRecall(Session &s, const eng::ParkedCall &call);
    void pendingCallChanged(const eng::ChangeEvent &e);
    bool inDialogBeforeRestore(pw_request *req, const pw_msg *m);
    struct RestoreProgress {
        int64_t startedMs = 0, callsMs = 0, doneMs = 0;
        size_t total = 0, next = 0; // next: index in restoreOrder_
        size_t restored = 0, lost = 0, onDemand = 0, recallsArmed = 0, overdue = 0;
        bool callsDone = false, done = false;
    } restore_;
    std::vector<eng::CallId> restoreOrder_;                         // stored calls in recall-deadline order
    std::unordered_map<eng::CallId, eng::ParkedCall> pendingCalls_; // stored calls not restored yet
    pw_timer_id restoreTimer_ = 0;

    // ---- cluster.cc (docs/cluster.md "Ownership and failover"): on a PostgreSQL park database each node
    // registers a lease, renews it on a timer, takes over the calls and subscriptions of nodes whose lease ran out,
    // and forwards a retrieve of a call another live node owns to that node.
    bool clustered() const { return !nodeName_.empty(); }
    int registerClusterNode(bool postgres); // init(): node identity and lease; PW_OK or PW_EINVAL (logged)
    void startCluster();                    // start(): adopt orphaned calls, arm the heartbeat
    void clusterTick();
    void takeOverDeadNodes(eng::TakeoverResult t); // what a takeover look found (on the storage thread)
    bool heartbeatInFlight_ = false;
    void takeoverBatch();
    // A call this node lost to another (the fence refused a write): forget its SIP state without a word on the
    // wire (the new owner holds the dialog now).
    void dropLostSession(Session &s, const std::string &why);
    void dropLostSessions(); // after a lapsed lease: every session whose call is not ours any more
    // A retrieve of a call another node owns: forwarded to that node (PW_CONTINUE), or answered here.
    pw_verdict retrieveElsewhere(pw_request *req, const eng::CallResult &claim, const eng::RetrieveRequest &rr);
    struct OwnerLook; // what retrieveElsewhere read on the storage thread (cluster.cc)
    static OwnerLook lookUpOwner(eng::Engine &e, const std::string &owner, const eng::RetrieveRequest &rr);
    pw_verdict ownerLooked(pw_request *req, eng::CallId id, const eng::RetrieveRequest &rr, OwnerLook &l);
    std::string nodeName_;
    pw_timer_id clusterTimer_ = 0;
    pw_timer_id takeoverTimer_ = 0;
    int64_t lastHeartbeatFailMs_ = 0;                 // when the database last refused our heartbeat
    std::deque<eng::CallId> takeoverOrder_;           // taken-over calls not restored yet (in pendingCalls_)
    std::unordered_set<eng::CallId> takeoverIds_;     // the same, for a restore on demand (restoreCall)
    std::deque<eng::StoredWatcher> takeoverWatchers_; // taken-over subscriptions, resumed after the calls
    struct TakeoverProgress {
        int64_t startedMs = 0;
        std::string from; // the dead node(s)
        size_t calls = 0, restored = 0, lost = 0, watchers = 0, watchersLost = 0;
    } takeover_;
    ReportThrottle clusterLog_{10000};
    bool restoreWatcher(eng::StoredWatcher w, int64_t now); // one stored subscription back (watchers.cc)

    // ---- admin_commands.cc
    static const pw_command_def *commandTable();

    // ---- provision.cc
    bool loadProvisionFile(const std::string &path, std::string *err);
    bool loadRules(std::string *err);

    // ---- sessions and legs
    Session &newSession();
    Session *session(uint64_t sid);
    Session *sessionByCall(eng::CallId id);
    // Gives a session its engine call (indexed for sessionByCall; the index entry goes with the call's
    // Retrieved/Abandoned event).
    void bindCall(Session &s, eng::CallId id);
    // the 200 of a queued park (park_flow.cc): answered later with the park (v1.9 host), or now
    pw_dialog *acceptLater(pw_request *held, Session &s, Leg *leg, const std::string &sdp, eng::ParkRequest &pr);
    pw_dialog *acceptNow(pw_request *held, Leg &leg, const std::string &sdp);
    int refuseUnexportable(const std::string &party);
    // Session::parkedOnUri from the engine's call, indexed for overloadPriority (sessions.cc)
    void setParkedOn(Session &s, const eng::ParkedCall &call, const std::string &domain);
    void unindexParkedOn(const Session &s);
    bool parkedHere(const std::string &parkedOnUri) const;
    Leg *newLeg(uint64_t sid, std::string role);
    Leg *legById(uint64_t id) {
        auto it = legById_.find(id);
        return it == legById_.end() ? nullptr : it->second;
    }
    // Response closure of a UAC INVITE: it may see forked 2xx after its final response, so it lives until
    // 64*T1 after the first final response (RFC 3261 §13.2.2.4), then is freed.
    Pending *invitePending(Leg *leg, std::function<void(pw_dialog *, int, const pw_msg *)> fn);
    void releaseInvitePendingLater(Pending *p); // (multi) once no callback can come any more
    // Requests in flight with their closures (see pending.hh): tracked so none outlives what it needs.
    Pending *trackPending(Pending *p, pw_dialog *dlg);
    void forgetPending(Pending *p);      // freed (final response, or not sent)
    void retirePendings(pw_dialog *dlg); // the dialog ended: its requests will get no callback any more
    void dropLeg(Leg *leg);
    // Free what ended on the next loop turn. `sid`: the session that may have ended (only it is checked);
    // 0 = check every session. A full sweep also runs at least once a second as a safety net.
    void reapLater(uint64_t sid = 0);
    void reap();
    void sweep();

    static const pw_dialog_callbacks *legCallbacks();
    static const pw_dialog_callbacks *uacLegCallbacks(); // arg = the leg's invitePending()
    // In-dialog request with a closure for the responses; false when it could not be sent.
    template <typename F>
    bool sendInDialog(pw_dialog *dlg, std::string_view method, Headers *h, std::string_view ctype,
                      std::string_view body, uint32_t flags, F &&fn) {
        if (!dlg)
            return false;
        Pending *p = trackPending(makePending(std::forward<F>(fn)), dlg);
        int rc = host_.api()->dialog_request(dlg, ps(method), h ? h->data() : nullptr, h ? h->size() : 0, ps(ctype),
                                             ps(body), flags, pendingResponse, p);
        if (rc != PW_OK) {
            forgetPending(p);
            return false;
        }
        return true;
    }
    static const pw_dialog_callbacks *subCallbacks();

    // One-shot timers with closures (SIP thread); cancelTimer zeroes the id.
    pw_timer_id after(uint64_t ms, std::function<void()> fn);
    void cancelTimer(pw_timer_id &id);
    struct TimerCtx {
        CallPark *cp;
        std::function<void()> fn;
        pw_timer_id id;
    };
    std::map<pw_timer_id, TimerCtx *> timerCtx_;

    // Re-INVITE `keep` with `offer` (from `fresh`'s offerless 2xx) and ACK `fresh` with keep's answer
    // (RFC 3725 flow). done(true) when both legs are connected.
    void connectLegs(Session &s, Leg *keep, Leg *fresh, const std::string &offer, std::function<void(bool)> done);
    // Ring a target (extension AOR or number) with an offerless INVITE per contact; returns the legs.
    std::vector<Leg *> ringTarget(Session &s, const std::string &target, bool isNumber, const std::string &fromDisplay,
                                  const std::string &fromUri, const std::string &alertInfo, const std::string &role);

    std::string aor(const std::string &user, const std::string &domain) const {
        return fmt::format("sip:{}@{}", user, domain);
    }
    std::string ourContact() const { return host_.coreSetting("contact"); }
    // Where a request to a user goes (destinations.cc, docs/routing.md): registered contacts (next hop: their
    // Path as a route set, RFC 3327 §5.2, else the address they registered from) and/or the AOR itself through
    // the outbound proxy, as notify_target says. Empty: nobody to send to.
    struct Destination {
        std::string uri, hop;
    };
    std::vector<Destination> destinationsFor(const std::string &aorUri, const std::string &domain) const;
    // park-info's last step (watchers.cc): the NOTIFYs, once the versions are read.
    void sendParkInfoNotifies(const std::string &domain, const ParkInfoEntry &entry,
                              const std::vector<std::string> &told,
                              const std::vector<std::vector<Destination>> &contactsOf,
                              const std::vector<std::int64_t> &versions);
    std::string mediaIp() const { return settings_.mohIp; }

    std::map<uint64_t, std::unique_ptr<Session>> sessions_;
    std::map<Leg *, std::unique_ptr<Leg>> legs_;
    std::map<Subscription *, std::unique_ptr<Subscription>> subs_;
    std::unordered_map<uint64_t, Subscription *> subById_;
    uint64_t nextSubId_ = 1;
    struct WatcherCounts {
        size_t total = 0;
        std::unordered_map<std::string, size_t> byDomain, bySubscriber;
        std::unordered_map<std::string, std::set<uint64_t>> byTarget; // domain|target key -> subscription ids
    } watcherCounts_;
    std::deque<uint64_t> notifyQueue_;            // subscription ids with a NOTIFY owed
    std::unordered_set<uint64_t> notifyInFlight_; // subscription ids whose NOTIFY awaits its read or its answer
    NotifyRead lastRead_; // the newest state read per target (a terminated NOTIFY with a storage thread shows it)
    pw_timer_id notifyTimer_ = 0;
    // Engine events of this turn, handled on the next one under a single timer (onEngineEvent), in commit order.
    std::vector<eng::ChangeEvent> pendingEvents_;
    pw_timer_id eventTimer_ = 0;
    std::deque<eng::StoredWatcher> restoreQueue_; // stored subscriptions not yet resumed after a restart
    size_t restoredWatchers_ = 0, lostWatchers_ = 0;
    std::map<std::string, ReferIntent> referIntents_; // key: Call-ID;to-tag;from-tag of the REFER's dialog
    // retrieve_mode=replaces: Call-ID of the retriever's INVITE we let through -> session (onResponse).
    std::unordered_map<std::string, uint64_t> sidByReplacesCid_;
    // parkedOnUri -> sessions parked there (setParkedOn), dropped when the session is reaped: lets the overload gate's
    // priority check answer from memory, with no store read on the SIP thread (dispatch.cc overloadPriority)
    std::unordered_multimap<std::string, uint64_t> sidsByParkedOn_;

private:
    Host host_;
    Settings settings_;
    std::unique_ptr<eng::Clock> clock_;
    std::unique_ptr<eng::Engine> engine_;
    mutable StorageWorker storage_; // after engine_: stopped (its thread joined) before the engine goes
    MohPlayer moh_;
    eng::Engine::ListenerId listener_ = 0;
    uint64_t nextSid_ = 1;
    pw_timer_id reapTimer_ = 0;
    std::string contact_;
    bool stopping_ = false;
    std::vector<Leg *> graveyard_;
    std::vector<uint64_t> reapCandidates_;
    bool reapAll_ = false;
    int64_t lastFullReapMs_ = 0;
    pw_timer_id sweepTimer_ = 0; // the once-a-second full sweep after targeted reaps
    std::map<uint64_t, Leg *> legById_;
    uint64_t nextLegId_ = 1;
    std::set<Pending *> invitePendings_;
    std::set<Pending *> pendings_; // every other Pending in flight
    std::unordered_map<eng::CallId, uint64_t> sidByCall_;
    // Live engine calls per (domain, lot) for the parkway_parked_calls gauge, kept from the engine's events
    // (counted once from liveCalls() at start) instead of listing the engine on every change.
    std::map<std::pair<std::string, std::string>, int64_t> parkedCounts_;
    std::set<std::string> servedDomains_; // declared with domain_serve by declareDomains()
    void countEvent(const eng::ChangeEvent &e);

public:
    // forceRecall: the engine only steps a recall at its deadline, so an admin "recall now" shows the engine
    // that instant through our clock for the duration of that one call.
    std::atomic<int64_t> clockOverrideMs{0};
    MohPlayer &moh() { return moh_; }
    ReportThrottle mohFailureLog_{60000}; // music-on-hold allocation failures: logged once a minute

    // ---- the park database away (docs/cluster.md "Database outage"), park_flow.cc
    // Retry-After of a park or retrieve refused because the database cannot be reached (RFC 3261 §21.5.4).
    static constexpr int kStorageRetryAfterSeconds = 5;
    // A recall due while the database is away is tried again this much later.
    static constexpr uint64_t kStorageRetryMs = 5000;
    // A storage failure met by `what` (e.g. "park in pbx.example.com"): one error line naming the database at the
    // first failure, then at most one per kStorageLogMs with the count in between.
    void storageFailed(const std::string &what, const std::string &message);
    // An operation on the database succeeded: after failures, one line saying it is back.
    void storageOk();
    // 503 + Retry-After for a request refused because the database is away.
    void refuseStorage(pw_request *req);
    // The same for a request held (PW_SUSPEND, retained) whose storage job could not be queued: resumed and released.
    void refuseHeld(pw_request *held);
    static constexpr int64_t kStorageLogMs = 10000;
    ReportThrottle storageLog_{kStorageLogMs};
    std::string dbPath_;             // engine->path(), read once: the log lines need no engine lock
    int64_t storageDownSinceMs_ = 0; // 0 = the last operation reached the database
    uint64_t storageRefused_ = 0;    // operations that failed since then (refused requests, saves)
    bool stopping() const { return stopping_; }
};

// Counters, labels and small helpers shared by the flows.
// A storage failure's message, short: its first line, without the SQL text and the database name (park_flow.cc).
std::string storageReason(std::string message);
std::string domainLabels(const std::string &domain, const std::string &lot);
std::string userOf(const std::string &uri);
std::string hostOf(const std::string &uri);
std::string quoteDisplay(const std::string &display);
std::string nameAddr(const std::string &display, const std::string &uri);

} // namespace parkway::callpark
