// Admin commands (the admin plane maps HTTP endpoints onto these; docs/admin-commands.md). Each takes a JSON
// object and writes exactly one JSON value, or fails with writer_error(4xx, message). With the storage thread the
// engine part of a command runs there and the answer is written later (writer_defer, below "how a command runs").
#include "callpark.hh"

#include <parkway/engine/json.hh>

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>

namespace parkway::callpark {

namespace {

using nlohmann::json;

struct CmdError {
    int status;
    std::string message;
};

std::string reqStr(const json &a, const char *key) {
    if (!a.contains(key) || !a[key].is_string() || a[key].get<std::string>().empty())
        throw CmdError{400, fmt::format("'{}' is required (a non-empty string)", key)};
    return a[key].get<std::string>();
}

std::string optStr(const json &a, const char *key) {
    if (!a.contains(key) || a[key].is_null())
        return {};
    if (!a[key].is_string())
        throw CmdError{400, fmt::format("'{}' must be a string", key)};
    return a[key].get<std::string>();
}

int64_t reqInt(const json &a, const char *key) {
    if (a.contains(key) && a[key].is_string()) { // path parameters may arrive as text
        const std::string &t = a[key].get_ref<const std::string &>();
        if (!t.empty() && t.find_first_not_of("0123456789") == std::string::npos && t.size() < 19)
            return std::stoll(t);
    }
    if (!a.contains(key) || !a[key].is_number_integer())
        throw CmdError{400, fmt::format("'{}' is required (an integer)", key)};
    return a[key].get<int64_t>();
}

json parsed(const std::string &text) {
    return json::parse(text);
}

// ---------------------------------------------------------------- how a command runs
//
// A command's engine work must not hold the SIP thread on a database on the network (docs/cluster.md "Threads").
// So each command is a Step: `work` reads and writes the engine only (no session, no host call) and runs with the
// engine locked, as a storage job when the answer can be given later (writer_defer, ABI 1.8), else inline on the SIP
// thread through the locked accessor (SQLite, storage_thread = "off", or a caller that needs the answer at once).
// `then` runs on the SIP thread with work's result: what only the SIP side knows or does (a call's dialog, a
// forced recall's ringing, a hang-up's BYE, the served domains). It finds sessions again by call id, and may ask
// for one more Step. Both modes run the same functions, so the answers are the same.
struct Outcome;
using Work = std::function<json(eng::Engine &)>;
using Then = std::function<Outcome(CallPark &, json &)>;
struct Step {
    Work work;
    Then then; // empty: the answer is work's result
};
struct Outcome {
    json value;
    std::shared_ptr<Step> next; // set: run this step next; its outcome is the answer
    Outcome(json v) : value(std::move(v)) {}
    Outcome(Step s) : next(std::make_shared<Step>(std::move(s))) {}
};
using StepFn = Step (*)(CallPark &, const json &);

CmdError storageError(const CallPark &cp, const std::string &what) { // the database is away (docs/cluster.md)
    return CmdError{503, fmt::format("park database '{}' unavailable: {}", cp.dbPath_, storageReason(what))};
}

// Runs fn; what it failed with comes back as the error the client gets, the same on either thread.
template <typename F> std::optional<CmdError> guarded(const CallPark &cp, F &&fn) {
    try {
        fn();
        return std::nullopt;
    } catch (const CmdError &e) {
        return e;
    } catch (const json::exception &e) {
        return CmdError{400, std::string("bad JSON arguments: ") + e.what()};
    } catch (const eng::StorageFailure &e) {
        return storageError(cp, e.what());
    } catch (const std::exception &e) {
        return CmdError{500, e.what()};
    }
}

// Inline: every step on the SIP thread, the engine taken through the locked accessor.
json runInline(CallPark &cp, Step st) {
    for (;;) {
        json v;
        {
            auto e = cp.engine();
            v = st.work(*e);
        } // the notes the work raised are delivered here, before `then` (as before a storage job's continuation)
        if (!st.then)
            return v;
        Outcome o = st.then(cp, v);
        if (!o.next)
            return std::move(o.value);
        st = std::move(*o.next);
    }
}

void answerLater(CallPark &cp, pw_writer *w, const json &value, std::optional<CmdError> err) {
    const pw_host_api *api = cp.host().api();
    std::string text;
    if (!err)
        err = guarded(cp, [&] { text = value.dump(); });
    if (err)
        api->writer_error(w, err->status, ps(err->message));
    else
        api->writer_json(w, ps(text));
    api->writer_finish(w);
}

// Deferred: the work as a storage job, `then` and the answer (writer_finish) in its continuation.
void runDeferred(CallPark &cp, pw_writer *w, std::shared_ptr<Step> st) {
    struct Done {
        json value;
        std::optional<CmdError> err;
    };
    CallPark *p = &cp;
    bool queued = cp.storage().run<Done>(
        [p, st](eng::Engine &e) {
            Done d;
            d.err = guarded(*p, [&] { d.value = st->work(e); });
            return d;
        },
        [p, w, st](Done &d) {
            std::shared_ptr<Step> next;
            if (!d.err && st->then)
                d.err = guarded(*p, [&] {
                    Outcome o = st->then(*p, d.value);
                    d.value = std::move(o.value);
                    next = std::move(o.next);
                });
            if (next && !d.err)
                return runDeferred(*p, w, std::move(next));
            answerLater(*p, w, d.value, std::move(d.err));
        });
    if (!queued)
        answerLater(
            cp, w, nullptr,
            CmdError{503, fmt::format("park storage busy ({} operations waiting): try again", cp.storage().queued())});
}

// A command that needs nothing but the engine.
template <json (*F)(eng::Engine &, const json &)> Step engineOnly(CallPark &, const json &a) {
    return {[a](eng::Engine &e) { return F(e, a); }, {}};
}

// ---------------------------------------------------------------- the commands

// The provisioned domains, then those of [proxy] domains (`configured`, read on the SIP thread).
std::vector<std::string> allDomains(eng::Engine &e, const std::string &configured) {
    std::vector<std::string> out;
    for (auto &d : e.domains())
        out.push_back(d.name);
    size_t pos = 0;
    while (pos < configured.size()) {
        size_t c = configured.find(',', pos);
        std::string n = configured.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
        pos = c == std::string::npos ? configured.size() : c + 1;
        if (!n.empty() && std::find(out.begin(), out.end(), n) == out.end())
            out.push_back(n);
    }
    return out;
}

std::string configuredDomains(CallPark &cp) {
    return cp.host().coreSetting("domains");
}

std::vector<std::string> provisionedNames(eng::Engine &e) {
    std::vector<std::string> out;
    for (auto &d : e.domains())
        out.push_back(d.name);
    return out;
}

void statusOrThrow(const eng::Status &st) {
    if (st)
        return;
    int code = st.error == eng::ErrorCode::NotFound ? 404 : st.error == eng::ErrorCode::BadState ? 409 : 400;
    if (st.error == eng::ErrorCode::Storage)
        code = 503;
    throw CmdError{code, st.message};
}

// A call as the engine has it (any thread).
json callJson(const eng::ParkedCall &c) {
    return parsed(eng::toJson(c));
}

// What only the SIP side knows of a call (its "id"): the parked party's dialog and music port when held here.
void addDialog(CallPark &cp, json &j) {
    if (Session *s = cp.sessionByCall(j.at("id").get<eng::CallId>()); s && s->a && s->a->dlg) {
        j["dialog"] = {{"call_id", cp.host().dialogGet(s->a->dlg, PW_DLG_CALL_ID)},
                       {"local_tag", cp.host().dialogGet(s->a->dlg, PW_DLG_LOCAL_TAG)},
                       {"remote_tag", cp.host().dialogGet(s->a->dlg, PW_DLG_REMOTE_TAG)}};
        j["moh_port"] = s->mohPort;
    }
}

Outcome withDialog(CallPark &cp, json &v) {
    addDialog(cp, v);
    return std::move(v);
}

eng::ParkedCall needCall(eng::Engine &e, const json &a) {
    auto id = reqInt(a, "id");
    auto c = e.get(id);
    if (!c)
        throw CmdError{404, fmt::format("no parked call {}", id)};
    return *c;
}

json callId(eng::Engine &e, const json &a) {
    return needCall(e, a).id;
}

Step parkedList(CallPark &, const json &a) {
    return {[a](eng::Engine &e) {
                eng::ListFilter f;
                f.domain = optStr(a, "domain");
                f.extension = optStr(a, "extension");
                f.group = optStr(a, "group");
                f.lot = optStr(a, "lot");
                json arr = json::array();
                for (auto &c : e.list(f))
                    arr.push_back(callJson(c));
                return json{{"parked", arr}};
            },
            [](CallPark &cp, json &v) -> Outcome {
                for (auto &j : v["parked"])
                    addDialog(cp, j);
                return std::move(v);
            }};
}

Step parkedGet(CallPark &, const json &a) {
    return {[a](eng::Engine &e) { return callJson(needCall(e, a)); }, withDialog};
}

// The call is found (404), then its session here (409), then the recall is stepped and rings.
Step parkedRecall(CallPark &, const json &a) {
    return {[a](eng::Engine &e) { return callId(e, a); },
            [](CallPark &cp, json &v) -> Outcome {
                eng::CallId id = v.get<eng::CallId>();
                Session *s = cp.sessionByCall(id);
                if (!s)
                    throw CmdError{409, fmt::format("call {} has no live dialog here", id)};
                if (s->state != SessionState::Parked && s->state != SessionState::Recalling)
                    throw CmdError{409, fmt::format("call {} is being retrieved", id)};
                json ok = {{"ok", true}, {"id", id}};
                if (!s->callId)
                    return ok;
                cp.forceRecallPrepare(*s);
                const uint64_t sid = s->sid;
                const int64_t now = cp.host().nowMs();
                struct Held {
                    eng::RecallStep step;
                    std::optional<std::vector<std::string>> altMembers; // read with the step (recall_flow.cc)
                    std::string storageFailure; // the step could not reach the database: 503 after the retry is armed
                };
                auto held = std::make_shared<Held>();
                CallPark *p = &cp;
                return Step{[p, held, id, now](eng::Engine &e) {
                                try {
                                    held->step = p->forceRecallStep(e, id, now, &held->altMembers);
                                } catch (const eng::StorageFailure &f) {
                                    held->storageFailure = f.what();
                                    held->step.error = eng::ErrorCode::Storage;
                                    held->step.message = storageReason(f.what());
                                }
                                return json();
                            },
                            [held, sid, id, ok](CallPark &cp2, json &) -> Outcome {
                                cp2.forceRecallStepped(sid, id, held->step, held->altMembers);
                                if (!held->storageFailure.empty())
                                    throw storageError(cp2, held->storageFailure);
                                return ok;
                            }};
            }};
}

Step parkedHangup(CallPark &, const json &a) {
    return {[a](eng::Engine &e) { return callId(e, a); },
            [](CallPark &cp, json &v) -> Outcome {
                eng::CallId id = v.get<eng::CallId>();
                json ok = {{"ok", true}, {"id", id}};
                Session *s = cp.sessionByCall(id);
                if (s && s->a && s->a->dlg) {
                    cp.host().api()->dialog_end(s->a->dlg); // BYE; on_terminated abandons the call in the engine
                    return ok;
                }
                return Step{[id, ok](eng::Engine &e) {
                                auto r = e.abandon(id);
                                if (!r)
                                    throw CmdError{409, r.message};
                                return ok;
                            },
                            {}};
            }};
}

eng::RecallOverrides overridesFrom(const json &a) {
    eng::RecallOverrides o;
    if (a.contains("recall_time")) {
        if (!a["recall_time"].is_number_integer())
            throw CmdError{400, "'recall_time' must be an integer (seconds)"};
        o.recallSeconds = a["recall_time"].get<int>();
    }
    // The ladder's timings (docs/callpark.md "Recall"), named as groups.list / lots.list show them, so that what
    // was read can be written back whole.
    for (auto [key, field] : {std::pair{"ring_seconds", &eng::RecallOverrides::ringSeconds},
                              std::pair{"alternate_wait", &eng::RecallOverrides::alternateWaitSeconds},
                              std::pair{"retry_seconds", &eng::RecallOverrides::retrySeconds}}) {
        if (!a.contains(key))
            continue;
        if (!a[key].is_number_integer())
            throw CmdError{400, fmt::format("'{}' must be an integer (seconds)", key)};
        o.*field = a[key].get<int>();
    }
    if (std::string m = optStr(a, "recall_mode"); !m.empty()) {
        auto mode = eng::parseRecallMode(m);
        if (!mode)
            throw CmdError{400, fmt::format("'recall_mode' {} (parker, parker_then_alternate, alternate_only)", m)};
        o.mode = *mode;
    }
    if (std::string alt = optStr(a, "alternate"); !alt.empty()) {
        auto t = eng::RecallTarget::parse(alt);
        if (!t)
            throw CmdError{400, fmt::format("'alternate' {} is not a recall target", alt)};
        o.alternate = *t;
    }
    if (std::string occ = optStr(a, "occupied_policy"); !occ.empty()) {
        auto p = eng::parseOccupiedPolicy(occ);
        if (!p)
            throw CmdError{400, fmt::format("'occupied_policy' {} (reject, stack)", occ)};
        o.occupied = *p;
    }
    return o;
}

// Move a live call to another extension {id, extension} or lot slot {id, lot, slot?} (slot 0 or absent = the lot
// picks one) of its domain; watchers of both places are notified (Moved event).
json parkedMoveWork(eng::Engine &e, const json &a) {
    auto c = needCall(e, a);
    std::string ext = optStr(a, "extension"), lot = optStr(a, "lot");
    if (ext.empty() == lot.empty())
        throw CmdError{400, "give either 'extension' or 'lot' (with 'slot'; 0 or none = the lot picks one)"};
    eng::Target to;
    to.domain = c.domain;
    if (!ext.empty()) {
        to.kind = eng::TargetKind::Extension;
        to.name = ext;
    } else {
        to.kind = eng::TargetKind::Slot;
        to.name = lot;
        to.slot = a.contains("slot") && !a["slot"].is_null() ? static_cast<int>(reqInt(a, "slot")) : 0;
        if (to.slot < 0)
            throw CmdError{400, "'slot' must be 0 (pick one) or a slot number"};
    }
    eng::CallResult r = e.move(c.id, to);
    if (!r) {
        int code = 400;
        switch (r.error) {
        case eng::ErrorCode::NotFound:
        case eng::ErrorCode::UnknownExtension:
        case eng::ErrorCode::UnknownLot:
        case eng::ErrorCode::BadSlot:
            code = 404;
            break;
        case eng::ErrorCode::Occupied:
        case eng::ErrorCode::Busy:
        case eng::ErrorCode::BadState:
        case eng::ErrorCode::ExtensionFull:
            code = 409;
            break;
        case eng::ErrorCode::Storage:
            code = 503;
            break;
        default:
            break;
        }
        throw CmdError{code, r.message.empty() ? fmt::format("call {} cannot be moved", c.id) : r.message};
    }
    return {{"ok", true}, {"call", callJson(r.call)}};
}

Step parkedMove(CallPark &, const json &a) {
    return {[a](eng::Engine &e) { return parkedMoveWork(e, a); },
            [](CallPark &cp, json &v) -> Outcome {
                addDialog(cp, v["call"]);
                return std::move(v);
            }};
}

// groups.list / lots.list: `read`'s items of the domain asked for, or of every domain, under `key`.
template <typename Read> Step perDomainList(CallPark &cp, const json &a, const char *key, Read read) {
    return {[a, key, read, configured = configuredDomains(cp)](eng::Engine &e) {
                std::string d = optStr(a, "domain");
                std::vector<std::string> ds = d.empty() ? allDomains(e, configured) : std::vector<std::string>{d};
                json arr = json::array();
                for (auto &dn : ds)
                    for (auto &item : read(e, dn))
                        arr.push_back(parsed(eng::toJson(item)));
                return json{{key, arr}};
            },
            {}};
}

Step groupsList(CallPark &cp, const json &a) {
    return perDomainList(cp, a, "groups", [](eng::Engine &e, const std::string &d) { return e.groups(d); });
}

json groupsSet(eng::Engine &e, const json &a) {
    eng::Group g;
    g.domain = reqStr(a, "domain");
    g.name = reqStr(a, "name");
    if (!a.contains("members") || !a["members"].is_array())
        throw CmdError{400, "'members' must be an array of strings"};
    for (auto &m : a["members"]) {
        if (!m.is_string())
            throw CmdError{400, "'members' must be an array of strings"};
        g.members.push_back(m.get<std::string>());
    }
    if (a.contains("notify_parker")) {
        if (!a["notify_parker"].is_boolean())
            throw CmdError{400, "'notify_parker' must be true or false"};
        g.notifyParker = a["notify_parker"].get<bool>();
    }
    g.settings = overridesFrom(a);
    if (std::string v = eng::validate(g.settings); !v.empty())
        throw CmdError{400, v};
    statusOrThrow(e.setGroup(g));
    return parsed(eng::toJson(*e.group(g.domain, g.name)));
}

json groupsDelete(eng::Engine &e, const json &a) {
    statusOrThrow(e.removeGroup(reqStr(a, "domain"), reqStr(a, "name")));
    return {{"ok", true}};
}

Step lotsList(CallPark &cp, const json &a) {
    return perDomainList(cp, a, "lots", [](eng::Engine &e, const std::string &d) { return e.lots(d); });
}

json lotsSet(eng::Engine &e, const json &a) {
    eng::Lot l;
    l.domain = reqStr(a, "domain");
    l.name = reqStr(a, "name");
    l.firstSlot = static_cast<int>(reqInt(a, "first"));
    l.lastSlot = static_cast<int>(reqInt(a, "last"));
    if (std::string c = optStr(a, "choice"); !c.empty()) {
        auto ch = eng::parseSlotChoice(c);
        if (!ch)
            throw CmdError{400, fmt::format("'choice' {} (first, next)", c)};
        l.choice = *ch;
    }
    if (a.contains("access")) { // who may park into, retrieve from and watch this lot; [] = everyone of the domain
        if (!a["access"].is_array())
            throw CmdError{400, "'access' must be an array of extensions"};
        for (const auto &x : a["access"]) {
            if (!x.is_string())
                throw CmdError{400, "'access' must be an array of extensions"};
            l.access.push_back(x.get<std::string>());
        }
    }
    l.settings = overridesFrom(a);
    statusOrThrow(e.setLot(l));
    return parsed(eng::toJson(*e.lot(l.domain, l.name)));
}

json lotsDelete(eng::Engine &e, const json &a) {
    statusOrThrow(e.removeLot(reqStr(a, "domain"), reqStr(a, "name")));
    return {{"ok", true}};
}

json rulesList(eng::Engine &e, const json &) {
    return {{"rules", parsed(eng::toJson(e.rules()))}};
}

void ruleErrorsOrThrow(const std::vector<eng::RuleError> &errors) {
    if (errors.empty())
        return;
    std::string msg;
    for (auto &x : errors)
        msg += (msg.empty() ? "" : "; ") + (x.line ? fmt::format("line {}: ", x.line) : "") + x.message;
    throw CmdError{400, msg};
}

json rulesImport(eng::Engine &e, const json &a) {
    std::string text = reqStr(a, "text");
    if (a.contains("replace") && !a["replace"].is_boolean())
        throw CmdError{400, "replace: expected true or false"};
    bool replace = a.contains("replace") && a["replace"].get<bool>();
    std::vector<eng::RuleError> errors;
    auto rules = eng::parseRulesText(text, "rules.import", errors);
    ruleErrorsOrThrow(errors);
    if (replace) {
        ruleErrorsOrThrow(e.replaceRules(rules));
    } else {
        ruleErrorsOrThrow(e.checkRules(rules));
        for (auto &r : rules)
            ruleErrorsOrThrow(e.setRule(r));
    }
    return {{"ok", true}, {"imported", rules.size()}};
}

// Validate a whole rule set in the rules-file format without storing it, and with {dial} say how that set would
// classify a dial string (the console's "explain before applying"; the set is then applied with rules.import
// replace=true). Nothing changes.
json rulesCheck(eng::Engine &en, const json &a) {
    if (!a.contains("text") || !a["text"].is_string())
        throw CmdError{400, "'text' is required (the rules in the rules-file format; may be empty)"};
    std::string text = a["text"].get<std::string>();
    std::vector<eng::RuleError> errors;
    auto rules = eng::parseRulesText(text, "rules.check", errors);
    ruleErrorsOrThrow(errors);
    ruleErrorsOrThrow(en.checkRules(rules));
    json out = {{"ok", true}, {"rules", rules.size()}};
    std::string dial = optStr(a, "dial");
    if (dial.empty())
        return out;
    std::string domain = reqStr(a, "domain");
    auto matcher = eng::RuleMatcher::compile(rules, en.domains(), errors);
    ruleErrorsOrThrow(errors);
    eng::Explanation e;
    e.domain = domain;
    e.caller = optStr(a, "caller");
    e.dial = dial;
    e.result = matcher.classify(domain, e.caller, dial, &e.trace);
    json full = parsed(eng::toJson(e));
    out["explain"] = {
        {"domain", domain}, {"caller", e.caller}, {"dial", dial}, {"result", full["result"]}, {"trace", full["trace"]}};
    return out;
}

Step rulesReload(CallPark &cp, const json &) {
    return {[file = cp.settings().rulesFile](eng::Engine &e) {
                if (!file.empty())
                    ruleErrorsOrThrow(e.loadRulesFile(file));
                else
                    ruleErrorsOrThrow(e.reloadRules());
                return json{{"ok", true}, {"rules", e.rules().size()}};
            },
            {}};
}

json rulesExplain(eng::Engine &e, const json &a) {
    return parsed(eng::toJson(e.explain(reqStr(a, "domain"), optStr(a, "caller"), reqStr(a, "dial"))));
}

Step domainsList(CallPark &cp, const json &) {
    return {[configured = configuredDomains(cp)](eng::Engine &e) {
                json arr = json::array();
                for (auto &d : allDomains(e, configured))
                    arr.push_back(parsed(eng::toJson(e.domain(d))));
                return json{{"domains", arr}};
            },
            {}};
}

Step domainsSet(CallPark &, const json &a) {
    auto names = std::make_shared<std::vector<std::string>>();
    return {[a, names](eng::Engine &e) {
                std::string name = reqStr(a, "domain");
                eng::DomainSettings d = e.domain(name);
                json j = a;
                j.erase("domain");
                j["name"] = name;
                // Accept the module's parameter names too.
                json recall = j.contains("recall") && j["recall"].is_object() ? j["recall"] : json::object();
                if (j.contains("recall_time"))
                    recall["recall_seconds"] = j["recall_time"], j.erase("recall_time");
                if (j.contains("recall_mode"))
                    recall["mode"] = j["recall_mode"], j.erase("recall_mode");
                if (j.contains("alternate"))
                    recall["alternate"] = j["alternate"], j.erase("alternate");
                if (j.contains("occupied_policy"))
                    j["occupied"] = j["occupied_policy"], j.erase("occupied_policy");
                if (!recall.empty())
                    j["recall"] = recall;
                std::string err = eng::domainFromJson(j.dump(), d);
                if (!err.empty())
                    throw CmdError{400, err};
                statusOrThrow(e.setDomain(d));
                *names = provisionedNames(e);
                return parsed(eng::toJson(e.domain(name)));
            },
            [names](CallPark &cp, json &v) -> Outcome {
                cp.declareDomains(*names); // a tenant: served without being listed in [proxy] domains
                return std::move(v);
            }};
}

// Deprovision a tenant: its settings, extensions, groups and lots go, and this module stops serving it (it
// stays local only while [proxy] domains lists it). Refused while calls are parked in it.
Step domainsDelete(CallPark &, const json &a) {
    auto names = std::make_shared<std::vector<std::string>>();
    return {[a, names](eng::Engine &e) {
                std::string name = reqStr(a, "domain");
                auto provisioned = provisionedNames(e);
                if (std::find(provisioned.begin(), provisioned.end(), name) == provisioned.end())
                    throw CmdError{404, fmt::format("domain {} is not provisioned", name)};
                eng::ListFilter f;
                f.domain = name;
                if (size_t n = e.list(f).size())
                    throw CmdError{409, fmt::format("domain {} has {} parked call{}: retrieve or hang them up first",
                                                    name, n, n == 1 ? "" : "s")};
                statusOrThrow(e.removeDomain(name));
                *names = provisionedNames(e);
                return json(name);
            },
            [names](CallPark &cp, json &v) -> Outcome {
                // No longer in the store: no longer served (the other nodes do the same on the change).
                cp.declareDomains(*names);
                std::string name = v.get<std::string>();
                return json{{"domain", name}, {"deleted", true}, {"local", cp.host().isLocalDomain(name)}};
            }};
}

// Progress of the restore after the last start (docs/callpark.md "Restart"): done once calls and watchers are back.
json restoreJson(const CallPark::RestoreProgress &r) {
    return {{"done", r.done},
            {"calls", r.total},
            {"restored", r.restored},
            {"lost", r.lost},
            {"on_demand", r.onDemand},
            {"recalls_armed", r.recallsArmed},
            {"overdue_recalls", r.overdue},
            {"calls_ms", r.callsDone ? json(r.callsMs) : json(nullptr)},
            {"done_ms", r.done ? json(r.doneMs) : json(nullptr)}};
}

// The engine's counts from the store; the SIP thread's own (bridged calls, subscriptions, music, restore) after.
Step stats(CallPark &, const json &) {
    return {[](eng::Engine &e) {
                size_t parked = 0, recalling = 0, retrieving = 0;
                for (auto &c : e.list({})) {
                    if (c.state == eng::CallState::Parked)
                        ++parked;
                    else if (c.state == eng::CallState::Recalling)
                        ++recalling;
                    else if (c.state == eng::CallState::Retrieving)
                        ++retrieving;
                }
                return json{{"parked", parked},
                            {"recalling", recalling},
                            {"retrieving", retrieving},
                            {"last_event", e.lastEventSequence()}};
            },
            [](CallPark &cp, json &v) -> Outcome {
                size_t bridged = 0;
                for (auto &[sid, s] : cp.sessions_)
                    if (s->state == SessionState::Bridged)
                        ++bridged;
                v["bridged"] = bridged;
                v["subscriptions"] = cp.subs_.size();
                v["moh_streams"] = cp.moh().streamCount();
                v["restore"] = restoreJson(cp.restore_);
                return std::move(v);
            }};
}

template <StepFn F> int run(void *ctx, pw_str args, pw_writer *out) {
    auto *cp = static_cast<CallPark *>(ctx);
    const pw_host_api *api = cp->host().api();
    std::string result;
    pw_writer *later = nullptr;
    std::shared_ptr<Step> step;
    auto err = guarded(*cp, [&] {
        std::string text(sv(args));
        json a = text.empty() ? json::object() : json::parse(text);
        if (!a.is_object())
            throw CmdError{400, "arguments must be a JSON object"};
        Step st = F(*cp, a);
        // With the storage thread the engine work runs there and the answer is written later, when the host can
        // take it later (not for the stats of every module, nor a host without an admin server).
        if (cp->storage().threaded() && PW_HOST_HAS(api, writer_defer) && api->writer_defer && api->writer_finish)
            later = api->writer_defer(out);
        if (later) {
            step = std::make_shared<Step>(std::move(st));
            return;
        }
        result = runInline(*cp, std::move(st)).dump();
    });
    if (later) {
        runDeferred(*cp, later, std::move(step));
        return PW_OK;
    }
    if (err) {
        api->writer_error(out, err->status, ps(err->message));
        return PW_EINVAL;
    }
    return api->writer_json(out, ps(result));
}

#define CMD(n, f, h)                                                                                                   \
    pw_command_def {                                                                                                   \
        sizeof(pw_command_def), n, h, run<f>                                                                           \
    }
const pw_command_def kCommands[] = {
    CMD("parked.list", parkedList, "parked calls {domain?, extension?, group?, lot?} -> {parked:[...]}"),
    CMD("parked.get", parkedGet, "one parked call {id}"),
    CMD("parked.recall", parkedRecall, "recall a parked call now {id}"),
    CMD("parked.hangup", parkedHangup, "hang up a parked call {id}"),
    CMD("parked.move", parkedMove, "move a parked call {id, extension} or {id, lot, slot?} (slot 0 = pick)"),
    CMD("groups.list", groupsList, "call-park groups {domain?} -> {groups:[...]}"),
    CMD("groups.set", engineOnly<groupsSet>,
        "create/replace a group {domain, name, members[], notify_parker?, recall_time?, recall_mode?, alternate?}"),
    CMD("groups.delete", engineOnly<groupsDelete>, "delete a group {domain, name}"),
    CMD("lots.list", lotsList, "parking lots {domain?} -> {lots:[...]}"),
    CMD("lots.set", engineOnly<lotsSet>, "create/replace a lot {domain, name, first, last, choice?, access?}"),
    CMD("lots.delete", engineOnly<lotsDelete>, "delete a lot {domain, name}"),
    CMD("rules.list", engineOnly<rulesList>, "stored dialplan rules -> {rules:[...]}"),
    CMD("rules.import", engineOnly<rulesImport>, "import rules in the rules-file format {text, replace?}"),
    CMD("rules.check", engineOnly<rulesCheck>,
        "validate a whole rule set {text} without storing it; with {domain, caller?, dial}: how it would classify"),
    CMD("rules.reload", rulesReload, "reload rules (rules_file, else the database) atomically"),
    CMD("rules.explain", engineOnly<rulesExplain>, "what a dial string would do {domain, caller, dial}"),
    CMD("domains.list", domainsList, "domains and their settings -> {domains:[...]}"),
    CMD("domains.set", domainsSet, "change a domain's settings {domain, ...settings}"),
    CMD("domains.delete", domainsDelete,
        "deprovision a domain {domain}: settings, extensions, groups, lots (409 while calls are parked in it)"),
    CMD("stats", stats, "counts of parked, recalling, bridged calls, subscriptions, MOH streams"),
    pw_command_def{sizeof(pw_command_def), nullptr, nullptr, nullptr},
};
#undef CMD

} // namespace

const pw_command_def *CallPark::commandTable() {
    return kCommands;
}

} // namespace parkway::callpark
