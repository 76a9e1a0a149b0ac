// parkctl: the Parkway operator CLI over the admin HTTP API (docs/admin-api.md).
//
// Exit codes: 0 ok, 1 the request failed (the daemon answered with an error), 2 usage error,
// 3 the daemon is not reachable, 4 unauthorized (missing or wrong token), 5 TLS failed (certificate not
// verified, no handshake).
#include "http_client.hh"
#include "output.hh"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <vector>

using json = nlohmann::json;
using namespace parkway::tools;

namespace {

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kUnreachable = 3, kUnauthorized = 4, kTls = 5 };

struct Options {
    std::string url = "http://127.0.0.1:8089";
    std::string token;
    bool json = false;
    int timeoutMs = 30000;
    TlsOptions tls; // --cacert / $PARKWAY_CACERT, --insecure
};

// The daemon answered with an error status.
struct ApiError {
    int status;
    std::string message;
};

class Cli {
public:
    explicit Cli(const Options &o) : opt_(o), client_(parseUrl(o.url), o.token, o.timeoutMs, o.tls) {}

    json call(const std::string &method, const std::string &target, const json &body = json()) {
        return callText(method, target, body.is_null() ? "" : body.dump());
    }
    // The body as JSON text already (a body holding a secret is built and wiped by the caller).
    json callText(const std::string &method, const std::string &target, const std::string &bodyText) {
        Response r = client_.request(method, target, bodyText);
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

// SIP credentials: users set reads the password from stdin, one line; without echo when stdin is a terminal.
struct termios gSavedTerm;
volatile sig_atomic_t gTermChanged = 0;

void restoreTermAndDie(int sig) {
    if (gTermChanged)
        tcsetattr(STDIN_FILENO, TCSANOW, &gSavedTerm);
    std::signal(sig, SIG_DFL);
    std::raise(sig);
}

// The password, or "" (refused by the caller) when stdin gave nothing.
std::string readPassword(const std::string &prompt) {
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &gSavedTerm) == 0;
    if (tty) {
        std::cerr << prompt << std::flush;
        struct termios quiet = gSavedTerm;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        quiet.c_lflag |= ECHONL;
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP})
            std::signal(sig, &restoreTermAndDie);
        gTermChanged = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
    std::string line;
    std::getline(std::cin, line);
    if (tty) {
        if (gTermChanged)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &gSavedTerm);
        gTermChanged = 0;
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP})
            std::signal(sig, SIG_DFL);
    }
    if (!line.empty() && line.back() == '\r')
        line.pop_back();
    return line;
}

void wipe(std::string &s) {
    explicit_bzero(s.data(), s.size());
    s.clear();
}

// Every option's value (CLI11 writes into it while parsing).
struct Args {
    std::string domain, extension, group, lot, id, name, file, caller, dial, aor, module, command, json, types, user;
    std::string target; // trace start TARGET
    std::vector<std::string> members, settings, registerFor;
    bool replace = false;
    int count = 0;
    int slot = -1; // move --slot (0 = the lot picks)
};

// One command: the CLI11 subcommand that selects it and what it does (an exit code).
struct Command {
    CLI::App *app;
    std::function<int(Cli &, const Args &)> run;
};

int listParked(Cli &cli, const Args &a) {
    json v = cli.call(
        "GET",
        "/api/parked" + query({{"domain", a.domain}, {"extension", a.extension}, {"group", a.group}, {"lot", a.lot}}));
    cli.printList(cli.opt().json ? v : humanizeParked(v, nowEpochMs()), kParkedCols, "no parked calls",
                  /*strict=*/true);
    return kOk;
}

int loadRules(Cli &cli, const Args &a) {
    std::stringstream ss;
    if (a.file == "-") {
        ss << std::cin.rdbuf();
    } else {
        std::ifstream in(a.file);
        if (!in) {
            std::cerr << "parkctl: cannot read rules file " << a.file << "\n";
            return kUsage;
        }
        ss << in.rdbuf();
    }
    json v = cli.call("POST", "/api/rules", json{{"text", ss.str()}, {"replace", a.replace}});
    if (cli.opt().json)
        cli.printJson(v);
    else if (v.is_object() && !v.empty())
        std::cout << "rules loaded from " << a.file << "\n" << renderObject(v);
    else
        std::cout << "rules loaded from " << a.file << "\n";
    return kOk;
}

