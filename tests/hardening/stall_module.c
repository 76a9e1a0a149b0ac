/*
 * stall: a test module that blocks the SIP thread, as a module stuck in a slow call would. A request carrying
 * "X-Stall-Ms: N" makes on_request sleep N milliseconds. Used to check that SIGTERM still stops the daemon
 * (tests/hardening/test_blackbox.py). Never load it in production.
 */
#include <parkway/module.h>

#include <stdlib.h>
#include <time.h>

static int stall_init(const pw_host_api *api, pw_host *host, void **ctx) {
    (void)host;
    *ctx = (void *)api;
    return PW_OK;
}

static void stall_destroy(void *ctx) {
    (void)ctx;
}

static pw_verdict stall_on_request(void *ctx, pw_request *req) {
    const pw_host_api *api = ctx;
    pw_str v = api->msg_header(api->request_msg(req), PW_STR_LIT("X-Stall-Ms"), 0);
    if (!v.len)
        return PW_CONTINUE;
    long ms = 0;
    for (size_t i = 0; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; ++i)
        ms = ms * 10 + (v.ptr[i] - '0');
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return PW_CONTINUE;
}

static const pw_module stall_module = {
    sizeof(pw_module),
    PW_ABI_MAJOR,
    PW_ABI_MINOR,
    "stall",
    "1.0.0",
    "test only: blocks the SIP thread on demand",
    NULL,
    NULL,
    stall_init,
    NULL,
    NULL,
    stall_destroy,
    stall_on_request,
    NULL,
    NULL,
    NULL,
    NULL, /* domain_release (v1.4) */
    NULL, /* overload_priority (v1.6) */
};

PW_EXPORT const pw_module *pw_module_entry(uint32_t host_abi_major) {
    return host_abi_major == PW_ABI_MAJOR ? &stall_module : NULL;
}
