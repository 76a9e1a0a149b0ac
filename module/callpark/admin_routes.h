/* callpark's REST routes (module.h pw_route_def, ABI 1.4): the admin API serves these paths for callpark's
 * commands (docs/admin-api.md). Kept in its own header so the admin server's tests serve exactly this table. */
#ifndef PARKWAY_CALLPARK_ADMIN_ROUTES_H
#define PARKWAY_CALLPARK_ADMIN_ROUTES_H
#include <parkway/module.h>

#define CALLPARK_ROUTE(method, path, command, args, query, flags)                                                      \
    { sizeof(pw_route_def), method, path, command, args, query, flags }

static const pw_route_def kCallparkRoutes[] = {
    CALLPARK_ROUTE("GET", "/api/parked", "parked.list", PW_ROUTE_ARGS_QUERY, "domain,extension,group,lot", 0),
    CALLPARK_ROUTE("GET", "/api/parked/{id}", "parked.get", PW_ROUTE_ARGS_NONE, NULL, PW_ROUTE_NUMERIC_PARAMS),
    CALLPARK_ROUTE("DELETE", "/api/parked/{id}", "parked.hangup", PW_ROUTE_ARGS_NONE, NULL, PW_ROUTE_NUMERIC_PARAMS),
    CALLPARK_ROUTE("POST", "/api/parked/{id}/recall", "parked.recall", PW_ROUTE_ARGS_NONE, NULL,
                   PW_ROUTE_NUMERIC_PARAMS),
    CALLPARK_ROUTE("POST", "/api/parked/{id}/move", "parked.move", PW_ROUTE_ARGS_BODY, NULL, PW_ROUTE_NUMERIC_PARAMS),
    CALLPARK_ROUTE("GET", "/api/groups", "groups.list", PW_ROUTE_ARGS_QUERY, "domain", 0),
    CALLPARK_ROUTE("PUT", "/api/groups/{domain}/{name}", "groups.set", PW_ROUTE_ARGS_BODY, NULL, 0),
    CALLPARK_ROUTE("DELETE", "/api/groups/{domain}/{name}", "groups.delete", PW_ROUTE_ARGS_NONE, NULL, 0),
    CALLPARK_ROUTE("GET", "/api/lots", "lots.list", PW_ROUTE_ARGS_QUERY, "domain", 0),
    CALLPARK_ROUTE("PUT", "/api/lots/{domain}/{name}", "lots.set", PW_ROUTE_ARGS_BODY, NULL, 0),
    CALLPARK_ROUTE("DELETE", "/api/lots/{domain}/{name}", "lots.delete", PW_ROUTE_ARGS_NONE, NULL, 0),
    CALLPARK_ROUTE("GET", "/api/domains", "domains.list", PW_ROUTE_ARGS_NONE, NULL, 0),
    CALLPARK_ROUTE("PUT", "/api/domains/{domain}", "domains.set", PW_ROUTE_ARGS_BODY, NULL, 0),
    CALLPARK_ROUTE("DELETE", "/api/domains/{domain}", "domains.delete", PW_ROUTE_ARGS_NONE, NULL, 0),
    CALLPARK_ROUTE("GET", "/api/rules", "rules.list", PW_ROUTE_ARGS_ALL_QUERY, NULL, 0),
    CALLPARK_ROUTE("POST", "/api/rules", "rules.import", PW_ROUTE_ARGS_BODY, NULL, 0),
    CALLPARK_ROUTE("POST", "/api/rules/check", "rules.check", PW_ROUTE_ARGS_BODY, NULL, 0),
    CALLPARK_ROUTE("POST", "/api/rules/reload", "rules.reload", PW_ROUTE_ARGS_NONE, NULL, 0),
    CALLPARK_ROUTE("GET", "/api/explain", "rules.explain", PW_ROUTE_ARGS_QUERY, "domain,caller,dial",
                   PW_ROUTE_QUERY_REQUIRED),
    CALLPARK_ROUTE(NULL, NULL, NULL, PW_ROUTE_ARGS_NONE, NULL, 0),
};
#undef CALLPARK_ROUTE

#endif
