// parkway-replay import --anonymize (docs/replay.md "Importing a trace"): user parts and display names mapped
// consistently across a whole trace, digest values scrubbed. Works on message text, before symbolizing.
#pragma once
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace parkway::replay::importer {

class Anonymizer {
public:
    // The phones' own users (From of what they send, To of what they receive out of dialog, Contact): these
    // are mapped. Every other URI user (feature codes, the server's own users, numbers dialled) stays.
    void addIdentity(const std::string &user);
    // Every URI user in the trace: the mapped names avoid them.
    void addSeenUser(const std::string &user) { seen_.insert(user); }
    void addDisplay(const std::string &display);
    // Assigns the mapped names in the order identities and displays were added (call once, after adding).
    void plan();

    // A user part as it is written after mapping: an identity -> its new name; "*68" + identity -> "*68" +
    // its new name (the feature code stays); anything else unchanged.
    std::string mapUser(const std::string &user) const;
    // The whole message rewritten: URIs (sip:, sips:, tel:) everywhere, display names, Authorization
    // username (and nonce/response/cnonce -> "x"), challenge nonce/opaque -> "x", the SDP o= user.
    std::string rewrite(const std::string &message) const;

    const std::vector<std::pair<std::string, std::string>> &userMap() const { return userOrder_; }
    const std::vector<std::pair<std::string, std::string>> &displayMap() const { return displayOrder_; }

private:
    std::string rewriteLine(const std::string &line, bool body) const;
    std::string rewriteUris(const std::string &line) const;
    std::string rewriteDisplays(const std::string &line, bool header) const;

    std::vector<std::string> identities_, displays_;
    std::set<std::string> seen_;
    std::map<std::string, std::string> users_, names_;
    std::vector<std::pair<std::string, std::string>> userOrder_, displayOrder_;
};

// The display name of a name-addr header value ("\"Bob\" <sip:...>" or "Bob <sip:...>"), unquoted; "" if none.
std::string displayNameOf(const std::string &value);

} // namespace parkway::replay::importer
