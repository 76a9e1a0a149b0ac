#include "wire/pidf.hh"

#include <fmt/format.h>

namespace parkway::callpark {

std::string buildPidf(std::string_view entity, const std::vector<Identity> &parked) {
    // RFC 3863 §4: <presence entity=..> in the PIDF namespace with one <tuple> (a stable id, an xs:ID: it must
    // not start with a digit, so not the slot number) and its <status><basic>.
    // The prefixes "dm" (RFC 4479) and "rpid" (RFC 4480) are the conventional ones: some clients match
    // "<rpid:on-the-phone/>" literally instead of resolving the namespace.
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out += fmt::format("<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" "
                       "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
                       "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"{}\">\n",
                       xmlEscape(entity));
    out += "  <tuple id=\"park-slot\">\n";
    out += "    <status><basic>open</basic></status>\n";
    if (!parked.empty()) {
        std::string who;
        for (const Identity &p : parked) {
            if (!who.empty())
                who += ", ";
            who += p.display.empty() ? p.uri : p.display;
        }
        out += fmt::format("    <note>Parked: {}</note>\n", xmlEscape(who));
    }
    out += "  </tuple>\n";
    if (!parked.empty()) {
        // RFC 4480 <activities> in the person component (RFC 4479); on-the-phone = busy.
        out += "  <dm:person id=\"park-slot-person\">\n";
        out += "    <rpid:activities><rpid:on-the-phone/></rpid:activities>\n";
        out += "  </dm:person>\n";
    }
    out += "</presence>\n";
    return out;
}

} // namespace parkway::callpark
