// parkway-replay import: the fixture builder (importer.hh, docs/replay.md "Importing a trace").
#include "importer.hh"

#include "anonymize.hh"
#include "import_sip.hh"
#include "symbolizer.hh"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

namespace parkway::replay {

using namespace importer;

namespace {

struct Msg {
    const Captured *cap = nullptr;
    size_t number = 0; // 1-based position in the trace, for warnings
    std::string data;  // the text (anonymized when asked)
    SipText sip;
    bool fromServer = false;
    Address phone; // the phone's side of the message (source when it sends, destination when it receives)
};

std::string where(const Msg &m) {
    return "message " + std::to_string(m.number) + " (" + m.cap->src.str() + " -> " + m.cap->dst.str() + ")";
}

std::vector<Msg> parseAll(const ReadResult &in, std::vector<std::string> &warnings) {
    std::vector<Msg> out;
    for (size_t i = 0; i < in.messages.size(); ++i) {
        Msg m;
        m.cap = &in.messages[i];
        m.number = i + 1;
        m.data = m.cap->data;
        std::string why;
        if (parseSip(m.data, m.sip, why))
            out.push_back(std::move(m));
        else
            warnings.push_back(where(m) + ": " + why + "; skipped");
    }
    if (out.empty())
        throw ImportError("the trace holds no SIP message");
    return out;
}

// "127.0.0.1:5060", or with a transport in front as `run --server` takes it ("udp:127.0.0.1:5060").
Address serverArgument(const std::string &text) {
    auto colon = text.find(':');
    if (colon != std::string::npos && text[0] != '[') {
        try {
            parseTransport(text.substr(0, colon));
            return parseAddress(text.substr(colon + 1));
        } catch (const TraceError &) {
        }
    }
    try {
        return parseAddress(text);
    } catch (const TraceError &e) {
        throw ImportError(std::string("--server: ") + e.what());
    }
}

// The server is the hub: the address with the most distinct peers; among equals the one that acts as a
// server (relays requests with a Via of its own on top of others, RFC 3261 §16.6 step 8, or receives
// REGISTERs), then the one that sends the most responses, then one on 5060/5061, then the smallest.
Address guessServer(const std::vector<Msg> &msgs) {
    std::map<Address, std::set<Address>> peers;
    std::map<Address, int> serving, responses;
    for (const auto &m : msgs) {
        peers[m.cap->src].insert(m.cap->dst);
        peers[m.cap->dst].insert(m.cap->src);
        if (!m.sip.request)
            ++responses[m.cap->src];
        else if (m.sip.method == "REGISTER")
            ++serving[m.cap->dst];
        else if (m.sip.values("via").size() > 1)
            ++serving[m.cap->src];
    }
    auto score = [&](const Address &a) {
        return std::make_tuple(peers[a].size(), serving[a], responses[a], a.port == 5060 || a.port == 5061);
    };
    Address best = peers.begin()->first;
    for (const auto &[a, p] : peers)
        if (score(a) > score(best))
            best = a;
    return best;
}

std::set<Address> findServers(const std::vector<Msg> &msgs, const ImportOptions &o) {
    std::set<Address> servers;
    for (const auto &text : o.servers) {
        Address a = serverArgument(text);
        bool seen =
            std::any_of(msgs.begin(), msgs.end(), [&](const Msg &m) { return m.cap->src == a || m.cap->dst == a; });
        if (!seen)
            throw ImportError("--server " + text + ": no message of the trace was sent from or to it");
        servers.insert(a);
    }
    if (!servers.empty())
        return servers;
    servers.insert(guessServer(msgs));
    return servers;
}

bool literalAddress(const std::string &host, int port, Address &out) {
    if (!port || !isIpLiteral(host))
        return false;
    out = Address{host, static_cast<uint16_t>(port)};
    return true;
}

Address topViaAddress(const SipText &s) {
    auto vias = s.values("via");
    Address a;
    if (!vias.empty()) {
        ViaInfo v = parseVia(vias[0]);
        literalAddress(v.host, v.port, a);
    }
    return a;
}

// Which side is the server. A request whose top Via is the server's comes from it even on a port of its own
// connection (TCP), and that port then counts as the server's.
std::vector<Msg> classify(std::vector<Msg> msgs, std::set<Address> &servers, std::vector<std::string> &warnings) {
    std::vector<Msg> out;
    for (auto &m : msgs) {
        Address via = topViaAddress(m.sip);
        bool from = servers.count(m.cap->src) || (m.sip.request && servers.count(via));
        if (from)
            servers.insert(m.cap->src);
        bool to = servers.count(m.cap->dst) || (!m.sip.request && servers.count(via));
        if (from == to) {
            warnings.push_back(where(m) + ": " + (from ? "from the server to itself" : "does not involve the server") +
                               "; skipped");
            continue;
        }
        m.fromServer = from;
        m.phone = from ? m.cap->dst : m.cap->src;
        out.push_back(std::move(m));
    }
    return out;
}

// RFC 3261 §17.1.1 / §17.2: a retransmission is the same request (source, top Via branch, CSeq, method) or
// the same response (source, branch, status, CSeq, To-tag) again.
std::vector<Msg> dropRetransmissions(std::vector<Msg> msgs, int &dropped) {
    std::set<std::string> seen;
    std::vector<Msg> out;
    for (auto &m : msgs) {
        auto vias = m.sip.values("via");
        std::string branch = vias.empty() ? "" : parseVia(vias[0]).branch;
        const std::string *cseq = m.sip.header("cseq"), *callId = m.sip.header("call-id");
        std::string key = m.cap->src.str() + "|" + branch + "|" + (cseq ? *cseq : "") + "|" + (callId ? *callId : "") +
                          "|" + tagOf(m.sip, "from") + "|" +
                          (m.sip.request ? m.sip.method : std::to_string(m.sip.status) + "|" + tagOf(m.sip, "to"));
        if (seen.insert(key).second)
            out.push_back(std::move(m));
        else
            ++dropped;
    }
    return out;
}

const char *const kNameAddrHeaders[] = {
    "from", "to", "contact", "referred-by", "p-asserted-identity", "p-preferred-identity", "remote-party-id"};

void anonymize(std::vector<Msg> &msgs, ImportSummary &summary) {
    Anonymizer a;
    for (const auto &m : msgs) {
        if (m.sip.request)
            a.addSeenUser(uriOf(m.sip.ruri).user);
        for (const auto &h : m.sip.headers)
            for (const char *n : kNameAddrHeaders)
                if (h.name == n)
                    for (const auto &v : splitComma(h.value)) {
                        a.addSeenUser(uriOf(v).user);
                        a.addDisplay(displayNameOf(v));
                    }
        const std::string *from = m.sip.header("from"), *to = m.sip.header("to");
        if (!m.fromServer && m.sip.request && from)
            a.addIdentity(uriOf(*from).user);
        if (m.sip.request && to && (m.sip.method == "REGISTER" || (m.fromServer && tagOf(m.sip, "to").empty())))
            a.addIdentity(uriOf(*to).user);
        if (!m.fromServer)
            for (const auto &c : m.sip.values("contact"))
                a.addIdentity(uriOf(c).user);
    }
    a.plan();
    for (auto &m : msgs) {
        m.data = a.rewrite(m.data);
        std::string why;
        m.sip = SipText{};
        parseSip(m.data, m.sip, why);
    }
    summary.userMap = a.userMap();
    summary.displayMap = a.displayMap();
}

// What a template line cannot hold: "{{" starts a symbol (fixture.hh has no escape for it; written "{ {"), and
// JSON strings are UTF-8 (other bytes become U+FFFD).
std::string templateSafe(const std::string &data) {
    std::string out;
    for (size_t i = 0; i < data.size();) {
        unsigned char c = static_cast<unsigned char>(data[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = n > 0 && i + n <= data.size();
        for (size_t k = 1; ok && k < n; ++k)
            ok = (static_cast<unsigned char>(data[i + k]) >> 6) == 2;
        if (!ok) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else if (c == '{' && i + 1 < data.size() && data[i + 1] == '{') {
            out += "{ ";
            ++i;
        } else {
            out.append(data, i, n);
            i += n;
        }
    }
    return out;
}

void makeTemplateSafe(std::vector<Msg> &msgs, std::vector<std::string> &warnings) {
    for (auto &m : msgs) {
        std::string safe = templateSafe(m.data);
        if (safe == m.data)
            continue;
        warnings.push_back(where(m) + ": a literal '{{' or bytes that are not UTF-8 were written as '{ {' / U+FFFD");
        m.data = safe;
        std::string why;
        m.sip = SipText{};
        parseSip(m.data, m.sip, why);
    }
}

// ---- participants

struct Groups {
    std::map<Address, Address> parent;
    Address find(const Address &a) {
        auto it = parent.find(a);
        if (it == parent.end()) {
            parent[a] = a;
            return a;
        }
        if (it->second == a)
            return a;
        Address root = find(it->second);
        parent[a] = root;
        return root;
    }
    void unite(const Address &a, const Address &b) {
        Address ra = find(a), rb = find(b);
        if (ra != rb)
            parent[std::max(ra, rb)] = std::min(ra, rb);
    }
};

struct Phone {
    std::set<Address> addresses;
    Address first;
    std::string transport;
    std::vector<std::string> fromUsers, toUsers;
    Participant p;
};

// A phone's addresses: where it sends from, its top Via sent-by and Contact (its listening address, when a
// TCP phone sends from ephemeral ports), and the Request-URI of what the server sends it (its Contact). Also
// addresses that send the same local tag (a UA's own, RFC 3261 §19.3) or the same Contact +sip.instance
// (RFC 5626 §4.1) over the same transport. A phone that registered over TCP and sends in-dialog requests over
// UDP stays two participants: the runner plays each participant on one transport, and the messages name the
// UDP address with ;transport=udp.
struct Linker {
    std::map<std::string, std::pair<Address, Transport>> tags, instances;
    void same(Groups &g, std::map<std::string, std::pair<Address, Transport>> &seen, const std::string &key,
              const Msg &m) {
        if (key.empty())
            return;
        auto [it, fresh] = seen.emplace(key, std::make_pair(m.phone, m.cap->transport));
        if (!fresh && it->second.second == m.cap->transport)
            g.unite(it->second.first, m.phone);
    }
};

void linkAddresses(Groups &g, Linker &l, const Msg &m, const std::set<Address> &servers) {
    g.find(m.phone);
    if (!m.fromServer) {
        l.same(g, l.tags, tagOf(m.sip, m.sip.request ? "from" : "to"), m);
        for (const auto &c : m.sip.values("contact"))
            l.same(g, l.instances, headerParam(c, "+sip.instance"), m);
    }
    auto link = [&](const std::string &host, int port) {
        Address a;
        if (literalAddress(host, port, a) && !servers.count(a))
            g.unite(m.phone, a);
    };
    if (!m.fromServer) {
        if (m.sip.request) {
            auto vias = m.sip.values("via");
            if (!vias.empty())
                link(parseVia(vias[0]).host, parseVia(vias[0]).port);
        }
        if (m.sip.status / 100 != 3) // a 3xx Contact is somebody else (RFC 3261 §21.3)
            for (const auto &c : m.sip.values("contact"))
                link(uriOf(c).host, uriOf(c).port);
    } else if (m.sip.request) {
        link(uriOf(m.sip.ruri).host, uriOf(m.sip.ruri).port);
    }
}

bool nameable(const std::string &u) {
    return !u.empty() && u.size() < 40 &&
           u.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_-") == std::string::npos;
}

void addUnique(std::vector<std::string> &v, const std::string &s) {
    if (!s.empty() && s[0] != '*' && s[0] != '#' && std::find(v.begin(), v.end(), s) == v.end())
        v.push_back(s);
}

// Names: "u" + the user part when it is a number (u101), the user part itself when it is a word (alice);
// p1, p2 ... (position) when a phone has no single user or two phones share one.
void namePhones(std::vector<Phone> &phones) {
    std::map<std::string, int> uses;
    for (auto &ph : phones) {
        const auto &users = !ph.fromUsers.empty() ? ph.fromUsers : ph.toUsers;
        ph.p.user = users.size() == 1 ? users[0] : "";
        std::string u = ph.p.user;
        if (!u.empty() && u[0] == '+')
            u = u.substr(1);
        ph.p.name = !nameable(u) ? "" : std::isdigit(static_cast<unsigned char>(u[0])) ? "u" + u : u;
        ++uses[ph.p.name];
    }
    std::set<std::string> taken;
    for (const auto &ph : phones)
        if (!ph.p.name.empty() && uses[ph.p.name] == 1 && ph.p.name != "server")
            taken.insert(ph.p.name);
    for (size_t i = 0; i < phones.size(); ++i) {
        auto &ph = phones[i];
        if (!ph.p.name.empty() && uses[ph.p.name] == 1 && ph.p.name != "server")
            continue;
        std::string n = "p" + std::to_string(i + 1);
        while (taken.count(n))
            n += "x";
        taken.insert(n);
        ph.p.name = n;
    }
}

std::vector<Phone> groupPhones(const std::vector<Msg> &msgs, const std::set<Address> &servers,
                               std::map<Address, size_t> &index) {
    Groups g;
    Linker l;
    for (const auto &m : msgs)
        linkAddresses(g, l, m, servers);
    std::vector<Phone> phones;
    std::map<Address, size_t> byRoot;
    for (const auto &m : msgs) {
        Address root = g.find(m.phone);
        if (!byRoot.count(root)) {
            byRoot[root] = phones.size();
            phones.emplace_back();
            phones.back().first = m.phone;
            phones.back().transport = transportName(m.cap->transport);
        }
        Phone &ph = phones[byRoot[root]];
        const std::string *from = m.sip.header("from"), *to = m.sip.header("to");
        if (m.sip.request && !m.fromServer && from)
            addUnique(ph.fromUsers, uriOf(*from).user);
        if (m.sip.request && m.fromServer && to && tagOf(m.sip, "to").empty())
            addUnique(ph.toUsers, uriOf(*to).user);
    }
    for (const auto &[addr, parent] : g.parent) {
        (void)parent;
        size_t i = byRoot.count(g.find(addr)) ? byRoot[g.find(addr)] : phones.size();
        if (i < phones.size()) {
            phones[i].addresses.insert(addr);
            index[addr] = i;
        }
    }
    namePhones(phones);
    for (auto &ph : phones) {
        ph.p.transport = ph.transport;
        ph.p.address = ph.first.str();
    }
    return phones;
}

Owners ownersOf(const std::vector<Phone> &phones, const std::set<Address> &servers) {
    Owners o;
    auto add = [&](const Address &a, const std::string &name) {
        o.byAddress[a] = name;
        auto &names = o.byIp[a.ip];
        if (std::find(names.begin(), names.end(), name) == names.end())
            names.push_back(name);
    };
    for (const auto &ph : phones)
        for (const auto &a : ph.addresses)
            add(a, ph.p.name);
    for (const auto &a : servers)
        add(a, "server");
    return o;
}

// ---- steps

std::string bodyKind(const SipText &m) {
    if (trim(m.body).empty())
        return "";
    std::string t = contentType(m);
    if (t == "application/sdp")
        return "sdp";
    if (t == "application/dialog-info+xml")
        return "dialog-info";
    if (t == "application/x-park-info+xml") // docs/park-info.md
        return "park-info";
    if (t == "message/sipfrag")
        return "sipfrag";
    if (t == "application/pidf+xml")
        return "pidf";
    // Other text is compared exactly after filling; other bodies (multipart event lists with random
    // boundaries, vendor XML with time stamps) are not compared unless the fixture is edited to "text".
    return t.rfind("text/", 0) == 0 ? "text" : "ignore";
}

// What an expect step compares besides the start line: headers that carry the server's behaviour, never the
// transport ones (Via, Contact, Record-Route, User-Agent, Server, Date). Subscription-State: the comparator
// looks at the state and reason, not at expires (docs/replay.md "Importing a trace").
std::vector<std::string> compareFor(const SipText &m) {
    static const char *const names[] = {"Event",
                                        "Subscription-State",
                                        "Content-Type",
                                        "Refer-To",
                                        "Referred-By",
                                        "Replaces",
                                        "Target-Dialog",
                                        "Join",
                                        "Call-Info",
                                        "Alert-Info",
                                        "Retry-After",
                                        "Reason",
                                        "P-Asserted-Identity"};
    std::vector<std::string> out{"CSeq"};
    for (const char *n : names)
        if (m.header(lower(n)) && (std::string(n) != "Content-Type" || !trim(m.body).empty()))
            out.push_back(n);
    return out;
}

std::string firstLine(const std::string &body) {
    auto lines = bodyLines(body);
    return lines.empty() ? "" : lines[0];
}

// A short human summary: "REFER 1003 (Refer-To *68103) [call1]", "202 Accepted to REFER [call1]".
std::string noteFor(const SipText &m, const std::string &callSymbol) {
    std::string note;
    if (m.request) {
        UriInfo u = uriOf(m.ruri);
        note = m.method + (u.user.empty() ? "" : " " + u.user); // never an address: those are symbols
        if (const std::string *r = m.header("refer-to"))
            note += " (Refer-To " + uriOf(*r).user + ")";
        if (const std::string *e = m.header("event"))
            note += " (Event " + trim(e->substr(0, e->find(';'))) + ")";
        if (contentType(m) == "message/sipfrag")
            note += " " + firstLine(m.body);
        if (m.header("replaces"))
            note += " with Replaces";
    } else {
        note = m.startLine.substr(8) + " to " + cseqMethod(m);
    }
    return callSymbol.empty() ? note : note + " [" + callSymbol + "]";
}

double rounded(double seconds) {
    return std::max(0.0, std::round(seconds * 1000.0) / 1000.0);
}

// The partial order of the shared design (docs/replay.md "Importing a trace"): a send is after the previous
// send and every non-optional expect since; an expect is after the most recent send. Steps the runner does
// not play (automaticStep) never become "the previous send".
void order(std::vector<Step> &steps, const std::vector<double> &times) {
    int lastSend = -1;
    std::vector<size_t> pending;
    for (size_t i = 0; i < steps.size(); ++i) {
        Step &s = steps[i];
        std::vector<size_t> after;
        if (lastSend >= 0)
            after.push_back(static_cast<size_t>(lastSend));
        if (s.kind == StepKind::Send)
            after.insert(after.end(), pending.begin(), pending.end());
        double latest = after.empty() ? times[i] : times[after.front()];
        for (size_t a : after) {
            s.after.push_back(steps[a].id);
            latest = std::max(latest, times[a]);
        }
        s.delay = after.empty() ? 0.0 : rounded(times[i] - latest);
        if (s.kind == StepKind::Send && !automaticStep(s)) {
            lastSend = static_cast<int>(i);
            pending.clear();
        } else if (s.kind == StepKind::Expect && !s.optional) {
            pending.push_back(i);
        }
    }
}

struct Built {
    std::vector<Step> steps;
    std::vector<double> times;
};

Built buildSteps(const std::vector<Msg> &msgs, const std::vector<Phone> &phones, const std::map<Address, size_t> &index,
                 Symbolizer &sym) {
    Built b;
    std::set<std::pair<std::string, std::string>> inviteBranches; // (sender, branch)
    for (const auto &m : msgs) {
        const std::string &phone = phones[index.at(m.phone)].p.name;
        std::string sender = m.fromServer ? "server" : phone;
        Step s;
        s.id = static_cast<int>(b.steps.size()) + 1;
        s.kind = m.fromServer ? StepKind::Expect : StepKind::Send;
        s.participant = phone;
        s.message = sym.symbolize(m.sip, sender);
        auto vias = m.sip.values("via");
        std::string branch = vias.empty() ? "" : parseVia(vias[0]).branch;
        if (m.sip.request && m.sip.method == "INVITE")
            inviteBranches.insert({sender, branch});
        // RFC 3261 §17.1.1.3: the ACK for a non-2xx final response has the INVITE's branch and is sent by the
        // client transaction itself; §17.2.1: a 100 Trying is the server transaction's own.
        bool automatic =
            (m.sip.request && m.sip.method == "ACK" && !branch.empty() && inviteBranches.count({sender, branch})) ||
            (!m.fromServer && m.sip.status == 100);
        const std::string *callId = m.sip.header("call-id");
        s.note = (automatic ? "auto: " : "") + noteFor(m.sip, callId ? sym.symbolOf(*callId) : "");
        if (s.kind == StepKind::Expect) {
            // Every provisional response may not come: the runner ignores provisional responses no step is
            // ready for, and a 180 relayed from one phone may overtake the send the partial order puts first.
            s.optional = (m.sip.status >= 100 && m.sip.status < 200) || automatic;
            s.compare = compareFor(m.sip);
            s.body = bodyKind(m.sip);
        }
        b.steps.push_back(std::move(s));
        b.times.push_back(m.cap->time);
    }
    order(b.steps, b.times);
    return b;
}

std::string baseName(const std::string &path) {
    auto slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

void countDialogs(const std::vector<Msg> &msgs, ImportSummary &summary) {
    std::set<std::string> calls;
    std::set<std::tuple<std::string, std::string, std::string>> dialogs;
    for (const auto &m : msgs) {
        const std::string *c = m.sip.header("call-id");
        if (!c)
            continue;
        calls.insert(*c);
        std::string a = tagOf(m.sip, "from"), b = tagOf(m.sip, "to");
        if (!a.empty() && !b.empty())
            dialogs.insert({*c, std::min(a, b), std::max(a, b)});
    }
    summary.callIds = static_cast<int>(calls.size());
    summary.dialogs = static_cast<int>(dialogs.size());
}

void setPasswords(std::vector<Phone> &phones, const ImportOptions &o, ImportSummary &summary) {
    if (o.anonymize && !o.passwords.empty()) {
        summary.warnings.push_back("--anonymize: passwords are not stored; give them to `run --password` with "
                                   "the new user names");
        return;
    }
    for (const auto &[user, secret] : o.passwords) {
        bool found = false;
        for (auto &ph : phones)
            if (ph.p.user == user) {
                ph.p.password = secret;
                found = true;
            }
        if (!found)
            summary.warnings.push_back("--password " + user + ": no participant has that user");
    }
}

} // namespace

Fixture buildFixture(const ReadResult &trace, const ImportOptions &o, ImportSummary *summaryOut) {
    ImportSummary summary;
    summary.warnings = trace.warnings;
    std::vector<Msg> msgs = parseAll(trace, summary.warnings);
    std::set<Address> servers = findServers(msgs, o);
    Address mainServer = *servers.begin();
    msgs = classify(std::move(msgs), servers, summary.warnings);
    if (msgs.empty())
        throw ImportError("no message of the trace was sent to or from the server " + mainServer.str());
    msgs = dropRetransmissions(std::move(msgs), summary.retransmissions);
    if (o.anonymize)
        anonymize(msgs, summary);
    makeTemplateSafe(msgs, summary.warnings);
    std::map<Address, size_t> index;
    std::vector<Phone> phones = groupPhones(msgs, servers, index);
    setPasswords(phones, o, summary);

    Fixture f;
    f.source = baseName(o.trace);
    f.name = !o.name.empty() ? o.name : f.source.substr(0, f.source.rfind('.'));
    if (f.name.empty())
        f.name = "trace";
    f.description =
        "imported from " + (f.source.empty() ? std::string("a trace") : f.source) + " by parkway-replay import";
    f.server.name = "server";
    f.server.address = mainServer.str();
    for (const auto &m : msgs)
        if (m.cap->src == mainServer || m.cap->dst == mainServer) {
            f.server.transport = transportName(m.cap->transport);
            break;
        }
    for (const auto &ph : phones)
        f.participants.push_back(ph.p);
    Owners owners = ownersOf(phones, servers);
    Symbolizer sym(f.symbols, owners);
    Built b = buildSteps(msgs, phones, index, sym);
    f.steps = std::move(b.steps);
    for (const auto &s : f.steps)
        ++(s.kind == StepKind::Send ? summary.sends : summary.expects);
    countDialogs(msgs, summary);
    if (summaryOut)
        *summaryOut = std::move(summary);
    return f;
}

std::string summaryText(const Fixture &f, const ImportSummary &s) {
    std::ostringstream out;
    out << "server: " << f.server.address << " (" << f.server.transport << ")\n";
    out << "participants: " << f.participants.size() << "\n";
    for (const auto &p : f.participants)
        out << "  " << p.name << "  " << p.transport << " " << p.address << (p.user.empty() ? "" : "  user " + p.user)
            << (p.password.empty() ? "" : "  (password stored)") << "\n";
    out << "dialogs: " << s.dialogs << " (Call-IDs: " << s.callIds << ")\n";
    out << "steps: " << f.steps.size() << " (" << s.sends << " send, " << s.expects << " expect); " << s.retransmissions
        << " retransmission(s) dropped\n";
    for (const auto &[from, to] : s.userMap)
        out << "anonymize: user " << from << " -> " << to << "\n";
    for (const auto &[from, to] : s.displayMap)
        out << "anonymize: display name \"" << from << "\" -> \"" << to << "\"\n";
    for (const auto &w : s.warnings)
        out << "warning: " << w << "\n";
    return out.str();
}

} // namespace parkway::replay
