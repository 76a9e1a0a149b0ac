// parkway-replay: a fixture as a SIPp scenario (sipp_export.hh, docs/replay.md "Exporting to SIPp").
//
// Symbols become SIPp keywords: the dialog's Call-ID [call_id], the phone's branches [branch] (and [branch-N]
// for the ACK/CANCEL of a non-2xx, which RFC 3261 §17.1.1.3 / §9.1 send with the INVITE's branch), its tags
// [pid]SIPpTagNN[call_number], its CSeq numbers [cseq] (+/- an offset: SIPp counts every message it sends
// but ACK and CANCEL), its address [local_ip]/[local_port], the server's [remote_ip]/[remote_port], its media port
// [media_port]; Content-Length is [len]. What the server chose (its To-tag, a Contact user ...) is captured
// with <ereg> from the message that first carried it and used as [$variable]. Responses the phone sends to the
// server's requests copy Via/From/To/Call-ID/CSeq with [last_*] (RFC 3261 §8.2.6.2). After a dialog-creating
// message with Record-Route the <recv> sets rrs="true" and in-dialog requests use [next_url] and [routes]
// (RFC 3261 §12.2.1.1).
#include "sipp_export.hh"

#include "import_sip.hh"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>

namespace parkway::replay {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string trim(const std::string &s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// The template's header name of a line ("" for the start line, a body line or a folded line); compact forms
// (RFC 3261 §7.3.3) expanded.
std::string headerName(const std::string &line) {
    auto colon = line.find(':');
    if (colon == std::string::npos || line.empty() || line[0] == ' ' || line[0] == '\t')
        return "";
    std::string n = lower(trim(line.substr(0, colon)));
    if (n.find(' ') != std::string::npos)
        return "";
    return parkway::replay::importer::canonicalHeader(n);
}

std::string headerValue(const std::string &line) {
    return trim(line.substr(line.find(':') + 1));
}

struct Message {
    std::string start;
    std::vector<std::string> head; // header lines
    std::vector<std::string> body;
    bool response() const { return start.rfind("SIP/2.0 ", 0) == 0; }
    std::string method() const { return start.substr(0, start.find(' ')); }
    std::string code() const { return start.size() >= 11 ? start.substr(8, 3) : ""; }
    std::optional<std::string> header(const std::string &name) const {
        for (const auto &l : head)
            if (headerName(l) == name)
                return headerValue(l);
        return std::nullopt;
    }
    std::string cseqMethod() const {
        std::string c = trim(header("cseq").value_or(""));
        auto sp = c.find_last_of(" \t");
        return sp == std::string::npos ? "" : c.substr(sp + 1);
    }
    std::string summary() const { return response() ? start.substr(8) + " to " + cseqMethod() : method(); }
};

Message split(const Step &s) {
    Message m;
    bool body = false;
    for (size_t i = 0; i < s.message.size(); ++i) {
        const std::string &l = s.message[i];
        if (i == 0)
            m.start = trim(l);
        else if (!body && l.empty())
            body = true;
        else
            (body ? m.body : m.head).push_back(l);
    }
    return m;
}

std::string callIdOf(const Step &s) {
    return trim(split(s).header("call-id").value_or(""));
}

std::string joined(const std::vector<std::string> &v) {
    std::string out;
    for (const auto &x : v)
        out += (out.empty() ? "" : ", ") + x;
    return out;
}

std::vector<std::string> symbolsOf(const std::string &text) {
    std::vector<std::string> out;
    for (const auto &r : templateRefs(text))
        out.push_back(r.symbol);
    return out;
}

// A Replaces / Target-Dialog / Refer-To ?Replaces= naming a dialog other than `own`.
std::optional<std::string> foreignReplaces(const Fixture &f, const Step &s, const std::string &own) {
    for (const auto &l : split(s).head) {
        std::string n = headerName(l);
        bool carries = n == "replaces" || n == "target-dialog" || n == "join" ||
                       (n == "refer-to" && lower(l).find("replaces=") != std::string::npos);
        if (!carries)
            continue;
        for (const auto &sym : symbolsOf(l)) {
            auto it = f.symbols.find(sym);
            if (it != f.symbols.end() && it->second.kind == "call-id" && "{{" + sym + "}}" != own)
                return "{{" + sym + "}}";
        }
    }
    return std::nullopt;
}

void dialogProblems(const Fixture &f, const std::string &own, std::vector<std::string> &out) {
    for (size_t i = 0; i < f.steps.size(); ++i) {
        const Step &s = f.steps[i];
        Message m = split(s);
        std::string id = "step " + std::to_string(s.id);
        if (s.kind == StepKind::Send && !m.response() && m.method() == "REFER")
            for (size_t j = i + 1; j < f.steps.size(); ++j)
                if (callIdOf(f.steps[j]) != own && f.steps[j].kind == StepKind::Expect) {
                    out.push_back(id + ": the REFER makes the server start another dialog (step " +
                                  std::to_string(f.steps[j].id) + ": " + split(f.steps[j]).summary() + " on Call-ID " +
                                  callIdOf(f.steps[j]) + "); a SIPp scenario follows one Call-ID");
                    break;
                }
        if (auto other = foreignReplaces(f, s, own))
            out.push_back(id + ": Replaces points at another dialog (" + *other + ", not " + own +
                          "); SIPp cannot tie two dialogs together");
        if (s.kind == StepKind::Expect && !m.response() && callIdOf(s) != own)
            out.push_back(id + ": the server sends " + m.method() + " on another dialog (" + callIdOf(s) +
                          ") than the scenario's (" + own + "); SIPp cannot receive it");
    }
}

} // namespace

std::vector<std::string> sippExportProblems(const Fixture &f) {
    if (f.steps.empty())
        return {"the fixture has no steps"};
    std::vector<std::string> actors, dialogs;
    for (const auto &s : f.steps) {
        if (std::find(actors.begin(), actors.end(), s.participant) == actors.end())
            actors.push_back(s.participant);
        std::string c = callIdOf(s);
        if (std::find(dialogs.begin(), dialogs.end(), c) == dialogs.end())
            dialogs.push_back(c);
    }
    if (actors.size() > 1)
        return {std::to_string(actors.size()) + " participants act together (" + joined(actors) +
                "); SIPp runs one UA per scenario"};
    std::vector<std::string> out;
    dialogProblems(f, dialogs.front(), out);
    if (out.empty() && dialogs.size() > 1)
        out.push_back(std::to_string(dialogs.size()) + " dialogs (" + joined(dialogs) +
                      "); a SIPp scenario follows one Call-ID");
    return out;
}

namespace {

std::string regexEscape(const std::string &s) {
    static const std::string special = R"(\^$.|?*+()[]{})";
    std::string out;
    for (char c : s) {
        if (special.find(c) != std::string::npos)
            out += '\\';
        out += c;
    }
    return out;
}

std::string variableName(const std::string &symbol) {
    std::string v = "v_";
    for (char c : symbol)
        v += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return v;
}

class ScenarioWriter {
public:
    explicit ScenarioWriter(const Fixture &f) : f_(f), me_(f.steps.front().participant), call_(callIdOf(f.steps[0])) {
        for (const auto &s : f.steps)
            if (s.kind == StepKind::Send)
                for (const auto &l : s.message)
                    for (const auto &sym : symbolsOf(l))
                        usedInSends_.insert(sym);
    }

