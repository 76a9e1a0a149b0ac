// Response callbacks as closures: a heap Pending per request sent, freed after the final response.
// Closures look sessions up by id, so a response arriving after the session ended is harmless.
// The host calls no response callback of a dialog once it has ended (on_terminated), so the Pendings of requests
// sent in it are freed then (CallPark::retirePendings); the module frees whatever is left when it is destroyed.
#pragma once
#include <parkway/module.h>

#include <cstdint>
#include <functional>

namespace parkway::callpark {

struct Pending {
    std::function<void(pw_dialog *, int, const pw_msg *)> fn;
    bool multi = false; // never freed by a final response (INVITE dialogs that may see forked 2xx)
    // dialog_invite passes one arg to both the response callback and the dialog callbacks: for our UAC
    // INVITE legs that arg is this Pending, which names the leg by id (the leg may be gone first).
    void *owner = nullptr;
    uint64_t legId = 0;
    pw_dialog *dlg = nullptr; // the dialog the request was sent in (NULL: out of dialog)
    bool armed = false;       // multi: its release is scheduled
    bool running = false;     // its closure runs now (a dialog ending inside it must not free it)
    bool retired = false;     // its dialog ended while it ran: freed when the closure returns
};

void pendingResponse(void *arg, pw_dialog *dlg, int status, const pw_msg *resp);

template <typename F> Pending *makePending(F &&f) {
    auto *p = new Pending;
    p->fn = std::forward<F>(f);
    return p;
}

} // namespace parkway::callpark
