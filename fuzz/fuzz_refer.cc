// fuzz_refer: the Refer-To / Replaces / Referred-By / URI helpers of callpark (module/callpark/wire/sip_text.*).
// Input: one header value as it arrives in a REFER or an INVITE (Refer-To, Replaces, Referred-By, a URI).
// Invariants: no crash or exception; %-escaping round-trips (RFC 3261 §25.1); a parsed Replaces formats back
// to the same value (RFC 3891 §6.1); a Replaces embedded in a Refer-To with referToWithReplaces() is read back
// unchanged by parseReferTo() (RFC 3891 §7).
#include "fuzz_common.hh"

#include <wire/sip_text.hh>

#include <string>

using namespace parkway::callpark;
using parkway::fuzz::fail;

namespace {

bool sameReplaces(const ReplacesValue &a, const ReplacesValue &b) {
    return a.callId == b.callId && a.toTag == b.toTag && a.fromTag == b.fromTag && a.earlyOnly == b.earlyOnly;
}

void checkEscaping(std::string_view text) {
    auto h = urlUnescape(urlEscapeHeaderValue(text));
    if (!h || *h != text)
        fail("urlEscapeHeaderValue does not round-trip", text);
    auto u = urlUnescape(urlEscapeUser(text));
    if (!u || *u != text)
        fail("urlEscapeUser does not round-trip", text);
}

void checkReplaces(std::string_view text) {
    std::string err;
    auto r = parseReplaces(text, &err);
    if (!r)
        return;
    std::string formatted = formatReplaces(*r);
    auto again = parseReplaces(formatted, &err);
    if (!again || !sameReplaces(*r, *again))
        fail("formatReplaces output does not parse back the same", formatted);
    std::string referTo = referToWithReplaces("sip:*68103@parkway.test", *r);
    auto t = parseReferTo(referTo, &err);
    if (!t || !t->replaces || !sameReplaces(*r, *t->replaces))
        fail("Refer-To with Replaces does not round-trip", referTo);
    if (t->user != "*68103" || t->host != "parkway.test")
        fail("Refer-To with Replaces lost its target", referTo);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    std::string err;
    if (auto t = parseReferTo(text, &err)) {
        (void)uriUser(t->uri);
        (void)uriHost(t->uri);
        if (t->replaces)
            checkReplaces(formatReplaces(*t->replaces));
    }
    if (auto na = parseNameAddr(text, &err)) {
        (void)parseUri(na->uri, &err);
        (void)uriUser(na->uri);
    }
    (void)parseUri(text, &err);
    (void)uriUser(text);
    (void)uriHost(text);
    checkReplaces(text);
    checkEscaping(text);
    return 0;
}
