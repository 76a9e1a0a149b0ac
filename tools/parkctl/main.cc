// parkctl: the Parkway operator CLI over the admin HTTP API (docs/admin-api.md).
//
// Exit codes: 0 ok, 1 the request failed (the daemon answered with an error), 2 usage error,
// 3 the daemon is not reachable, 4 unauthorized (missing or wrong token).
#include "http_client.hh"
#include "output.hh"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

using json = nlohmann::json;
using namespace parkway::tools;

namespace {

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kUnreachable = 3, kUnauthorized = 4 };

struct Options {
    std::string url = "http://127.0.0.1:8089";
    std::string token;
    bool json = false;
    int timeoutMs = 30000;
};

// The daemon answered with an error status.
struct ApiError {
    int status;
    std::string message;
};

class Cli {
public:
    explicit Cli(const Options &o) : opt_(o), client_(parseUrl(o.url), o.token, o.timeoutMs) {}

    json call(const std::string &method, const std::string &target, const json &body = json()) {
        Response r = client_.request(method, target, body.is_null() ? "" : body.dump());
        json v = json::parse(r.body, nullptr, false);
        if (r.status >= 400) {
            std::string msg = v.is_object() && v.contains("error") && v["error"].is_string()
                                  ? v["error"].get<std::string>()
                                  : r.body.substr(0, 300);
            throw ApiError{r.status, msg};
        }
        if (v.is_discarded()) throw ApiError{r.status, "the daemon sent a response that is not JSON"};
        return v;
    }

    std::string text(const std::string &target) {
        Response r = client_.request("GET", target);
        if (r.status >= 400) {
            json v = json::parse(r.body, nullptr, false);
            throw ApiError{r.status, v.is_object() && v.contains("error") ? v["error"].get<std::string>() : r.body};
        }
        return r.body;
    }

    HttpClient &client() { return client_; }
    const Options &opt() const { return opt_; }

    // A list result as a table (or raw JSON).
    void printList(const json &v, const std::vector<std::string> &cols, const std::string &empty,
                   bool strict = false) {
        if (opt_.json) return printJson(v);
        const json *rows = findRows(v);
        if (!rows) return printObject(v);
        std::cout << renderTable(*rows, cols, empty, strict);
    }
    void printObject(const json &v) {
        if (opt_.json) return printJson(v);
        if (v.is_object() || v.is_array()) std::cout << renderObject(v);
        else std::cout << cell(v) << "\n";
    }
    void printJson(const json &v) { std::cout << v.dump(2) << "\n"; }
    // A short confirmation line; the JSON when asked for.
    void done(const json &v, const std::string &message) {
        if (opt_.json) return printJson(v);
        std::cout << message << "\n";
    }

    // --domain, then $PARKWAY_DOMAIN, then the daemon's only domain.
    std::string domain(const std::string &given) {
        if (!given.empty()) return given;
        if (const char *env = std::getenv("PARKWAY_DOMAIN"); env && *env) return env;
        json v = call("GET", "/api/domains");
        const json *rows = findRows(v);
        std::vector<std::string> names;
        if (rows)
            for (const auto &d : *rows) {
                if (d.is_string()) names.push_back(d.get<std::string>());
                else if (d.is_object())
                    for (const char *k : {"domain", "name"})
                        if (d.contains(k) && d[k].is_string()) {
                            names.push_back(d[k].get<std::string>());
                            break;
                        }
            }
        if (names.size() == 1) return names[0];
        throw ApiError{0, fmt::format("--domain is required (the daemon serves {} domains{})", names.size(),
                                      names.empty() ? "" : ": " + fmt::format("{}", fmt::join(names, ", ")))};
    }

private:
    Options opt_;
    HttpClient client_;
};

std::string query(std::initializer_list<std::pair<const char *, std::string>> kv) {
    std::string q;
    for (const auto &[k, v] : kv) {
        if (v.empty()) continue;
        q += (q.empty() ? "?" : "&") + std::string(k) + "=" + urlEncode(v);
    }
    return q;
}

// key=value arguments into a JSON object; values that parse as JSON (numbers, true/false, arrays) keep
// their type, anything else is a string.
json keyValues(const std::vector<std::string> &items) {
    json out = json::object();
    for (const auto &it : items) {
        auto eq = it.find('=');
        if (eq == std::string::npos || eq == 0) throw CLI::ValidationError(it, "expected key=value");
        std::string k = it.substr(0, eq), v = it.substr(eq + 1);
        json parsed = json::parse(v, nullptr, false);
        out[k] = parsed.is_discarded() || parsed.is_object() ? json(v) : parsed;
    }
    return out;
}

