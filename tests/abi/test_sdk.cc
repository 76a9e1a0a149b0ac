// The module SDK as an out-of-tree module author uses it: parkway/testing/fake_host.hpp drives a module linked
// into the test (examples/hello-module/hello.c, and a small C++ module on parkway/module.hpp) with no proxy and
// no loader; the SDK's trampolines and RAII are checked on the way.
#include <parkway/module.hpp>
#include <parkway/testing/fake_host.hpp>

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

extern "C" const pw_module *pw_module_entry(uint32_t host_abi_major); // hello.c, linked in

using parkway::testing::FakeHost;
using parkway::testing::Request;
namespace sdk = parkway::sdk;

TEST_CASE("sdk: hello-module unit-tested on the fake host", "[sdk]") {
    FakeHost h;
    REQUIRE(h.start(pw_module_entry(PW_ABI_MAJOR), {{"header", "X-Test"}}) == PW_OK);
    CHECK(h.logs.at(0) == "hello: loaded");
    Request r("INVITE", "sip:%2A68%23103@pbx.example.com");
    r.header("From", "<sip:1001@pbx.example.com>;tag=1");
    CHECK(h.send(r) == PW_CONTINUE);
    REQUIRE(r.added.size() == 2);
    CHECK(r.added[0] == std::make_pair(std::string("X-Test"), std::string("parkway"))); // the default value
    CHECK(r.added[1] == std::make_pair(std::string("X-Hello-User"), std::string("*68#103")));
    CHECK(r.replies.empty());
}

TEST_CASE("sdk: hello-module on a host that predates ABI 1.4 does without the URI accessors", "[sdk]") {
    FakeHost h;
    h.limitTo(offsetof(pw_host_api, uri_part)); // a v1.3 host
    REQUIRE(h.start(pw_module_entry(PW_ABI_MAJOR)) == PW_OK);
    Request r("INVITE", "sip:103@pbx.example.com");
    CHECK(h.send(r) == PW_CONTINUE);
    REQUIRE(r.added.size() == 1);
}

// ------------------------------------------------------------------ a small C++ module on the SDK

namespace {

struct Mod {
    const pw_host_api *api;
    pw_host *host;
    sdk::Timer timer;
    sdk::Retained held;
    int fired = 0;
    Mod(const pw_host_api *a, pw_host *h) : api(a), host(h), timer(a, h, "mini") {}
};

pw_verdict handle(Mod &m, pw_request *req) {
    std::string method = sdk::str(m.api->msg_method(m.api->request_msg(req)));
    if (method == "BOOM")
        throw std::runtime_error("kaboom");
    if (method == "WAIT") { // keep the request, answer it when the timer fires
        m.held = sdk::Retained(m.api, req);
        m.timer.start(500, [&m] {
            ++m.fired;
            sdk::Headers h;
            h.add("X-Waited", "500");
            m.api->request_reply(m.held.get(), 200, sdk::ps("OK"), h.data(), h.size(), {}, {});
            m.held.resume(PW_STOP);
            m.held.reset();
        });
        return PW_SUSPEND;
    }
    if (method == "TICK") { // a timer that throws: logged, never crosses into the host
        m.timer.start(10, [] { throw std::runtime_error("tick broke"); });
        return PW_CONTINUE;
    }
    if (method == "CANCEL_TIMER") {
        m.timer.cancel();
        return PW_CONTINUE;
    }
    // The Refer-To's Replaces through the host (ABI 1.4), unescaped.
    using namespace sdk::literals;
    std::string referTo = sdk::str(m.api->msg_uri(m.api->request_msg(req), "Refer-To"_pw));
    auto replaces = sdk::uriHeader(m.api, m.host, referTo, "Replaces");
    sdk::Headers h;
    h.add("X-Replaces", !replaces ? "old host" : replaces->present ? replaces->value : "none");
    m.api->request_reply(req, 202, sdk::ps("Accepted"), h.data(), h.size(), {}, {});
    return PW_STOP;
}

int miniInit(const pw_host_api *api, pw_host *host, void **ctx) noexcept {
    return sdk::guardInt(api, host, "mini", "init", [&] {
        *ctx = new Mod(api, host);
        return int(PW_OK);
    });
}
void miniDestroy(void *ctx) noexcept {
    delete static_cast<Mod *>(ctx);
}
pw_verdict miniRequest(void *ctx, pw_request *req) noexcept {
    auto *m = static_cast<Mod *>(ctx);
    return sdk::guardRequest(m->api, m->host, "mini", req, [&] { return handle(*m, req); });
}
int miniThrowCmd(void *ctx, pw_str, pw_writer *out) noexcept {
    auto *m = static_cast<Mod *>(ctx);
    return sdk::guardCommand(m->api, m->host, "mini", "boom", out, []() -> int { throw std::logic_error("no"); });
}
const pw_command_def kMiniCmds[] = {{sizeof(pw_command_def), "boom", "throws", miniThrowCmd},
                                    {sizeof(pw_command_def), nullptr, nullptr, nullptr}};

pw_module mini() {
    pw_module m{};
    m.struct_size = sizeof m;
    m.abi_major = PW_ABI_MAJOR;
    m.abi_minor = PW_ABI_MINOR;
    m.name = "mini";
    m.commands = kMiniCmds;
    m.init = miniInit;
    m.destroy = miniDestroy;
    m.on_request = miniRequest;
    return m;
}
const pw_module kMini = mini();

} // namespace

