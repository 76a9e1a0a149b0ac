/*
 * Parkway plugin ABI, version 1 (minor 8). docs/modules.md is the guide: how to write, build and test a module.
 *
 * This header is the whole contract between the Parkway host (proxy/) and a loadable module (.so).
 * Rules that keep it stable for years:
 *   - Pure C99; also compiles as C++. No sofia-sip, libevent, SQLite or C++ types ever appear here.
 *   - One exported symbol, pw_module_entry(), returns a pointer to a static descriptor.
 *   - abi_major must equal the host's; abi_minor only ever ADDS members at the END of structs and
 *     new functions at the end of pw_host_api. A newer host loads an older module and vice versa.
 *   - Every struct that crosses the boundary starts with `uint32_t struct_size` (sizeof at build time).
 *     The reader only touches members that fit inside struct_size; a struct shorter than the v1.0
 *     layout is refused by the loader.
 *   - Handles are opaque. Strings are pw_str {ptr,len} views, NOT NUL-terminated, borrowed: valid until
 *     the callback that produced them returns (copy them if you keep them). Strings passed INTO the
 *     host are copied by the host before the call returns. Each function below says how long what it
 *     returns lives ("Lifetime:"); where it does not, the rule above holds.
 *   - "Until the turn ends": valid until the hook, callback, timer or posted function during which it was
 *     obtained returns to the host (the host frees these when its SIP loop turn ends). Never keep such a
 *     view in a timer, a later callback or another thread: copy it.
 *   - Unknown enum values (a newer peer). A module receiving a value it does not know treats it as stated at
 *     the enum (e.g. an unknown pw_dialog_end_reason as PW_END_TRANSPORT); the host treats an unknown value
 *     from a module as stated there too (e.g. an unknown pw_verdict as PW_STOP, logged). Error codes: any
 *     negative value a module does not know is a failure, like PW_EINVAL.
 *   - Threading: every hook and every callback runs on the single SIP thread. Modules never see threads.
 *     The only host function that may be called from another thread is pw_host_api.post().
 *   - Return codes: 0 (PW_OK) is success; a negative PW_E* value is an error.
 */
#ifndef PARKWAY_MODULE_H
#define PARKWAY_MODULE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PW_ABI_MAJOR 1u
/* 1.1: dialog_accept_commit; 1.2: request_identity, request_challenge; 1.3: dialog_inject_cseq;
   1.4: uri_part, uri_param, uri_header (pw_host_api) and routes (pw_module);
   domain_serve (pw_host_api) and domain_release (pw_module): tenants; 1.5: event_listening;
   1.6: log_enabled (pw_host_api) and overload_priority (pw_module); 1.7: dialog_forget;
   1.8: writer_defer, writer_finish (admin commands answered later);
   1.9: dialog_accept_finish (a dialog_accept_commit whose commit step answers later: PW_COMMIT_LATER) */
#define PW_ABI_MINOR 9u

/* Whether the host table `api` has the member `member` and it is set. A member added in a later minor version
 * (dialog_accept_commit, 1.1) lies past the end of an older host's shorter table: test it before calling it,
 * e.g. if (PW_HOST_HAS(api, dialog_accept_commit)) ... */
#define PW_HOST_HAS(api, member)                                                                                       \
    ((api)->struct_size >= offsetof(pw_host_api, member) + sizeof((api)->member) && (api)->member != NULL)

/* The same for a module descriptor read by the host (e.g. routes, 1.4). */
#define PW_MODULE_HAS(mod, member)                                                                                     \
    ((mod)->struct_size >= offsetof(pw_module, member) + sizeof((mod)->member) && (mod)->member != NULL)

/* The one exported symbol. The host passes the ABI major it speaks; a module may return NULL to decline. */
#define PW_MODULE_ENTRY_SYMBOL "pw_module_entry"

#if defined(_WIN32)
#define PW_EXPORT __declspec(dllexport)
#else
#define PW_EXPORT __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- basic types */

typedef struct pw_str {
    const char *ptr; /* may be NULL when len == 0 */
    size_t len;
} pw_str;

/* Build a pw_str from a string literal. */
#ifdef __cplusplus
#define PW_STR_LIT(s) (pw_str{(s), sizeof(s) - 1})
#else
#define PW_STR_LIT(s) ((pw_str){(s), sizeof(s) - 1})
#endif

typedef struct pw_header {
    pw_str name;  /* e.g. "Alert-Info" */
    pw_str value; /* e.g. "<urn:alert:tone:recall>" */
} pw_header;

enum {
    PW_OK = 0,
    PW_EINVAL = -1,     /* bad argument */
    PW_ENOTFOUND = -2,  /* no such header / dialog / parameter / contact */
    PW_ESTATE = -3,     /* handle in the wrong state (e.g. reply after final response) */
    PW_ETRANSPORT = -4, /* could not send */
    PW_ENOMEM = -5,
    PW_ETOOSMALL = -6, /* caller's buffer too small; the needed size is returned elsewhere */
    PW_EUNSUPPORTED = -7
};

/* Unknown value from a module (on_request, request_resume): the host logs it and treats it as PW_STOP (an
   unanswered request then gets 500), never as PW_CONTINUE: a module that meant to stop a request is obeyed. */
typedef enum pw_verdict {
    PW_CONTINUE = 0, /* next module, then routing/forwarding by the core */
    PW_STOP = 1,     /* the module answered or consumed the request; the chain ends */
    PW_SUSPEND = 2   /* the module called request_retain() and will call request_resume() later */
} pw_verdict;

/* Unknown value: the host clamps it (below PW_LOG_ERROR is ERROR, above PW_LOG_DEBUG is DEBUG). */
typedef enum pw_log_level { PW_LOG_ERROR = 0, PW_LOG_WARN = 1, PW_LOG_INFO = 2, PW_LOG_DEBUG = 3 } pw_log_level;