// The readable subset; --json has everything (recall settings, version, request key, ...).
const std::vector<std::string> kParkedCols{"id",     "domain", "extension",      "lot",        "slot",
                                           "group",  "state",  "parker",         "parked_display", "parked_uri",
                                           "parked_for", "recall_in", "recall_stage"};

// Adds derived, readable columns ("parked_for", "recall_in") when the daemon gives epoch-ms timestamps.
json humanizeParked(json v, long long nowMs) {
    auto fmtDur = [](long long ms) {
        bool neg = ms < 0;
        long long s = (neg ? -ms : ms) / 1000;
        std::string out = s >= 86400 ? fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600)
                          : s >= 3600 ? fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60)
                          : s >= 60 ? fmt::format("{}m{:02}s", s / 60, s % 60)
                                    : fmt::format("{}s", s);
        return neg ? "-" + out : out;
    };
    auto fix = [&](json &row) {  // one parked call
        if (!row.is_object()) return;
        if (row.contains("slot") && row["slot"] == 0) row["slot"] = "-"; // not an orbit park
        // The raw epoch-ms stamps give way to the readable columns (--json keeps them).
        for (const char *k : {"parked_at", "parkedAt"})
            if (row.contains(k) && row[k].is_number_integer()) {
                row["parked_for"] = fmtDur(nowMs - row[k].get<long long>());
                row.erase(k);
            }
        for (const char *k : {"recall_at", "recallAt"})
            if (row.contains(k) && row[k].is_number_integer()) {
                row["recall_in"] = fmtDur(row[k].get<long long>() - nowMs);
                row.erase(k);
            }
    };
    if (v.is_array())
        for (auto &r : v) fix(r);
    else if (v.is_object())
        for (auto &[k, x] : v.items())
            if (x.is_array())
                for (auto &r : x) fix(r);
    return v;
}

// One readable line for an engine change event ({"event","at","sequence","call":{...}}); other events as JSON.
std::string eventSummary(const json &data, const std::string &raw) {
    if (data.is_discarded()) return raw;
    if (!data.is_object() || !data.contains("call") || !data["call"].is_object()) return data.dump();
    const json &c = data["call"];
    std::string out;
    auto add = [&](const char *label, const char *key) {
        if (!c.contains(key)) return;
        std::string v = cell(c[key]);
        if (v == "-" || v == "0") return;
        out += (out.empty() ? "" : " ") + std::string(label) + "=" + v;
    };
    add("id", "id");
    add("domain", "domain");
    add("extension", "extension");
    add("lot", "lot");
    add("slot", "slot");
    add("group", "group");
    add("parker", "parker");
    add("parked", "parked_uri");
    add("state", "state");
    return out;
}

long long nowEpochMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

