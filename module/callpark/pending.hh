// Response callbacks as closures: a heap Pending per request sent, freed after the final response.
// Closures look sessions up by id, so a response arriving after the session ended is harmless.
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
};

void pendingResponse(void *arg, pw_dialog *dlg, int status, const pw_msg *resp);

template <typename F> Pending *makePending(F &&f) {
    auto *p = new Pending;
    p->fn = std::forward<F>(f);
    return p;
}

} // namespace parkway::callpark
