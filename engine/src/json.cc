// JSON views for the admin plane (nlohmann-json stays inside the library).
#include "parkway/engine/json.hh"

#include "change_feed.hh"

#include <nlohmann/json.hpp>

namespace parkway::engine {

using nlohmann::json;

namespace {

// The engine stores whatever text its caller gave it; its JSON views are always valid UTF-8 (the last line of
// defence behind the SIP boundary, docs/callpark.md "Text and UTF-8"): an invalid sequence becomes U+FFFD
// instead of an exception that would turn a whole listing into an error.
constexpr int kIndent = -1;
constexpr auto kBadUtf8 = json::error_handler_t::replace;

json recallJ(const RecallSettings &r) {
    return {{"recall_seconds", r.recallSeconds},
            {"mode", toString(r.mode)},
            {"ring_seconds", r.ringSeconds},
            {"alternate_wait", r.alternateWaitSeconds},
            {"retry_seconds", r.retrySeconds},
            {"alternate", r.alternate ? json(r.alternate->toString()) : json(nullptr)},
            {"max_park_seconds", r.maxParkSeconds}};
}

json overridesJ(const RecallOverrides &o) {
    json j = json::object();
    if (o.recallSeconds)
        j["recall_seconds"] = *o.recallSeconds;
    if (o.mode)
        j["mode"] = toString(*o.mode);
    if (o.ringSeconds)
        j["ring_seconds"] = *o.ringSeconds;
    if (o.alternateWaitSeconds)
        j["alternate_wait"] = *o.alternateWaitSeconds;
    if (o.retrySeconds)
        j["retry_seconds"] = *o.retrySeconds;
    if (o.alternate)
        j["alternate"] = o.alternate->toString();
    if (o.occupied)
        j["occupied"] = toString(*o.occupied);
    if (o.maxParkSeconds)
        j["max_park_seconds"] = *o.maxParkSeconds;
    return j;
}

json callJ(const ParkedCall &c) {
    json j = {{"id", c.id},
              {"domain", c.domain},
              {"extension", c.extension},
              {"lot", c.lot},
              {"slot", c.slot},
              {"parker", c.parker},
              {"parked_uri", c.parkedUri},
              {"parked_display", c.parkedDisplay},
              {"group", c.group},
              {"parked_at", c.parkedAt},
              {"recall_at", c.recallAt},
              {"recall_stage", c.recallStage},
              {"state", toString(c.state)},
              {"version", c.version},
              {"request_key", c.requestKey},
              {"retriever", c.retriever},
              {"recall", recallJ(c.recall)}};
    if (!c.owner.empty()) { // a cluster node owns it (docs/cluster.md "Ownership and failover")
        j["owner"] = c.owner;
        j["owner_generation"] = c.ownerGeneration;
    }
    return j;
}

json targetJ(const Target &t) {
    json j = {{"kind", toString(t.kind)}, {"domain", t.domain}, {"name", t.name}, {"key", t.key()}};
    if (t.kind == TargetKind::Slot)
        j["slot"] = t.slot;
    return j;
}

json ruleJ(const Rule &r) {
    return {{"id", r.id},
            {"domain", r.domain},
            {"dpid", r.dpid},
            {"pr", r.pr},
            {"match_op", static_cast<int>(r.matchOp)},
            {"match_exp", r.matchExp},
            {"match_len", r.matchLen},
            {"subst_exp", r.substExp},
            {"repl_exp", r.replExp},
            {"attrs", r.attrs},
            {"disabled", r.disabled},
            {"continue", r.cont}};
}

json attrsJ(const Attrs &a) {
    json j = json::object();
    for (const auto &[k, v] : a)
        j[k] = v;
    return j;
}

json classJ(const Classification &c) {
    return {{"action", toString(c.action)},
            {"rule", c.ruleId},
            {"matched", c.matched},
            {"output", c.output},
            {"attrs", attrsJ(c.attrs)},
            {"extension", c.extension},
            {"lot", c.lot},
            {"slot", c.slot},
            {"group", c.group},
            {"overrides", overridesJ(c.overrides)},
            {"reject_code", c.rejectCode},
            {"route", c.route}};
}

json ladderJ(const std::vector<LadderRung> &l) {
    json j = json::array();
    for (const auto &r : l)
        j.push_back({{"attempt", r.attempt},
                     {"target", r.target.toString()},
                     {"ring_seconds", r.ringSeconds},
                     {"then_wait_seconds", r.delayAfterSeconds},
                     {"repeats", r.repeats}});
    return j;
}

// Strict field readers for the *FromJson functions.
struct Reader {
    const json &j;
    const char *what;
    std::string error;