// One line per contact: {"registrations":[{"aor":..,"contacts":[{uri,expires,..}]}]}.
int listRegistrations(Cli &cli, const Args &a) {
    json v = cli.call("GET", "/api/registrations" + query({{"aor", a.aor}}));
    if (cli.opt().json) {
        cli.printJson(v);
        return kOk;
    }
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
                        if (k == "uri" || k == "expires" || k == "received" || k == "user_agent" || k == "q")
                            row[k == "uri" ? "contact" : k] = x;
                rows.push_back(row);
            }
        }
    std::cout << renderTable(rows, {"aor", "contact", "expires", "q", "received", "user_agent"}, "no registrations");
    return kOk;
}

// PUT /api/users/{domain}/{user} {"password":..,"register_for":[..]}; the password never reaches the output.
int setUser(Cli &cli, const Args &a) {
    std::string password = readPassword(fmt::format("Password for {}@{}: ", a.user, a.domain));
    if (password.empty()) {
        std::cerr << "parkctl: refusing an empty password (type it, or give it as one line on stdin)\n";
        return kUsage;
    }
    json body{{"password", ""}, {"register_for", a.registerFor}};
    body["password"].get_ref<std::string &>().swap(password);
    std::string text = body.dump();
    wipe(body["password"].get_ref<std::string &>());
    json v;
    try {
        v = cli.callText("PUT", "/api/users/" + urlEncode(a.domain) + "/" + urlEncode(a.user), text);
    } catch (...) {
        wipe(text);
        throw;
    }
    wipe(text);
    bool created = v.is_object() && v.value("created", false);
    std::string extra =
        a.registerFor.empty() ? "" : fmt::format(" (may register for {})", fmt::join(a.registerFor, ", "));
    cli.done(v, fmt::format("user {}@{} {}{}", a.user, a.domain, created ? "created" : "saved", extra));
    return kOk;
}

int callModule(Cli &cli, const Args &a) {
    json args = json::object();
    if (!a.json.empty()) {
        args = json::parse(a.json, nullptr, false);
        if (args.is_discarded() || !args.is_object()) {
            std::cerr << "parkctl: args must be a JSON object, e.g. '{\"id\":\"1\"}'\n";
            return kUsage;
        }
    }
    json v = cli.call("POST", "/api/modules/" + urlEncode(a.module) + "/" + urlEncode(a.command), args);
    if (findRows(v))
        cli.printList(v, {}, "(empty)");
    else
        cli.printObject(v);
    return kOk;
}

// Server-sent events, one line each (or one JSON object each with --json), until --count or Ctrl-C.
int streamEvents(Cli &cli, const Args &a) {
    int seen = 0, status = 0;
    std::string errBody, pending, evId, evType, evData;
    auto endOfEvent = [&] {
        if (evType.empty() && evData.empty())
            return;
        json data = json::parse(evData, nullptr, false);
        if (cli.opt().json) {
            json out{{"id", evId}, {"type", evType}, {"data", data.is_discarded() ? json(evData) : data}};
            std::cout << out.dump() << std::endl;
        } else {
            std::cout << fmt::format("#{} {} {}", evId, evType, eventSummary(data, evData)) << std::endl;
        }
        ++seen;
    };
    cli.client().stream(
        "/api/events" + query({{"types", a.types}}),
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
                if (!line.empty() && line.back() == '\r')
                    line.pop_back();
                if (line.empty()) { // end of one event
                    endOfEvent();
                    evId.clear();
                    evType.clear();
                    evData.clear();
                    if (a.count > 0 && seen >= a.count)
                        return false;
                    continue;
                }
                if (line[0] == ':')
                    continue; // comment / keep-alive
                auto colon = line.find(':');
                std::string field = line.substr(0, colon);
                std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
                if (!value.empty() && value[0] == ' ')
                    value.erase(0, 1);
                if (field == "id")
                    evId = value;
                else if (field == "event")
                    evType = value;
                else if (field == "data")
                    evData += (evData.empty() ? "" : "\n") + value;
            }
            return true;
        });
    if (status >= 400) {
        json v = json::parse(errBody, nullptr, false);
        throw ApiError{status, v.is_object() && v.contains("error") ? v["error"].get<std::string>() : errBody};
    }
    return kOk;
}