    std::string write() {
        for (size_t i = 0; i < f_.steps.size(); ++i) {
            const Step &s = f_.steps[i];
            if (s.kind == StepKind::Expect)
                recv(s);
            else
                send(s, i + 1 < f_.steps.size() ? &f_.steps[i + 1] : nullptr);
        }
        std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE scenario SYSTEM \"sipp.dtd\">\n"
                          "<!-- Exported by parkway-replay from the fixture '" +
                          xmlEscape(f_.name) + "' (participant " + xmlEscape(me_) +
                          "), docs/replay.md \"Exporting to SIPp\".\n     SIPp checks the order, status codes and "
                          "methods; `parkway-replay run` also compares headers and bodies. -->\n"
                          "<scenario name=\"" +
                          xmlEscape(f_.name + " " + me_) + "\">\n";
        for (const auto &e : elements_)
            out += e;
        return out + "</scenario>\n";
    }

private:
    const Fixture &f_;
    std::string me_, call_;
    std::vector<std::string> elements_;
    std::set<std::string> usedInSends_;
    std::map<std::string, size_t> branchAt_;      // branch symbol -> element that first sent it
    std::map<std::string, std::string> ownTags_;  // tag symbol -> SIPp expression
    std::map<std::string, std::string> captured_; // server symbol -> SIPp variable
    int sippCseq_ = 0;                            // SIPp's [cseq] at the current request
    std::optional<long> cseqFirst_;               // fixture offset of the first request's CSeq
    bool rrs_ = false;                            // a dialog-creating message carried Record-Route

    const Symbol *symbol(const std::string &name) const {
        auto it = f_.symbols.find(name);
        return it == f_.symbols.end() ? nullptr : &it->second;
    }

