// Small helpers of the runner over SIP message text and digest challenges (runner.cc). Pure functions.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace parkway::replay::runtext {

std::string startLine(const std::string &text);
bool isResponse(const std::string &text);
int status(const std::string &text);         // 0 for a request
std::string method(const std::string &text); // a request's method, or a response's CSeq method
std::string requestUri(const std::string &text);
// The first value of a header (full or compact name, case-insensitive; RFC 3261 §7.3.3), "" when absent.
std::string header(const std::string &text, const std::string &name);
std::vector<std::string> headers(const std::string &text, const std::string &name); // every line's value
long cseqNumber(const std::string &text);                                           // -1 when absent
std::string body(const std::string &text);
// The value of a ;param= of a header value ("tag", "branch"), "" when absent.
std::string param(const std::string &headerValue, const std::string &name);
// Whether a template or message line is a header of that name (full or compact form).
bool isHeaderLine(const std::string &line, const std::string &name);
// The text with the CSeq number moved by delta (the runner's shift after a re-sent challenged request).
std::string shiftCSeq(const std::string &text, long delta);
// One line for reports: "SIP/2.0 404 Not Found (CSeq 1 INVITE, Call-ID ab@h)" / "NOTIFY sip:.. (Call-ID ab@h)".
std::string summary(const std::string &text);

// A digest challenge (WWW-Authenticate / Proxy-Authenticate, RFC 3261 §22.4, RFC 7616 §3.3).
struct Challenge {
    std::string realm, nonce, opaque, algorithm, qop;
};
// The first challenge with an algorithm we answer (SHA-256, MD5; RFC 8760 §2.4: the server's order is its
// preference), or nullopt.
std::optional<Challenge> pickChallenge(const std::vector<std::string> &headerValues);
// An auth-param's value, unquoted ("realm" in `Digest realm="x", nonce="y"`), "" when absent.
std::string authParam(const std::string &headerValue, const std::string &name);
// The credentials header value answering c (RFC 7616 §3.4; qop=auth when offered, else RFC 2069 form).
std::string credentials(const Challenge &c, const std::string &user, const std::string &password,
                        const std::string &method, const std::string &uri, unsigned nc);

} // namespace parkway::replay::runtext
