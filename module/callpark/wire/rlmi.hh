// RFC 4662 event lists: the RLMI document (application/rlmi+xml) and the multipart/related body (RFC 2387)
// that carries it with one part per resource. Every value is XML-escaped here; callers pass raw text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace parkway::callpark {

inline constexpr std::string_view kRlmiContentType = "application/rlmi+xml";

// One <resource> of the list (RFC 4662 §5.3) with its one <instance> (§5.5).
struct RlmiResource {
    std::string uri;              // <resource uri=..>, e.g. sip:701@example.com
    std::string name;             // optional <name> ("" = omitted, §5.4)
    std::string instanceId;       // <instance id=..>: stable for the resource within the subscription (§5.5)
    std::string state = "active"; // active | pending | terminated (§5.5)
    std::string reason;           // with terminated ("" = omitted)
    std::string cid;              // Content-ID of the part with its state, without <> ("" = no cid, §5.5)
};

// <?xml ..?><list xmlns="urn:ietf:params:xml:ns:rlmi" uri=.. version=N fullState=true|false> (RFC 4662 §5.2).
std::string buildRlmi(std::string_view listUri, uint64_t version, bool fullState,
                      const std::vector<RlmiResource> &resources);

// One body part of a multipart/related body.
struct MimePart {
    std::string contentType;
    std::string contentId; // without <>; the rlmi cid attribute names a part by it (RFC 2392)
    std::string body;
};

struct MultipartBody {
    std::string contentType; // multipart/related;type="application/rlmi+xml";start="<cid>";boundary="..."
    std::string body;
    std::string boundary;
};

// multipart/related (RFC 2387 §3, RFC 4662 §5): the first part is the root (its Content-ID is `start`),
// `type` is its content type. Parts are separated by CRLF "--boundary" CRLF and end with "--boundary--" CRLF
// (RFC 2046 §5.1.1); the boundary is `boundarySeed`, made longer until no part contains it.
MultipartBody buildMultipartRelated(const std::vector<MimePart> &parts, std::string_view boundarySeed);

} // namespace parkway::callpark