    static std::string literal(const Symbol *s, const TemplateRef &r) {
        std::string v = s ? s->original : "";
        if (r.offset && !v.empty() && v.find_first_not_of("0123456789") == std::string::npos)
            v = std::to_string(std::stoll(v) + r.offset);
        return v.empty() ? "[pid]" : v;
    }

    std::string ownTag(const std::string &sym) {
        auto it = ownTags_.find(sym);
        if (it != ownTags_.end())
            return it->second;
        char buf[8];
        std::snprintf(buf, sizeof buf, "%02zu", ownTags_.size() + 1);
        return ownTags_[sym] = "[pid]SIPpTag" + std::string(buf) + "[call_number]";
    }

    std::string cseqKeyword(const TemplateRef &r) {
        if (!cseqFirst_)
            cseqFirst_ = r.offset - (std::max(sippCseq_, 1) - 1);
        long d = (r.offset - *cseqFirst_ + 1) - std::max(sippCseq_, 1);
        return d == 0 ? "[cseq]" : d > 0 ? "[cseq+" + std::to_string(d) + "]" : "[cseq-" + std::to_string(-d) + "]";
    }

    std::string keyword(const TemplateRef &r, size_t element) {
        if (r.symbol == me_ + ".host")
            return "[local_ip]";
        if (r.symbol == me_ + ".port")
            return "[local_port]";
        if (r.symbol == "server.host")
            return "[remote_ip]";
        if (r.symbol == "server.port")
            return "[remote_port]";
        if ("{{" + r.symbol + "}}" == call_)
            return "[call_id]";
        const Symbol *s = symbol(r.symbol);
        if (s && s->owner == me_) {
            if (s->kind == "branch") {
                auto [it, fresh] = branchAt_.emplace(r.symbol, element);
                return fresh || element == it->second ? "[branch]"
                                                      : "[branch-" + std::to_string(element - it->second) + "]";
            }
            if (s->kind == "tag")
                return ownTag(r.symbol);
            if (s->kind == "cseq")
                return cseqKeyword(r);
            if (s->kind == "media-port")
                return "[media_port]";
        }
        auto cap = captured_.find(r.symbol);
        if (cap != captured_.end() && !r.offset)
            return "[$" + cap->second + "]";
        return literal(s, r);
    }

    std::string translate(const std::string &line, size_t element) {
        std::string out;
        size_t last = 0;
        for (const auto &r : templateRefs(line)) {
            out.append(line, last, r.begin - last);
            out += keyword(r, element);
            last = r.end;
        }
        return out + line.substr(last);
    }

    void pause(double seconds) {
        if (seconds >= 0.05)
            elements_.push_back("  <pause milliseconds=\"" + std::to_string(std::lround(seconds * 1000)) + "\"/>\n");
    }

    std::string authLine(const std::string &line) const {
        std::string v = headerValue(line);
        auto u = lower(v).find("username=\"");
        std::string user = u == std::string::npos ? "" : v.substr(u + 10, v.find('"', u + 10) - u - 10);
        const Participant *p = f_.findParticipant(me_);
        std::string password = p && !p->password.empty() ? p->password : "[field0]";
        return "[authentication username=" + (user.empty() ? me_ : user) + " password=" + password + "]";
    }

    std::vector<std::string> requestHead(const Message &m, size_t element) {
        bool inDialog = m.header("to") && m.header("to")->find(";tag=") != std::string::npos;
        bool routed = inDialog && rrs_;
        std::vector<std::string> out;
        out.push_back(routed ? m.method() + " [next_url] SIP/2.0" : translate(m.start, element));
        bool routesDone = false;
        for (const auto &l : m.head) {
            std::string n = headerName(l);
            if (n == "route" && routed) {
                if (!routesDone)
                    out.push_back("[routes]");
                routesDone = true;
            } else if (n == "content-length") {
                out.push_back("Content-Length: [len]");
            } else if (n == "authorization" || n == "proxy-authorization") {
                out.push_back(authLine(l));
            } else {
                out.push_back(translate(l, element));
            }
        }
        return out;
    }

    std::vector<std::string> responseHead(const Message &m, size_t element) {
        std::vector<std::string> out{m.start};
        std::set<std::string> done;
        for (const auto &l : m.head) {
            std::string n = headerName(l);
            static const std::map<std::string, std::string> copied = {{"via", "[last_Via:]"},
                                                                      {"from", "[last_From:]"},
                                                                      {"call-id", "[last_Call-ID:]"},
                                                                      {"cseq", "[last_CSeq:]"},
                                                                      {"record-route", "[last_Record-Route:]"}};
            if (copied.count(n)) {
                if (done.insert(n).second)
                    out.push_back(copied.at(n));
            } else if (n == "to") {
                out.push_back("[last_To:]" + newOwnTag(l));
            } else if (n == "content-length") {
                out.push_back("Content-Length: [len]");
            } else {
                out.push_back(translate(l, element));
            }
        }
        return out;
    }

