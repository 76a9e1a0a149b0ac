// Where park-info NOTIFYs and recall INVITEs to a user go (docs/routing.md): the contacts our registrar holds,
// or the user's AOR sent through the outbound proxy, whose own registrar finds the phones (a carrier's front
// proxy), as the notify_target setting says.
#include "callpark.hh"

namespace parkway::callpark {

namespace {

void collectDestination(void *arg, const pw_contact *c) {
    if (!c)
        return;
    std::string path = str(c->path), received = str(c->received);
    // RFC 3327 §5.2: a contact registered with a Path is reached through it: the host puts the Path as Route
    // headers and sends to its first URI. Path values are name-addrs ("<sip:edge;lr>").
    if (!path.empty() && path.front() != '<')
        path = "<" + path + ">";
    static_cast<std::vector<CallPark::Destination> *>(arg)->push_back({str(c->uri), path.empty() ? received : path});
}

} // namespace

std::vector<CallPark::Destination> CallPark::destinationsFor(const std::string &aorUri,
                                                             const std::string &domain) const {
    std::vector<Destination> out;
    NotifyTarget mode = settings_.notifyTarget;
    bool outbound = !host_.coreSetting(("outbound_proxy:" + domain).c_str()).empty();
    if (mode != NotifyTarget::Aor || !outbound)
        host_.api()->location_lookup(host_.raw(), ps(aorUri), collectDestination, &out);
    if (mode == NotifyTarget::Contacts || !out.empty() || !outbound)
        return out;
    // No hop: the host sends it to the outbound proxy of the domain with a preloaded Route (module.h).
    out.push_back({aorUri, ""});
    return out;
}

} // namespace parkway::callpark