// The command table. A subcommand's own subcommands come before it: the first one that was given runs.
std::vector<Command> defineCommands(CLI::App &app, Args &a) {
    std::vector<Command> table;
    auto add = [&](CLI::App *sub, std::function<int(Cli &, const Args &)> run) {
        table.push_back({sub, std::move(run)});
    };
    auto domainOption = [&](CLI::App *sub, const char *help) { sub->add_option("--domain", a.domain, help); };

    // parked [get ID] [--domain D --extension E --group G --lot L]; recall ID; hangup ID
    auto *parked = app.add_subcommand("parked", "list parked calls (or: parked get ID)");
    domainOption(parked, "only this domain");
    parked->add_option("--extension", a.extension, "only calls parked on this extension");
    parked->add_option("--group", a.group, "only calls of this call-park group");
    parked->add_option("--lot", a.lot, "only calls in this lot");
    auto *parkedGet = parked->add_subcommand("get", "show one parked call");
    parkedGet->add_option("id", a.id, "parked call id")->required();
    add(parkedGet, [](Cli &cli, const Args &a) {
        json v = cli.call("GET", "/api/parked/" + urlEncode(a.id));
        cli.printObject(cli.opt().json ? v : humanizeParked(v, nowEpochMs()));
        return kOk;
    });
    add(parked, &listParked);
    auto *recall = app.add_subcommand("recall", "force the recall of a parked call now");
    recall->add_option("id", a.id, "parked call id")->required();
    add(recall, [](Cli &cli, const Args &a) {
        cli.done(cli.call("POST", "/api/parked/" + urlEncode(a.id) + "/recall", json::object()),
                 "recall started for parked call " + a.id);
        return kOk;
    });
    auto *move = app.add_subcommand("move", "move a parked call to another extension or lot slot");
    move->add_option("id", a.id, "parked call id")->required();
    auto *moveExt = move->add_option("--extension", a.extension, "the extension to move it to");
    auto *moveLot = move->add_option("--lot", a.lot, "the lot to move it to");
    move->add_option("--slot", a.slot, "with --lot: the slot (0 or none: the lot picks)")->needs(moveLot);
    moveExt->excludes(moveLot);
    add(move, [](Cli &cli, const Args &a) {
        if (a.extension.empty() == a.lot.empty())
            throw CLI::ValidationError("move", "give --extension E or --lot L [--slot N]");
        json body = a.lot.empty() ? json{{"extension", a.extension}} : json{{"lot", a.lot}};
        if (!a.lot.empty() && a.slot >= 0)
            body["slot"] = a.slot;
        json v = cli.call("POST", "/api/parked/" + urlEncode(a.id) + "/move", body);
        std::string where = a.lot.empty() ? a.extension : a.lot + (a.slot > 0 ? "/" + std::to_string(a.slot) : "");
        cli.done(v, "parked call " + a.id + " moved to " + where);
        return kOk;
    });
    auto *hangup = app.add_subcommand("hangup", "hang up a parked call");
    hangup->add_option("id", a.id, "parked call id")->required();
    add(hangup, [](Cli &cli, const Args &a) {
        cli.done(cli.call("DELETE", "/api/parked/" + urlEncode(a.id)), "parked call " + a.id + " hung up");
        return kOk;
    });

    // groups [add NAME MEMBERS... | del NAME] [--domain D]
    auto *groups = app.add_subcommand("groups", "list call-park groups (or: groups add / groups del)");
    domainOption(groups, "domain (default: $PARKWAY_DOMAIN or the only one)");
    auto *groupsAdd = groups->add_subcommand("add", "create or replace a group; members in hunting order");
    groupsAdd->alias("set");
    groupsAdd->add_option("name", a.name, "group name")->required();
    groupsAdd->add_option("members", a.members, "member extensions, in order")->required();
    domainOption(groupsAdd, "domain");
    add(groupsAdd, [](Cli &cli, const Args &a) {
        std::string d = cli.domain(a.domain);
        json v = cli.call("PUT", "/api/groups/" + urlEncode(d) + "/" + urlEncode(a.name), json{{"members", a.members}});
        cli.done(v, fmt::format("group {}@{}: {}", a.name, d, fmt::join(a.members, " ")));
        return kOk;
    });
    auto *groupsDel = groups->add_subcommand("del", "delete a group");
    groupsDel->alias("delete");
    groupsDel->add_option("name", a.name, "group name")->required();
    domainOption(groupsDel, "domain");
    add(groupsDel, [](Cli &cli, const Args &a) {
        std::string d = cli.domain(a.domain);
        cli.done(cli.call("DELETE", "/api/groups/" + urlEncode(d) + "/" + urlEncode(a.name)),
                 fmt::format("group {}@{} deleted", a.name, d));
        return kOk;
    });
    add(groups, [](Cli &cli, const Args &a) {
        cli.printList(cli.call("GET", "/api/groups" + query({{"domain", a.domain}})), {"domain", "name", "members"},
                      "no groups");
        return kOk;
    });

    // lots [set NAME key=value... | del NAME] [--domain D]
    auto *lots = app.add_subcommand("lots", "list parking lots (or: lots set / lots del)");
    domainOption(lots, "domain (default: $PARKWAY_DOMAIN or the only one)");
    auto *lotsSet = lots->add_subcommand("set", "create or change a lot: lots set main first=701 last=720");
    lotsSet->alias("add");
    lotsSet->add_option("name", a.name, "lot name")->required();
    lotsSet->add_option("settings", a.settings, "key=value settings (numbers and true/false keep their type)");
    domainOption(lotsSet, "domain");
    add(lotsSet, [](Cli &cli, const Args &a) {
        std::string d = cli.domain(a.domain);
        cli.done(cli.call("PUT", "/api/lots/" + urlEncode(d) + "/" + urlEncode(a.name), keyValues(a.settings)),
                 fmt::format("lot {}@{} saved", a.name, d));
        return kOk;
    });
    auto *lotsDel = lots->add_subcommand("del", "delete a lot");
    lotsDel->alias("delete");
    lotsDel->add_option("name", a.name, "lot name")->required();
    domainOption(lotsDel, "domain");
    add(lotsDel, [](Cli &cli, const Args &a) {
        std::string d = cli.domain(a.domain);
        cli.done(cli.call("DELETE", "/api/lots/" + urlEncode(d) + "/" + urlEncode(a.name)),
                 fmt::format("lot {}@{} deleted", a.name, d));
        return kOk;
    });
    add(lots, [](Cli &cli, const Args &a) {
        cli.printList(cli.call("GET", "/api/lots" + query({{"domain", a.domain}})),
                      {"domain", "name", "first_slot", "last_slot", "first", "last", "choice"}, "no lots");
        return kOk;
    });

    // rules [load FILE [--replace] | reload]; explain DOMAIN CALLER DIAL
    auto *rules = app.add_subcommand("rules", "list dialplan rules (or: rules load FILE / rules reload)");
    auto *rulesLoad = rules->add_subcommand("load", "import rules from a file");
    rulesLoad->add_option("file", a.file, "rules file ('-' for stdin)")->required();
    rulesLoad->add_flag("--replace", a.replace, "replace every existing rule (default: add/update)");
    add(rulesLoad, &loadRules);
    auto *rulesReload = rules->add_subcommand("reload", "reload the rule table atomically");
    add(rulesReload, [](Cli &cli, const Args &) {
        cli.done(cli.call("POST", "/api/rules/reload", json::object()), "rules reloaded");
        return kOk;
    });
    add(rules, [](Cli &cli, const Args &) {
        cli.printList(cli.call("GET", "/api/rules"),
                      {"id", "dpid", "pr", "match_op", "match_exp", "match_len", "subst_exp", "repl_exp", "attrs",
                       "disabled", "continue"},
                      "no rules");
        return kOk;
    });
    auto *explain = app.add_subcommand("explain", "show which rule and slot a dial string would use");
    explain->add_option("domain", a.domain, "domain")->required();
    explain->add_option("caller", a.caller, "calling extension")->required();
    explain->add_option("dial", a.dial, "dialled digits, e.g. '*58'")->required();
    add(explain, [](Cli &cli, const Args &a) {
        cli.printObject(
            cli.call("GET", "/api/explain" + query({{"domain", a.domain}, {"caller", a.caller}, {"dial", a.dial}})));
        return kOk;
    });

    auto *regs = app.add_subcommand("registrations", "list registered contacts");
    regs->add_option("--aor", a.aor, "only this address of record");
    add(regs, &listRegistrations);
    auto *domains = app.add_subcommand("domains", "list domains and their settings (or: domains delete DOMAIN)");
    auto *domainsDel = domains->add_subcommand("delete", "deprovision a domain (refused while calls are parked in it)");
    domainsDel->add_option("domain", a.domain, "domain")->required();
    add(domainsDel, [](Cli &cli, const Args &a) {
        json v = cli.call("DELETE", "/api/domains/" + urlEncode(a.domain));
        bool local = v.is_object() && v.value("local", false);
        cli.done(v, fmt::format("domain {} deprovisioned{}", a.domain, local ? " (still in [proxy] domains)" : ""));
        return kOk;
    });
    add(domains, [](Cli &cli, const Args &) {
        cli.printList(cli.call("GET", "/api/domains"), {"domain", "name"}, "no domains");
        return kOk;
    });
    add(app.add_subcommand("stats", "core and module statistics"), [](Cli &cli, const Args &) {
        cli.printObject(cli.call("GET", "/api/stats"));
        return kOk;
    });
    add(app.add_subcommand("commands", "list module admin commands"), [](Cli &cli, const Args &) {
        cli.printList(cli.call("GET", "/api/commands"), {"module", "name", "help"}, "no admin commands");
        return kOk;
    });
    auto *callCmd = app.add_subcommand("call", "run any module admin command: call MODULE COMMAND ['{json}']");
    callCmd->add_option("module", a.module, "module name")->required();
    callCmd->add_option("command", a.command, "command name")->required();
    callCmd->add_option("args", a.json, "arguments as a JSON object");
    add(callCmd, &callModule);

    // users set DOMAIN USER [--register-for U]... | delete DOMAIN USER | list DOMAIN
    auto *users = app.add_subcommand("users", "SIP users and their credentials: users set / users delete / users list");
    users->require_subcommand(1);
    auto *usersSet = users->add_subcommand(
        "set", "create a SIP user or change its password; the password is read from stdin (one line, not echoed "
               "on a terminal)");
    usersSet->add_option("domain", a.domain, "SIP domain (one of the daemon's domains)")->required();
    usersSet->add_option("user", a.user, "user name (the user part of its address)")->required();
    usersSet
        ->add_option("--register-for", a.registerFor,
                     "another user of the domain this one may register contacts for (repeatable)")
        ->allow_extra_args(false);
    add(usersSet, &setUser);
    auto *usersDel = users->add_subcommand("delete", "delete a SIP user");
    usersDel->alias("del");
    usersDel->add_option("domain", a.domain, "SIP domain")->required();
    usersDel->add_option("user", a.user, "user name")->required();
    add(usersDel, [](Cli &cli, const Args &a) {
        cli.done(cli.call("DELETE", "/api/users/" + urlEncode(a.domain) + "/" + urlEncode(a.user)),
                 fmt::format("user {}@{} deleted", a.user, a.domain));
        return kOk;
    });
    auto *usersList = users->add_subcommand("list", "list the SIP users of a domain (never a password or hash)");
    usersList->add_option("domain", a.domain, "SIP domain")->required();
    add(usersList, [](Cli &cli, const Args &a) {
        cli.printList(cli.call("GET", "/api/users/" + urlEncode(a.domain)), {"user", "register_for", "algorithms"},
                      "no users");
        return kOk;
    });

    // trace status | start TARGET | stop (GET/PUT/DELETE /api/trace; docs/replay.md "Recording")
    auto *trace = app.add_subcommand("trace", "record SIP messages: trace status / trace start TARGET / trace stop");
    trace->require_subcommand(1);
    add(trace->add_subcommand("status", "what is being recorded, where, and how much"), [](Cli &cli, const Args &) {
        cli.printObject(cli.call("GET", "/api/trace"));
        return kOk;
    });
    auto *traceStart = trace->add_subcommand("start", "start (or switch) recording: pcap:/ABS/FILE or text:/ABS/FILE");
    traceStart->add_option("target", a.target, "pcap:FILE or text:FILE (FILE an absolute path on the daemon's host)")
        ->required();
    add(traceStart, [](Cli &cli, const Args &a) {
        json v = cli.call("PUT", "/api/trace", json{{"target", a.target}});
        cli.done(v, "recording to " + (v.is_object() ? v.value("file", a.target) : a.target));
        return kOk;
    });
    add(trace->add_subcommand("stop", "stop recording (the file stays)"), [](Cli &cli, const Args &) {
        cli.done(cli.call("DELETE", "/api/trace"), "recording stopped");
        return kOk;
    });

    auto *eventsCmd = app.add_subcommand("events", "stream live events until Ctrl-C");
    eventsCmd->add_option("--count", a.count, "stop after N events")->check(CLI::Range(0, 1000000000));
    eventsCmd->add_option("--types", a.types, "only these event types (comma separated)");
    add(eventsCmd, &streamEvents);
    add(app.add_subcommand("reload", "re-read the config file ([proxy] domains, [auth]), rules, groups and domain "
                                     "settings (like SIGHUP)"),
        [](Cli &cli, const Args &) {
            json v = cli.call("POST", "/api/reload", json::object());
            std::string changes;
            if (v.is_object() && v.contains("domains") && v["domains"].is_object())
                for (const char *k : {"added", "removed"})
                    if (v["domains"].contains(k) && v["domains"][k].is_array() && !v["domains"][k].empty())
                        changes += fmt::format("{}domains {}: {}", changes.empty() ? " (" : "; ", k,
                                               fmt::join(v["domains"][k].get<std::vector<std::string>>(), " "));
            cli.done(v, "reloaded" + changes + (changes.empty() ? "" : ")"));
            return kOk;
        });
    add(app.add_subcommand("metrics", "print the Prometheus metrics"), [](Cli &cli, const Args &) {
        std::cout << cli.text("/metrics");
        return kOk;
    });
    add(app.add_subcommand("health", "check that the daemon answers"), [](Cli &cli, const Args &) {
        cli.done(cli.call("GET", "/health"), "parkway is up at " + cli.opt().url);
        return kOk;
    });
    return table;
}