/* ---------------------------------------------------------------- opaque handles (host-owned) */

typedef struct pw_host pw_host;       /* the host, as seen by one module instance */
typedef struct pw_msg pw_msg;         /* a SIP message (request or response), read-only view */
typedef struct pw_request pw_request; /* an incoming request with its server transaction */
typedef struct pw_dialog pw_dialog;   /* a dialog (or subscription dialog) owned by the host */
typedef struct pw_writer pw_writer;   /* where an admin command writes its JSON result */
typedef uint64_t pw_timer_id;         /* 0 is never a valid id */

/* ---------------------------------------------------------------- module-declared tables */

/* Unknown value: the loader refuses the module, naming the parameter. */
typedef enum pw_param_type {
    PW_PARAM_STRING = 0,
    PW_PARAM_INT = 1,     /* 64-bit signed, decimal */
    PW_PARAM_BOOL = 2,    /* true/false */
    PW_PARAM_DURATION = 3 /* integer milliseconds; config may say "30s", "500ms", "5m" */
} pw_param_type;

/* One configuration parameter. Table ends with an entry whose name is NULL. */
typedef struct pw_param_def {
    uint32_t struct_size;
    const char *name;
    pw_param_type type;
    const char *default_value; /* textual default, shown by --dump-config; NULL = required */
    const char *help;
} pw_param_def;

/*
 * An admin command, reachable over the admin API (POST /api/modules/<module>/<name>) and parkctl.
 * args_json is a JSON object (possibly "{}"). The command writes exactly one JSON value with
 * writer_json() or fails with writer_error(). Return PW_OK or a negative error.
 * Table ends with an entry whose name is NULL.
 */
typedef struct pw_command_def {
    uint32_t struct_size;
    const char *name;
    const char *help;
    int (*run)(void *ctx, pw_str args_json, pw_writer *out);
} pw_command_def;

/* How a REST route builds the JSON object its command receives (v1.4). Unknown value (a newer module): the host
   skips that route and logs it; the module's other routes are served. */
typedef enum pw_route_args {
    PW_ROUTE_ARGS_NONE = 0,      /* only the {path} parameters */
    PW_ROUTE_ARGS_QUERY = 1,     /* the query parameters named in `query` (empty values left out) */
    PW_ROUTE_ARGS_ALL_QUERY = 2, /* every query parameter, as strings */
    PW_ROUTE_ARGS_BODY = 3       /* the request body: a JSON object (within the admin API's size and depth limits) */
} pw_route_args;

/* Flags of a REST route. Unknown bits are ignored by the host. */
enum {
    PW_ROUTE_QUERY_REQUIRED = 1u << 0, /* every name in `query` must be given: else 400 naming the missing one */
    PW_ROUTE_NUMERIC_PARAMS = 1u << 1  /* a {path} parameter of 1-18 digits is passed as a JSON number, not text */
};

/*
 * A REST route of the admin API that runs one of the module's commands (v1.4; docs/admin-api.md). The host
 * serves `method` on `path` behind the same bearer token as every /api/ endpoint: it builds a JSON object as
 * `args` says, sets a member per {name} path segment (percent-decoded; the path wins over query and body
 * members of the same name), runs `command` and answers with what the command wrote (writer_json: 200,
 * writer_error: its status). `path` is absolute, starts with "/api/", and is served as written (no prefix is
 * added); a "{name}" segment matches any one segment. The loader refuses a module whose route is malformed or
 * names a command the module does not have; the daemon refuses to start when a route takes a method and path
 * that a core endpoint or an earlier module already serves (naming the module). Table ends with an entry whose
 * method is NULL. All strings are static.
 */
typedef struct pw_route_def {
    uint32_t struct_size;
    const char *method;  /* "GET", "POST", "PUT" or "DELETE" */
    const char *path;    /* e.g. "/api/parked/{id}/recall" */
    const char *command; /* a name in the module's commands table */
    pw_route_args args;
    const char *query; /* PW_ROUTE_ARGS_QUERY: comma-separated names, e.g. "domain,extension"; else NULL */
    uint32_t flags;    /* PW_ROUTE_* */
} pw_route_def;

/* Which part of a URI uri_part() returns (v1.4). Unknown value (an older host): the empty string. */
typedef enum pw_uri_part {
    PW_URI_SCHEME = 0, /* "sip", "sips", "tel", ... lower-cased; empty when the URI does not parse */
    PW_URI_USER = 1,   /* user part without password, unescaped ("*68%23" -> "*68#"); tel: the number; may be empty */
    PW_URI_HOST = 2,   /* host, lower-cased; an IPv6 reference keeps its brackets ("[::1]"); empty for tel: */
    PW_URI_PORT = 3,   /* port digits ("5062"); empty when absent */
    /* The address-of-record form scheme:user@host (RFC 3261 §10.3 step 5): no password, port, parameters or
       headers; scheme and host lower-cased; the user re-escaped canonically (%XX, upper-case hex, for exactly
       the characters RFC 3261 §25.1 `user` does not allow), so two spellings of one user compare equal as
       §19.1.4 wants ("sip:%61lice@EXAMPLE.com:5060;transport=tcp" -> "sip:alice@example.com"). tel: as given. */
    PW_URI_AOR = 4
} pw_uri_part;

/* ---------------------------------------------------------------- callbacks */

/* How the host established the identity of a request's sender (request_identity, v1.2). Unknown value (a newer
   host): treat it as PW_IDENTITY_NONE (nobody established). */
