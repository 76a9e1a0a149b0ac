#include "settings.hh"

#include <cctype>

namespace parkway::callpark {
namespace {

// Phone profiles (docs/phones.md): defaults that depend on the phones' firmware, each overridable by its own
// parameter. A GRP26xx plays a distinctive ring only for Alert-Info URLs it knows (its Bellcore-dr1..dr5
// patterns, matched by text); it rings an unknown URN like a normal call.
struct PhoneProfile {
    const char *name;
    const char *recallAlertInfo;
};
constexpr PhoneProfile kPhoneProfiles[] = {
    {"generic", "<urn:alert:tone:recall>"},
    {"grandstream", "<http://127.0.0.1/Bellcore-dr3>"},
};

const PhoneProfile *findPhoneProfile(const std::string &name) {
    for (const auto &p : kPhoneProfiles)
        if (name == p.name)
            return &p;
    return nullptr;
}

} // namespace

bool validNodeName(const std::string &name, bool emptyOk) {
    if (name.empty())
        return emptyOk;
    if (name.size() > 64)
        return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' && c != ':')
            return false;
    return true;
}

bool Settings::load(const Host &host, std::string *err) {
    auto fail = [&](std::string msg) {
        if (err)
            *err = std::move(msg);
        return false;
    };
    database = host.paramStr("database");

    std::string v = host.paramStr("refer_mode");
    if (v == "passthrough")
        referMode = ReferMode::Passthrough;
    else if (v == "takeover")
        referMode = ReferMode::Takeover;
    else
        return fail(fmt::format("callpark: refer_mode '{}' must be passthrough or takeover", v));

    v = host.paramStr("retrieve_mode");
    if (v == "bridge")
        retrieveMode = RetrieveMode::Bridge;
    else if (v == "replaces")
        retrieveMode = RetrieveMode::Replaces;
    else
        return fail(fmt::format("callpark: retrieve_mode '{}' must be bridge or replaces", v));

    occupiedPolicy = host.paramStr("occupied_policy");
    if (!occupiedPolicy.empty() && occupiedPolicy != "reject" && occupiedPolicy != "stack")
        return fail(fmt::format("callpark: occupied_policy '{}' must be reject or stack", occupiedPolicy));

    recallTimeMs = host.paramInt("recall_time");
    if (recallTimeMs != 0 && (recallTimeMs < 1000 || recallTimeMs > 3600000))
        return fail(fmt::format("callpark: recall_time {} ms is outside 1s..3600s", recallTimeMs));

    recallMode = host.paramStr("recall_mode");
    if (!recallMode.empty() && recallMode != "parker" && recallMode != "parker_then_alternate" &&
        recallMode != "alternate_only")
        return fail(fmt::format("callpark: recall_mode '{}' must be parker, parker_then_alternate or alternate_only",
                                recallMode));
    alternate = host.paramStr("alternate");
    phoneProfile = host.paramStr("phone_profile");
    const PhoneProfile *profile = findPhoneProfile(phoneProfile);
    if (!profile)
        return fail(fmt::format("callpark: phone_profile '{}' must be generic or grandstream", phoneProfile));
    recallAlertInfo = host.paramStr("recall_alert_info");
    if (recallAlertInfo.empty())
        recallAlertInfo = profile->recallAlertInfo;
    else if (recallAlertInfo == "none")
        recallAlertInfo.clear();

    v = host.paramStr("blf_state");
    if (v == "early")
        blfConfirmed = false;
    else if (v == "confirmed")
        blfConfirmed = true;
    else
        return fail(fmt::format("callpark: blf_state '{}' must be early or confirmed", v));

    mohIp = host.paramStr("moh_ip");
    int64_t pmin = host.paramInt("moh_port_min"), pmax = host.paramInt("moh_port_max");
    if (pmin < 1024 || pmax > 65535 || pmin > pmax)
        return fail(
            fmt::format("callpark: moh_port_min/moh_port_max {}..{} is not a range inside 1024..65535", pmin, pmax));
    mohPortMin = static_cast<uint16_t>(pmin);
    mohPortMax = static_cast<uint16_t>(pmax);
    mohPrelatchMs = host.paramInt("moh_prelatch_ms");
    if (mohPrelatchMs < -1 || mohPrelatchMs > 600000)
        return fail(fmt::format("callpark: moh_prelatch_ms {} is outside 0..600000 (-1 = no bound)", mohPrelatchMs));
    int64_t perPort = host.paramInt("moh_streams_per_port");
    if (perPort < 1 || perPort > 1024)
        return fail(fmt::format("callpark: moh_streams_per_port {} is outside 1..1024", perPort));
    mohStreamsPerPort = static_cast<uint32_t>(perPort);
    // Relative file parameters follow the config file (core setting config_dir), like [proxy] database. A URL
    // (database = "postgresql://...", docs/cluster.md) is not a file.
    std::string configDir = host.coreSetting("config_dir");
    auto resolve = [&configDir](std::string p) {
        if (p.empty() || p[0] == '/' || p == ":memory:" || configDir.empty() || p.find("://") != std::string::npos)
            return p;
        return configDir + "/" + p;
    };
    database = resolve(database);
    mohFile = resolve(host.paramStr("moh_file"));
    rulesFile = resolve(host.paramStr("rules_file"));
    provisionFile = resolve(host.paramStr("provision_file"));
    parkInfo = host.paramInt("park_info") != 0;
    v = host.paramStr("notify_target");
    if (v == "contacts")
        notifyTarget = NotifyTarget::Contacts;
    else if (v == "aor")
        notifyTarget = NotifyTarget::Aor;
    else if (v == "auto")
        notifyTarget = NotifyTarget::Auto;
    else
        return fail(fmt::format("callpark: notify_target '{}' must be contacts, aor or auto", v));
    connectedIdentity = host.paramInt("connected_identity") != 0;
    referMemoryMs = host.paramInt("refer_memory");
    if (referMemoryMs < 0)
        return fail("callpark: refer_memory must not be negative");

    struct Cap {
        const char *name;
        int64_t *value;
    };
    for (Cap c : {Cap{"max_watchers", &maxWatchers}, Cap{"max_watchers_per_domain", &maxWatchersPerDomain},
                  Cap{"max_watchers_per_target", &maxWatchersPerTarget},
                  Cap{"max_watchers_per_subscriber", &maxWatchersPerSubscriber}}) {
        *c.value = host.paramInt(c.name);
        if (*c.value < 0 || *c.value > 10000000)
            return fail(fmt::format("callpark: {} {} is outside 0..10000000 (0 = no cap)", c.name, *c.value));
    }
    notifyBatch = host.paramInt("notify_batch");
    if (notifyBatch < 1 || notifyBatch > 100000)
        return fail(fmt::format("callpark: notify_batch {} is outside 1..100000", notifyBatch));
    restoreBatch = host.paramInt("restore_batch");
    if (restoreBatch < 1 || restoreBatch > 100000)
        return fail(fmt::format("callpark: restore_batch {} is outside 1..100000", restoreBatch));
    maxParkTimeMs = host.paramInt("max_park_time");
    if (maxParkTimeMs != 0 && (maxParkTimeMs < 1000 || maxParkTimeMs > 86400000))
        return fail(fmt::format("callpark: max_park_time {} ms is outside 1s..24h (0 = no limit)", maxParkTimeMs));
    node = host.paramStr("node");
    if (!validNodeName(node, true))
        return fail(fmt::format("callpark: node '{}' must be 1..64 letters, digits, '.', '-', '_' or ':'", node));
    nodeHeartbeatMs = host.paramInt("node_heartbeat");
    if (nodeHeartbeatMs < 100 || nodeHeartbeatMs > 60000)
        return fail(fmt::format("callpark: node_heartbeat {} ms is outside 100ms..60s", nodeHeartbeatMs));
    v = host.paramStr("storage_thread");
    if (v == "auto")
        storageThread = StorageThread::Auto;
    else if (v == "on")
        storageThread = StorageThread::On;
    else if (v == "off")
        storageThread = StorageThread::Off;
    else
        return fail(fmt::format("callpark: storage_thread '{}' must be auto, on or off", v));
    storageQueue = host.paramInt("storage_queue");
    if (storageQueue < 1 || storageQueue > 1000000)
        return fail(fmt::format("callpark: storage_queue {} is outside 1..1000000", storageQueue));
    storageQueueMs = host.paramInt("storage_queue_wait");
    if (storageQueueMs < 10 || storageQueueMs > 600000)
        return fail(fmt::format("callpark: storage_queue_wait {} ms is outside 10ms..10m", storageQueueMs));
    nodeLeaseMs = host.paramInt("node_lease");
    if (nodeLeaseMs < 2 * nodeHeartbeatMs || nodeLeaseMs > 600000)
        return fail(fmt::format("callpark: node_lease {} ms must be at least twice node_heartbeat ({} ms) and at "
                                "most 10m",
                                nodeLeaseMs, nodeHeartbeatMs));
    listUriPrefixLot = host.paramStr("list_uri_prefix_lot");
    listUriPrefixGroup = host.paramStr("list_uri_prefix_group");
    if (!listUriPrefixLot.empty() && listUriPrefixLot == listUriPrefixGroup)
        return fail("callpark: list_uri_prefix_lot and list_uri_prefix_group must differ");
    return true;
}

} // namespace parkway::callpark
