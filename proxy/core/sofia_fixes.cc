// Work-arounds for defects in sofia-sip 1.12 (Debian's libsofia-sip-ua0) that Parkway cannot fix in the library.
// Both are about the reference a server transaction holds on the transport its request came on.
//
// 1. A response after the final response of a non-INVITE transaction. nta drops the transaction's transport
//    reference when the final response is sent; a later response (a second 2xx, which nta_incoming_mreply()
//    lets through, or any 1xx) looks the transport up again without a reference and releases it once more when
//    the transaction ends. RFC 3261 §17.2.2 says what to do instead: once Completed, the server transaction
//    discards further responses from its TU. nta_incoming_mreply() below does that (nta_incoming_treply() and
//    every caller in the program go through it), and keeps a further 2xx to an INVITE (§16.7: a proxy forwards
//    every 2xx of an INVITE; nta keeps the transport for those).
//
// 2. A response that cannot be sent unbalances the transport's reference count (nta.c, incoming_reply()):
//   a. tport_tsend() fails for the first response of a server transaction (the Via names an address the kernel
//      refuses: maddr=255.255.255.255 gives EACCES, an address with no route ENETUNREACH; a datagram larger than
//      64 KB EMSGSIZE; a full socket buffer under load ENOBUFS/EAGAIN). nta drops the transaction's reference to
//      the transport and leaves the pointer NULL.
//   b. The next response on that transaction (our final answer after a failed 100 Trying, or the 500 that nta
//      itself retries after a failed final response) finds no transport and looks one up with tport_by_name()
//      without taking a reference, and later releases it as if it had one.
// In both cases the listening transport loses one reference it never gave. When its count reaches zero sofia frees
// the listening socket's transport while it is still registered with the event loop: the next datagram, or the
// shutdown (nta_agent_destroy -> tport_zap_primary), uses freed memory. One hostile datagram per lost reference
// is enough; fuzz_sip_core found it.
//
// The fix for 2: this file defines tport_tsend() for the whole program (calls from inside libsofia-sip-ua go through
// its PLT, as for accept() in socket_guard.cc) and reports a response that could not be sent as sent. nta then
// keeps the transaction's reference and never reaches the unbalanced look-up. For the peer it is what happens
// to any response lost on the way (RFC 3261 §17.2: a UDP client retransmits its request and gets the response
// again; a client whose stream is gone times out, as it would when the server does not re-open the connection,
// see Proxy::Impl::streamClosed). Requests are not touched: nta handles a failed request correctly (the client
// transaction gets 503).
#include "sofia_fixes.hh"

#include <sofia-sip/msg.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/sip_protos.h>
#include <sofia-sip/su_tagarg.h>
#include <sofia-sip/tport.h>

#include <dlfcn.h>

#include <atomic>

namespace parkway::proxy {
namespace {

std::atomic<uint64_t> gUnsentResponses{0};
std::atomic<uint64_t> gLateResponses{0};
ResponseHook gResponseHook = nullptr;

using TsendFn = tport_t *(*)(tport_t *, msg_t *, tp_name_t const *, tag_type_t, tag_value_t, ...);

TsendFn realTsend() {
    static TsendFn fn = reinterpret_cast<TsendFn>(dlsym(RTLD_NEXT, "tport_tsend"));
    return fn;
}

using MreplyFn = int (*)(nta_incoming_t *, msg_t *);

MreplyFn realMreply() {
    static MreplyFn fn = reinterpret_cast<MreplyFn>(dlsym(RTLD_NEXT, "nta_incoming_mreply"));
    return fn;
}

// RFC 3261 §17.2.1/§17.2.2: after the final response only a further 2xx to an INVITE goes out (see the top).
bool afterFinal(nta_incoming_t *irq, msg_t *msg) {
    const sip_t *sip = msg ? sip_object(msg) : nullptr;
    if (!irq || !sip || !sip->sip_status || nta_incoming_status(irq) < 200)
        return false;
    if (msg_t *stored = nta_incoming_getresponse(irq)) { // nta takes its own final response again as a no-op
        bool same = stored == msg;
        msg_destroy(stored); // (a reference)
        if (same)
            return false;
    }
    int status = sip->sip_status->st_status;
    return !(nta_incoming_method(irq) == sip_method_invite && status >= 200 && status < 300);
}

bool isResponse(msg_t *msg) {
    const sip_t *sip = msg ? sip_object(msg) : nullptr;
    return sip && sip->sip_status;
}

} // namespace

void setResponseHook(ResponseHook hook) {
    gResponseHook = hook;
}

uint64_t unsentResponses() {
    return gUnsentResponses.load(std::memory_order_relaxed);
}

uint64_t lateResponses() {
    return gLateResponses.load(std::memory_order_relaxed);
}

bool sofiaFixesActive() {
    // The definition below is the one the dynamic linker resolves for everybody, libsofia-sip-ua included.
    return realTsend() != nullptr && realMreply() != nullptr &&
           dlsym(RTLD_DEFAULT, "tport_tsend") == reinterpret_cast<void *>(static_cast<TsendFn>(&tport_tsend)) &&
           dlsym(RTLD_DEFAULT, "nta_incoming_mreply") ==
               reinterpret_cast<void *>(static_cast<MreplyFn>(&nta_incoming_mreply));
}

} // namespace parkway::proxy

extern "C" tport_t *tport_tsend(tport_t *self, msg_t *msg, tp_name_t const *tpn, tag_type_t tag, tag_value_t value,
                                ...) {
    using namespace parkway::proxy;
    TsendFn real = realTsend();
    if (!real)
        return nullptr;
    ta_list ta;
    ta_start(ta, tag, value);
    tport_t *tp = real(self, msg, tpn, TAG_NEXT(ta_args(ta)));
    ta_end(ta);
    if (!tp && self && isResponse(msg)) {
        gUnsentResponses.fetch_add(1, std::memory_order_relaxed);
        return self; // lost on the way (see the top of this file)
    }
    return tp;
}

extern "C" int nta_incoming_mreply(nta_incoming_t *irq, msg_t *msg) {
    using namespace parkway::proxy;
    MreplyFn real = realMreply();
    if (!real || afterFinal(irq, msg)) {
        gLateResponses.fetch_add(1, std::memory_order_relaxed);
        msg_destroy(msg); // the function owns msg, whatever it returns
        return 0;         // discarded, as the Completed state does (not a failure: nta must not retry with 500)
    }
    if (gResponseHook)
        gResponseHook(msg);
    return real(irq, msg);
}
