// provision_file: domains' settings, call-park groups and lots in TOML (docs/callpark.md), applied at start
// and on reload. The whole file is parsed and validated first; nothing changes when any part is bad.
#include "callpark.hh"

#include <toml++/toml.h>

#include <algorithm>

namespace parkway::callpark {

namespace {

struct ProvisionError {
    std::string message;
};

// The keys the reader below asked each table for, in asking order. Any other key in the file is a typo
// (`recal_time = 5` would otherwise leave the default in force) and an error naming it with file:line:col.
// Because every read goes through get()/child(), a key the reader learns is known here at once.
// Set for the duration of one loadProvisionFile() (the SIP thread).
struct AskedKeys {
    std::map<const toml::table *, std::vector<std::string>> byTable;
};
thread_local AskedKeys *tAsked = nullptr;

void noteAsked(const toml::table &t, const char *key) {
    if (!tAsked)
        return;
    auto &keys = tAsked->byTable[&t];
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
        keys.emplace_back(key);
}

const toml::node *child(const toml::table &t, const char *key) {
    noteAsked(t, key);
    return t.get(key);
}

// `path` names the table for the message the way the main config does ("domain.group.membrs").
void rejectUnknownKeys(const toml::table &t, const std::string &file, const std::string &path) {
    const std::vector<std::string> &known = tAsked->byTable[&t];
    for (const auto &[k, v] : t) {
        (void)v;
        if (std::find(known.begin(), known.end(), k.str()) != known.end())
            continue;
        std::string names;
        for (const auto &n : known)
            names += (names.empty() ? "" : ", ") + n;
        std::string key = path.empty() ? std::string(k.str()) : fmt::format("{}.{}", path, k.str());
        const auto &s = k.source();
        if (s.begin.line == 0)
            throw ProvisionError{fmt::format("{}: {}: unknown key (known: {})", file, key, names)};
        throw ProvisionError{
            fmt::format("{}:{}:{}: {}: unknown key (known: {})", file, s.begin.line, s.begin.column, key, names)};
    }
}

std::string where(const std::string &file, const toml::node &n) {
    auto src = n.source();
    return fmt::format("{}:{}", file, src.begin.line);
}

template <typename T> std::optional<T> get(const toml::table &t, const char *key, const std::string &file) {
    const toml::node *n = child(t, key);
    if (!n)
        return std::nullopt;
    if (auto v = n->value<T>())
        return *v;
    throw ProvisionError{fmt::format("{}: '{}' has the wrong type", where(file, *n), key)};
}

void readOverrides(const toml::table &t, const std::string &file, eng::RecallOverrides &o) {
    if (auto v = get<int64_t>(t, "recall_time", file))
        o.recallSeconds = int(*v);
    if (auto v = get<int64_t>(t, "ring_time", file))
        o.ringSeconds = int(*v);
    if (auto v = get<int64_t>(t, "alternate_wait", file))
        o.alternateWaitSeconds = int(*v);
    if (auto v = get<int64_t>(t, "retry", file))
        o.retrySeconds = int(*v);
    if (auto v = get<std::string>(t, "recall_mode", file)) {
        auto m = eng::parseRecallMode(*v);
        if (!m)
            throw ProvisionError{fmt::format("{}: recall_mode '{}' (parker, parker_then_alternate, alternate_only)",
                                             where(file, *t.get("recall_mode")), *v)};
        o.mode = *m;
    }
    if (auto v = get<std::string>(t, "alternate", file)) {
        auto a = eng::RecallTarget::parse(*v);
        if (!a)
            throw ProvisionError{
                fmt::format("{}: alternate '{}' is not a recall target", where(file, *t.get("alternate")), *v)};
        o.alternate = *a;
    }
    if (auto v = get<std::string>(t, "occupied_policy", file)) {
        auto p = eng::parseOccupiedPolicy(*v);
        if (!p)
            throw ProvisionError{
                fmt::format("{}: occupied_policy '{}' (reject, stack)", where(file, *t.get("occupied_policy")), *v)};
        o.occupied = *p;
    }
}

// An array-valued key ([[domain]], extensions, members): nullptr when absent, an error when not an array.
const toml::array *arrayOf(const toml::table &t, const char *key, const std::string &file, const char *what) {
    const toml::node *n = child(t, key);
    if (!n)
        return nullptr;
    if (const toml::array *a = n->as_array())
        return a;
    throw ProvisionError{fmt::format("{}: '{}' must be {}", where(file, *n), key, what)};
}

} // namespace

bool CallPark::loadProvisionFile(const std::string &path, std::string *err) {
    AskedKeys asked;
    tAsked = &asked;
    struct Reset {
        ~Reset() { tAsked = nullptr; }
    } reset;
    std::vector<eng::DomainSettings> domains;
    std::vector<eng::Extension> exts;
    std::vector<eng::Group> groups;
    std::vector<eng::Lot> lots;
    try {
        toml::table root = toml::parse_file(path);
        const toml::array *arr = arrayOf(root, "domain", path, "an array of tables ([[domain]])");
        if (arr) {
            for (const toml::node &dn : *arr) {
                const toml::table *dt = dn.as_table();
                if (!dt)
                    throw ProvisionError{fmt::format("{}: [[domain]] entries must be tables", where(path, dn))};
                auto name = get<std::string>(*dt, "name", path);
                if (!name || name->empty())
                    throw ProvisionError{fmt::format("{}: [[domain]] needs a name", where(path, dn))};
                eng::DomainSettings d = engine()->domain(*name);
                d.name = *name;
                if (auto v = get<std::string>(*dt, "park_code", path))
                    d.parkCode = *v;
                if (auto v = get<std::string>(*dt, "group_park_code", path))
                    d.groupParkCode = *v;
                if (auto v = get<std::string>(*dt, "retrieve_code", path))
                    d.retrieveCode = *v;
                if (auto v = get<bool>(*dt, "open_extensions", path))
                    d.openExtensions = *v;
                if (auto v = get<int64_t>(*dt, "dpid", path))
                    d.dpid = int(*v);
                if (auto v = get<bool>(*dt, "default_rules", path))
                    d.defaultRules = *v;
                if (auto v = get<int64_t>(*dt, "max_parked", path))
                    d.maxParked = int(std::clamp<int64_t>(*v, -1, 1 << 30));
                if (auto v = get<int64_t>(*dt, "max_parked_per_extension", path))
                    d.maxParkedPerExtension = int(std::clamp<int64_t>(*v, -1, 1 << 30));
                if (auto v = get<int64_t>(*dt, "max_park_time", path)) // seconds; validated with the domain
                    d.recall.maxParkSeconds = int(std::clamp<int64_t>(*v, -1, 1 << 30));
                eng::RecallOverrides o;
                readOverrides(*dt, path, o);
                o.applyTo(d.recall);
                if (o.occupied)
                    d.occupied = *o.occupied;
                if (std::string v = eng::validate(d); !v.empty())
                    throw ProvisionError{fmt::format("{}: domain {}: {}", where(path, dn), *name, v)};
                domains.push_back(d);
                if (const toml::array *ea = arrayOf(*dt, "extensions", path, "an array of strings")) {
                    for (const toml::node &e : *ea) {
                        auto s = e.value<std::string>();
                        if (!s)
                            throw ProvisionError{fmt::format("{}: extensions must be strings", where(path, e))};
                        exts.push_back(eng::Extension{*name, *s, ""});
                    }
                }
                if (const toml::array *ga = arrayOf(*dt, "group", path, "an array of tables ([[domain.group]])")) {
                    for (const toml::node &gn : *ga) {
                        const toml::table *gt = gn.as_table();
                        if (!gt)
                            throw ProvisionError{fmt::format("{}: [[domain.group]] must be a table", where(path, gn))};
                        eng::Group g;
                        g.domain = *name;
                        auto gname = get<std::string>(*gt, "name", path);
                        if (!gname)
                            throw ProvisionError{fmt::format("{}: group needs a name", where(path, gn))};
                        g.name = *gname;
                        if (const toml::array *ma = arrayOf(*gt, "members", path, "an array of strings")) {
                            for (const toml::node &mn : *ma) {
                                auto s = mn.value<std::string>();
                                if (!s)
                                    throw ProvisionError{
                                        fmt::format("{}: group members must be strings", where(path, mn))};
                                g.members.push_back(*s);
                            }
                        }
                        if (auto v = get<bool>(*gt, "notify_parker", path))
                            g.notifyParker = *v;
                        readOverrides(*gt, path, g.settings);
                        if (std::string v = eng::validate(g.settings); !v.empty())
                            throw ProvisionError{fmt::format("{}: group {}: {}", where(path, gn), g.name, v)};
                        rejectUnknownKeys(*gt, path, "domain.group");
                        groups.push_back(g);
                    }
                }
                if (const toml::array *la = arrayOf(*dt, "lot", path, "an array of tables ([[domain.lot]])")) {
                    for (const toml::node &ln : *la) {
                        const toml::table *lt = ln.as_table();
                        if (!lt)
                            throw ProvisionError{fmt::format("{}: [[domain.lot]] must be a table", where(path, ln))};
                        eng::Lot l;
                        l.domain = *name;
                        auto lname = get<std::string>(*lt, "name", path);
                        auto first = get<int64_t>(*lt, "first", path);
                        auto last = get<int64_t>(*lt, "last", path);
                        if (!lname || !first || !last)
                            throw ProvisionError{fmt::format("{}: lot needs name, first and last", where(path, ln))};
                        l.name = *lname;
                        l.firstSlot = int(*first);
                        l.lastSlot = int(*last);
                        if (auto c = get<std::string>(*lt, "choice", path)) {
                            auto ch = eng::parseSlotChoice(*c);
                            if (!ch)
                                throw ProvisionError{
                                    fmt::format("{}: lot choice '{}' (first, next)", where(path, ln), *c)};
                            l.choice = *ch;
                        }
                        readOverrides(*lt, path, l.settings);
                        rejectUnknownKeys(*lt, path, "domain.lot");
                        lots.push_back(l);
                    }
                }
                rejectUnknownKeys(*dt, path, "domain");
            }
        }
        rejectUnknownKeys(root, path, "");
    } catch (const toml::parse_error &e) {
        if (err)
            *err = fmt::format("callpark: provision_file {}:{}:{}: {}", path, e.source().begin.line,
                               e.source().begin.column, e.description());
        return false;
    } catch (const ProvisionError &e) {
        if (err)
            *err = "callpark: provision_file " + e.message;
        return false;
    }
    auto fail = [&](const std::string &what, const eng::Status &st) {
        if (err)
            *err = fmt::format("callpark: provision_file {}: {}: {}", path, what, st.message);
        return false;
    };
    for (auto &d : domains)
        if (auto st = engine()->setDomain(d); !st)
            return fail("domain " + d.name, st);
    for (auto &e : exts)
        if (auto st = engine()->setExtension(e); !st)
            return fail("extension " + e.ext, st);
    for (auto &g : groups)
        if (auto st = engine()->setGroup(g); !st)
            return fail("group " + g.name, st);
    for (auto &l : lots)
        if (auto st = engine()->setLot(l); !st)
            return fail("lot " + l.name, st);
    return true;
}

void CallPark::declareDomains() {
    std::vector<eng::DomainSettings> domains = engine()->domains(); // the lock is released before serving
    serveDomains(domains);
}

void CallPark::serveDomains(const std::vector<eng::DomainSettings> &domains) {
    std::vector<std::string> names;
    for (const auto &d : domains)
        names.push_back(d.name);
    declareDomains(names);
}

void CallPark::declareDomains(const std::vector<std::string> &provisioned) {
    bool any = false, served = true;
    std::set<std::string> now;
    for (const auto &name : provisioned) {
        any = true;
        now.insert(name);
        served = host_.serveDomain(name, true) && served;
    }
    // A domain gone from the store since the last call (domains.delete here, or on another node whose change
    // reached us: docs/cluster.md "Change events across nodes") is no longer declared: it stays local only while
    // [proxy] domains lists it, as on the node that removed it.
    for (const auto &name : servedDomains_)
        if (!now.count(name)) {
            host_.serveDomain(name, false);
            host_.log(PW_LOG_INFO, "callpark: domain {} is no longer provisioned: not served by this module any more",
                      name);
        }
    servedDomains_ = std::move(now);
    if (any && !served)
        host_.log(PW_LOG_WARN, "callpark: this host cannot be told which domains are provisioned here (ABI < 1.4): "
                               "list them in [proxy] domains to serve them");
}

size_t CallPark::liveCallsIn(const std::string &domain) const {
    eng::ListFilter f;
    f.domain = domain;
    return engine()->list(f).size();
}

// pw_module.domain_release: the host is about to stop serving `domain`; calls parked in it would be stranded
// (no retrieve, no BLF, no recall to a local user), so refuse while there are any.
int CallPark::releaseDomain(std::string_view domain, pw_writer *why) {
    std::string d(domain);
    size_t n = liveCallsIn(d);
    if (n == 0)
        return PW_OK;
    std::string msg = fmt::format("domain {} has {} parked call{}", d, n, n == 1 ? "" : "s");
    host_.api()->writer_error(why, 409, ps(msg));
    return PW_ESTATE;
}

} // namespace parkway::callpark