// The daemon's answer or the way it failed, as parkctl's exit code (see the top of this file).
int runCommand(const Command &cmd, const Options &opt, const Args &args) {
    try {
        Cli cli(opt);
        return cmd.run(cli, args);
    } catch (const std::invalid_argument &e) {
        std::cerr << "parkctl: " << e.what() << "\n";
        return kUsage;
    } catch (const CLI::ValidationError &e) {
        std::cerr << "parkctl: " << e.what() << "\n";
        return kUsage;
    } catch (const Unreachable &e) {
        std::cerr << "parkctl: parkway is not reachable at " << opt.url << " (" << e.what() << ")\n";
        return kUnreachable;
    } catch (const TlsError &e) {
        std::cerr << "parkctl: TLS with " << opt.url << " failed: " << e.what() << "\n";
        return kTls;
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

} // namespace

int main(int argc, char **argv) {
    Options opt;
    if (const char *t = std::getenv("PARKWAY_TOKEN"))
        opt.token = t;
    if (const char *u = std::getenv("PARKWAY_URL"))
        opt.url = u;
    if (const char *ca = std::getenv("PARKWAY_CACERT"))
        opt.tls.caFile = ca;

    CLI::App app{"parkctl: operate a Parkway call-park server over its admin API"};
    app.set_version_flag("--version", std::string("parkctl ") + PARKWAY_VERSION);
    app.add_option("--url", opt.url, "admin API base URL (env PARKWAY_URL)")->capture_default_str();
    app.add_option("--token", opt.token, "bearer token (env PARKWAY_TOKEN)");
    app.add_option("--cacert", opt.tls.caFile,
                   "PEM CA certificate(s) that signed the admin API's certificate, for https:// URLs "
                   "(env PARKWAY_CACERT; default: the system's CAs)");
    app.add_option("--cert", opt.tls.certFile,
                   "PEM client certificate, when the admin API asks for one (admin.tls_ca_file)");
    app.add_option("--key", opt.tls.keyFile, "PEM private key of --cert (default: read from the --cert file)");
    app.add_flag("--insecure", opt.tls.insecure,
                 "https:// without checking the certificate or host name (anyone in the path can read the token)");
    app.add_flag("--json", opt.json, "print the raw JSON result");
    app.add_option("--timeout", opt.timeoutMs, "request timeout in milliseconds")
        ->capture_default_str()
        ->check(CLI::Range(1, 3600000));
    app.require_subcommand(1);
    app.footer("Exit codes: 0 ok, 1 request failed, 2 usage, 3 daemon not reachable, 4 unauthorized, 5 TLS failed "
               "(certificate not verified).\n");
    Args args;
    std::vector<Command> commands = defineCommands(app, args);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int rc = app.exit(e); // --help and --version print and exit 0; a usage error prints what and the help
        return rc == 0 ? kOk : kUsage;
    }
    for (const auto &[file, what] :
         {std::pair{opt.tls.caFile, "the CA file"}, {opt.tls.certFile, "--cert"}, {opt.tls.keyFile, "--key"}})
        if (!file.empty() && access(file.c_str(), R_OK) != 0) {
            std::cerr << "parkctl: cannot read " << what << " " << file
                      << (what == std::string("the CA file") ? " (--cacert or PARKWAY_CACERT)" : "") << ": "
                      << std::strerror(errno) << "\nRun with --help for more information.\n";
            return kUsage;
        }
    for (const Command &c : commands)
        if (c.app->parsed())
            return runCommand(c, opt, args);
    return kUsage; // not reached: a subcommand is required
}
