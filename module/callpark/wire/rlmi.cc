#include "wire/rlmi.hh"

#include "wire/bodies.hh"

#include <fmt/format.h>

namespace parkway::callpark {

namespace {

// Header field values may not contain CR/LF (RFC 5322 §2.2, RFC 2045 §3).
std::string oneLine(std::string_view v) {
    std::string out;
    for (char c : v)
        if (c != '\r' && c != '\n')
            out += c;
    return out;
}

} // namespace

std::string buildRlmi(std::string_view listUri, uint64_t version, bool fullState,
                      const std::vector<RlmiResource> &resources) {
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    // RFC 4662 §5.2: uri, version (+1 per NOTIFY in the subscription, from 0) and fullState are required.
    out += fmt::format("<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"{}\" version=\"{}\" fullState=\"{}\">\n",
                       xmlEscape(listUri), version, fullState ? "true" : "false");
    for (const auto &r : resources) {
        out += "  <resource";
        xmlAttr(out, "uri", r.uri);
        out += ">\n";
        if (!r.name.empty())
            out += fmt::format("    <name>{}</name>\n", xmlEscape(r.name));
        out += "    <instance";
        xmlAttr(out, "id", r.instanceId.empty() ? std::string_view("0") : std::string_view(r.instanceId));
        xmlAttr(out, "state", r.state);
        if (r.state == "terminated")
            xmlAttr(out, "reason", r.reason);
        xmlAttr(out, "cid", r.cid);
        out += "/>\n  </resource>\n";
    }
    out += "</list>\n";
    return out;
}

MultipartBody buildMultipartRelated(const std::vector<MimePart> &parts, std::string_view boundarySeed) {
    MultipartBody mb;
    // RFC 2046 §5.1.1: the boundary must not occur in any encapsulated part; 1..70 characters from bcharsnospace.
    std::string boundary = boundarySeed.empty() ? std::string("pw-boundary") : std::string(boundarySeed);
    auto occurs = [&](const std::string &b) {
        for (const auto &p : parts)
            if (p.body.find(b) != std::string::npos || p.contentType.find(b) != std::string::npos ||
                p.contentId.find(b) != std::string::npos)
                return true;
        return false;
    };
    for (unsigned n = 0; occurs(boundary); ++n)
        boundary += fmt::format("{:x}", n % 16);
    if (boundary.size() > 70)
        boundary.resize(70); // seeds are short; cannot happen in practice
    mb.boundary = boundary;
    for (const auto &p : parts) {
        mb.body += fmt::format("--{}\r\n", boundary);
        mb.body += "Content-Transfer-Encoding: binary\r\n";
        if (!p.contentId.empty())
            mb.body += fmt::format("Content-ID: <{}>\r\n", oneLine(p.contentId));
        mb.body += fmt::format("Content-Type: {}\r\n\r\n", oneLine(p.contentType));
        mb.body += p.body;
        mb.body += "\r\n"; // the CRLF before the next delimiter belongs to the delimiter (RFC 2046 §5.1.1)
    }
    mb.body += fmt::format("--{}--\r\n", boundary);
    // RFC 2387 §3.1-3.2: type = the root's content type, start = the root's Content-ID (with <>).
    std::string rootType = parts.empty() ? std::string(kRlmiContentType) : oneLine(parts.front().contentType);
    mb.contentType = fmt::format("multipart/related;type=\"{}\"", rootType);
    if (!parts.empty() && !parts.front().contentId.empty())
        mb.contentType += fmt::format(";start=\"<{}>\"", oneLine(parts.front().contentId));
    mb.contentType += fmt::format(";boundary=\"{}\"", boundary);
    return mb;
}

} // namespace parkway::callpark