typedef enum pw_identity_source {
    PW_IDENTITY_NONE = 0,            /* nobody: a stranger, or a user of a foreign domain */
    PW_IDENTITY_DIGEST = 1,          /* valid digest credentials of a local user (RFC 3261 §22, RFC 7616) */
    PW_IDENTITY_ASSERTED = 2,        /* P-Asserted-Identity from a trusted peer (RFC 3325 §9.1) */
    PW_IDENTITY_TRUSTED_PEER = 3,    /* a trusted peer sent it without P-Asserted-Identity: its From */
    PW_IDENTITY_UNAUTHENTICATED = 4, /* From, in a local domain configured to run without authentication */
    PW_IDENTITY_DIALOG = 5           /* an in-dialog request on a host-owned dialog from that dialog's peer */
} pw_identity_source;

/* Which part of a dialog a module wants to read with dialog_get(). Unknown value (an older host): dialog_get
   returns an empty string. */
typedef enum pw_dialog_field {
    PW_DLG_CALL_ID = 0,
    PW_DLG_LOCAL_TAG = 1,
    PW_DLG_REMOTE_TAG = 2,
    PW_DLG_LOCAL_URI = 3,      /* our side's From/To URI (addr-spec only) */
    PW_DLG_REMOTE_URI = 4,     /* the peer's From/To URI */
    PW_DLG_REMOTE_TARGET = 5,  /* the peer's Contact URI */
    PW_DLG_REMOTE_DISPLAY = 6, /* display name of the peer's From/To, may be empty */
    PW_DLG_STATE = 7           /* "early", "confirmed" or "terminated" */
} pw_dialog_field;

/* Unknown value (a newer host): treat it as PW_END_TRANSPORT (the dialog is gone, nothing more to send in it). */
typedef enum pw_dialog_end_reason {
    PW_END_BYE = 0,         /* the peer sent BYE (the host already answered 200) */
    PW_END_ACK_TIMEOUT = 1, /* our 2xx was never ACKed within 64*T1; the host sent BYE (RFC 3261 §13.3.1.4) */
    PW_END_LOCAL = 2,       /* dialog_end() was called */
    PW_END_FAILED = 3,      /* the INVITE/SUBSCRIBE that would create it failed or was cancelled */
    PW_END_EXPIRED = 4,     /* a subscription expired without refresh */
    PW_END_TRANSPORT = 5    /* in-dialog request timed out (408) or transport failure: dialog is gone */
} pw_dialog_end_reason;

/*
 * Events of a host-owned dialog. All members optional (NULL). The `arg` given when the dialog was made is
 * passed back. After on_terminated returns, the handle is invalid.
 */
typedef struct pw_dialog_callbacks {
    uint32_t struct_size;
    /*
     * An in-dialog request other than ACK, CANCEL and BYE (re-INVITE, UPDATE, INFO, REFER, NOTIFY, OPTIONS,
     * or SUBSCRIBE refresh when the dialog is not a host-managed subscription). The module MUST answer it with
     * request_reply() (or dialog_accept_reinvite() for re-INVITE) before or after returning; an unanswered
     * request is answered 500 by the host when the transaction times out.
     */
    void (*on_request)(void *arg, pw_dialog *dlg, pw_request *req);
    /* ACK for our 2xx arrived (carries the answer when our 2xx carried an offer). msg may have a body. */
    void (*on_ack)(void *arg, pw_dialog *dlg, const pw_msg *ack);
    /* Subscription dialogs only: a refresh or un-SUBSCRIBE was answered by the host. expires == 0: ended. */
    void (*on_refresh)(void *arg, pw_dialog *dlg, uint32_t expires);
    /* The dialog is over (see reason). The module must drop its pointer. */
    void (*on_terminated)(void *arg, pw_dialog *dlg, pw_dialog_end_reason reason);
} pw_dialog_callbacks;

/*
 * A response to a request the module sent (in or out of dialog). Called for every provisional (101–199)
 * and for the final response. resp == NULL when the host generated the status locally (408 timeout,
 * 503 transport error, 487 after cancel). For a 2xx to an INVITE the host sends the ACK itself unless
 * the request was sent with PW_SEND_DEFER_ACK, in which case the module must call dialog_ack().
 * dlg is the dialog the request belongs to or created (NULL for out-of-dialog non-INVITE).
 */
typedef void (*pw_response_cb)(void *arg, pw_dialog *dlg, int status, const pw_msg *resp);

/* Flags for sending requests. */
enum {
    PW_SEND_DEFER_ACK = 1u << 0 /* INVITE: do not ACK a 2xx automatically; the module calls dialog_ack() */
};

/* A registered contact, as given by location_lookup(). */
typedef struct pw_contact {
    uint32_t struct_size;
    pw_str uri;         /* the Contact URI to put in the Request-URI */
    pw_str received;    /* "sip:ip:port;transport=x" where the REGISTER came from (NAT); may be empty */
    pw_str path;        /* Path header value (RFC 3327) or empty */
    int64_t expires_at; /* unix seconds */
    int32_t q_milli;    /* q-value times 1000 (1000 when absent) */
} pw_contact;

typedef void (*pw_contact_cb)(void *arg, const pw_contact *contact);

/*
 * A location provider (the registrar module registers one). Calls `each` once per live contact of `aor`
 * (an addr-spec such as "sip:1003@pbx.example.com") and returns the number of contacts, or a negative error.
 */
typedef int (*pw_location_fn)(void *provider_ctx, pw_str aor, pw_contact_cb each, void *arg);