TEST_CASE("sdk: guardRequest turns an exception into a 500 and PW_STOP, logged", "[sdk]") {
    FakeHost h;
    REQUIRE(h.start(&kMini) == PW_OK);
    Request r("BOOM", "sip:x@pbx.example.com");
    CHECK(h.send(r) == PW_STOP);
    REQUIRE(r.replies.size() == 1);
    CHECK(r.replies[0].status == 500);
    CHECK(h.logs.back() == "mini: on_request failed: kaboom");
}

TEST_CASE("sdk: guardCommand answers 500 naming the command, a throwing timer is logged", "[sdk]") {
    FakeHost h;
    REQUIRE(h.start(&kMini) == PW_OK);
    auto [status, text] = h.command("boom");
    CHECK(status == 500);
    CHECK(text == "mini: boom failed: no");
    Request r("TICK", "sip:x@pbx.example.com");
    h.send(r);
    h.advance(10);
    CHECK(h.logs.back() == "mini: timer failed: tick broke");
}

TEST_CASE("sdk: Retained and Timer hold and release what they took", "[sdk]") {
    FakeHost h;
    REQUIRE(h.start(&kMini) == PW_OK);
    Request r("WAIT", "sip:x@pbx.example.com");
    CHECK(h.send(r) == PW_SUSPEND);
    CHECK(r.retains == 1);
    CHECK(h.timers.size() == 1);
    h.advance(499);
    CHECK(r.replies.empty());
    h.advance(1);
    REQUIRE(r.replies.size() == 1);
    CHECK(r.replies[0].all("X-Waited") == std::vector<std::string>{"500"});
    CHECK(r.resumed == PW_STOP);
    CHECK(r.releases == 1);

    Request again("WAIT", "sip:x@pbx.example.com");
    h.send(again);
    Request cancel("CANCEL_TIMER", "sip:x@pbx.example.com");
    h.send(cancel);
    CHECK(h.timers.empty()); // timer_cancel reached the host
    h.stop();                // destroy: the Retained releases the request it still held
    CHECK(again.releases == 1);
}

TEST_CASE("sdk: uriHeader reads Replaces through the host, nullopt on an older host", "[sdk]") {
    FakeHost h;
    REQUIRE(h.start(&kMini) == PW_OK);
    Request r("REFER", "sip:x@pbx.example.com");
    r.header("Refer-To", "<sip:*68@pbx.example.com?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>");
    h.send(r);
    CHECK(r.replies.at(0).all("X-Replaces") == std::vector<std::string>{"abc;to-tag=1;from-tag=2"});

    FakeHost old;
    old.limitTo(offsetof(pw_host_api, uri_part));
    REQUIRE(old.start(&kMini) == PW_OK);
    Request r2 = Request("REFER", "sip:x@pbx.example.com");
    r2.header("Refer-To", "<sip:*68@pbx.example.com?Replaces=abc>");
    old.send(r2);
    CHECK(r2.replies.at(0).all("X-Replaces") == std::vector<std::string>{"old host"});
}
