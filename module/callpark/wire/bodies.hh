// Notification bodies the call-park module sends: RFC 4235 dialog-info, our park-info
// (docs/park-info.md), BroadWorks x-broadworks-callpark-info, and message/sipfrag for REFER NOTIFYs.
// Every value is XML-escaped here; callers pass raw text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::callpark {

inline constexpr std::string_view kDialogInfoContentType = "application/dialog-info+xml";
inline constexpr std::string_view kParkInfoContentType = "application/x-park-info+xml";
inline constexpr std::string_view kBroadWorksCallparkContentType = "application/x-broadworks-callpark-info+xml";
inline constexpr std::string_view kSipfragContentType = "message/sipfrag;version=2.0";

// & < > " ' -> entities; control characters other than tab/CR/LF are dropped (not allowed in XML 1.0).
std::string xmlEscape(std::string_view text);
// Appends ` name="value"` (escaped) to out; nothing when value is empty.
void xmlAttr(std::string &out, std::string_view name, std::string_view value);

// An identity with an optional display name (a SIP URI, raw, not escaped).
struct Identity {
    std::string uri;
    std::string display;
};

// ---------------------------------------------------------------- RFC 4235 dialog-info

enum class DialogInfoState { Full, Partial };
enum class DialogState { Trying, Proceeding, Early, Confirmed, Terminated };
std::string_view toString(DialogState s);

struct DialogInfoDialog {
    std::string id;        // required by RFC 4235 §4.1.1; e.g. the parked call's id
    std::string callId;    // of the park leg at the module, so Replaces pickup works (§3.1)
    std::string localTag;  // our tag on the park leg
    std::string remoteTag; // the parked party's tag
    std::string direction; // "initiator" | "recipient" | "" (omitted)
    DialogState state = DialogState::Early;
    std::string stateEvent;          // for terminated: "cancelled", "rejected", "replaced", "local-bye", "remote-bye",
                                     // "error", "timeout" or "" (omitted)
    Identity remote;                 // the parked party: <remote><identity display=..>uri</identity>
    std::string remoteTarget;        // <remote><target uri=../> ("" = omitted)
    Identity local;                  // the slot: <local><identity>slot uri</identity>
    std::string localTarget;         // <local><target uri=../>, e.g. the retrieve URI sip:*88103@d ("" = omitted)
    bool broadworksCallpark = false; // add <bw:callpark><bw:parked><identity> (park-signaling.md §3.2)
};

// <?xml ...?><dialog-info xmlns=... version=N state=full|partial entity=...> with one <dialog> per entry.
// An empty `dialogs` is the idle full state (no <dialog> child).
std::string buildDialogInfo(std::string_view entity, uint64_t version, DialogInfoState state,
                            const std::vector<DialogInfoDialog> &dialogs);

// ---------------------------------------------------------------- park-info (our design, docs/park-info.md)

enum class ParkInfoState { Parked, Retrieved, Recalled, Abandoned };
std::string_view toString(ParkInfoState s);

struct ParkInfoEntry {
    std::string id; // the parked call's id (stable for its life)
    ParkInfoState state = ParkInfoState::Parked;
    std::string parkedOn;  // sip:103@d
    Identity parker;       // who parked it
    Identity parkedParty;  // who is waiting
    std::string retrieve;  // retrieve dial string as a URI, sip:*88103@d
    std::string group;     // group park: the group's name ("" = omitted)
    std::string lot;       // lot name ("" = omitted)
    std::string slot;      // lot slot ("" = omitted)
    int64_t parkedAt = 0;  // unix seconds (UTC)
    int64_t recallAt = 0;  // unix seconds, 0 = omitted
    int64_t changedAt = 0; // unix seconds of this state change, 0 = omitted
};

// <park-info xmlns="urn:parkway:params:xml:ns:park-info" version=N entity=...> one <parked> per entry.
std::string buildParkInfo(std::string_view entity, uint64_t version, const std::vector<ParkInfoEntry> &entries);

// ISO 8601 UTC, "2026-11-24T23:59:01Z".
std::string isoUtc(int64_t unixSeconds);

// ---------------------------------------------------------------- BroadWorks (park-signaling.md §3.3)

// <callpark/> when nothing is parked, else <callpark><parked><identity display=..>uri</identity></parked></callpark>
std::string buildBroadWorksCallparkInfo(const std::optional<Identity> &parked);

// ---------------------------------------------------------------- message/sipfrag (RFC 3515 §2.4.5)

// "SIP/2.0 <status> <reason>\r\n"; an empty reason takes the RFC 3261 default phrase for the code.
std::string buildSipfrag(int status, std::string_view reason = {});
std::string_view defaultReasonPhrase(int status);

} // namespace parkway::callpark
