/*
 * hello: the smallest useful Parkway module. It adds a header (default "X-Hello: parkway") to every request
 * the proxy forwards. Build it with the rest of Parkway, then list it in the config:
 *
 *   [modules]
 *   load = ["hello", "registrar", "router"]
 *   [module.hello]
 *   value = "from parkway"
 */
#include <parkway/module.h>

#include <stdlib.h>
#include <string.h>

struct hello {
    const pw_host_api *api;
    pw_host *host;
    pw_str name, value; /* copies of the parameters: the host's views are only valid during the call */
};

static pw_str dup_str(pw_str s) {
    char *p = malloc(s.len ? s.len : 1);
    if (p && s.len) memcpy(p, s.ptr, s.len);
    return (pw_str){p, p ? s.len : 0};
}

static int hello_init(const pw_host_api *api, pw_host *host, void **ctx) {
    struct hello *h = calloc(1, sizeof *h);
    if (!h) return PW_ENOMEM;
    h->api = api;
    h->host = host;
    h->name = dup_str(api->param_str(host, "header"));
    h->value = dup_str(api->param_str(host, "value"));
    *ctx = h;
    api->log(host, PW_LOG_INFO, PW_STR_LIT("hello: loaded"));
    return PW_OK;
}

static void hello_destroy(void *ctx) {
    struct hello *h = ctx;
    free((void *)h->name.ptr);
    free((void *)h->value.ptr);
    free(h);
}

static pw_verdict hello_on_request(void *ctx, pw_request *req) {
    struct hello *h = ctx;
    h->api->request_add_header(req, h->name, h->value);
    return PW_CONTINUE; /* let the next module (and the core) route it */
}

static const pw_param_def hello_params[] = {
    {sizeof(pw_param_def), "header", PW_PARAM_STRING, "X-Hello", "name of the header to add"},
    {sizeof(pw_param_def), "value", PW_PARAM_STRING, "parkway", "its value"},
    {sizeof(pw_param_def), NULL, PW_PARAM_STRING, NULL, NULL},
};

static const pw_module hello_module = {
    sizeof(pw_module), PW_ABI_MAJOR, PW_ABI_MINOR, "hello", "1.0.0", "adds a header to forwarded requests",
    hello_params, NULL, hello_init, NULL, NULL, hello_destroy, hello_on_request, NULL, NULL,
    NULL, /* domain_release (v1.4): this module holds no domain */
};

PW_EXPORT const pw_module *pw_module_entry(uint32_t host_abi_major) {
    return host_abi_major == PW_ABI_MAJOR ? &hello_module : NULL;
}
