// Enum names, settings helpers and the recall ladder.
#include "parkway/engine/types.hh"
#include "parkway/engine/rules.hh"

#include <fmt/format.h>

namespace parkway::engine {

const char *toString(OccupiedPolicy v) {
    return v == OccupiedPolicy::Reject ? "reject" : "stack";
}

const char *toString(RecallMode v) {
    switch (v) {
    case RecallMode::Parker:
        return "parker";
    case RecallMode::ParkerThenAlternate:
        return "parker_then_alternate";
    case RecallMode::AlternateOnly:
        return "alternate_only";
    }
    return "?";
}

const char *toString(SlotChoice v) {
    return v == SlotChoice::First ? "first" : "next";
}

const char *toString(CallState v) {
    switch (v) {
    case CallState::Parked:
        return "parked";
    case CallState::Recalling:
        return "recalling";
    case CallState::Retrieving:
        return "retrieving";
    case CallState::Gone:
        return "gone";
    }
    return "?";
}

const char *toString(ErrorCode v) {
    switch (v) {
    case ErrorCode::None:
        return "none";
    case ErrorCode::Occupied:
        return "occupied";
    case ErrorCode::GroupFull:
        return "group_full";
    case ErrorCode::NoGroup:
        return "no_group";
    case ErrorCode::UnknownExtension:
        return "unknown_extension";
    case ErrorCode::UnknownLot:
        return "unknown_lot";
    case ErrorCode::LotFull:
        return "lot_full";
    case ErrorCode::BadSlot:
        return "bad_slot";
    case ErrorCode::Forbidden:
        return "forbidden";
    case ErrorCode::NotFound:
        return "not_found";
    case ErrorCode::Busy:
        return "busy";
    case ErrorCode::BadState:
        return "bad_state";
    case ErrorCode::BadRequest:
        return "bad_request";
    case ErrorCode::BadRule:
        return "bad_rule";
    case ErrorCode::Storage:
        return "storage";
    case ErrorCode::DomainFull:
        return "domain_full";
    case ErrorCode::ExtensionFull:
        return "extension_full";
    case ErrorCode::NotOwner:
        return "not_owner";
    }
    return "?";
}

const char *toString(TargetKind k) {
    switch (k) {
    case TargetKind::Extension:
        return "extension";
    case TargetKind::Slot:
        return "slot";
    case TargetKind::Group:
        return "group";
    case TargetKind::Lot:
        return "lot";
    }
    return "?";
}

const char *toString(EventKind k) {
    switch (k) {
    case EventKind::Parked:
        return "parked";
    case EventKind::RetrieveStarted:
        return "retrieve-started";
    case EventKind::Retrieved:
        return "retrieved";
    case EventKind::RetrieveAborted:
        return "retrieve-aborted";
    case EventKind::RecallStarted:
        return "recall-started";
    case EventKind::RecallFailed:
        return "recall-failed";
    case EventKind::Abandoned:
        return "abandoned";
    case EventKind::Moved:
        return "moved";
    }
    return "?";
}

const char *toString(Action a) {
    switch (a) {
    case Action::None:
        return "none";
    case Action::Park:
        return "park";
    case Action::GroupPark:
        return "group_park";
    case Action::Retrieve:
        return "retrieve";
    case Action::Watch:
        return "watch";
    case Action::Route:
        return "route";
    case Action::Reject:
        return "reject";
    }
    return "?";
}

const char *toString(TransferToSlot t) {
    switch (t) {
    case TransferToSlot::Off:
        return "off";
    case TransferToSlot::Park:
        return "park";
    case TransferToSlot::ParkOrNext:
        return "park_or_next";
    }
    return "?";
}

std::optional<OccupiedPolicy> parseOccupiedPolicy(std::string_view s) {
    if (s == "reject")
        return OccupiedPolicy::Reject;
    if (s == "stack")
        return OccupiedPolicy::Stack;
    return std::nullopt;
}

std::optional<RecallMode> parseRecallMode(std::string_view s) {
    if (s == "parker")
        return RecallMode::Parker;
    if (s == "parker_then_alternate")
        return RecallMode::ParkerThenAlternate;
    if (s == "alternate_only")
        return RecallMode::AlternateOnly;
    return std::nullopt;
}

std::optional<SlotChoice> parseSlotChoice(std::string_view s) {
    if (s == "first")
        return SlotChoice::First;
    if (s == "next")
        return SlotChoice::Next;
    return std::nullopt;
}

std::optional<CallState> parseCallState(std::string_view s) {
    if (s == "parked")
        return CallState::Parked;
    if (s == "recalling")
        return CallState::Recalling;
    if (s == "retrieving")
        return CallState::Retrieving;
    if (s == "gone")
        return CallState::Gone;
    return std::nullopt;
}

std::optional<RecallTarget> RecallTarget::parse(std::string_view text) {
    auto startsWith = [&](std::string_view p) { return text.substr(0, p.size()) == p; };
    RecallTarget t;
    if (text.empty())
        return std::nullopt;
    if (text == "parker") {
        t.kind = Kind::Parker;
    } else if (startsWith("ext:")) {
        t.kind = Kind::Extension;
        t.value = std::string(text.substr(4));
    } else if (startsWith("group:")) {
        t.kind = Kind::Group;
        t.value = std::string(text.substr(6));
    } else if (startsWith("number:")) {
        t.kind = Kind::Number;
        t.value = std::string(text.substr(7));
    } else if (startsWith("sip:") || startsWith("sips:") || startsWith("tel:")) {
        t.kind = Kind::Number;
        t.value = std::string(text);
    } else {
        t.kind = Kind::Extension;
        t.value = std::string(text);
    }
    if (t.kind != Kind::Parker && t.value.empty())
        return std::nullopt;
    return t;
}

std::string RecallTarget::toString() const {
    switch (kind) {
    case Kind::Parker:
        return "parker";
    case Kind::Extension:
        return "ext:" + value;
    case Kind::Group:
        return "group:" + value;
    case Kind::Number:
        return "number:" + value;
    }
    return {};
}

bool RecallOverrides::empty() const {
    return !recallSeconds && !mode && !ringSeconds && !alternateWaitSeconds && !retrySeconds && !alternate &&
           !occupied && !maxParkSeconds;
}

void RecallOverrides::applyTo(RecallSettings &s) const {
    if (recallSeconds)
        s.recallSeconds = *recallSeconds;
    if (mode)
        s.mode = *mode;
    if (ringSeconds)
        s.ringSeconds = *ringSeconds;
    if (alternateWaitSeconds)
        s.alternateWaitSeconds = *alternateWaitSeconds;
    if (retrySeconds)
        s.retrySeconds = *retrySeconds;
    if (alternate)
        s.alternate = alternate;
    if (maxParkSeconds)
        s.maxParkSeconds = *maxParkSeconds;
}

namespace {
std::string checkRange(const char *field, int v, int lo, int hi) {
    if (v < lo || v > hi)
        return fmt::format("{} must be {}..{} (got {})", field, lo, hi, v);
    return {};
}

// FAC format (docs/engine.md "Model and settings", PortSIP): 1–3 characters from `*`/`#`, then 0–4 digits; 2–7
// characters in all.
std::string checkCode(const char *field, const std::string &code) {
    size_t i = 0;
    while (i < code.size() && (code[i] == '*' || code[i] == '#'))
        ++i;
    size_t digits = code.size() - i;
    bool allDigits = true;
    for (size_t j = i; j < code.size(); ++j)
        allDigits = allDigits && code[j] >= '0' && code[j] <= '9';
    if (i < 1 || i > 3 || digits > 4 || !allDigits || code.size() < 2 || code.size() > 7)
        return fmt::format("{} '{}' is not a feature code (1-3 of '*'/'#' then 0-4 digits, 2-7 characters)", field,
                           code);
    return {};
}
} // namespace

std::string validate(const RecallOverrides &o) {
    std::string e;
    if (o.recallSeconds && !(e = checkRange("recall", *o.recallSeconds, 1, 3600)).empty())
        return e;
    if (o.ringSeconds && !(e = checkRange("ring", *o.ringSeconds, 1, 3600)).empty())
        return e;
    if (o.alternateWaitSeconds && !(e = checkRange("wait", *o.alternateWaitSeconds, 1, 3600)).empty())
        return e;
    if (o.retrySeconds && !(e = checkRange("retry", *o.retrySeconds, 0, 3600)).empty())
        return e;
    if (o.maxParkSeconds && !(e = checkRange("max_park", *o.maxParkSeconds, 0, 86400)).empty())
        return e;
    return {};
}

std::string validate(const DomainSettings &s) {
    if (s.name.empty())
        return "domain: name is empty";
    std::string e;
    if (!(e = checkCode("park_code", s.parkCode)).empty())
        return e;
    if (!(e = checkCode("group_park_code", s.groupParkCode)).empty())
        return e;
    if (!(e = checkCode("retrieve_code", s.retrieveCode)).empty())
        return e;
    if (s.parkCode == s.groupParkCode || s.parkCode == s.retrieveCode || s.groupParkCode == s.retrieveCode)
        return "feature codes must differ (a dial string that parks would never retrieve)";
    if (!(e = checkRange("recall_seconds", s.recall.recallSeconds, 1, 3600)).empty())
        return e;
    if (!(e = checkRange("ring_seconds", s.recall.ringSeconds, 1, 3600)).empty())
        return e;
    if (!(e = checkRange("alternate_wait", s.recall.alternateWaitSeconds, 1, 3600)).empty())
        return e;
    if (!(e = checkRange("retry_seconds", s.recall.retrySeconds, 0, 3600)).empty())
        return e;
    if (s.recall.mode != RecallMode::Parker && !s.recall.alternate)
        return fmt::format("recall_mode {} needs an alternate destination", toString(s.recall.mode));
    if (!(e = checkRange("max_park_seconds", s.recall.maxParkSeconds, 0, 86400)).empty())
        return e;
    if (!(e = checkRange("max_parked", s.maxParked, 0, 1000000)).empty())
        return e;
    if (!(e = checkRange("max_parked_per_extension", s.maxParkedPerExtension, 0, 1000000)).empty())
        return e;
    return {};
}

std::vector<LadderRung> recallLadder(const RecallSettings &s) {
    RecallTarget parker;
    RecallTarget alt = s.alternate.value_or(RecallTarget{});
    switch (s.mode) {
    case RecallMode::Parker:
        return {{1, parker, s.ringSeconds, s.retrySeconds, true}};
    case RecallMode::ParkerThenAlternate:
        return {{1, parker, s.alternateWaitSeconds, 0, false}, {2, alt, s.ringSeconds, s.retrySeconds, true}};
    case RecallMode::AlternateOnly:
        return {{1, alt, s.ringSeconds, s.retrySeconds, true}};
    }
    return {};
}

std::string Target::key() const {
    switch (kind) {
    case TargetKind::Extension:
        return "ext:" + name;
    case TargetKind::Slot:
        return fmt::format("slot:{}/{}", name, slot);
    case TargetKind::Group:
        return "group:" + name;
    case TargetKind::Lot:
        return "lot:" + name;
    }
    return {};
}

const std::string *Classification::attr(std::string_view key) const {
    for (auto it = attrs.rbegin(); it != attrs.rend(); ++it)
        if (it->first == key)
            return &it->second;
    return nullptr;
}

} // namespace parkway::engine
