// RFC 3863 PIDF presence documents for presence BLF of park slots (RFC 3856 `Event: presence`), with the
// RFC 4480 (RPID) activity that marks a slot as in use. Pure: every value is XML-escaped here (xmlEscape).
#pragma once

#include "wire/bodies.hh"

#include <string>
#include <string_view>
#include <vector>

namespace parkway::callpark {

inline constexpr std::string_view kPidfContentType = "application/pidf+xml";

// The presence of a watched park slot / lot / group as a presence document:
//   * nothing parked: one <tuple> with <status><basic>open</basic></status> and nothing else (free key);
//   * calls parked: basic stays "open" (the slot can still be dialled: RFC 3863 §4 "open" means the contact
//     can accept communication, and "closed" reads as offline on most clients), plus
//     <note>Parked: who[, who...]</note> in the tuple (RFC 3863 §4) and the RFC 4480 activity
//     <rpid:on-the-phone/> in a <dm:person> (RFC 4479 person component), which BLF-over-presence clients show
//     as busy.
// `parked` are the parked parties in park order; a party without a display name is shown by its URI.
std::string buildPidf(std::string_view entity, const std::vector<Identity> &parked);

} // namespace parkway::callpark
