// callpark.so: the module descriptor, its parameter table, its REST routes (admin_routes.h) and the hooks. The
// hooks are the SDK's noexcept trampolines (parkway/module.hpp) into CallPark; no exception crosses the C ABI.
#include "admin_routes.h"
#include "callpark.hh"

namespace parkway::callpark {
namespace {

#define PARAM(n, t, d, h)                                                                                              \
    pw_param_def {                                                                                                     \
        sizeof(pw_param_def), n, t, d, h                                                                               \
    }

const pw_param_def kParams[] = {
    PARAM("database", PW_PARAM_STRING, "",
          "SQLite file of the park engine (its own file); empty = beside the core database, e.g. parkway.db -> "
          "parkway-park.db"),
    PARAM("refer_mode", PW_PARAM_STRING, "passthrough",
          "REFER to a park code: passthrough (relay it; park the transferee's INVITE) or takeover (202, "
          "sipfrag NOTIFYs, INVITE+Replaces to the transferee)"),
    PARAM("retrieve_mode", PW_PARAM_STRING, "bridge",
          "bridge (RFC 3725 re-INVITE of the parked party, module stays in the signalling path) or replaces "
          "(forward the retriever's INVITE with Replaces; falls back to bridge when refused)"),
    PARAM("occupied_policy", PW_PARAM_STRING, "",
          "reject|stack for domains without their own setting; empty = engine default (stack)"),
    PARAM("recall_time", PW_PARAM_DURATION, "0",
          "time until recall for domains without their own setting (1s..3600s); 0 = engine default (300s)"),
    PARAM("recall_mode", PW_PARAM_STRING, "",
          "parker|parker_then_alternate|alternate_only for domains without their own setting; empty = parker"),
    PARAM("alternate", PW_PARAM_STRING, "",
          "recall alternate for domains without their own setting: 103, group:sales or number:+1555..."),
    PARAM("phone_profile", PW_PARAM_STRING, "generic",
          "defaults for the phones in use (docs/phones.md): generic or grandstream (GRP26xx ring patterns)"),
    PARAM("recall_alert_info", PW_PARAM_STRING, "",
          "Alert-Info of recall INVITEs; empty: the phone profile's, none: no Alert-Info"),
    PARAM("blf_state", PW_PARAM_STRING, "early",
          "dialog-info state of a parked call: early (BLF flashes) or confirmed (solid)"),
    PARAM("moh_ip", PW_PARAM_STRING, "127.0.0.1", "local IP for music-on-hold RTP (also put in our SDP)"),
    PARAM("moh_port_min", PW_PARAM_INT, "40000", "first UDP port for music-on-hold RTP"),
    PARAM("moh_port_max", PW_PARAM_INT, "40999", "last UDP port for music-on-hold RTP"),
    PARAM("moh_file", PW_PARAM_STRING, "", "WAV file (8 kHz mono 16-bit PCM) for music on hold; empty = built-in"),
    PARAM("moh_prelatch_ms", PW_PARAM_INT, "5000",
          "music on hold sent to the SDP address before the parked party's own RTP latches the stream (symmetric "
          "RTP; then only to where that RTP comes from); 0 = none, -1 = no bound (trusted networks only)"),
    PARAM("moh_streams_per_port", PW_PARAM_INT, "16",
          "music-on-hold streams sharing one UDP port (each its own SSRC; our SDP names the shared port; "
          "1..1024, 1 = a port per call): N parked calls take ceil(N/this) sockets"),
    PARAM("rules_file", PW_PARAM_STRING, "",
          "dialplan rules file loaded at start and on reload (engine TSV format); empty = keep stored rules"),
    PARAM("provision_file", PW_PARAM_STRING, "",
          "TOML file with domains' settings, groups and lots, applied at start and on reload"),
    PARAM("park_info", PW_PARAM_BOOL, "true", "send out-of-dialog NOTIFY Event: park-info on park state changes"),
    PARAM("notify_target", PW_PARAM_STRING, "auto",
          "where park-info NOTIFYs and recall INVITEs to a user go: contacts (registered here) | aor (the user's "
          "address of record, through [proxy] outbound_proxy, whose proxy finds the phones) | auto (contacts when "
          "there are any, else the AOR); without an outbound proxy the AOR is never used (docs/routing.md)"),
    PARAM("connected_identity", PW_PARAM_BOOL, "true",
          "tell each party who it is connected to (P-Asserted-Identity, RFC 3325) on retrieve and recall; trusted "
          "networks only"),
    PARAM("refer_memory", PW_PARAM_DURATION, "32s",
          "passthrough mode: how long a REFER's park intent is remembered for the transferee's INVITE"),
    PARAM("max_watchers", PW_PARAM_INT, "10000",
          "most dialog/call-info subscriptions held at once; a new one beyond gets 503 + Retry-After; 0 = no cap"),
    PARAM("max_watchers_per_domain", PW_PARAM_INT, "2000",
          "most subscriptions per domain (503 + Retry-After beyond); 0 = no cap"),
    PARAM("max_watchers_per_target", PW_PARAM_INT, "200",
          "most subscriptions watching one slot, extension, group or lot (503 + Retry-After beyond); 0 = no cap"),
    PARAM("max_watchers_per_subscriber", PW_PARAM_INT, "100",
          "most subscriptions of one subscriber (From address-of-record); 403 beyond; 0 = no cap"),
    PARAM("notify_batch", PW_PARAM_INT, "100",
          "NOTIFYs sent per event-loop turn when one change has many watchers (the rest follow on the next turns)"),
    PARAM("restore_batch", PW_PARAM_INT, "200",
          "parked calls restored per event-loop turn after a restart (requests are served between batches)"),
    PARAM("list_uri_prefix_lot", PW_PARAM_STRING, "lot-",
          "RFC 4662 event list of a lot: sip:<prefix><lot>@domain; empty = no lot lists"),
    PARAM("list_uri_prefix_group", PW_PARAM_STRING, "group-",
          "RFC 4662 event list of a park group: sip:<prefix><group>@domain; empty = no group lists"),
    PARAM("max_park_time", PW_PARAM_DURATION, "30m",
          "for domains without their own setting: after this long parked, the final recall target rings once, "
          "then the call is ended (BYE, Reason 480 \"Parked too long\"); 0 = no limit"),
    PARAM("node", PW_PARAM_STRING, "",
          "cluster node name on a PostgreSQL park database (docs/cluster.md): unique per node; empty = host name "
          "and SIP port, e.g. park1-5060"),
    PARAM("node_heartbeat", PW_PARAM_DURATION, "1s",
          "cluster: how often the node renews its lease and looks for dead nodes whose calls it takes over"),
    PARAM("node_lease", PW_PARAM_DURATION, "5s",
          "cluster: a node that has not renewed its lease for this long is dead; another node takes its calls over "
          "(at least twice node_heartbeat)"),
    PARAM("storage_thread", PW_PARAM_STRING, "auto",
          "run park engine operations on a storage thread (docs/cluster.md \"Threads\"): auto = on (on a host "
          "older than ABI 1.9: for a PostgreSQL park database only); on | off force it"),
    PARAM("storage_queue", PW_PARAM_INT, "1000",
          "storage thread: operations queued beyond this refuse new parks and retrieves (503 + Retry-After)"),
    PARAM("storage_queue_wait", PW_PARAM_DURATION, "2s",
          "storage thread: while its oldest operation has waited longer than this, new parks and retrieves get "
          "503 + Retry-After"),
    pw_param_def{sizeof(pw_param_def), nullptr, PW_PARAM_STRING, nullptr, nullptr},
};
#undef PARAM

// The hooks: noexcept trampolines of the SDK (parkway/module.hpp) into CallPark.
namespace sdk = parkway::sdk;

CallPark *cpOf(void *ctx) {
    return static_cast<CallPark *>(ctx);
}

int hookInit(const pw_host_api *api, pw_host *host, void **ctx) noexcept {
    if (!api || !ctx)
        return PW_EINVAL;
    return sdk::guardInt(api, host, "callpark", "init", [&] {
        auto cp = std::make_unique<CallPark>(api, host);
        int rc = cp->init();
        if (rc == PW_OK)
            *ctx = cp.release();
        return rc;
    });
}

int hookStart(void *ctx) noexcept {
    const Host &h = cpOf(ctx)->host();
    return sdk::guardInt(h.api(), h.raw(), "callpark", "start", [&] { return cpOf(ctx)->start(); });
}

void hookStop(void *ctx) noexcept {
    const Host &h = cpOf(ctx)->host();
    sdk::guardVoid(h.api(), h.raw(), "callpark", "stop", [&] { cpOf(ctx)->stop(); });
}

void hookDestroy(void *ctx) noexcept {
    const pw_host_api *api = cpOf(ctx)->host().api();
    pw_host *host = cpOf(ctx)->host().raw();
    sdk::guardVoid(api, host, "callpark", "destroy", [&] { delete cpOf(ctx); });
}

pw_verdict hookRequest(void *ctx, pw_request *req) noexcept {
    const Host &h = cpOf(ctx)->host();
    return sdk::guardRequest(h.api(), h.raw(), "callpark", req, [&] { return cpOf(ctx)->onRequest(req); });
}

void hookResponse(void *ctx, const pw_msg *resp) noexcept {
    const Host &h = cpOf(ctx)->host();
    sdk::guardVoid(h.api(), h.raw(), "callpark", "on_response", [&] { cpOf(ctx)->onResponse(resp); });
}

int hookReload(void *ctx) noexcept {
    const Host &h = cpOf(ctx)->host();
    return sdk::guardInt(h.api(), h.raw(), "callpark", "reload", [&] { return cpOf(ctx)->reload(); });
}

int hookOverloadPriority(void *ctx, const pw_msg *req) noexcept {
    try {
        return static_cast<CallPark *>(ctx)->overloadPriority(req);
    } catch (...) {
        return 0; // cannot tell: new work
    }
}

int hookDomainRelease(void *ctx, pw_str domain, pw_writer *why) {
    try {
        return static_cast<CallPark *>(ctx)->releaseDomain(sv(domain), why);
    } catch (...) {
        return PW_ENOMEM; // cannot tell: keep the domain
    }
}

const pw_module kModule = {
    sizeof(pw_module),
    PW_ABI_MAJOR,
    PW_ABI_MINOR,
    "callpark",
    "1.0.0",
    "call park: park/group park/retrieve/recall over SIP, dialog-info/park-info/BroadWorks notifications",
    kParams,
    CallPark::commandTable(),
    hookInit,
    hookStart,
    hookStop,
    hookDestroy,
    hookRequest,
    hookResponse,
    hookReload,
    kCallparkRoutes,
    hookDomainRelease,    // v1.4 (tenants)
    hookOverloadPriority, // v1.6 (overload)
};

} // namespace
} // namespace parkway::callpark

extern "C" PW_EXPORT const pw_module *pw_module_entry(uint32_t host_abi_major) {
    if (host_abi_major != PW_ABI_MAJOR)
        return nullptr;
    return &parkway::callpark::kModule;
}
