// parkway-replay import: turns the identifiers of captured messages into {{symbols}} (docs/replay.md
// "Importing a trace"). Messages are fed in trace order; a value gets its symbol the first time it is seen,
// owned by the sender of that message (fixture.hh Symbol::owner).
#pragma once
#include "fixture.hh"
#include "import_sip.hh"
#include "trace.hh"

#include <deque>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace parkway::replay::importer {

// Who is where: every address of a participant (and of the server) -> its name.
struct Owners {
    std::map<Address, std::string> byAddress;
    std::map<std::string, std::vector<std::string>> byIp; // ip -> names in participant order, "server" last
    // The owner of an address; "" if unknown. With only an IP (port 0 or unknown), several names may share it
    // (everything on 127.0.0.1): the sender if it is one of them, else the server, else the first.
    std::string ownerOf(const std::string &ip, int port, const std::string &sender, bool *exact) const;
};

class Symbolizer {
public:
    Symbolizer(std::map<std::string, Symbol> &symbols, const Owners &owners) : symbols_(symbols), owners_(owners) {}

    // Registers the identifiers first seen in `m` (owner `sender`) and returns its template lines: start line,
    // header lines, and — when there is a body — "" and the body lines.
    std::vector<std::string> symbolize(const SipText &m, const std::string &sender);

    // The symbol of an opaque value (Call-ID, tag, branch), or "".
    std::string symbolOf(const std::string &value) const;

private:
    struct Seq {
        long base;
        std::string name;
    };
    std::string newSymbol(const std::string &prefix, const std::string &kind, const std::string &original,
                          const std::string &owner);
    void addId(const std::string &kind, const std::string &prefix, const std::string &value, const std::string &owner);
    void addVariant(const std::string &text, const std::string &replacement);
    void registerIds(const SipText &m, const std::string &owner);
    void registerDialogRef(const std::string &value, const std::string &owner);
    std::string seqRef(std::vector<Seq> &seqs, const std::string &prefix, const std::string &kind, long n,
                       const std::string &owner);
    std::string cseqRef(const SipText &m, long n, const std::string &owner);

    std::string header(const SipText &m, size_t i, const std::string &sender);
    std::string eventLine(const SipText &m, const std::string &line, const std::string &value,
                          const std::string &sender);
    std::vector<std::string> sdp(const std::vector<std::string> &lines, const std::string &sender);
    std::string ids(const std::string &line, size_t contextStart) const;
    const std::pair<std::string, std::string> *variantAt(const std::string &line, size_t i, size_t contextStart) const;
    std::string addresses(const std::string &line, const std::string &sender) const;
    std::string rport(const std::string &line) const;

    std::map<std::string, Symbol> &symbols_;
    const Owners &owners_;
    std::map<std::string, int> counters_;
    std::map<std::string, std::string> ids_;                                // value -> symbol
    std::deque<std::pair<std::string, std::string>> variants_;              // text -> replacement
    std::unordered_map<std::string_view, std::vector<size_t>> byPrefix_;    // first characters -> variants_ indexes
    std::unordered_set<std::string_view> prefixes_;                         // every prefix up to that length
    std::set<std::string> variantTexts_;                                    // every variant text (first wins)
    std::map<std::pair<std::string, std::string>, std::vector<Seq>> cseqs_; // (Call-ID, sequence key)
    std::map<std::pair<std::string, long>, std::string> refers_;            // (Call-ID, CSeq) -> sequence key
    std::map<std::pair<std::string, std::string>, std::string> eventIds_;   // (Call-ID, id) -> symbol
    std::map<std::string, std::string> sdpSessions_;                        // "user sess-id" -> symbol
    std::map<std::string, std::vector<Seq>> sdpVersions_;                   // "user sess-id"
    std::map<std::string, std::string> mediaPorts_;                         // "addr port" -> symbol
};

// True for characters of an RFC 3261 token (alphanum and -.!%*_+`'~): identifiers are replaced only where
// they are not part of a longer token.
bool tokenChar(char c);

} // namespace parkway::replay::importer
