// [proxy] huge_page_heap (proxy/core/heap_pages.hh): the heap's new stretches are advised for transparent huge
// pages once the loop turn that grew them ends.
#include <core/heap_pages.hh>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string heapPagesThpMode() {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string line;
    std::getline(f, line);
    auto open = line.find('['), close = line.find(']');
    return open == std::string::npos || close == std::string::npos ? "" : line.substr(open + 1, close - open - 1);
}

// The VmFlags of the mapping that holds addr, from /proc/self/smaps ("" when not found).
std::string heapPagesVmFlags(uintptr_t addr) {
    std::ifstream f("/proc/self/smaps");
    std::string line;
    bool inside = false;
    while (std::getline(f, line)) {
        uintptr_t lo = 0, hi = 0;
        char dash = 0;
        std::istringstream head(line);
        if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
            inside = lo <= addr && addr < hi;
            continue;
        }
        if (inside && line.rfind("VmFlags:", 0) == 0)
            return line;
    }
    return "";
}

} // namespace

TEST_CASE("HeapPages: what the heap gains is advised for huge pages (THP madvise mode)", "[proxy][memory]") {
    if (heapPagesThpMode() != "madvise") {
        WARN("transparent huge pages are not in madvise mode here: nothing to check");
        return;
    }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // The sanitizers replace malloc: the brk heap this advises does not grow (scripts/sanitize.sh builds).
    WARN("built with a sanitizer: malloc is the sanitizer's, not glibc's heap");
    return;
#endif
    parkway::proxy::HeapPages pages;
    REQUIRE(pages.start());
    pages.poll();
    REQUIRE(pages.advisedBytes() == 0); // nothing grew yet
    // 48 MiB in blocks below glibc's mmap threshold: the main arena (brk heap) grows.
    std::vector<void *> blocks;
    for (int i = 0; i < 1536; ++i)
        blocks.push_back(std::malloc(32 * 1024));
    pages.poll();
    CHECK(pages.advisedBytes() >= 48u << 20);
    // The mapping that holds the last block is flagged for huge pages ("hg", madvise(MADV_HUGEPAGE)).
    std::string flags = heapPagesVmFlags(reinterpret_cast<uintptr_t>(blocks.back()));
    INFO(flags);
    CHECK(flags.find(" hg") != std::string::npos);
    uint64_t advised = pages.advisedBytes();
    pages.poll(); // no growth: no new advice
    CHECK(pages.advisedBytes() == advised);
    for (void *b : blocks)
        std::free(b);
}
