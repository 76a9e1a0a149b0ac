#include "wire/bodies.hh"

#include <fmt/format.h>

#include <utf8cpp/utf8.h>

#include <ctime>
#include <iterator>

namespace parkway::callpark {

std::string xmlEscape(std::string_view raw) {
    // XML 1.0 §2.2 allows only characters: a body must be well-formed UTF-8 (we declare encoding="UTF-8"), so
    // an invalid sequence (e.g. an ISO-8859-1 display name) becomes U+FFFD, and the non-characters U+FFFE and
    // U+FFFF (EF BF BE / EF BF BF) are dropped.
    std::string valid;
    if (!utf8::is_valid(raw.begin(), raw.end())) {
        utf8::replace_invalid(raw.begin(), raw.end(), std::back_inserter(valid));
        raw = valid;
    }
    std::string out;
    out.reserve(raw.size() + 8);
    for (size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '\xEF' && i + 2 < raw.size() && raw[i + 1] == '\xBF' &&
            (raw[i + 2] == '\xBE' || raw[i + 2] == '\xBF')) {
            i += 2;
            continue;
        }
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&apos;";
            break;
        // as references, so an attribute value keeps them (XML 1.0 §3.3.3 normalises literal ones to spaces)
        case '\t':
            out += "&#9;";
            break;
        case '\n':
            out += "&#10;";
            break;
        case '\r':
            out += "&#13;";
            break;
        default:
            // XML 1.0 §2.2: C0 controls other than TAB, LF, CR are not allowed at all.
            if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
                break;
            out += c;
        }
    }
    return out;
}

void xmlAttr(std::string &out, std::string_view name, std::string_view value) {
    if (value.empty())
        return;
    out += fmt::format(" {}=\"{}\"", name, xmlEscape(value));
}

std::string_view toString(DialogState s) {
    switch (s) {
    case DialogState::Trying:
        return "trying";
    case DialogState::Proceeding:
        return "proceeding";
    case DialogState::Early:
        return "early";
    case DialogState::Confirmed:
        return "confirmed";
    case DialogState::Terminated:
        return "terminated";
    }
    return "terminated";
}

std::string_view toString(ParkInfoState s) {
    switch (s) {
    case ParkInfoState::Parked:
        return "parked";
    case ParkInfoState::Retrieved:
        return "retrieved";
    case ParkInfoState::Recalled:
        return "recalled";
    case ParkInfoState::Abandoned:
        return "abandoned";
    }
    return "parked";
}

namespace {

std::string identity(std::string_view tag, const Identity &id) {
    std::string out = fmt::format("<{}", tag);
    xmlAttr(out, "display", id.display);
    out += fmt::format(">{}</{}>", xmlEscape(id.uri), tag);
    return out;
}

} // namespace

std::string buildDialogInfo(std::string_view entity, uint64_t version, DialogInfoState state,
                            const std::vector<DialogInfoDialog> &dialogs) {
    bool bw = false;
    for (const auto &d : dialogs)
        bw = bw || d.broadworksCallpark;
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out += "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\"";
    if (bw)
        out += " xmlns:bw=\"http://schema.broadsoft.com/callpark\"";
    out += fmt::format(" version=\"{}\" state=\"{}\" entity=\"{}\">\n", version,
                       state == DialogInfoState::Full ? "full" : "partial", xmlEscape(entity));
    for (const auto &d : dialogs) {
        out += "  <dialog";
        xmlAttr(out, "id", d.id.empty() ? std::string_view("0") : std::string_view(d.id)); // id is required
        xmlAttr(out, "call-id", d.callId);
        xmlAttr(out, "local-tag", d.localTag);
        xmlAttr(out, "remote-tag", d.remoteTag);
        xmlAttr(out, "direction", d.direction);
        out += ">\n    <state";
        if (d.state == DialogState::Terminated)
            xmlAttr(out, "event", d.stateEvent);
        out += fmt::format(">{}</state>\n", toString(d.state));
        if (!d.local.uri.empty() || !d.localTarget.empty()) {
            out += "    <local>";
            if (!d.local.uri.empty())
                out += identity("identity", d.local);
            if (!d.localTarget.empty())
                out += fmt::format("<target uri=\"{}\"/>", xmlEscape(d.localTarget));
            out += "</local>\n";
        }
        if (!d.remote.uri.empty() || !d.remoteTarget.empty()) {
            out += "    <remote>";
            if (!d.remote.uri.empty())
                out += identity("identity", d.remote);
            if (!d.remoteTarget.empty())
                out += fmt::format("<target uri=\"{}\"/>", xmlEscape(d.remoteTarget));
            out += "</remote>\n";
        }
        if (d.broadworksCallpark && !d.remote.uri.empty()) {
            // park-signaling.md §3.2: BroadWorks park status inside BLF dialog-info. The inner <identity>
            // is in the dialog-info default namespace, as BroadWorks sends it.
            out += "    <bw:callpark><bw:parked>" + identity("identity", d.remote) + "</bw:parked></bw:callpark>\n";
        }
        out += "  </dialog>\n";
    }
    out += "</dialog-info>\n";
    return out;
}

