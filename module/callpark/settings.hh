// The module's parameters (declared in callpark_module.cc with defaults and help), read once in init().
#pragma once
#include "host.hh"

#include <cstdint>
#include <string>

namespace parkway::callpark {

enum class ReferMode { Passthrough, Takeover };
enum class RetrieveMode { Bridge, Replaces };
// Where park-info NOTIFYs and recall INVITEs to a user go (docs/routing.md "Users we did not register").
enum class NotifyTarget { Contacts, Aor, Auto };

struct Settings {
    std::string database; // "" = the core's database
    ReferMode referMode = ReferMode::Passthrough;
    RetrieveMode retrieveMode = RetrieveMode::Bridge;
    std::string occupiedPolicy; // "" = engine/domain default; else reject|stack for domains not provisioned
    int64_t recallTimeMs = 0;   // 0 = engine/domain default
    std::string recallMode;     // "" = engine/domain default
    std::string alternate;
    std::string phoneProfile = "generic";                    // docs/phones.md: what the profile sets
    std::string recallAlertInfo = "<urn:alert:tone:recall>"; // "" = no Alert-Info
    bool blfConfirmed = false;                               // blf_state: early (default) | confirmed
    std::string mohIp = "127.0.0.1";
    uint16_t mohPortMin = 40000, mohPortMax = 40999;
    std::string mohFile;
    // Music on hold sent to the parked party's SDP address before its own RTP latches the stream (symmetric
    // RTP, docs/callpark.md); 0 = none, -1 = no bound (send to the SDP address until a latch).
    int64_t mohPrelatchMs = 5000;
    uint32_t mohStreamsPerPort = 16; // music-on-hold streams sharing one UDP port (1 = a port per call)
    std::string rulesFile;
    std::string provisionFile;
    bool parkInfo = true;
    NotifyTarget notifyTarget = NotifyTarget::Auto;
    // P-Asserted-Identity (RFC 3325 §9.1) of the party a leg is now connected to, on the retrieve / recall
    // re-INVITE to the parked party and on the 200 to the retriever (docs/callpark.md "Retrieve").
    bool connectedIdentity = true;
    int64_t referMemoryMs = 32000;

    // Caps on subscriptions (docs/limits.md "Call park"); 0 = no cap. A refresh of an existing subscription is
    // never refused (the host answers it in the dialog).
    int64_t maxWatchers = 10000;            // server-wide            -> 503 + Retry-After
    int64_t maxWatchersPerDomain = 2000;    // per domain             -> 503 + Retry-After
    int64_t maxWatchersPerTarget = 200;     // per slot/extension/group/lot watched -> 503 + Retry-After
    int64_t maxWatchersPerSubscriber = 100; // per From address-of-record -> 403
    int64_t notifyBatch = 100;              // NOTIFYs sent per loop turn (docs/notifications.md "Pacing")
    int64_t restoreBatch = 200;             // parked calls restored per loop turn after a restart
    int64_t maxParkTimeMs = 1800000;        // max_park_time for domains without their own; 0 = no limit
    // RFC 4662 event list URIs (docs/notifications.md "Event lists"): sip:<prefix><lot or group name>@domain.
    std::string listUriPrefixLot = "lot-";
    std::string listUriPrefixGroup = "group-";
    // Cluster (docs/cluster.md "Ownership and failover"), used on a PostgreSQL park database: this node's name
    // ("" = derived from the host name and the SIP port), its heartbeat and lease.
    std::string node;
    int64_t nodeHeartbeatMs = 1000;
    int64_t nodeLeaseMs = 5000;
    // The storage thread (docs/cluster.md "Threads"): "auto" = on (a host older than ABI 1.9: PostgreSQL only).
    enum class StorageThread { Auto, On, Off };
    StorageThread storageThread = StorageThread::Auto;
    int64_t storageQueue = 1000;   // jobs queued beyond this: new parks and retrieves get 503
    int64_t storageQueueMs = 2000; // the oldest job waited longer: the same

    // Reads and validates every parameter; false + *err naming the parameter when a value is bad.
    bool load(const Host &host, std::string *err);
};

// A node name (setting `node`): 1..64 of [A-Za-z0-9._:-] ("" only when emptyOk).
bool validNodeName(const std::string &name, bool emptyOk);

} // namespace parkway::callpark