/* A new UAC request or dialog. All strings are addr-specs or header values; empty = host default. */
typedef struct pw_uac_params {
    uint32_t struct_size;
    pw_str method;      /* "INVITE", "NOTIFY", "OPTIONS", ... */
    pw_str request_uri; /* required */
    pw_str from;        /* From header value incl. display name, e.g. "\"Recall: Bob\" <sip:*68@pbx>"; empty = host */
    pw_str to;          /* To header value; empty = request_uri */
    pw_str next_hop;    /* outbound proxy / received address URI to send to; or a route set, name-addrs as in a
                           Path/Route header ("<sip:edge;lr>, <sip:p2;lr>"): put on top as Route headers, sent
                           to the first (RFC 3327 §5.2). Empty: with no Route in headers and no To tag, the
                           host's outbound proxy when one is set (with a Route when it has ;lr, RFC 3261
                           §8.1.2; docs/routing.md), else resolve request_uri */
    const pw_header *headers; /* extra headers */
    size_t n_headers;
    pw_str content_type; /* empty when no body */
    pw_str body;
    uint32_t flags; /* PW_SEND_* */
} pw_uac_params;

typedef void (*pw_post_fn)(void *arg);
typedef void (*pw_timer_fn)(void *arg);

/* ---------------------------------------------------------------- the host API table */

