/* One source, several broken test modules selected by BAD_KIND at compile time. */
#include <parkway/module.h>

static int b_init(const pw_host_api *api, pw_host *host, void **ctx) { (void)api; (void)host; *ctx = 0; return PW_OK; }
static void b_destroy(void *ctx) { (void)ctx; }
static pw_verdict b_on_request(void *ctx, pw_request *req) { (void)ctx; (void)req; return PW_CONTINUE; }
/* Keep every helper referenced whatever BAD_KIND removes. */
PW_EXPORT void *pw_test_keep(void) { return (void *)b_on_request; }

#define BAD_WRONG_MAJOR 1
#define BAD_SHORT_STRUCT 2
#define BAD_MISSING_SYMBOL 3
#define BAD_NULL_ENTRY 4
#define BAD_MISSING_HOOK 5
#define BAD_SHORT_PARAM 6
#define BAD_BAD_NAME 7
#define BAD_BAD_ROUTE 8

static const pw_param_def b_params[] = {
#if BAD_KIND == BAD_SHORT_PARAM
    {8, "x", PW_PARAM_INT, "1", "short entry"},
#else
    {sizeof(pw_param_def), "x", PW_PARAM_INT, "1", "an int"},
#endif
    {sizeof(pw_param_def), NULL, PW_PARAM_STRING, NULL, NULL},
};

#if BAD_KIND == BAD_BAD_ROUTE
/* ABI 1.4: a route naming a command the module does not have (it has none). */
static const pw_route_def b_routes[] = {
    {sizeof(pw_route_def), "GET", "/api/bad", "no.such", PW_ROUTE_ARGS_NONE, NULL, 0},
    {sizeof(pw_route_def), NULL, NULL, NULL, PW_ROUTE_ARGS_NONE, NULL, 0},
};
#endif

static const pw_module b_desc = {
#if BAD_KIND == BAD_SHORT_STRUCT
    (uint32_t)offsetof(pw_module, init), /* a descriptor cut before the hooks */
#else
    sizeof(pw_module),
#endif
#if BAD_KIND == BAD_WRONG_MAJOR
    PW_ABI_MAJOR + 1,
#else
    PW_ABI_MAJOR,
#endif
    PW_ABI_MINOR,
#if BAD_KIND == BAD_BAD_NAME
    "Bad-Name",
#else
    "bad",
#endif
    "0.0.1",
    "a broken test module",
    b_params,
    NULL,
    b_init,
    NULL,
    NULL,
    b_destroy,
#if BAD_KIND == BAD_MISSING_HOOK
    NULL,
#else
    b_on_request,
#endif
    NULL,
    NULL,
#if BAD_KIND == BAD_BAD_ROUTE
    b_routes,
#else
    NULL,
#endif
    NULL, /* domain_release (v1.4) */
    NULL, /* overload_priority (v1.6) */
};

#if BAD_KIND == BAD_MISSING_SYMBOL
PW_EXPORT const pw_module *pw_module_entry_typo(uint32_t host_abi_major) {
    (void)host_abi_major;
    return &b_desc;
}
#else
PW_EXPORT const pw_module *pw_module_entry(uint32_t host_abi_major) {
    (void)host_abi_major;
#if BAD_KIND == BAD_NULL_ENTRY
    (void)b_desc;
    return NULL;
#else
    return &b_desc;
#endif
}
#endif