    // ";tag=..." when this To line carries a tag of ours that was never sent before (the request had none).
    std::string newOwnTag(const std::string &toLine) {
        for (const auto &sym : symbolsOf(toLine)) {
            const Symbol *s = symbol(sym);
            if (s && s->owner == me_ && s->kind == "tag" && !ownTags_.count(sym))
                return ";tag=" + ownTag(sym);
        }
        return "";
    }

    void send(const Step &s, const Step *next) {
        pause(s.delay);
        Message m = split(s);
        size_t element = elements_.size();
        // SIPp's [cseq] counts every message it sends except ACK and CANCEL, responses included.
        if (m.response() || (m.method() != "ACK" && m.method() != "CANCEL"))
            ++sippCseq_;
        std::vector<std::string> lines = m.response() ? responseHead(m, element) : requestHead(m, element);
        lines.push_back("");
        for (const auto &b : m.body)
            lines.push_back(translate(b, element));
        bool retrans = !m.response() && m.method() != "ACK" && lower(transport()) == "udp";
        std::string e = "  <send" + std::string(retrans ? " retrans=\"500\"" : "") + ">\n    <![CDATA[\n\n";
        for (const auto &l : lines)
            e += l.empty() ? "\n" : "      " + l + "\n";
        elements_.push_back(e + "\n    ]]>\n  </send>\n");
        bool next100 = next && next->kind == StepKind::Expect && split(*next).code() == "100";
        if (!m.response() && m.method() == "INVITE" && !next100)
            elements_.push_back("  <recv response=\"100\" optional=\"true\"/>\n");
    }

    // An <ereg> for each server-chosen symbol first seen here that a later <send> uses.
    std::string captures(const Message &m) {
        std::string out;
        auto scan = [&](const std::string &line, const std::string &searchIn, const std::string &header) {
            auto refs = templateRefs(line);
            for (size_t i = 0; i < refs.size(); ++i) {
                const TemplateRef &r = refs[i];
                const Symbol *s = symbol(r.symbol);
                if (!s || s->owner != "server" || captured_.count(r.symbol) || !usedInSends_.count(r.symbol) ||
                    r.offset || "{{" + r.symbol + "}}" == call_)
                    continue;
                size_t from = i == 0 ? (header.empty() ? 0 : line.find(':') + 1) : refs[i - 1].end;
                std::string before = line.substr(from, r.begin - from);
                // Anchor on the text since the last delimiter (";tag=", "<sip:park@"), not the whole line: the
                // server may order parameters differently.
                size_t cut = before.find_last_of(";,<> ?&");
                if (cut != std::string::npos)
                    before = before.substr(cut);
                char stop = r.end < line.size() ? line[r.end] : '\0';
                std::string cls =
                    stop && stop != ']' && stop != '^' && stop != '\\' ? std::string("[^") + stop + " ]+" : "[^;>, ]+";
                std::string var = variableName(r.symbol);
                captured_[r.symbol] = var;
                out += "      <ereg regexp=\"" + xmlEscape(regexEscape(trim(before)) + "(" + cls + ")") +
                       "\" search_in=\"" + searchIn + "\"" +
                       (header.empty() ? "" : " header=\"" + xmlEscape(header) + ":\"") +
                       " check_it=\"true\" assign_to=\"" + var + "_all," + var + "\"/>\n";
                unused_.push_back(var + "_all");
            }
        };
        for (const auto &l : m.head)
            if (std::string n = headerName(l); !n.empty() && n != "via" && n != "cseq")
                scan(l, "hdr", trim(l.substr(0, l.find(':'))));
        for (const auto &l : m.body)
            scan(l, "body", "");
        return out;
    }

    static bool createsDialog(const Message &m) {
        std::string method = m.response() ? m.cseqMethod() : m.method();
        bool ok = !m.response() || m.code()[0] == '2' || (m.code()[0] == '1' && m.code() != "100");
        return ok && (method == "INVITE" || method == "SUBSCRIBE" || method == "REFER" || method == "NOTIFY");
    }