typedef struct pw_host_api {
    uint32_t struct_size;
    uint32_t abi_major;
    uint32_t abi_minor;

    /* --- logging, parameters, core settings ------------------------------------------------------ */
    void (*log)(pw_host *host, pw_log_level level, pw_str text); /* text copied */
    /* The module's own parameter (validated by the loader against its table; default applied).
       Lifetime: until the module is destroyed. */
    pw_str (*param_str)(pw_host *host, const char *name);
    int64_t (*param_int)(pw_host *host, const char *name); /* INT, DURATION (ms) and BOOL (0/1) */
    /* A core setting as text: "database" (SQLite path), "domains" (the [proxy] domains as last (re)loaded, comma
       separated; the domains modules serve with domain_serve are not in it), "contact" (our SIP URI),
       "instance" (a name for this node), "sip_t1_ms", "config_dir" (folder of the config file, where relative
       file parameters are resolved; empty when unknown), "outbound_proxy" ([proxy] outbound_proxy, the default
       next hop of out-of-dialog requests modules send without one), "outbound_proxy:<domain>" (the one used
       for that domain after [proxy.outbound_proxy_by_domain]). Empty when unknown or unset.
       Lifetime: until the next core_setting() call with the same name (copy it). */
    pw_str (*core_setting)(pw_host *host, const char *name);
    int (*is_local_domain)(pw_host *host, pw_str domain); /* 1 or 0; domain copied */

    /* --- message access (requests and responses) -------------------------------------------------- */
    /* Lifetime of a pw_msg and of every string the msg_* functions return from it: a request's, as long as the
       pw_request (until the hook or dialog callback that was given it returns, or until request_release() when
       retained); a response's or an ACK's, until the callback that was given it returns. */
    const pw_msg *(*request_msg)(pw_request *req);
    pw_str (*msg_method)(const pw_msg *msg);      /* request method, or the CSeq method of a response */
    int (*msg_status)(const pw_msg *msg);         /* response status, 0 for a request */
    pw_str (*msg_request_uri)(const pw_msg *msg); /* empty for a response */
    /* Value of the idx-th occurrence (0-based) of a header, by full or compact name, case-insensitive.
       A comma-separated header line counts as several occurrences (e.g. Route). Empty when absent. */
    pw_str (*msg_header)(const pw_msg *msg, pw_str name, unsigned idx);
    pw_str (*msg_body)(const pw_msg *msg);
    /* Parsed helpers: URI of From/To/Contact/Refer-To/Referred-By (addr-spec), tags, display names. */
    pw_str (*msg_uri)(const pw_msg *msg, pw_str header_name);     /* e.g. "From" -> "sip:1001@pbx" */
    pw_str (*msg_tag)(const pw_msg *msg, pw_str header_name);     /* "From" or "To" tag param */
    pw_str (*msg_display)(const pw_msg *msg, pw_str header_name); /* display-name without quotes */
    /* "udp:127.0.0.1:5062" — where the message came from (after rport). */
    pw_str (*msg_source)(const pw_msg *msg);

    /* --- acting on the incoming request (pipeline) --------------------------------------------------- */
    /* Send a response. 1xx may be sent several times; a final response only once. Strings and headers of this
       and every other call that takes them are copied before it returns. */
    int (*request_reply)(pw_request *req, int status, pw_str reason, const pw_header *headers, size_t n_headers,
                         pw_str content_type, pw_str body);
    /* Add a header to the request before it is forwarded (only in on_request, before CONTINUE). */
    int (*request_add_header)(pw_request *req, pw_str name, pw_str value);
    int (*request_remove_header)(pw_request *req, pw_str name);
    /* Add a forwarding target (a branch). When at least one target is set, the core forks to all of them in
       parallel instead of forwarding to the Request-URI. next_hop may be empty, a URI, or a route set as in
       pw_uac_params.next_hop (a contact's Path: Route headers on this branch only). */
    int (*request_add_target)(pw_request *req, pw_str request_uri, pw_str next_hop);
    /* Keep the request beyond on_request (PW_SUSPEND), then resume it exactly once. Lifetime: the returned handle
       (the same pointer) stays valid until request_release(), which every retain needs exactly once. */
    pw_request *(*request_retain)(pw_request *req);
    int (*request_resume)(pw_request *req, pw_verdict verdict);
    void (*request_release)(pw_request *req);

    /* --- dialogs: UAS ------------------------------------------------------------------------------ */
    /*
     * Answer an INVITE (or other dialog-creating request) with a 2xx and create a dialog as UAS. The host
     * adds To-tag and Contact, and in proxy mode retransmits the 2xx itself (T1 doubling to T2) until the
     * ACK arrives; without an ACK after 64*T1 it sends BYE and reports PW_END_ACK_TIMEOUT (RFC 3261 §13.3.1.4).
     * Lifetime of every pw_dialog (from any function): host-owned, valid until on_terminated returns.
     */
    pw_dialog *(*dialog_accept)(pw_request *req, int status, const pw_header *headers, size_t n_headers,
                                pw_str content_type, pw_str body, const pw_dialog_callbacks *cbs, void *arg);
    /*
     * Accept a SUBSCRIBE (RFC 6665): answer 200 with Expires (clamped to [min,max] of the host), create the
     * subscription dialog. Refreshes and un-SUBSCRIBE inside the dialog are answered by the host and reported
     * with on_refresh; expiry with on_refresh(0) then on_terminated(PW_END_EXPIRED). The module sends NOTIFYs
     * with dialog_request() (it writes Event and Subscription-State headers itself).
     */
    pw_dialog *(*subscription_accept)(pw_request *subscribe, uint32_t expires, const pw_dialog_callbacks *cbs,
                                      void *arg);
    /* Answer a re-INVITE or UPDATE received in a dialog with 2xx + body; for re-INVITE the host retransmits
       until ACK (reported with on_ack). */
    int (*dialog_accept_request)(pw_dialog *dlg, pw_request *req, const pw_header *headers, size_t n_headers,
                                 pw_str content_type, pw_str body);

    /* --- dialogs: UAC ------------------------------------------------------------------------------ */
    /* Start a new dialog: INVITE (offer or no offer) or SUBSCRIBE. The dialog exists from the first
       response with a To-tag (early) and is confirmed on 2xx. Returns NULL on immediate failure. */
    pw_dialog *(*dialog_invite)(pw_host *host, const pw_uac_params *p, pw_response_cb on_response,
                                const pw_dialog_callbacks *cbs, void *arg);
    /* CANCEL a pending INVITE started with dialog_invite (RFC 3261 §9). The final 487 comes to on_response. */
    int (*dialog_cancel)(pw_dialog *dlg);
    /* Send an in-dialog request (re-INVITE with or without SDP, UPDATE, BYE, NOTIFY, REFER, INFO). */
    int (*dialog_request)(pw_dialog *dlg, pw_str method, const pw_header *headers, size_t n_headers,
                          pw_str content_type, pw_str body, uint32_t flags, pw_response_cb on_response, void *arg);
    /* ACK a 2xx to an INVITE sent with PW_SEND_DEFER_ACK (body = answer, RFC 3264 / RFC 3725 flow I). */
    int (*dialog_ack)(pw_dialog *dlg, pw_str content_type, pw_str body);
    /* Out-of-dialog request (e.g. NOTIFY Event: park-info, OPTIONS). INVITE, SUBSCRIBE, REFER and NOTIFY get the
       host's Contact unless headers carry one (a module speaking in another party's dialog, e.g. the NOTIFYs
       of a REFER it took for the transferee, gives that party's Contact: RFC 3261 §12.2.1.2). */
    int (*send_request)(pw_host *host, const pw_uac_params *p, pw_response_cb on_response, void *arg);

    /* --- dialogs: common --------------------------------------------------------------------------- */
    /* A field of the dialog as it is now (empty for a NULL dialog or an unknown field). Lifetime: until the turn
       ends (top of this file), even if the dialog ends meanwhile; a later call gives the field's new value. */
    pw_str (*dialog_get)(pw_dialog *dlg, pw_dialog_field field);
    /* End: BYE when confirmed, CANCEL when early UAC, 487/480 when early UAS; for a subscription the host
       does nothing on the wire (send the terminated NOTIFY first). on_terminated(PW_END_LOCAL) follows.
       A BYE the module sent itself with dialog_request (e.g. with a Reason header, RFC 3326) and still pending
       is the dialog's BYE: dialog_end then sends no second one. */
    int (*dialog_end)(pw_dialog *dlg);
    /* Change the callbacks/arg (e.g. hand the dialog to another object). */
    int (*dialog_rebind)(pw_dialog *dlg, const pw_dialog_callbacks *cbs, void *arg);
    /*
     * Serialise a dialog (Call-ID, tags, URIs, remote target, route set, CSeqs, transport, role) into an
     * opaque text blob for storage. Writes up to cap bytes into buf and returns the full length (like
     * snprintf; call with cap 0 to measure), or a negative error.
     */
    int64_t (*dialog_export)(pw_dialog *dlg, char *buf, size_t cap);
    /* Recreate a confirmed dialog from an exported blob after a restart. NULL with a log line when invalid.
       A subscription dialog keeps its absolute expiry: the host re-arms it for the time left (already past:
       on_refresh(0) then on_terminated(PW_END_EXPIRED) on the next loop turn) and answers refreshes again. */
    pw_dialog *(*dialog_restore)(pw_host *host, pw_str blob, const pw_dialog_callbacks *cbs, void *arg);

    /* --- location ---------------------------------------------------------------------------------- */
    int (*location_register_provider)(pw_host *host, pw_location_fn fn, void *provider_ctx);
    /* Lifetime: the pw_contact given to `each` and its strings, until `each` returns. */
    int (*location_lookup)(pw_host *host, pw_str aor, pw_contact_cb each, void *arg);

    /* --- timers (one-shot, SIP thread) ------------------------------------------------------------- */
    pw_timer_id (*timer_start)(pw_host *host, uint64_t delay_ms, pw_timer_fn fn, void *arg);
    int (*timer_cancel)(pw_host *host, pw_timer_id id); /* PW_ENOTFOUND when already fired or cancelled */
    /* Wall clock in milliseconds since the epoch (tests may control it). */
    int64_t (*now_ms)(pw_host *host);

    /* --- metrics and events ------------------------------------------------------------------------ */
    /* name: Prometheus metric name; labels: e.g. "domain=\"pbx\",lot=\"main\"" or empty. */
    void (*counter_add)(pw_host *host, pw_str name, pw_str labels, double delta);
    void (*gauge_set)(pw_host *host, pw_str name, pw_str labels, double value);
    void (*histogram_observe)(pw_host *host, pw_str name, pw_str labels, double value);
    /* Publish an event (JSON object text) on the admin event stream (server-sent events). All four copy. */
    void (*event_publish)(pw_host *host, pw_str type, pw_str json);

    /* --- admin writer ------------------------------------------------------------------------------ */
    /* pw_writer: valid until the command's run() returns; the text is copied. */
    int (*writer_json)(pw_writer *out, pw_str json); /* the result: one JSON value */
    int (*writer_error)(pw_writer *out, int http_status, pw_str message);

    /* --- threads ----------------------------------------------------------------------------------- */
    /* The ONLY thread-safe function: run fn(arg) on the SIP thread soon. The host runs no posted function once
       it destroys modules: what a module posted and has not seen run by its destroy never runs (destroy frees
       its arg). */
    int (*post)(pw_host *host, pw_post_fn fn, void *arg);

    /* v1.x: new members are only ever appended below this line. */

    /* --- v1.1 -------------------------------------------------------------------------------------- */
    /*
     * dialog_accept with a commit step before anything is on the wire: make durable what the 2xx reveals.
     * The host builds the dialog exactly as dialog_accept does (our To-tag, route set, remote target, peer
     * identity, CSeqs) and calls commit(commit_arg, dlg) BEFORE the 2xx is sent. Inside commit, `dlg` may only
     * be read (dialog_get, dialog_export); it is valid after commit returns only if the 2xx is then sent.
     *   commit returns 0:        the 2xx is sent and `dlg` is returned, as from dialog_accept.
     *   commit returns 300..699: the request is answered with that status (any other value: 500); the dialog
     *                            is discarded WITHOUT on_terminated and NULL is returned. commit may instead
     *                            answer the request itself with request_reply() (e.g. 503 with Retry-After)
     *                            and return its status: the host then sends nothing more.
     *   commit returns PW_COMMIT_LATER (v1.9 host): nothing is sent yet and `dlg` is returned; the module
     *                            finishes it with dialog_accept_finish (below).
     * NULL is also returned, without commit being called, when the request can no longer be answered (it was
     * CANCELled or answered) or an argument is bad; and after commit returned 0 when the 2xx cannot be sent
     * (the module undoes what it committed). on_terminated never follows a NULL return. commit == NULL makes
     * this dialog_accept. A v1.0 host lacks this member: check PW_HOST_HAS(api, dialog_accept_commit) before
     * calling it.
     */
    pw_dialog *(*dialog_accept_commit)(pw_request *req, int status, const pw_header *headers, size_t n_headers,
                                       pw_str content_type, pw_str body, const pw_dialog_callbacks *cbs, void *arg,
                                       int (*commit)(void *commit_arg, pw_dialog *dlg), void *commit_arg);

    /* --- v1.2 -------------------------------------------------------------------------------------- */
    /*
     * Who sent the request, as the host established it (docs/auth.md). Returns the identity as an addr-spec
     * ("sip:1001@pbx.example.com"), empty when nobody is established, and stores how it was established in
     * *source when source is not NULL (a pw_identity_source). Modules decide who parks, retrieves and watches
     * from this, never from From: From is whatever the sender wrote. Lifetime: as long as the request.
     */
    pw_str (*request_identity)(pw_request *req, int *source);
    /*
     * Ask the sender to authenticate: the host answers the request 401 (REGISTER) or 407 (anything else) with
     * fresh digest challenges (RFC 3261 §22.1; RFC 7616). PW_OK when the challenge was sent (the request is
     * answered: return PW_STOP); PW_EUNSUPPORTED when this request cannot be challenged (its From is not a
     * user of a local domain that authenticates, or it came from a trusted peer): refuse it instead (403).
     */
    int (*request_challenge)(pw_request *req);

    /* --- v1.3 -------------------------------------------------------------------------------------- */
    /*
     * The CSeq number for a request the module sends AS a party of a dialog the host only proxies (e.g. a
     * NOTIFY sent in the transferee's name to the transferor): from_tag is the tag of the party spoken for,
     * to_tag the other party's. The host returns the number after the highest that party used in requests it
     * forwarded in that dialog (its INVITE, when it was the caller), plus the requests injected so far, and
     * from then on adds the number of injected requests to the CSeq of every request of that party in that
     * dialog it forwards (ACK and CANCEL matching their INVITE) and takes it off the responses it relays back
     * (RFC 3261 §12.2.1.1, §12.2.2; what a B2BUA or SBC does). When the host saw no request of that party,
     * it returns a large number (near 2e9) and shifts the party's requests above it. Each call consumes a
     * number: call it once per request sent. 0 on bad arguments. The host keeps this per dialog within a
     * bound (docs/limits.md "CSeq shifts"). Check PW_HOST_HAS(api, dialog_inject_cseq): a v1.0-1.2 host
     * lacks it.
     */
    uint32_t (*dialog_inject_cseq)(pw_host *host, pw_str call_id, pw_str from_tag, pw_str to_tag);

    /* --- v1.4 -------------------------------------------------------------------------------------- */
    /*
     * URI accessors: the host parses `uri` once with its SIP stack (RFC 3261 §19.1, RFC 3966 tel:), so every
     * module reads URIs the same way and none needs its own parser. `uri` is an addr-spec
     * ("sip:alice@example.com;transport=tcp?Replaces=..."); "<...>" or a whole name-addr is accepted too (what is
     * inside the angle brackets is parsed). Escaping: every result is UNESCAPED (each %XX decoded, RFC 3261
     * §19.1.1, §19.1.2: user, parameter values and header values alike), except PW_URI_AOR, which is a URI again.
     * A URI the host cannot parse gives {NULL, 0} for every part: test PW_URI_SCHEME to tell.
     * Lifetime: until the turn ends (top of this file). A v1.0-1.3 host lacks all three: check
     * PW_HOST_HAS(api, uri_part).
     */
    pw_str (*uri_part)(pw_host *host, pw_str uri, pw_uri_part part);
    /* The value of URI parameter `name` (case-insensitive: "transport", "user", "lr", ...), unescaped. Absent:
       {NULL, 0}; present without a value (";lr"): a non-NULL ptr with len 0. */
    pw_str (*uri_param)(pw_host *host, pw_str uri, pw_str name);
    /* The value of URI header `name` after '?' (RFC 3261 §19.1.1; e.g. "Replaces" in a Refer-To URI, RFC 3891
       §7), name case-insensitive, the first when repeated, unescaped ("cid%3Bto-tag%3Da" -> "cid;to-tag=a").
       Absent: {NULL, 0}; present and empty: a non-NULL ptr with len 0. */
    pw_str (*uri_header)(pw_host *host, pw_str uri, pw_str name);
    /* --- v1.4 (tenants) ---------------------------------------------------------------------------- */
    /*
     * Declare that this module serves `domain` (serve = 1) or no longer does (serve = 0), e.g. a tenant
     * provisioned in the module's own store (docs/callpark.md "Tenants"). A served domain is a local domain for
     * the host exactly like one listed in [proxy] domains: is_local_domain() says 1, requests for it are routed to
     * registered contacts, its users are challenged in its realm (docs/auth.md). The host keeps one set per
     * module; a domain stays local while [proxy] domains or any module lists it. Declaring twice is harmless.
     * Comparison is case-insensitive; the host copies the name. PW_OK, or PW_EINVAL for an empty name or one
     * with characters no host name has. SIP thread only. Check PW_HOST_HAS(api, domain_serve): a v1.0-1.3 host
     * lacks it (there, list the domain in [proxy] domains instead).
     */
    int (*domain_serve)(pw_host *host, pw_str domain, int serve);
    /* --- v1.5 -------------------------------------------------------------------------------------- */
    /*
     * 1 when an event_publish() now would reach someone (an admin event-stream client is connected), else 0:
     * a module may skip building an event's JSON nobody would read. The answer may change on any later turn
     * (a client connects): ask each time, do not cache it. SIP thread only. Check PW_HOST_HAS(api,
     * event_listening): a v1.0-1.4 host lacks it (there, publish as before).
     */
    int (*event_listening)(pw_host *host);
    /* --- v1.6 -------------------------------------------------------------------------------------- */
    /*
     * 1 when a log() line at `level` would be written now (the daemon's log_level lets it through), else 0: a
     * module may skip formatting a line nobody would see. The level may change on any later turn (SIGHUP, admin
     * reload): ask each time, do not cache it. Callable wherever log() is. Check PW_HOST_HAS(api, log_enabled): a
     * v1.0-1.5 host lacks it (there, format and log as before).
     */
    int (*log_enabled)(pw_host *host, pw_log_level level);
    /* --- v1.7 -------------------------------------------------------------------------------------- */
    /*
     * Forget a dialog without a word on the wire: the host removes it from its dialog table and frees it, and
     * sends no request and no response for it (no BYE, no CANCEL, no NOTIFY, no further 2xx retransmission).
     * For a dialog whose other end is carried on by someone else with the same dialog identifiers (Call-ID and
     * tags), e.g. a parked call another cluster node took over (docs/cluster.md "Ownership and failover"): RFC
     * 3261 §12.3 and §15 end a dialog with a BYE (or a non-2xx final response), but here the dialog does not end,
     * only this host stops being one of its ends, so a BYE would tear down the call the other node now holds.
     * After the call:
     *   - `dlg` is invalid at once (do not pass it again); no callback of it follows, on_terminated included.
     *   - A request in that dialog that reaches this host later is one for an unknown dialog: 481 (RFC 3261
     *     §12.2.2) unless a module's on_request takes it; an ACK for it is dropped; a retransmitted 2xx of ours
     *     is no longer sent.
     *   - Requests the module sent in the dialog and still pending are abandoned: their responses reach no
     *     callback, a 2xx to a re-INVITE is not ACKed (the new end answers for the dialog from now on).
     *   - An in-dialog request the module holds (on_request, not yet answered) stays valid: answer it with
     *     request_reply() (not dialog_accept_request: the dialog is gone) or release it; unanswered, the host
     *     answers 500 after 64*T1 as for any. It is no longer tied to the dialog.
     * PW_OK; PW_EINVAL for NULL; PW_ESTATE when the dialog already ended (on_terminated was called, the host
     * frees it itself) or is a UAC dialog whose initial INVITE is still unanswered (dialog_cancel it instead).
     * SIP thread only; may be called from inside a callback of the same dialog. Check PW_HOST_HAS(api,
     * dialog_forget): a v1.0-1.6 host lacks it (there, dialog_rebind to empty callbacks: the host keeps the
     * silent dialog until it ends).
     */
    int (*dialog_forget)(pw_dialog *dlg);

    /* --- admin commands answered later (v1.8) ------------------------------------------------------ */
    /*
     * Called inside a command's run() whose answer needs work that must not hold the SIP thread (a database on
     * the network, another thread): returns a new writer that stays valid after run() returns, and run() then
     * returns PW_OK without writing to `out`. Later, on the SIP thread, the module writes the answer into the
     * returned writer with writer_json / writer_error and calls writer_finish, which sends it and frees the
     * writer. NULL when this call cannot be answered later (the host gathers an answer at once, e.g. the stats of
     * every module, or a host without an admin server): answer on `out` as usual. Once deferred, writing to `out`
     * is refused (PW_ESTATE). An answer that comes after the admin API's request timeout (30 s: the client got
     * 504) is dropped by writer_finish. SIP thread only. Lifetime: until writer_finish, which every writer_defer
     * that returned non-NULL needs exactly once. Check
     * PW_HOST_HAS(api, writer_defer): a v1.0-1.7 host lacks both.
     */
    pw_writer *(*writer_defer)(pw_writer *out);
    /* Sends what the deferred writer holds (nothing written: "null" with 200) and frees it. SIP thread only. */
    void (*writer_finish)(pw_writer *deferred);

    /* --- a commit step that answers later (v1.9) -------------------------------------------------- */
    /*
     * dialog_accept_commit's commit may return PW_COMMIT_LATER when what the 2xx reveals is made durable on
     * another thread (a database on the network): the host keeps the dialog exactly as built, sends nothing, and
     * dialog_accept_commit returns `dlg`. The dialog can be read and exported meanwhile; no request reaches it
     * (its tag has not been sent). Later, on the SIP thread, the module calls dialog_accept_finish(dlg, status)
     * exactly once:
     *   status 0:        the 2xx is sent as dialog_accept_commit would have sent it; returns 0 and `dlg` lives on.
     *   status 300..699: the request is answered with it (any other non-zero status: 500) unless it is answered
     *                    already (the module replied itself); the dialog is discarded without on_terminated.
     * Returns -1, the dialog discarded without on_terminated, when status is 0 but the 2xx cannot be sent (the
     * request was CANCELled meanwhile, and got its 487, or its connection closed): the module undoes what it
     * committed. A v1.0-1.8 host answers PW_COMMIT_LATER with 500: check PW_HOST_HAS(api, dialog_accept_finish).
     */
    int (*dialog_accept_finish)(pw_dialog *dlg, int status);
} pw_host_api;

