// Transparent huge pages for the SIP thread's heap ([proxy] huge_page_heap, docs/limits.md "Memory").
//
// Every proxied message is parsed into, copied and serialised from many small allocations, and the transactions
// that own them live for up to 64*T1 (RFC 3261 §17). Under load the heap therefore keeps growing into memory the
// process has never touched, and with 4 KiB pages every first touch is a page fault: profiled at 600 calls/s,
// those faults cost about a quarter of the daemon's CPU per call. With transparent huge pages one fault maps
// 2 MiB. Kernels configured with THP "madvise" (Debian's default) give them only to ranges that ask
// (madvise(MADV_HUGEPAGE)), and glibc's main arena grows with brk(), so this asks for each new stretch of the
// heap once the loop turn that grew it ends, and has glibc grow the heap in steps of 32 MiB (M_TOP_PAD) so that
// the new stretch is still untouched when it is advised. Nothing changes when THP is "never"; with "always" only
// the step size is set. The cost is memory: at most one 2 MiB page partly used per stretch.
#pragma once
#include <cstdint>

namespace parkway::proxy {

class HeapPages {
public:
    // Reads the kernel's THP mode and sets glibc's heap step. False when there is nothing to do (THP "never"
    // or unknown): then poll() need not be called.
    bool start();
    // Cheap (no system call unless the heap grew): advise what the heap gained since the last call.
    void poll() noexcept;
    // Bytes of heap advised so far (tests, logs).
    uint64_t advisedBytes() const { return advisedBytes_; }

private:
    uintptr_t end_ = 0; // end of the heap as last seen (everything below it was advised)
    uint64_t advisedBytes_ = 0;
    bool advise_ = false;
};

} // namespace parkway::proxy