std::string isoUtc(int64_t unixSeconds) {
    std::time_t t = static_cast<std::time_t>(unixSeconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec);
}

std::string buildParkInfo(std::string_view entity, uint64_t version, const std::vector<ParkInfoEntry> &entries) {
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out += fmt::format("<park-info xmlns=\"urn:parkway:params:xml:ns:park-info\" version=\"{}\" entity=\"{}\">\n",
                       version, xmlEscape(entity));
    for (const auto &e : entries) {
        out += "  <parked";
        xmlAttr(out, "id", e.id);
        xmlAttr(out, "state", toString(e.state));
        out += ">\n";
        out += fmt::format("    <parked-on>{}</parked-on>\n", xmlEscape(e.parkedOn));
        if (!e.parker.uri.empty())
            out += "    " + identity("parker", e.parker) + "\n";
        if (!e.parkedParty.uri.empty())
            out += "    " + identity("parked-party", e.parkedParty) + "\n";
        if (!e.retrieve.empty())
            out += fmt::format("    <retrieve>{}</retrieve>\n", xmlEscape(e.retrieve));
        if (!e.group.empty())
            out += fmt::format("    <group>{}</group>\n", xmlEscape(e.group));
        if (!e.lot.empty()) {
            out += "    <lot";
            xmlAttr(out, "slot", e.slot);
            out += fmt::format(">{}</lot>\n", xmlEscape(e.lot));
        }
        if (e.parkedAt > 0)
            out += fmt::format("    <parked-at>{}</parked-at>\n", isoUtc(e.parkedAt));
        if (e.recallAt > 0)
            out += fmt::format("    <recall-at>{}</recall-at>\n", isoUtc(e.recallAt));
        if (e.changedAt > 0)
            out += fmt::format("    <changed-at>{}</changed-at>\n", isoUtc(e.changedAt));
        out += "  </parked>\n";
    }
    out += "</park-info>\n";
    return out;
}

std::string buildBroadWorksCallparkInfo(const std::optional<Identity> &parked) {
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<x-broadworks-callpark-info xmlns=\"http://schema.broadsoft.com/callpark\">\n";
    if (!parked) {
        out += "  <callpark/>\n";
    } else {
        out +=
            "  <callpark>\n    <parked>\n      " + identity("identity", *parked) + "\n    </parked>\n  </callpark>\n";
    }
    out += "</x-broadworks-callpark-info>\n";
    return out;
}

std::string_view defaultReasonPhrase(int status) {
    switch (status) {
    case 100:
        return "Trying";
    case 180:
        return "Ringing";
    case 181:
        return "Call Is Being Forwarded";
    case 182:
        return "Queued";
    case 183:
        return "Session Progress";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 410:
        return "Gone";
    case 480:
        return "Temporarily Unavailable";
    case 481:
        return "Call/Transaction Does Not Exist";
    case 486:
        return "Busy Here";
    case 487:
        return "Request Terminated";
    case 488:
        return "Not Acceptable Here";
    case 500:
        return "Server Internal Error";
    case 503:
        return "Service Unavailable";
    case 600:
        return "Busy Everywhere";
    case 603:
        return "Decline";
    default:
        break;
    }
    if (status < 200)
        return "Trying";
    if (status < 300)
        return "OK";
    if (status < 400)
        return "Redirect";
    if (status < 500)
        return "Request Failure";
    if (status < 600)
        return "Server Failure";
    return "Global Failure";
}

std::string buildSipfrag(int status, std::string_view reason) {
    if (status < 100 || status > 699)
        status = 500;
    // Reason-Phrase may not contain CR/LF (RFC 3261 §25.1); a fragment is one status line.
    std::string r;
    for (char c : reason.empty() ? defaultReasonPhrase(status) : reason)
        if (c != '\r' && c != '\n')
            r += c;
    return fmt::format("SIP/2.0 {} {}\r\n", status, r);
}

} // namespace parkway::callpark
