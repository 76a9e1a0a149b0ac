// Work-arounds for sofia-sip 1.12 defects (sofia_fixes.cc says which, and why each is safe).
#pragma once

#include <cstdint>

typedef struct msg_s msg_t;

namespace parkway::proxy {

// Responses sofia-sip could not send (the peer saw them as lost), since the process started.
uint64_t unsentResponses();
// Responses a module or the core gave a transaction after its final one, discarded (RFC 3261 §17.2.2).
uint64_t lateResponses();
// True when the work-arounds are the definitions the dynamic linker uses (checked when the agent is made).
bool sofiaFixesActive();
// Called with every response a server transaction is about to send (SIP thread; nullptr = none). The overload
// gate uses it to put RFC 7339 parameters in the Via (overload.cc).
using ResponseHook = void (*)(msg_t *response);
void setResponseHook(ResponseHook hook);

} // namespace parkway::proxy
