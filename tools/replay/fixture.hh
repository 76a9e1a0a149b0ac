// parkway-replay fixtures: a SIP trace turned into a test (docs/replay.md "Fixture format").
//
// A fixture is a JSON file. The phones of the trace are participants; what they sent are `send` steps; what the
// server sent them are `expect` steps. Every identifier that differs from run to run is a symbol written
// {{name}} inside message templates, so a fixture replays with fresh Call-IDs, tags, branches, CSeq numbers,
// addresses and ports, and the references to them inside other messages follow (a Replaces inside a Refer-To,
// the call-id inside dialog-info XML ...).
//
// Template syntax (inside any message line):
//   {{name}}       the symbol's value
//   {{name+N}}     a numeric symbol plus N (CSeq numbers of one dialog: {{cseq1}}, {{cseq1+1}} ...)
//   {{name|uri}}   the value %-escaped for a URI header or parameter (RFC 3261 §19.1.1: a Replaces inside
//                  a Refer-To URI carries the Call-ID with '@' as %40, ';' as %3B, '=' as %3D)
//   {{name|xml}}   the value escaped for XML text/attributes (&, <, >, ", ')
// Every participant P (and the server) has two implicit symbols, {{P.host}} and {{P.port}}: the address it
// uses at run time. They need no entry in `symbols`.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace parkway::replay {

class FixtureError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Participant {
    std::string name;      // "alice", "bob", ... or "server"
    std::string transport; // "udp" | "tcp" (what it used in the trace)
    std::string address;   // where it was in the trace ("127.0.0.1:5062"), for the reader only
    std::string user;      // the user part it registered / called from ("101"), if any
    std::string password;  // digest password, if the fixture carries one (else given to `run` --password)
};

struct Symbol {
    // call-id | tag | branch | cseq | sdp-session | sdp-version | media-port | token
    std::string kind;
    // Who makes the value: a participant's name (the runner makes a fresh one when that participant first
    // sends it) or "server" (learned from the first server message that carries it).
    std::string owner;
    std::string original; // the value in the trace, for the reader only
};

enum class StepKind { Send, Expect };

struct Step {
    int id = 0;                 // 1, 2, ... in trace order
    StepKind kind = StepKind::Send;
    std::string participant;    // who sends (Send) or who receives (Expect)
    std::vector<int> after;     // steps that must have happened first (partial order, docs/replay.md)
    double delay = 0;           // Send: seconds after the last of `after` in the trace (scaled by --speed)
                                // Expect: how long after the last of `after` it came in the trace
    bool optional = false;      // Expect only: may not come (a 100 Trying, a provisional response)
    std::string note;           // human summary, e.g. "REFER sip:*68102 (park)"
    std::vector<std::string> message; // template lines: start line, headers, "", body lines
    // Expect only: what is compared besides the start line (status code or method + Request-URI user).
    std::vector<std::string> compare; // header names, e.g. {"CSeq", "Event", "Subscription-State"}
    std::string body;           // "sdp" | "dialog-info" | "park-info" | "sipfrag" | "pidf" | "text" | "ignore"
};

struct Fixture {
    int format = 1;
    std::string name;
    std::string description;
    std::string source;                          // the trace file it was imported from
    Participant server;                          // name "server"
    std::vector<Participant> participants;       // the phones
    std::map<std::string, Symbol> symbols;       // by name (without braces)
    std::vector<Step> steps;                     // by id order

    const Participant *findParticipant(const std::string &name) const;
    const Step *findStep(int id) const;
};

// A step the runner does not play because its transaction layer does it: a phone's ACK for a non-2xx final
// response (RFC 3261 §17.1.1.3), a phone's 100 Trying (§17.2.1), the server's ACK for a phone's non-2xx
// (an optional expect). The importer writes such a step's note starting with "auto:".
inline bool automaticStep(const Step &s) {
    return s.note.rfind("auto:", 0) == 0;
}

// JSON text <-> Fixture. loadFixture/parseFixture check the structure (every participant and symbol a step
// names exists, `after` points backwards, templates are well-formed) and throw FixtureError naming the step
// or field otherwise.
Fixture parseFixture(const std::string &jsonText, const std::string &name);
Fixture loadFixture(const std::string &path);
std::string fixtureToJson(const Fixture &f); // pretty, stable key order, one message line per JSON line
void saveFixture(const Fixture &f, const std::string &path);

// ---- templates

struct TemplateRef {
    std::string symbol;  // "call1", "alice.host"
    long offset = 0;     // {{cseq1+2}} -> 2
    std::string filter;  // "", "uri" or "xml"
    size_t begin = 0, end = 0; // position of "{{" and one past "}}" in the line
};
// All {{...}} references of one template line, in order; throws FixtureError on an unclosed or empty one.
std::vector<TemplateRef> templateRefs(const std::string &line);

// Fills a template line. lookup returns a symbol's value, or nullopt when it is unknown; an unknown symbol
// throws FixtureError naming it. A numeric offset on a non-numeric value throws too.
using SymbolLookup = std::function<std::optional<std::string>(const std::string &symbol)>;
std::string fillTemplate(const std::string &line, const SymbolLookup &lookup);
// Joins filled lines into a wire message: CRLF line ends, blank line before the body, Content-Length
// recomputed from the filled body (RFC 3261 §20.14) when the header is present.
std::string renderMessage(const std::vector<std::string> &lines, const SymbolLookup &lookup);

std::string uriEscape(const std::string &value); // the |uri filter
std::string xmlEscape(const std::string &value); // the |xml filter
std::string uriUnescape(const std::string &value);

} // namespace parkway::replay