/* dialog_accept_commit's commit step: the 2xx is sent later, by dialog_accept_finish (v1.9) */
#define PW_COMMIT_LATER 1

/* ---------------------------------------------------------------- the module descriptor */

typedef struct pw_module {
    uint32_t struct_size;
    uint32_t abi_major; /* PW_ABI_MAJOR */
    uint32_t abi_minor; /* PW_ABI_MINOR */
    const char *name;   /* [a-z0-9_]+, unique in a config */
    const char *version;
    const char *description;
    const pw_param_def *params;     /* NULL or terminated by {.name = NULL} */
    const pw_command_def *commands; /* NULL or terminated by {.name = NULL} */

    /* Lifecycle, all on the SIP thread. init: validate params, open storage; no SIP yet. Store your context in
     *ctx. start: transports are up; restore state, arm timers. stop: stop taking work. destroy: free. */
    int (*init)(const pw_host_api *api, pw_host *host, void **ctx); /* required */
    int (*start)(void *ctx);                                        /* optional */
    void (*stop)(void *ctx);                                        /* optional */
    void (*destroy)(void *ctx);                                     /* required */

    /* Every incoming request that no module-owned dialog claimed, in config order. Required. */
    pw_verdict (*on_request)(void *ctx, pw_request *req);
    /* Every response the core relays (after branch selection it is the one forwarded upstream). Optional. */
    void (*on_response)(void *ctx, const pw_msg *resp);
    /* SIGHUP / admin reload: re-read what can be re-read (rules, groups). Optional. */
    int (*reload)(void *ctx);

    /* --- v1.4 --- (a v1.0-1.3 module's descriptor ends above: the host reads this only when struct_size
       covers it, see PW_MODULE_HAS) */
    /* REST routes the admin API serves for the module's commands (pw_route_def); NULL when none. */
    const pw_route_def *routes;
    /* --- v1.4 (tenants) ---------------------------------------------------------------------------- */
    /*
     * Optional. The host is about to stop serving `domain` (a reload drops it from [proxy] domains and no module
     * declared it with domain_serve). Return PW_OK to let it go, or PW_ESTATE to refuse, after writing why with
     * writer_error(why, 409, "...") (e.g. "domain X has 2 parked calls"): the host then refuses the WHOLE reload
     * and reports that message, so nothing changes. Called on the SIP thread, before anything is applied; it must
     * not change state. The host reads this member only when struct_size covers it (a v1.0-1.3 module never
     * refuses).
     */
    int (*domain_release)(void *ctx, pw_str domain, pw_writer *why);
    /* --- v1.6 (overload) --------------------------------------------------------------------------- */
    /*
     * Optional. Asked only while the host sheds load (docs/limits.md "Overload"), for a new request (no To tag)
     * that the gate is about to weigh, before anything is made for it. Return 1 when serving it finishes work
     * already under way, so that it is admitted ahead of new work (e.g. the retrieve of a call that is parked
     * now: refusing it would keep the call, its music and its slot busy); 0 otherwise. A request some module
     * marks is refused only when the SIP thread is twice as far behind as the refusing threshold. Must be cheap
     * and change nothing: no reply, no I/O beyond a lookup. `req` is valid during the call only (a request view:
     * read it with the msg_* functions). SIP thread. The host reads this member only when struct_size covers it.
     */
    int (*overload_priority)(void *ctx, const pw_msg *req);
} pw_module;

typedef const pw_module *(*pw_module_entry_fn)(uint32_t host_abi_major);

#ifdef __cplusplus
}
#endif

#endif /* PARKWAY_MODULE_H */
