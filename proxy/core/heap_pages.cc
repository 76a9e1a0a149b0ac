// Transparent huge pages for the SIP thread's heap: see heap_pages.hh.
#include "heap_pages.hh"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace parkway::proxy {

namespace {

constexpr uintptr_t kPage = 4096;
constexpr int kHeapStep = 32 << 20; // glibc grows the heap by the request plus this much (M_TOP_PAD)

// The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled: "always", "madvise" or "never".
std::string thpMode() {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string line;
    if (!std::getline(f, line))
        return {};
    auto open = line.find('['), close = line.find(']');
    if (open == std::string::npos || close == std::string::npos || close < open)
        return {};
    return line.substr(open + 1, close - open - 1);
}

uintptr_t heapEnd() {
    void *cur = sbrk(0); // glibc answers from its cached break: no system call
    return cur == reinterpret_cast<void *>(-1) ? 0 : reinterpret_cast<uintptr_t>(cur);
}

} // namespace

bool HeapPages::start() {
    std::string mode = thpMode();
    if (mode != "madvise" && mode != "always")
        return false;
    mallopt(M_TOP_PAD, kHeapStep);
    advise_ = mode == "madvise";
    end_ = heapEnd(); // what is there now was touched already: advised or not, it stays as it is
    return advise_;
}

void HeapPages::poll() noexcept {
    if (!advise_)
        return;
    uintptr_t cur = heapEnd();
    if (cur <= end_) {
        end_ = cur; // unchanged, or trimmed: what grows again is new memory, to be advised then
        return;
    }
    uintptr_t from = end_ & ~(kPage - 1);
    uintptr_t to = (cur + kPage - 1) & ~(kPage - 1);
    if (madvise(reinterpret_cast<void *>(from), to - from, MADV_HUGEPAGE) == 0)
        advisedBytes_ += to - from;
    end_ = cur;
}

} // namespace parkway::proxy
