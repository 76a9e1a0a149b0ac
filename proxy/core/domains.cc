// Tenants (docs/admin-api.md "Live reload" and "Tenants"): the local domains are the [proxy] domains, which a reload
// replaces, plus the domains modules declare they serve (pw_host_api.domain_serve, ABI v1.4). A domain leaving
// the config that no module serves is offered to the modules first (pw_module.domain_release): one that still
// holds calls in it refuses, and then the whole reload is refused.
#include "core_impl.hh"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <strings.h>

namespace parkway::proxy {
namespace {

std::string lowerCase(std::string s) {
    for (auto &c : s)
        c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return s;
}

bool contains(const std::vector<std::string> &list, const std::string &d) {
    for (const auto &x : list)
        if (!strcasecmp(x.c_str(), d.c_str()))
            return true;
    return false;
}

// A host name or an IP literal (RFC 3261 §25.1 host): letters, digits, '-', '.', and ':' '[' ']' for IPv6.
bool validDomain(const std::string &d) {
    if (d.empty() || d.size() > 253)
        return false;
    for (unsigned char ch : d)
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == ':' || ch == '[' || ch == ']' || ch == '_'))
            return false;
    return true;
}

bool hasDomainRelease(const pw_module *desc) {
    return desc->struct_size >= offsetof(pw_module, domain_release) + sizeof(desc->domain_release) &&
           desc->domain_release != nullptr;
}

std::string list(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &d : v)
        out += (out.empty() ? "" : ", ") + d;
    return out.empty() ? "none" : out;
}

// Ask every module whether `domain` may stop being local. "" = yes; else "<module>: <why>".
std::string askRelease(Proxy::Impl &impl, const std::string &domain) {
    for (auto &m : impl.modules) {
        if (!m->inited || !hasDomainRelease(m->lm.desc))
            continue;
        pw_writer why;
        int rc;
        try {
            rc = m->lm.desc->domain_release(m->ctx, pw_str{domain.data(), domain.size()}, &why);
        } catch (...) {
            rc = PW_EINVAL;
        }
        if (rc == PW_OK)
            continue;
        std::string text = fmt::format("refused (error {})", rc);
        if (why.written) {
            auto j = nlohmann::json::parse(why.json, nullptr, false);
            if (j.is_object() && j.contains("error") && j["error"].is_string())
                text = j["error"].get<std::string>();
        }
        return fmt::format("module {}: {}", m->name, text);
    }
    return "";
}

} // namespace

const ModuleInstance *Proxy::Impl::domainServer(const std::string &host) const {
    std::string d = lowerCase(host);
    for (const auto &m : modules)
        if (m->servedDomains.count(d))
            return m.get();
    return nullptr;
}

bool Proxy::Impl::servesDomain(const std::string &host) const {
    return contains(cfg.domains, host) || domainServer(host) != nullptr;
}

int Proxy::Impl::serveDomain(ModuleInstance *mod, const std::string &domain, bool serve) {
    if (!mod || !validDomain(domain))
        return PW_EINVAL;
    std::string d = lowerCase(domain);
    bool changed = serve ? mod->servedDomains.insert(d).second : mod->servedDomains.erase(d) > 0;
    if (changed) {
        bool listed = contains(cfg.domains, d);
        log(mod, PW_LOG_INFO,
            fmt::format("{} domain {}{}", serve ? "serves" : "no longer serves", d,
                        listed ? " (also in [proxy] domains)" : (serve || servesDomain(d) ? "" : ": not local now")));
    }
    return PW_OK;
}

Proxy::DomainUpdate Proxy::updateDomains(const CoreConfig &fresh) {
    Impl &i = *impl_;
    DomainUpdate u;
    for (const auto &d : fresh.domains)
        if (!contains(i.cfg.domains, d) && !contains(u.added, d))
            u.added.push_back(d);
    for (const auto &d : i.cfg.domains)
        if (!contains(fresh.domains, d))
            u.removed.push_back(d);
    for (const auto &d : u.removed) {
        if (i.domainServer(d))
            continue; // a module serves it: it stays local, nothing is lost
        if (std::string why = askRelease(i, d); !why.empty()) {
            u.ok = false;
            u.error = fmt::format("proxy.domains: cannot remove {}: {}", d, why);
            u.added.clear();
            u.removed.clear();
            return u;
        }
    }
    i.cfg.domains = fresh.domains;
    i.cfg.auth.unauthenticatedDomains = fresh.auth.unauthenticatedDomains;
    i.cfg.auth.md5OffDomains = fresh.auth.md5OffDomains;
    i.cfg.auth.users = fresh.auth.users;
    if (i.auth)
        i.applyUsers(fresh.auth.users);
    if (!u.added.empty() || !u.removed.empty())
        i.log(nullptr, PW_LOG_INFO, fmt::format("proxy.domains: added {}; removed {}", list(u.added), list(u.removed)));
    for (const auto &d : u.removed)
        if (const ModuleInstance *m = i.domainServer(d))
            i.log(nullptr, PW_LOG_INFO, fmt::format("domain {} stays local: module {} serves it", d, m->name));
    return u;
}

} // namespace parkway::proxy
