// Admin commands (the admin plane maps HTTP endpoints onto these; docs/admin-commands.md). Each takes a JSON
// object and writes exactly one JSON value, or fails with writer_error(4xx, message).
#include "callpark.hh"

#include <parkway/engine/json.hh>

#include <nlohmann/json.hpp>

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

std::vector<std::string> allDomains(CallPark &cp) {
    std::vector<std::string> out;
    for (auto &d : cp.engine()->domains())
        out.push_back(d.name);
    std::string list = cp.host().coreSetting("domains");
    size_t pos = 0;
    while (pos < list.size()) {
        size_t c = list.find(',', pos);
        std::string n = list.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
        pos = c == std::string::npos ? list.size() : c + 1;
        if (!n.empty() && std::find(out.begin(), out.end(), n) == out.end())
            out.push_back(n);
    }
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

json callJson(CallPark &cp, const eng::ParkedCall &c) {
    json j = parsed(eng::toJson(c));
    if (Session *s = cp.sessionByCall(c.id); s && s->a && s->a->dlg) {
        j["dialog"] = {{"call_id", cp.host().dialogGet(s->a->dlg, PW_DLG_CALL_ID)},
                       {"local_tag", cp.host().dialogGet(s->a->dlg, PW_DLG_LOCAL_TAG)},
                       {"remote_tag", cp.host().dialogGet(s->a->dlg, PW_DLG_REMOTE_TAG)}};
        j["moh_port"] = s->mohPort;
    }
    return j;
}

eng::ParkedCall needCall(CallPark &cp, const json &a) {
    auto id = reqInt(a, "id");
    auto c = cp.engine()->get(id);
    if (!c)
        throw CmdError{404, fmt::format("no parked call {}", id)};
    return *c;
}

using Fn = json (*)(CallPark &, const json &);

json parkedList(CallPark &cp, const json &a) {
    eng::ListFilter f;
    f.domain = optStr(a, "domain");
    f.extension = optStr(a, "extension");
    f.group = optStr(a, "group");
    f.lot = optStr(a, "lot");
    json arr = json::array();
    for (auto &c : cp.engine()->list(f))
        arr.push_back(callJson(cp, c));
    return {{"parked", arr}};
}

json parkedGet(CallPark &cp, const json &a) {
    return callJson(cp, needCall(cp, a));
}

json parkedRecall(CallPark &cp, const json &a) {
    auto c = needCall(cp, a);
    Session *s = cp.sessionByCall(c.id);
    if (!s)
        throw CmdError{409, fmt::format("call {} has no live dialog here", c.id)};
    if (s->state != SessionState::Parked && s->state != SessionState::Recalling)
        throw CmdError{409, fmt::format("call {} is being retrieved", c.id)};
    cp.forceRecall(*s);
    return {{"ok", true}, {"id", c.id}};
}

json parkedHangup(CallPark &cp, const json &a) {
    auto c = needCall(cp, a);
    Session *s = cp.sessionByCall(c.id);
    if (s && s->a && s->a->dlg) {
        cp.host().api()->dialog_end(s->a->dlg); // BYE; on_terminated abandons the call in the engine
    } else {
        auto r = cp.engine()->abandon(c.id);
        if (!r)
            throw CmdError{409, r.message};
    }
    return {{"ok", true}, {"id", c.id}};
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
json parkedMove(CallPark &cp, const json &a) {
    auto c = needCall(cp, a);
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
    eng::CallResult r = cp.engine()->move(c.id, to);
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
    return {{"ok", true}, {"call", callJson(cp, r.call)}};
}

json groupsList(CallPark &cp, const json &a) {
    std::string d = optStr(a, "domain");
    std::vector<std::string> ds = d.empty() ? allDomains(cp) : std::vector<std::string>{d};
    json arr = json::array();
    for (auto &dn : ds)
        for (auto &g : cp.engine()->groups(dn))
            arr.push_back(parsed(eng::toJson(g)));
    return {{"groups", arr}};
}

json groupsSet(CallPark &cp, const json &a) {
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
    statusOrThrow(cp.engine()->setGroup(g));
    return parsed(eng::toJson(*cp.engine()->group(g.domain, g.name)));
}

json groupsDelete(CallPark &cp, const json &a) {
    statusOrThrow(cp.engine()->removeGroup(reqStr(a, "domain"), reqStr(a, "name")));
    return {{"ok", true}};
}

json lotsList(CallPark &cp, const json &a) {
    std::string d = optStr(a, "domain");
    std::vector<std::string> ds = d.empty() ? allDomains(cp) : std::vector<std::string>{d};
    json arr = json::array();
    for (auto &dn : ds)
        for (auto &l : cp.engine()->lots(dn))
            arr.push_back(parsed(eng::toJson(l)));
    return {{"lots", arr}};
}

json lotsSet(CallPark &cp, const json &a) {
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
        for (const auto &e : a["access"]) {
            if (!e.is_string())
                throw CmdError{400, "'access' must be an array of extensions"};
            l.access.push_back(e.get<std::string>());
        }
    }
    l.settings = overridesFrom(a);
    statusOrThrow(cp.engine()->setLot(l));
    return parsed(eng::toJson(*cp.engine()->lot(l.domain, l.name)));
}

json lotsDelete(CallPark &cp, const json &a) {
    statusOrThrow(cp.engine()->removeLot(reqStr(a, "domain"), reqStr(a, "name")));
    return {{"ok", true}};
}

json rulesList(CallPark &cp, const json &) {
    return {{"rules", parsed(eng::toJson(cp.engine()->rules()))}};
}

void ruleErrorsOrThrow(const std::vector<eng::RuleError> &errors) {
    if (errors.empty())
        return;
    std::string msg;
    for (auto &e : errors)
        msg += (msg.empty() ? "" : "; ") + (e.line ? fmt::format("line {}: ", e.line) : "") + e.message;
    throw CmdError{400, msg};
}

json rulesImport(CallPark &cp, const json &a) {
    std::string text = reqStr(a, "text");
    if (a.contains("replace") && !a["replace"].is_boolean())
        throw CmdError{400, "replace: expected true or false"};
    bool replace = a.contains("replace") && a["replace"].get<bool>();
    std::vector<eng::RuleError> errors;
    auto rules = eng::parseRulesText(text, "rules.import", errors);
    ruleErrorsOrThrow(errors);
    if (replace) {
        ruleErrorsOrThrow(cp.engine()->replaceRules(rules));
    } else {
        ruleErrorsOrThrow(cp.engine()->checkRules(rules));
        for (auto &r : rules)
            ruleErrorsOrThrow(cp.engine()->setRule(r));
    }
    return {{"ok", true}, {"imported", rules.size()}};
}

// Validate a whole rule set in the rules-file format without storing it, and with {dial} say how that set would
// classify a dial string (the console's "explain before applying"; the set is then applied with rules.import
// replace=true). Nothing changes.
json rulesCheck(CallPark &cp, const json &a) {
    if (!a.contains("text") || !a["text"].is_string())
        throw CmdError{400, "'text' is required (the rules in the rules-file format; may be empty)"};
    std::string text = a["text"].get<std::string>();
    std::vector<eng::RuleError> errors;
    auto rules = eng::parseRulesText(text, "rules.check", errors);
    ruleErrorsOrThrow(errors);
    ruleErrorsOrThrow(cp.engine()->checkRules(rules));
    json out = {{"ok", true}, {"rules", rules.size()}};
    std::string dial = optStr(a, "dial");
    if (dial.empty())
        return out;
    std::string domain = reqStr(a, "domain");
    auto matcher = eng::RuleMatcher::compile(rules, cp.engine()->domains(), errors);
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

json rulesReload(CallPark &cp, const json &) {
    if (!cp.settings().rulesFile.empty())
        ruleErrorsOrThrow(cp.engine()->loadRulesFile(cp.settings().rulesFile));
    else
        ruleErrorsOrThrow(cp.engine()->reloadRules());
    return {{"ok", true}, {"rules", cp.engine()->rules().size()}};
}

json rulesExplain(CallPark &cp, const json &a) {
    return parsed(eng::toJson(cp.engine()->explain(reqStr(a, "domain"), optStr(a, "caller"), reqStr(a, "dial"))));
}

json domainsList(CallPark &cp, const json &) {
    json arr = json::array();
    for (auto &d : allDomains(cp))
        arr.push_back(parsed(eng::toJson(cp.engine()->domain(d))));
    return {{"domains", arr}};
}

json domainsSet(CallPark &cp, const json &a) {
    std::string name = reqStr(a, "domain");
    eng::DomainSettings d = cp.engine()->domain(name);
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
    statusOrThrow(cp.engine()->setDomain(d));
    cp.declareDomains(); // a tenant: served without being listed in [proxy] domains
    return parsed(eng::toJson(cp.engine()->domain(name)));
}

bool provisioned(CallPark &cp, const std::string &name) {
    for (auto &d : cp.engine()->domains())
        if (d.name == name)
            return true;
    return false;
}

// Deprovision a tenant: its settings, extensions, groups and lots go, and this module stops serving it (it
// stays local only while [proxy] domains lists it). Refused while calls are parked in it.
json domainsDelete(CallPark &cp, const json &a) {
    std::string name = reqStr(a, "domain");
    if (!provisioned(cp, name))
        throw CmdError{404, fmt::format("domain {} is not provisioned", name)};
    if (size_t n = cp.liveCallsIn(name))
        throw CmdError{409, fmt::format("domain {} has {} parked call{}: retrieve or hang them up first", name, n,
                                        n == 1 ? "" : "s")};
    statusOrThrow(cp.engine()->removeDomain(name));
    cp.declareDomains(); // no longer in the store: no longer served (the other nodes do the same on the change)
    return {{"domain", name}, {"deleted", true}, {"local", cp.host().isLocalDomain(name)}};
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

json stats(CallPark &cp, const json &) {
    size_t parked = 0, recalling = 0, retrieving = 0;
    for (auto &c : cp.engine()->list({})) {
        if (c.state == eng::CallState::Parked)
            ++parked;
        else if (c.state == eng::CallState::Recalling)
            ++recalling;
        else if (c.state == eng::CallState::Retrieving)
            ++retrieving;
    }
    size_t bridged = 0;
    for (auto &[sid, s] : cp.sessions_)
        if (s->state == SessionState::Bridged)
            ++bridged;
    return {{"parked", parked},
            {"recalling", recalling},
            {"retrieving", retrieving},
            {"bridged", bridged},
            {"subscriptions", cp.subs_.size()},
            {"moh_streams", cp.moh().streamCount()},
            {"last_event", cp.engine()->lastEventSequence()},
            {"restore", restoreJson(cp.restore_)}};
}

template <Fn F> int run(void *ctx, pw_str args, pw_writer *out) {
    auto *cp = static_cast<CallPark *>(ctx);
    const pw_host_api *api = cp->host().api();
    try {
        std::string text(sv(args));
        json a = text.empty() ? json::object() : json::parse(text);
        if (!a.is_object())
            throw CmdError{400, "arguments must be a JSON object"};
        std::string result = F(*cp, a).dump();
        return api->writer_json(out, ps(result));
    } catch (const CmdError &e) {
        api->writer_error(out, e.status, ps(e.message));
    } catch (const json::exception &e) {
        std::string msg = std::string("bad JSON arguments: ") + e.what();
        api->writer_error(out, 400, ps(msg));
    } catch (const eng::StorageFailure &e) { // the database is away (docs/cluster.md "Database outage")
        std::string msg =
            fmt::format("park database '{}' unavailable: {}", cp->engine()->path(), storageReason(e.what()));
        api->writer_error(out, 503, ps(msg));
    } catch (const std::exception &e) {
        std::string msg = e.what();
        api->writer_error(out, 500, ps(msg));
    }
    return PW_EINVAL;
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
    CMD("groups.set", groupsSet,
        "create/replace a group {domain, name, members[], notify_parker?, recall_time?, recall_mode?, alternate?}"),
    CMD("groups.delete", groupsDelete, "delete a group {domain, name}"),
    CMD("lots.list", lotsList, "parking lots {domain?} -> {lots:[...]}"),
    CMD("lots.set", lotsSet, "create/replace a lot {domain, name, first, last, choice?, access?}"),
    CMD("lots.delete", lotsDelete, "delete a lot {domain, name}"),
    CMD("rules.list", rulesList, "stored dialplan rules -> {rules:[...]}"),
    CMD("rules.import", rulesImport, "import rules in the rules-file format {text, replace?}"),
    CMD("rules.check", rulesCheck,
        "validate a whole rule set {text} without storing it; with {domain, caller?, dial}: how it would classify"),
    CMD("rules.reload", rulesReload, "reload rules (rules_file, else the database) atomically"),
    CMD("rules.explain", rulesExplain, "what a dial string would do {domain, caller, dial}"),
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
