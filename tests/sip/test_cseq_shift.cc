// CSeq numbers a module injects into a dialog the core only proxies (module.h dialog_inject_cseq) and the shift
// the core then applies to that party's requests and to the responses back (proxy/core/cseq_shift.hh).
#include <sip_test.hh>

#include <core/cseq_shift.hh>

#include <catch2/catch.hpp>

using namespace parkway;
using namespace parkway::test;
using proxy::CseqShifts;

TEST_CASE("CseqShifts: injected numbers continue the party's CSeq, its later requests are raised past them",
          "[proxy][cseq]") {
    CseqShifts m;
    CHECK(m.onRequest("c", "b", "a", 4, false, 0) == 0);
    CHECK(m.onRequest("c", "b", "a", 5, false, 0) == 0);
    CHECK(m.inject("c", "b", "a", 0) == 6);
    CHECK(m.inject("c", "b", "a", 0) == 7);
    CHECK(m.onRequest("c", "b", "a", 6, true, 0) == 2);  // a re-INVITE goes out as 8
    CHECK(m.ackShift("c", "b", "a", 6) == 2);            // its ACK too
    CHECK(m.inject("c", "b", "a", 0) == 9);              // after 8
    CHECK(m.ackShift("c", "b", "a", 6) == 2);            // an ACK keeps the shift of its INVITE
    CHECK(m.inviteResponseShift("c", "b", "a", 8) == 2); // a stray 2xx to it is lowered back
    CHECK(m.inviteResponseShift("c", "b", "a", 9) == 0);
    CHECK(m.onRequest("c", "b", "a", 7, false, 0) == 3);
    CHECK(m.onRequest("c", "a", "b", 100, false, 0) == 0); // the other party is untouched
    m.forgetDialog("c", "a", "b");
    CHECK(m.size() == 0);
    CHECK(m.inject("", "b", "a", 0) == 0);
}

TEST_CASE("CseqShifts: the caller's INVITE counts before any in-dialog request, nothing seen gives a high number",
          "[proxy][cseq]") {
    CseqShifts m;
    m.onRequest("c", "b", "", 41, true, 0); // b called
    CHECK(m.inject("c", "b", "a", 0) == 42);
    uint32_t n = m.inject("x", "b", "a", 5);
    CHECK(n >= CseqShifts::kUnknownBase);
    CHECK(m.onRequest("x", "b", "a", 3, false, 5) == n); // 3 -> n + 3 > n
    CHECK(m.onRequest("o", "b", "", 1, false, 0) == 0);  // out of dialog, not INVITE: not kept
    CHECK(m.size() == 3);
}

TEST_CASE("CseqShifts: bounded by the cap and by idle time, a shifting entry outlives a plain one", "[proxy][cseq]") {
    CseqShifts m(3);
    for (int i = 0; i < 5; ++i)
        m.onRequest("c" + std::to_string(i), "f", "t", 1, false, 0);
    CHECK(m.size() == 3);
    CHECK(m.onRequest("c4", "f", "t", 2, false, 0) == 0);
    CHECK(m.inject("c4", "f", "t", 0) == 3);
    m.sweep(CseqShifts::kIdleMs + 1);
    CHECK(m.size() == 1); // c4 shifts
    CHECK(m.onRequest("c4", "f", "t", 3, false, CseqShifts::kIdleMs + 1) == 1);
    m.sweep(CseqShifts::kIdleMs + 1 + CseqShifts::kShiftedIdleMs);
    CHECK(m.size() == 0);
}

namespace {
void shiftTargetsFromHeader(HookModule &h) {
    h.onRequest = [&h](pw_request *req) {
        std::string t = h.header(req, "X-Target");
        if (!t.empty())
            h.addTarget(req, t);
        return PW_CONTINUE;
    };
}
} // namespace

TEST_CASE("dialog_inject_cseq: the party's re-INVITE, ACK, CANCEL and BYE are raised past the injected numbers, "
          "the responses lowered back",
          "[proxy][cseq]") {
    SipTestEnv env;
    HookModule router;
    shiftTargetsFromHeader(router);
    env.add(router);
    env.start();
    REQUIRE(PW_HOST_HAS(router.api, dialog_inject_cseq));
    auto a = env.makeUa("alice");
    auto b = env.makeUa("bob");
    b->autoAnswer("INVITE", 200);
    b->autoAnswer("BYE", 200);
    a->autoAnswer("INFO", 200);
    a->autoAnswer("INVITE", 200);
    a->autoAnswer("BYE", 200);
    RequestOptions o;
    o.headers = {"X-Target: " + b->uri()};
    auto &inv = a->send("INVITE", "sip:bob@parkway.test", o);
    REQUIRE(env.runUntil([&] { return inv.finalStatus == 200; }));
    Incoming *bIn = b->last("INVITE");
    REQUIRE(bIn);
    auto &info = b->inDialog(*bIn, "INFO");
    REQUIRE(env.runUntil([&] { return info.finalStatus == 200; }));
    uint32_t bSeq = info.request.cseq();
    auto S = [](const std::string &s) { return pw_str{s.data(), s.size()}; };
    std::string callId = inv.request.callId(), aTag = inv.request.fromTag(), bTag = inv.response(200)->toTag();
    REQUIRE(!bTag.empty());
    CHECK(router.api->dialog_inject_cseq(router.host, S(callId), S(bTag), S(aTag)) == bSeq + 1);
    CHECK(router.api->dialog_inject_cseq(router.host, S(callId), S(bTag), S(aTag)) == bSeq + 2);

    auto &reinv = b->inDialog(*bIn, "INVITE");
    REQUIRE(env.runUntil([&] { return reinv.finalStatus == 200; }));
    CHECK(reinv.request.cseq() == bSeq + 1);
    CHECK(reinv.response(200)->cseq() == bSeq + 1); // lowered back: bob's transaction took it
    Incoming *aRe = a->last("INVITE");
    REQUIRE(aRe);
    CHECK(aRe->request.cseq() == bSeq + 3);
    REQUIRE(env.runUntil([&] { return !aRe->acks.empty(); })); // the 2xx ACK matched alice's transaction
    CHECK(aRe->acks[0].cseq() == bSeq + 3);

    a->clearRules();
    a->autoAnswer("INVITE", 180);
    a->autoAnswer("BYE", 200);
    auto &reinv2 = b->inDialog(*bIn, "INVITE");
    REQUIRE(env.runUntil([&] { return reinv2.has(180); }));
    CHECK(reinv2.response(180)->cseq() == bSeq + 2);
    REQUIRE(b->cancel(reinv2) == 0);
    REQUIRE(env.runUntil([&] { return reinv2.finalStatus != 0; }));
    CHECK(reinv2.finalStatus == 487);
    CHECK(a->last("INVITE")->request.cseq() == bSeq + 4);
    CHECK(a->last("INVITE")->cancelled); // the CANCEL carried the number of the INVITE alice saw

    auto &bye = b->inDialog(*bIn, "BYE");
    REQUIRE(env.runUntil([&] { return bye.finalStatus != 0; }));
    CHECK(bye.finalStatus == 200);
    CHECK(bye.response(200)->cseq() == bSeq + 3);
    REQUIRE(a->last("BYE"));
    CHECK(a->last("BYE")->request.cseq() == bSeq + 5);
}
