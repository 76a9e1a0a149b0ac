// Descriptor exhaustion at run time (docs/limits.md "Call park"): a park that cannot get a music-on-hold socket
// is answered 503 + Retry-After at once, the failure is logged once per minute (not once per call), and parking
// works again as soon as descriptors are back.
#include "park_env.hh"

#include <fcntl.h>
#include <sys/resource.h>

using namespace parkway::test;

namespace {
// Lowers the soft open-file limit to the lowest free descriptor number: the next socket() fails with EMFILE.
struct NoMoreDescriptors {
    rlimit saved{};
    NoMoreDescriptors() {
        REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
        int lowest = ::open("/dev/null", O_RDONLY);
        REQUIRE(lowest >= 0);
        ::close(lowest);
        rlimit low = saved;
        low.rlim_cur = static_cast<rlim_t>(lowest);
        REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    }
    ~NoMoreDescriptors() { setrlimit(RLIMIT_NOFILE, &saved); }
};
} // namespace

TEST_CASE("out of file descriptors: parks get 503 + Retry-After at once, one log line, and park again afterwards",
          "[limits][moh]") {
    ParkEnv p;
    auto &a = p.ua("a");
    auto &b = p.ua("b");
    auto &c = p.ua("c");
    std::vector<Client *> refused;
    {
        NoMoreDescriptors guard;
        for (auto *ua : {&a, &b}) {
            auto &inv = p.invite(*ua, "2001", "*68103", 4140);
            bool answered = p.waitFinal(inv);
            refused.push_back(&inv);
            REQUIRE(answered);
        }
    }
    for (Client *inv : refused) {
        CHECK(inv->finalStatus == 503);
        CHECK_FALSE(inv->responses.back().header("Retry-After").empty());
    }
    CHECK(p.logged("out of file descriptors").size() == 1);
    CHECK(p.metric("parkway_moh_failures_total", "reason=\"descriptors\"") == 2);
    CHECK(p.parkedCount() == 0);
    auto &ok = p.invite(c, "2003", "*68103", 4144);
    REQUIRE(p.waitFinal(ok));
    CHECK(ok.finalStatus == 200);
    CHECK(p.parkedCount() == 1);
}