    void recv(const Step &s) {
        Message m = split(s);
        bool rrs = createsDialog(m) && m.header("record-route");
        rrs_ = rrs_ || rrs;
        std::string attrs = m.response() ? "response=\"" + m.code() + "\"" : "request=\"" + m.method() + "\"";
        if (s.optional)
            attrs += " optional=\"true\"";
        if (rrs)
            attrs += " rrs=\"true\"";
        // An optional message may not come: capture from the first one that must.
        std::string actions = s.optional ? "" : captures(m);
        std::string comment =
            "  <!-- step " + std::to_string(s.id) + ": " + xmlEscape(s.note.empty() ? m.summary() : s.note) + " -->\n";
        if (actions.empty())
            elements_.push_back(comment + "  <recv " + attrs + "/>\n");
        else
            elements_.push_back(comment + "  <recv " + attrs + ">\n    <action>\n" + actions +
                                "    </action>\n  </recv>\n");
    }

public:
    std::vector<std::string> unused_; // whole-match variables of <ereg> (SIPp wants every variable used)

    std::string transport() const {
        const Participant *p = f_.findParticipant(me_);
        return p ? p->transport : "udp";
    }
    const std::string &participant() const { return me_; }
};

// Expects that follow the same send are unordered in a fixture (docs/replay.md "Fixture format"); SIPp waits
// for them in the trace's order.
std::vector<std::string> orderWarnings(const Fixture &f) {
    std::vector<std::string> out, group;
    int send = 0;
    auto flush = [&] {
        if (group.size() > 1)
            out.push_back("steps " + joined(group) + " follow step " + std::to_string(send) +
                          " and may come in either order; the scenario waits for them in the trace's order");
        group.clear();
    };
    for (const auto &s : f.steps) {
        if (s.kind == StepKind::Send) {
            flush();
            send = s.id;
        } else if (!s.optional) {
            group.push_back(std::to_string(s.id));
        }
    }
    flush();
    return out;
}

std::string sippTransport(const std::string &t) {
    std::string l = lower(t);
    return l == "tcp" ? "t1" : l == "tls" ? "l1" : "u1";
}

std::string readme(const Fixture &f, const SippExport &e, const std::string &transport, bool uas) {
    std::string notes;
    for (const auto &w : e.warnings)
        notes += "Note: " + w + ".\n";
    std::string cmd = std::string("  sipp ") + (uas ? "" : "SERVER ") + "-sf " + e.fileName +
                      " -m 1 -i LOCAL_IP -p LOCAL_PORT -t " + sippTransport(transport) +
                      " -nostdin -timeout 30s -timeout_error -trace_err\n";
    return "SIPp scenario exported by parkway-replay (docs/replay.md \"Exporting to SIPp\")\n\n"
           "Fixture:     " +
           f.name + (f.description.empty() ? "" : " - " + f.description) + "\n" + "Scenario:    " + e.fileName +
           " (plays participant '" + e.participant + "', " + transport + ")\n\n" +
           (uas ? "The server sends the first request, so SIPp waits for it (UAS mode). Make the server send to\n"
                  "LOCAL_IP:LOCAL_PORT (register that contact first), then run:\n\n"
                : "Run it against the server under test (SERVER = its host:port, LOCAL_IP:LOCAL_PORT = where this\n"
                  "phone sends from):\n\n") +
           cmd +
           "\nExit code 0: the server sent the same messages in the same order with the same status codes.\n"
           "SIPp does not compare headers or bodies; `parkway-replay run` does (it also shortens waits with\n"
           "--speed and recomputes digest answers).\n" +
           (notes.empty() ? "" : "\n" + notes);
}

} // namespace

SippExport sippExport(const Fixture &f) {
    auto problems = sippExportProblems(f);
    if (!problems.empty())
        throw FixtureError("cannot export: " + problems.front());
    ScenarioWriter w(f);
    SippExport e;
    e.participant = w.participant();
    e.fileName = f.name + "_" + e.participant + ".xml";
    e.scenario = w.write();
    // SIPp refuses a scenario with a variable that is assigned but never used: use the whole-match ones.
    if (!w.unused_.empty()) {
        std::string nop = "  <nop>\n    <action>\n";
        for (const auto &v : w.unused_)
            nop += "      <assignstr assign_to=\"" + v + "\" value=\"[$" + v + "]\"/>\n";
        nop += "    </action>\n  </nop>\n";
        e.scenario.insert(e.scenario.rfind("</scenario>"), nop);
    }
    e.warnings = orderWarnings(f);
    e.readme = readme(f, e, w.transport(), f.steps.front().kind == StepKind::Expect);
    return e;
}

} // namespace parkway::replay
