// Checks on a received SIP message that sofia-sip's own parser does not make, done before anything copies,
// forwards or answers the message. No SIP policy beyond "is this message usable"; the core decides the answer.
#pragma once
#include "../sofia/sofia.hh"

#include <string>

namespace parkway::proxy {

// The name of the first header that may appear only once (RFC 3261 §7.3.1, §20: Max-Forwards, Subject,
// Refer-To, Replaces, Date, ...) but appears several times, or "" when there is none. sofia-sip keeps the
// extra copies chained to the first and aborts (an assertion in its serialiser) when such a message is
// forwarded or copied into a response, so the extra copies are removed here: what remains is safe to answer
// (and to forward, for a response).
std::string stripDuplicateSingleHeaders(msg_t *msg);

// RFC 3261 §18.3: a datagram whose Content-Length runs past its end. sofia-sip hands it over with whatever
// body bytes there were (none at all when the datagram ends with the header section).
bool bodyTruncated(msg_t *msg);

// The Request-URI schemes the core can route: sip, sips and tel (RFC 3261 §19.1, RFC 3966). Others get 416
// (RFC 3261 §8.2.2.1, §16.3 item 1).
bool routableScheme(const url_t *url);

} // namespace parkway::proxy