int main(int argc, char **argv) {
    Options opt;
    if (const char *t = std::getenv("PARKWAY_TOKEN")) opt.token = t;
    if (const char *u = std::getenv("PARKWAY_URL")) opt.url = u;

    CLI::App app{"parkctl: operate a Parkway call-park server over its admin API"};
    app.set_version_flag("--version", std::string("parkctl ") + PARKWAY_VERSION);
    app.add_option("--url", opt.url, "admin API base URL (env PARKWAY_URL)")->capture_default_str();
    app.add_option("--token", opt.token, "bearer token (env PARKWAY_TOKEN)");
    app.add_flag("--json", opt.json, "print the raw JSON result");
    app.add_option("--timeout", opt.timeoutMs, "request timeout in milliseconds")->capture_default_str();
    app.require_subcommand(1);
    app.footer("Exit codes: 0 ok, 1 request failed, 2 usage, 3 daemon not reachable, 4 unauthorized.\n");

    // parked [get ID] [--domain D --extension E --group G --lot L]
    std::string fDomain, fExt, fGroup, fLot, id;
    auto *parked = app.add_subcommand("parked", "list parked calls (or: parked get ID)");
    parked->add_option("--domain", fDomain, "only this domain");
    parked->add_option("--extension", fExt, "only calls parked on this extension");
    parked->add_option("--group", fGroup, "only calls of this call-park group");
    parked->add_option("--lot", fLot, "only calls in this lot");
    auto *parkedGet = parked->add_subcommand("get", "show one parked call");
    parkedGet->add_option("id", id, "parked call id")->required();
    auto *recall = app.add_subcommand("recall", "force the recall of a parked call now");
    recall->add_option("id", id, "parked call id")->required();
    auto *hangup = app.add_subcommand("hangup", "hang up a parked call");
    hangup->add_option("id", id, "parked call id")->required();

    // groups [add NAME MEMBERS... | del NAME] [--domain D]
    std::string name;
    std::vector<std::string> members, extra;
    auto *groups = app.add_subcommand("groups", "list call-park groups (or: groups add / groups del)");
    groups->add_option("--domain", fDomain, "domain (default: $PARKWAY_DOMAIN or the only one)");
    auto *groupsAdd = groups->add_subcommand("add", "create or replace a group; members in hunting order");
    groupsAdd->alias("set");
    groupsAdd->add_option("name", name, "group name")->required();
    groupsAdd->add_option("members", members, "member extensions, in order")->required();
    groupsAdd->add_option("--domain", fDomain, "domain");
    auto *groupsDel = groups->add_subcommand("del", "delete a group");
    groupsDel->alias("delete");
    groupsDel->add_option("name", name, "group name")->required();
    groupsDel->add_option("--domain", fDomain, "domain");

    // lots [set NAME key=value... | del NAME] [--domain D]
    auto *lots = app.add_subcommand("lots", "list parking lots (or: lots set / lots del)");
    lots->add_option("--domain", fDomain, "domain (default: $PARKWAY_DOMAIN or the only one)");
    auto *lotsSet = lots->add_subcommand("set", "create or change a lot: lots set main first=701 last=720");
    lotsSet->alias("add");
    lotsSet->add_option("name", name, "lot name")->required();
    lotsSet->add_option("settings", extra, "key=value settings (numbers and true/false keep their type)");
    lotsSet->add_option("--domain", fDomain, "domain");
    auto *lotsDel = lots->add_subcommand("del", "delete a lot");
    lotsDel->alias("delete");
    lotsDel->add_option("name", name, "lot name")->required();
    lotsDel->add_option("--domain", fDomain, "domain");

    // rules [load FILE [--replace] | reload]
    std::string file;
    bool replace = false;
    auto *rules = app.add_subcommand("rules", "list dialplan rules (or: rules load FILE / rules reload)");
    auto *rulesLoad = rules->add_subcommand("load", "import rules from a file");
    rulesLoad->add_option("file", file, "rules file ('-' for stdin)")->required();
    rulesLoad->add_flag("--replace", replace, "replace every existing rule (default: add/update)");
    auto *rulesReload = rules->add_subcommand("reload", "reload the rule table atomically");

    std::string caller, dial;
    auto *explain = app.add_subcommand("explain", "show which rule and slot a dial string would use");
    explain->add_option("domain", fDomain, "domain")->required();
    explain->add_option("caller", caller, "calling extension")->required();
    explain->add_option("dial", dial, "dialled digits, e.g. '*58'")->required();

    std::string aor;
    auto *regs = app.add_subcommand("registrations", "list registered contacts");
    regs->add_option("--aor", aor, "only this address of record");

    auto *domains = app.add_subcommand("domains", "list domains and their settings");
    auto *stats = app.add_subcommand("stats", "core and module statistics");
    auto *commands = app.add_subcommand("commands", "list module admin commands");
    std::string module, command, args;
    auto *callCmd = app.add_subcommand("call", "run any module admin command: call MODULE COMMAND ['{json}']");
    callCmd->add_option("module", module, "module name")->required();
    callCmd->add_option("command", command, "command name")->required();
    callCmd->add_option("args", args, "arguments as a JSON object");

    int count = 0;
    std::string types;
    auto *eventsCmd = app.add_subcommand("events", "stream live events until Ctrl-C");
    eventsCmd->add_option("--count", count, "stop after N events");
    eventsCmd->add_option("--types", types, "only these event types (comma separated)");

    auto *reload = app.add_subcommand("reload", "reload rules, groups and domain settings (like SIGHUP)");
    auto *metrics = app.add_subcommand("metrics", "print the Prometheus metrics");
    auto *health = app.add_subcommand("health", "check that the daemon answers");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int rc = app.exit(e);
        return rc == 0 ? kOk : kUsage;
    }

    try {
        Cli cli(opt);
        if (*parked) {
            if (*parkedGet) {
                json v = cli.call("GET", "/api/parked/" + urlEncode(id));
                cli.printObject(opt.json ? v : humanizeParked(v, nowEpochMs()));
            } else {
                json v = cli.call("GET", "/api/parked" + query({{"domain", fDomain},
                                                                  {"extension", fExt},
                                                                  {"group", fGroup},
                                                                  {"lot", fLot}}));
                cli.printList(opt.json ? v : humanizeParked(v, nowEpochMs()), kParkedCols, "no parked calls",
                              /*strict=*/true);
            }
        } else if (*recall) {
            cli.done(cli.call("POST", "/api/parked/" + urlEncode(id) + "/recall", json::object()),
                     "recall started for parked call " + id);
        } else if (*hangup) {
            cli.done(cli.call("DELETE", "/api/parked/" + urlEncode(id)), "parked call " + id + " hung up");
        } else if (*groups) {
            if (*groupsAdd) {
                std::string d = cli.domain(fDomain);
                json v = cli.call("PUT", "/api/groups/" + urlEncode(d) + "/" + urlEncode(name),
                                  json{{"members", members}});
                cli.done(v, fmt::format("group {}@{}: {}", name, d, fmt::join(members, " ")));
            } else if (*groupsDel) {
                std::string d = cli.domain(fDomain);
                cli.done(cli.call("DELETE", "/api/groups/" + urlEncode(d) + "/" + urlEncode(name)),
                         fmt::format("group {}@{} deleted", name, d));
            } else {
                cli.printList(cli.call("GET", "/api/groups" + query({{"domain", fDomain}})),
                              {"domain", "name", "members"}, "no groups");
            }
        } else if (*lots) {
            if (*lotsSet) {
                std::string d = cli.domain(fDomain);
                json body = keyValues(extra);
                cli.done(cli.call("PUT", "/api/lots/" + urlEncode(d) + "/" + urlEncode(name), body),
                         fmt::format("lot {}@{} saved", name, d));
            } else if (*lotsDel) {
                std::string d = cli.domain(fDomain);
                cli.done(cli.call("DELETE", "/api/lots/" + urlEncode(d) + "/" + urlEncode(name)),
                         fmt::format("lot {}@{} deleted", name, d));
            } else {
                cli.printList(cli.call("GET", "/api/lots" + query({{"domain", fDomain}})),
                              {"domain", "name", "first_slot", "last_slot", "first", "last", "choice"},
                              "no lots");
            }
        } else if (*rules) {
            if (*rulesLoad) {
                std::stringstream ss;
                if (file == "-") {
                    ss << std::cin.rdbuf();
                } else {
                    std::ifstream in(file);
                    if (!in) {
                        std::cerr << "parkctl: cannot read rules file " << file << "\n";
                        return kUsage;
                    }
                    ss << in.rdbuf();
                }
                json v = cli.call("POST", "/api/rules", json{{"text", ss.str()}, {"replace", replace}});
                if (opt.json) cli.printJson(v);
                else if (v.is_object() && !v.empty()) std::cout << "rules loaded from " << file << "\n" << renderObject(v);
                else std::cout << "rules loaded from " << file << "\n";
            } else if (*rulesReload) {
                cli.done(cli.call("POST", "/api/rules/reload", json::object()), "rules reloaded");
            } else {
                cli.printList(cli.call("GET", "/api/rules"),
                              {"id", "dpid", "pr", "match_op", "match_exp", "match_len", "subst_exp", "repl_exp",
                               "attrs", "disabled", "continue"},
                              "no rules");
            }
        } else if (*explain) {
            cli.printObject(cli.call("GET", "/api/explain" + query({{"domain", fDomain}, {"caller", caller},
                                                                      {"dial", dial}})));
        } else if (*regs) {
            json v = cli.call("GET", "/api/registrations" + query({{"aor", aor}}));
            if (opt.json) {
                cli.printJson(v);
            } else {
                // One line per contact: {"registrations":[{"aor":..,"contacts":[{uri,expires,..}]}]}.
                json rows = json::array();
                if (const json *regsRows = findRows(v))
                    for (const auto &reg : *regsRows) {
                        if (!reg.is_object() || !reg.contains("contacts") || !reg["contacts"].is_array()) {
                            rows.push_back(reg);
                            continue;
                        }
                        for (const auto &c : reg["contacts"]) {
                            json row{{"aor", reg.value("aor", "")}};
                            if (c.is_object())
                                for (const auto &[k, x] : c.items())
                                    if (k == "uri" || k == "expires" || k == "received" || k == "user_agent" ||
                                        k == "q")
                                        row[k == "uri" ? "contact" : k] = x;
                            rows.push_back(row);
                        }
                    }
                std::cout << renderTable(rows, {"aor", "contact", "expires", "q", "received", "user_agent"},
                                         "no registrations");
            }
        } else if (*domains) {
            cli.printList(cli.call("GET", "/api/domains"), {"domain", "name"}, "no domains");
        } else if (*stats) {
            cli.printObject(cli.call("GET", "/api/stats"));
        } else if (*commands) {
            cli.printList(cli.call("GET", "/api/commands"), {"module", "name", "help"}, "no admin commands");
        } else if (*callCmd) {
            json a = json::object();
            if (!args.empty()) {
                a = json::parse(args, nullptr, false);
                if (a.is_discarded() || !a.is_object()) {
                    std::cerr << "parkctl: args must be a JSON object, e.g. '{\"id\":\"1\"}'\n";
                    return kUsage;
                }
            }
            json v = cli.call("POST", "/api/modules/" + urlEncode(module) + "/" + urlEncode(command), a);
            if (findRows(v)) cli.printList(v, {}, "(empty)");
            else cli.printObject(v);
        } else if (*reload) {
            cli.done(cli.call("POST", "/api/reload", json::object()), "reloaded");
        } else if (*metrics) {
            std::cout << cli.text("/metrics");
        } else if (*health) {
            json v = cli.call("GET", "/health");
            cli.done(v, "parkway is up at " + opt.url);
        } else if (*eventsCmd) {
            int seen = 0;
            int status = 0;
            std::string errBody, pending;
            std::string evId, evType, evData;
            cli.client().stream(
                "/api/events" + query({{"types", types}}),
                [&](const Response &head) {
                    status = head.status;
                    return true;
                },
                [&](const std::string &chunk) {
                    if (status >= 400) {
                        errBody += chunk;
                        return true;
                    }
                    pending += chunk;
                    size_t nl;
                    while ((nl = pending.find('\n')) != std::string::npos) {
                        std::string line = pending.substr(0, nl);
                        pending.erase(0, nl + 1);
                        if (!line.empty() && line.back() == '\r') line.pop_back();
                        if (line.empty()) { // end of one event
                            if (!evType.empty() || !evData.empty()) {
                                json data = json::parse(evData, nullptr, false);
                                if (opt.json) {
                                    json out{{"id", evId}, {"type", evType},
                                             {"data", data.is_discarded() ? json(evData) : data}};
                                    std::cout << out.dump() << std::endl;
                                } else {
                                    std::cout << fmt::format("#{} {} {}", evId, evType, eventSummary(data, evData))
                                              << std::endl;
                                }
                                ++seen;
                            }
                            evId.clear();
                            evType.clear();
                            evData.clear();
                            if (count > 0 && seen >= count) return false;
                            continue;
                        }
                        if (line[0] == ':') continue; // comment / keep-alive
                        auto colon = line.find(':');
                        std::string field = line.substr(0, colon);
                        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
                        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
                        if (field == "id") evId = value;
                        else if (field == "event") evType = value;
                        else if (field == "data") evData += (evData.empty() ? "" : "\n") + value;
                    }
                    return true;
                });
            if (status >= 400) {
                json v = json::parse(errBody, nullptr, false);
                throw ApiError{status, v.is_object() && v.contains("error") ? v["error"].get<std::string>() : errBody};
            }
        }
        return kOk;
    } catch (const std::invalid_argument &e) {
        std::cerr << "parkctl: " << e.what() << "\n";
        return kUsage;
    } catch (const CLI::ValidationError &e) {
        std::cerr << "parkctl: " << e.what() << "\n";
        return kUsage;
    } catch (const Unreachable &e) {
        std::cerr << "parkctl: parkway is not reachable at " << opt.url << " (" << e.what() << ")\n";
        return kUnreachable;
    } catch (const ProtocolError &e) {
        std::cerr << "parkctl: talking to " << opt.url << " failed: " << e.what() << "\n";
        return kFailed;
    } catch (const ApiError &e) {
        if (e.status == 401) {
            std::cerr << "parkctl: unauthorized: " << (opt.token.empty() ? "no token given" : "the token was refused")
                      << " (use --token or PARKWAY_TOKEN; it is admin.token in the daemon's config)\n";
            return kUnauthorized;
        }
        if (e.status == 0) std::cerr << "parkctl: " << e.message << "\n";
        else std::cerr << "parkctl: error (HTTP " << e.status << "): " << e.message << "\n";
        return e.status == 0 ? kUsage : kFailed;
    }
}
