/* A well-formed test module with one parameter of every type and a required one. */
#include <parkway/module.h>

static int g_init(const pw_host_api *api, pw_host *host, void **ctx) { (void)api; (void)host; *ctx = 0; return PW_OK; }
static void g_destroy(void *ctx) { (void)ctx; }
static pw_verdict g_on_request(void *ctx, pw_request *req) { (void)ctx; (void)req; return PW_CONTINUE; }
static int g_cmd(void *ctx, pw_str args, pw_writer *out) { (void)ctx; (void)args; (void)out; return PW_OK; }

static const pw_param_def g_params[] = {
    {sizeof(pw_param_def), "greeting", PW_PARAM_STRING, "hello \"world\"", "text to say"},
    {sizeof(pw_param_def), "count", PW_PARAM_INT, "3", "how many times"},
    {sizeof(pw_param_def), "enabled", PW_PARAM_BOOL, "true", "switch"},
    {sizeof(pw_param_def), "timeout", PW_PARAM_DURATION, "30s", "how long"},
    {sizeof(pw_param_def), "target", PW_PARAM_STRING, NULL, "where to (required)"},
    {sizeof(pw_param_def), NULL, PW_PARAM_STRING, NULL, NULL},
};
static const pw_command_def g_cmds[] = {
    {sizeof(pw_command_def), "ping", "answers", g_cmd},
    {0, NULL, NULL, NULL}, /* the {0} terminator idiom is accepted */
};

static const pw_module g_desc = {
    sizeof(pw_module),
    PW_ABI_MAJOR,
    PW_ABI_MINOR,
    "good",
    "1.2.3",
    "a good test module",
    g_params,
    g_cmds,
    g_init,
    NULL,
    NULL,
    g_destroy,
    g_on_request,
    NULL,
    NULL,
    NULL,
    NULL, /* domain_release (v1.4) */
    NULL, /* overload_priority (v1.6) */
};

PW_EXPORT const pw_module *pw_module_entry(uint32_t host_abi_major) {
    return host_abi_major == PW_ABI_MAJOR ? &g_desc : NULL;
}
