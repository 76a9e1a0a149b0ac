// Small SIP text helpers the module needs and the ABI does not give: Replaces (RFC 3891), Refer-To with an
// embedded ?Replaces= (RFC 3515 / RFC 3891 §7), name-addr and URI pieces, URL escaping.
// Malformed input -> nullopt (and a message in *err when given), never an exception or a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parkway::callpark {

// Replaces: call-id;to-tag=..;from-tag=..[;early-only]  (RFC 3891 §6.1)
// to-tag is the tag the *recipient* of the INVITE holds as its local tag.
struct ReplacesValue {
    std::string callId;
    std::string toTag;
    std::string fromTag;
    bool earlyOnly = false;
};
std::optional<ReplacesValue> parseReplaces(std::string_view value, std::string* err = nullptr);
std::string formatReplaces(const ReplacesValue& r);  // "cid;to-tag=a;from-tag=b[;early-only]"

// "display" <uri>;params  |  <uri>;params  |  uri;params   (RFC 3261 §20.10 / §25.1 name-addr / addr-spec)
struct NameAddr {
    std::string display;  // unquoted, unescaped; "" when absent
    std::string uri;      // inside <>, or the bare addr-spec (header params are not part of it)
    std::string params;   // header parameters after the URI, without the leading ';' ("" when none)
};
std::optional<NameAddr> parseNameAddr(std::string_view value, std::string* err = nullptr);

// sip:user:pass@host:port;uri-params?headers
struct UriParts {
    std::string scheme;   // "sip" / "sips" / "tel" (lower-case)
    std::string user;     // raw (still escaped) user part, "" if none
    std::string host;     // host or [v6]
    uint16_t port = 0;    // 0 = absent
    std::string params;   // after the first ';' up to '?', without the ';'
    std::string headers;  // after '?', raw
};
std::optional<UriParts> parseUri(std::string_view uri, std::string* err = nullptr);

// The URL-unescaped user part ("*68%23" -> "*68#"), "" when absent or malformed.
std::string uriUser(std::string_view uri);
// The host part (lower-cased), "" when malformed.
std::string uriHost(std::string_view uri);

// Refer-To value (RFC 3515 §2.1), e.g. <sip:*68103@d?Replaces=cid%3Bto-tag%3Da%3Bfrom-tag%3Db>
struct ReferTarget {
    NameAddr nameAddr;       // as written (uri still carries its ?headers)
    std::string uri;         // the target URI without ?headers
    std::string user;        // unescaped user part of `uri`
    std::string host;
    std::optional<ReplacesValue> replaces;  // from an embedded Replaces= header, unescaped
};
std::optional<ReferTarget> parseReferTo(std::string_view value, std::string* err = nullptr);

// %XX decoding (RFC 3986 §2.1). nullopt on a bad escape ("%2", "%zz").
std::optional<std::string> urlUnescape(std::string_view text);
// Escape for embedding as a URI header value (RFC 3261 §25.1 hvalue: unreserved / hnv-unreserved / escaped),
// e.g. "a;to-tag=b" -> "a%3Bto-tag%3Db".
std::string urlEscapeHeaderValue(std::string_view text);
// Escape a user part (RFC 3261 §25.1 user: unreserved / escaped / user-unreserved); '#' -> %23.
std::string urlEscapeUser(std::string_view text);

// <sip:target?Replaces=...> for a REFER carrying Replaces (attended transfer into a dialog).
std::string referToWithReplaces(std::string_view targetUri, const ReplacesValue& r);

}  // namespace parkway::callpark