    template <class T> bool get(const char *key, T &out) {
        if (!error.empty() || !j.contains(key) || j[key].is_null())
            return false;
        try {
            out = j[key].get<T>();
            return true;
        } catch (const json::exception &) {
            error = std::string(what) + ": '" + key + "' has the wrong type";
            return false;
        }
    }
};

bool readOverrides(Reader &r, RecallOverrides &o) {
    int n = 0;
    std::string s;
    if (r.get("recall_seconds", n))
        o.recallSeconds = n;
    if (r.get("ring_seconds", n))
        o.ringSeconds = n;
    if (r.get("alternate_wait", n))
        o.alternateWaitSeconds = n;
    if (r.get("retry_seconds", n))
        o.retrySeconds = n;
    if (r.get("mode", s)) {
        o.mode = parseRecallMode(s);
        if (!o.mode)
            r.error = std::string(r.what) + ": mode '" + s + "' (parker, parker_then_alternate, alternate_only)";
    }
    if (r.get("occupied", s)) {
        o.occupied = parseOccupiedPolicy(s);
        if (!o.occupied)
            r.error = std::string(r.what) + ": occupied '" + s + "' (reject, stack)";
    }
    if (r.get("alternate", s)) {
        o.alternate = RecallTarget::parse(s);
        if (!o.alternate)
            r.error = std::string(r.what) + ": alternate '" + s + "' is not a recall target";
    }
    return r.error.empty();
}

std::string parseOrError(const std::string &text, json &out, const char *what) {
    try {
        out = json::parse(text);
    } catch (const json::exception &e) {
        return std::string(what) + ": invalid JSON: " + e.what();
    }
    if (!out.is_object())
        return std::string(what) + ": expected a JSON object";
    return {};
}

// Reads an optional array of strings; returns an error naming the field.
std::string readStrings(const json &j, const char *key, const char *what, std::vector<std::string> &out) {
    if (!j.contains(key))
        return {};
    if (!j[key].is_array())
        return std::string(what) + ": '" + key + "' must be an array of strings";
    out.clear();
    for (const auto &m : j[key]) {
        if (!m.is_string())
            return std::string(what) + ": '" + key + "' must be an array of strings";
        out.push_back(m.get<std::string>());
    }
    return {};
}

} // namespace

std::string toJson(const ParkedCall &c) {
    return callJ(c).dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const std::vector<ParkedCall> &calls) {
    json j = json::array();
    for (const auto &c : calls)
        j.push_back(callJ(c));
    return j.dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const CallResult &r) {
    json j = {{"ok", r.ok}, {"error", toString(r.error)}, {"message", r.message}, {"duplicate", r.duplicate}};
    if (r.call.id != 0)
        j["call"] = callJ(r.call);
    return j.dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const ChangeEvent &e) {
    json j = {{"event", toString(e.kind)}, {"at", e.at}, {"sequence", e.sequence}, {"call", callJ(e.call)}};
    if (e.previous)
        j["previous"] = callJ(*e.previous);
    if (e.remote)
        j["remote"] = true; // committed by another node (docs/cluster.md)
    json ts = json::array();
    for (const auto &t : e.targets) {
        json tj = targetJ(t.target);
        tj["version"] = t.version;
        ts.push_back(tj);
    }
    j["targets"] = ts;
    return j.dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const TargetState &s) {
    json calls = json::array();
    for (const auto &c : s.calls)
        calls.push_back(callJ(c));
    return json{{"target", targetJ(s.target)}, {"version", s.version}, {"calls", calls}}.dump(kIndent, ' ', false,
                                                                                              kBadUtf8);
}

std::string toJson(const DomainSettings &d) {
    return json{{"name", d.name},
                {"park_code", d.parkCode},
                {"group_park_code", d.groupParkCode},
                {"retrieve_code", d.retrieveCode},
                {"occupied", toString(d.occupied)},
                {"recall", recallJ(d.recall)},
                {"open_extensions", d.openExtensions},
                {"dpid", d.dpid},
                {"default_rules", d.defaultRules},
                {"max_parked", d.maxParked},
                {"max_parked_per_extension", d.maxParkedPerExtension}}
        .dump(kIndent, ' ', false, kBadUtf8);
}

static json groupJ(const Group &g) {
    return {{"domain", g.domain},
            {"name", g.name},
            {"members", g.members},
            {"notify_parker", g.notifyParker},
            {"settings", overridesJ(g.settings)},
            {"access", g.access}};
}

std::string toJson(const Group &g) {
    return groupJ(g).dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const std::vector<Group> &gs) {
    json j = json::array();
    for (const auto &g : gs)
        j.push_back(groupJ(g));
    return j.dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const Lot &l) {
    return json{{"domain", l.domain},
                {"name", l.name},
                {"first_slot", l.firstSlot},
                {"last_slot", l.lastSlot},
                {"choice", toString(l.choice)},
                {"settings", overridesJ(l.settings)},
                {"access", l.access}}
        .dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const Rule &r) {
    return ruleJ(r).dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const std::vector<Rule> &rs) {
    json j = json::array();
    for (const auto &r : rs)
        j.push_back(ruleJ(r));
    return j.dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const std::vector<RuleError> &errors) {
    json j = json::array();
    for (const auto &e : errors)
        j.push_back({{"rule", e.ruleId}, {"line", e.line}, {"message", e.message}});
    return j.dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const Classification &c) {
    return classJ(c).dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const Explanation &e) {
    json trace = json::array();
    for (const auto &t : e.trace)
        trace.push_back({{"rule", ruleJ(t.rule)},
                         {"length_skipped", t.lengthSkipped},
                         {"matched", t.matched},
                         {"subst_failed", t.substFailed},
                         {"output", t.output}});
    json j = {{"domain", e.domain},
              {"caller", e.caller},
              {"dial", e.dial},
              {"result", classJ(e.result)},
              {"trace", trace},
              {"would_fail", toString(e.wouldFail)},
              {"would_fail_message", e.wouldFailMessage},
              {"recall", recallJ(e.recall)},
              {"occupied", toString(e.occupied)},
              {"ladder", ladderJ(e.ladder)}};
    if (e.wouldRetrieve)
        j["would_retrieve"] = callJ(*e.wouldRetrieve);
    if (!e.wouldParkOn.empty())
        j["would_park_on"] = e.wouldParkOn;
    if (!e.wouldParkLot.empty())
        j["would_park_slot"] = {{"lot", e.wouldParkLot}, {"slot", e.wouldParkSlot}};
    return j.dump(kIndent, ' ', false, kBadUtf8);
}

std::string toJson(const Status &s) {
    return json{{"ok", s.ok}, {"error", toString(s.error)}, {"message", s.message}}.dump(kIndent, ' ', false, kBadUtf8);
}

std::string groupFromJson(const std::string &text, Group &out) {
    json j;
    if (auto e = parseOrError(text, j, "group"); !e.empty())
        return e;
    Reader r{j, "group", {}};
    r.get("domain", out.domain);
    r.get("name", out.name);
    r.get("notify_parker", out.notifyParker);
    if (j.contains("members")) {
        if (!j["members"].is_array())
            return "group: 'members' must be an array of strings";
        out.members.clear();
        for (const auto &m : j["members"]) {
            if (!m.is_string())
                return "group: 'members' must be an array of strings";
            out.members.push_back(m.get<std::string>());
        }
    }
    if (auto e = readStrings(j, "access", "group", out.access); !e.empty())
        return e;
    if (j.contains("settings")) {
        if (!j["settings"].is_object())
            return "group: 'settings' must be an object";
        Reader s{j["settings"], "group.settings", {}};
        readOverrides(s, out.settings);
        if (!s.error.empty())
            return s.error;
    }
    if (out.name.empty() && r.error.empty())
        return "group: 'name' is required";
    return r.error;
}

std::string domainFromJson(const std::string &text, DomainSettings &out) {
    json j;
    if (auto e = parseOrError(text, j, "domain"); !e.empty())
        return e;
    Reader r{j, "domain", {}};
    std::string s;
    r.get("name", out.name);
    r.get("park_code", out.parkCode);
    r.get("group_park_code", out.groupParkCode);
    r.get("retrieve_code", out.retrieveCode);
    if (r.get("occupied", s)) {
        auto o = parseOccupiedPolicy(s);
        if (!o)
            return "domain: occupied '" + s + "' (reject, stack)";
        out.occupied = *o;
    }
    r.get("open_extensions", out.openExtensions);
    r.get("dpid", out.dpid);
    r.get("default_rules", out.defaultRules);
    r.get("max_parked", out.maxParked);
    r.get("max_parked_per_extension", out.maxParkedPerExtension);
    if (j.contains("recall")) {
        if (!j["recall"].is_object())
            return "domain: 'recall' must be an object";
        Reader rr{j["recall"], "domain.recall", {}};
        RecallOverrides o;
        readOverrides(rr, o);
        int maxPark = 0;
        if (rr.get("max_park_seconds", maxPark))
            out.recall.maxParkSeconds = maxPark; // domains only
        if (!rr.error.empty())
            return rr.error;
        o.applyTo(out.recall);
    }
    return r.error;
}

std::string lotFromJson(const std::string &text, Lot &out) {
    json j;
    if (auto e = parseOrError(text, j, "lot"); !e.empty())
        return e;
    Reader r{j, "lot", {}};
    std::string s;
    r.get("domain", out.domain);
    r.get("name", out.name);
    r.get("first_slot", out.firstSlot);
    r.get("last_slot", out.lastSlot);
    if (r.get("choice", s)) {
        auto c = parseSlotChoice(s);
        if (!c)
            return "lot: choice '" + s + "' (first, next)";
        out.choice = *c;
    }
    if (auto e = readStrings(j, "access", "lot", out.access); !e.empty())
        return e;
    if (j.contains("settings")) {
        if (!j["settings"].is_object())
            return "lot: 'settings' must be an object";
        Reader rs{j["settings"], "lot.settings", {}};
        readOverrides(rs, out.settings);
        if (!rs.error.empty())
            return rs.error;
    }
    return r.error;
}

std::string ruleFromJson(const std::string &text, Rule &out) {
    json j;
    if (auto e = parseOrError(text, j, "rule"); !e.empty())
        return e;
    Reader r{j, "rule", {}};
    int op = static_cast<int>(out.matchOp);
    r.get("id", out.id);
    r.get("domain", out.domain);
    r.get("dpid", out.dpid);
    r.get("pr", out.pr);
    if (j.contains("match_op") && j["match_op"].is_string()) {
        std::string s = j["match_op"].get<std::string>();
        if (s == "exact")
            op = 0;
        else if (s == "regex")
            op = 1;
        else if (s == "glob")
            op = 2;
        else
            return "rule: match_op '" + s + "' (0/exact, 1/regex, 2/glob)";
    } else {
        r.get("match_op", op);
    }
    if (op < 0 || op > 2)
        return "rule: match_op must be 0 (exact), 1 (regex) or 2 (glob)";
    out.matchOp = static_cast<MatchOp>(op);
    r.get("match_exp", out.matchExp);
    r.get("match_len", out.matchLen);
    r.get("subst_exp", out.substExp);
    r.get("repl_exp", out.replExp);
    r.get("attrs", out.attrs);
    r.get("disabled", out.disabled);
    r.get("continue", out.cont);
    return r.error;
}

// ---- change_log bodies (change_feed.hh; docs/cluster.md "Change events across nodes"): kept here, where
// nlohmann-json is compiled once for the engine.

namespace {

// The call as the admin views show it (callJ, owner included), plus the two fields those leave out.
json feedCallToJson(const ParkedCall &c) {
    json j = callJ(c);
    j["recall_answered"] = c.recallAnswered;
    j["final_recall"] = c.finalRecall;
    return j;
}

ParkedCall feedCallFromJson(const json &j) {
    ParkedCall c;
    c.id = j.at("id").get<CallId>();
    c.domain = j.at("domain").get<std::string>();
    c.extension = j.value("extension", std::string());
    c.lot = j.value("lot", std::string());
    c.slot = j.value("slot", 0);
    c.parker = j.value("parker", std::string());
    c.parkedUri = j.value("parked_uri", std::string());
    c.parkedDisplay = j.value("parked_display", std::string());
    c.group = j.value("group", std::string());
    c.parkedAt = j.value("parked_at", Millis(0));
    c.recallAt = j.value("recall_at", Millis(0));
    c.recallStage = j.value("recall_stage", 0);
    c.state = parseCallState(j.value("state", std::string("parked"))).value_or(CallState::Parked);
    c.version = j.value("version", std::int64_t(1));
    c.requestKey = j.value("request_key", std::string());
    c.retriever = j.value("retriever", std::string());
    c.recallAnswered = j.value("recall_answered", false);
    c.finalRecall = j.value("final_recall", false);
    c.owner = j.value("owner", std::string());
    c.ownerGeneration = j.value("owner_generation", std::int64_t(0));
    const json &r = j.at("recall"); // recallJ's shape
    c.recall.recallSeconds = r.value("recall_seconds", 300);
    c.recall.mode = parseRecallMode(r.value("mode", std::string("parker"))).value_or(RecallMode::Parker);
    c.recall.ringSeconds = r.value("ring_seconds", 30);
    c.recall.alternateWaitSeconds = r.value("alternate_wait", 30);
    c.recall.retrySeconds = r.value("retry_seconds", 10);
    const json &alt = r.value("alternate", json());
    c.recall.alternate = RecallTarget::parse(alt.is_string() ? alt.get<std::string>() : std::string());
    c.recall.maxParkSeconds = r.value("max_park_seconds", 1800);
    return c;
}

std::optional<EventKind> parseEventKind(const std::string &s) {
    for (EventKind k : {EventKind::Parked, EventKind::RetrieveStarted, EventKind::Retrieved, EventKind::RetrieveAborted,
                        EventKind::RecallStarted, EventKind::RecallFailed, EventKind::Abandoned, EventKind::Moved})
        if (s == toString(k))
            return k;
    return std::nullopt;
}

} // namespace

std::string encodeEvent(const ChangeEvent &e) {
    json j = {{"kind", toString(e.kind)}, {"at", e.at}, {"call", feedCallToJson(e.call)}};
    if (e.previous)
        j["previous"] = feedCallToJson(*e.previous);
    json ts = json::array();
    for (const TargetVersion &t : e.targets)
        ts.push_back(
            json::array({static_cast<int>(t.target.kind), t.target.domain, t.target.name, t.target.slot, t.version}));
    j["targets"] = std::move(ts);
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool decodeEvent(const std::string &body, ChangeEvent *e) {
    json j = json::parse(body, nullptr, false);
    if (!j.is_object())
        return false;
    try {
        auto kind = parseEventKind(j.at("kind").get<std::string>());
        if (!kind)
            return false;
        e->kind = *kind;
        e->at = j.value("at", Millis(0));
        e->call = feedCallFromJson(j.at("call"));
        if (j.contains("previous"))
            e->previous = feedCallFromJson(j.at("previous"));
        e->targets.clear();
        for (const json &t : j.at("targets")) {
            int kindNo = t.at(0).get<int>();
            if (kindNo < static_cast<int>(TargetKind::Extension) || kindNo > static_cast<int>(TargetKind::Lot))
                return false;
            TargetVersion tv;
            tv.target.kind = static_cast<TargetKind>(kindNo);
            tv.target.domain = t.at(1).get<std::string>();
            tv.target.name = t.at(2).get<std::string>();
            tv.target.slot = t.at(3).get<int>();
            tv.version = t.at(4).get<std::int64_t>();
            e->targets.push_back(std::move(tv));
        }
    } catch (const json::exception &) {
        return false;
    }
    return true;
}

} // namespace parkway::engine
