// Park by REFER (blind transfer to a park code) in both modes: passthrough (the transferee's INVITE is
// parked; the parker comes from the REFER we saw) and takeover (202, sipfrag NOTIFYs, INVITE+Replaces).
#include "park_env.hh"

using namespace parkway::test;
using nlohmann::json;

TEST_CASE("REFER passthrough - the transferee's INVITE is parked with the REFER's sender as parker", "[refer]") {
    ParkEnv p;
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4200, 4202);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:*68@" + kDomain + ">"};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202); // relayed to the transferee, which answered
    REQUIRE(b.count("REFER") == 1);
    // the transferee calls the park code without Referred-By: the REFER we saw names the parker
    auto &inv = p.invite(b, "2002", "*68", 4204);
    REQUIRE(p.waitFinal(inv));
    CHECK(inv.finalStatus == 200);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "1003");
    CHECK(list["parked"][0]["parker"] == "1003");
    CHECK(list["parked"][0]["parked_uri"] == aorOf("2002"));
}

TEST_CASE("REFER takeover - 202 then NOTIFY 100 at once then INVITE with Replaces to the transferee then NOTIFY 200", "[refer]") {
    ParkEnvOptions o;
    o.params["refer_mode"] = "takeover";
    ParkEnv p(o);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4206, 4208);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:*68103@" + kDomain + ">", "Referred-By: <" + aorOf("1003") + ">"};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    CHECK(b.count("REFER") == 0); // the module took it
    REQUIRE(p.env().runUntil([&] { return !referNotifies(a).empty(); }, 1000));
    CHECK(referNotifies(a)[0]->body().find("SIP/2.0 100") != std::string::npos);
    CHECK(referNotifies(a)[0]->header("Content-Type").rfind("message/sipfrag", 0) == 0);
    // the transferee is INVITEd with Replaces for its dialog with the parker (RFC 3891: to-tag = its tag)
    REQUIRE(p.env().runUntil([&] {
        for (auto &in : b.incoming)
            if (in->request.method() == "INVITE" && !in->request.header("Replaces").empty()) return true;
        return false;
    }));
    std::string rep;
    for (auto &in : b.incoming)
        if (in->request.method() == "INVITE" && !in->request.header("Replaces").empty()) rep = in->request.header("Replaces");
    CHECK(rep.find(c.request.callId()) == 0);
    CHECK(rep.find("from-tag=" + c.request.fromTag()) != std::string::npos);
    // the takeover INVITE comes from the park code, not from the parker the transferee is talking to
    for (auto &in : b.incoming)
        if (in->request.method() == "INVITE" && !in->request.header("Replaces").empty()) {
            CHECK(in->request.header("From").find("sip:*68103@" + kDomain) != std::string::npos);
            CHECK(in->request.header("From").find(aorOf("1003")) == std::string::npos);
        }
    REQUIRE(p.env().runUntil([&] {
        for (auto *n : referNotifies(a))
            if (n->body().find("SIP/2.0 200") != std::string::npos) return true;
        return false;
    }));
    for (auto *n : referNotifies(a))
        if (n->body().find("SIP/2.0 200") != std::string::npos)
            CHECK(n->header("Subscription-State").rfind("terminated", 0) == 0);
    // every NOTIFY we sent as the transferee names the transferee's Contact (the parker's remote target)
    const SipMessage *answer = c.response(200);
    REQUIRE(answer);
    for (auto *n : referNotifies(a))
        CHECK(n->header("Contact") == answer->header("Contact"));
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "103");
    CHECK(list["parked"][0]["parker"] == "1003");
    CHECK(list["parked"][0]["parked_uri"] == aorOf("2002"));
    // the taken-over call can be retrieved
    auto &ret = p.invite(p.ua("r"), "1005", "*88103", 4210);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
}

TEST_CASE("REFER takeover with every group member occupied - the final sipfrag carries the failure", "[refer]") {
    ParkEnvOptions o;
    o.params["refer_mode"] = "takeover";
    o.params["occupied_policy"] = "reject";
    ParkEnv p(o);
    int st = 0;
    p.command("groups.set", {{"domain", kDomain}, {"name", "g"}, {"members", {"1003"}}}, &st);
    REQUIRE(st == 200);
    auto &x = p.ua("x");
    auto &i0 = p.invite(x, "2009", "*681003", 4212);
    REQUIRE(p.waitFinal(i0));
    REQUIRE(i0.finalStatus == 200);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4214, 4216);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:*58@" + kDomain + ">"};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    REQUIRE(p.env().runUntil([&] {
        for (auto *n : referNotifies(a))
            if (n->header("Subscription-State").rfind("terminated", 0) == 0) return true;
        return false;
    }));
    for (auto *n : referNotifies(a))
        if (n->header("Subscription-State").rfind("terminated", 0) == 0)
            CHECK(n->body().find("SIP/2.0 486") != std::string::npos);
    CHECK(p.parkedCount() == 1);
    for (auto &in : b.incoming) CHECK(in->request.header("Replaces").empty()); // the call stays with the parker
}

TEST_CASE("REFER takeover - a duplicated REFER in the same dialog parks once", "[refer]") {
    ParkEnvOptions o;
    o.params["refer_mode"] = "takeover";
    ParkEnv p(o);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4220, 4222);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:*68103@" + kDomain + ">"};
    auto &refer1 = a.inDialog(c, "REFER", r);
    auto &refer2 = a.inDialog(c, "REFER", r);
    REQUIRE(p.env().runUntil([&] { return refer1.finalStatus && refer2.finalStatus; }));
    CHECK(refer1.finalStatus == 202);
    CHECK(refer2.finalStatus == 202);
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 1; }));
    p.env().runFor(300);
    CHECK(p.parkedCount() == 1);
    size_t replacesInvites = 0;
    for (auto &in : b.incoming)
        if (in->request.method() == "INVITE" && !in->request.header("Replaces").empty()) ++replacesInvites;
    CHECK(replacesInvites == 1);
}

TEST_CASE("REFER takeover the transferee refuses - the NOTIFYs continue its CSeq and the call goes on with its BYE "
          "shifted past them",
          "[refer]") {
    ParkEnvOptions o;
    o.params["refer_mode"] = "takeover";
    ParkEnv p(o);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4224, 4226);
    a.autoAnswer("INFO", 200);
    b.clearRules();
    b.autoAnswer("INVITE", 420); // the takeover INVITE with Replaces fails
    b.autoAnswer("BYE", 200);
    Incoming *bIn = b.last("INVITE");
    REQUIRE(bIn);
    // the transferee speaks in the dialog first: its CSeq moves on, the parker's sofia-sip leg follows it
    uint32_t bSeq = 0;
    for (int i = 0; i < 2; ++i) {
        auto &info = b.inDialog(*bIn, "INFO");
        REQUIRE(p.waitFinal(info));
        REQUIRE(info.finalStatus == 200);
        bSeq = info.request.cseq();
    }
    RequestOptions r;
    r.headers = {"Refer-To: <sip:*68103@" + kDomain + ">"};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    REQUIRE(p.env().runUntil([&] {
        for (auto *n : referNotifies(a))
            if (n->header("Subscription-State").rfind("terminated", 0) == 0)
                return true;
        return false;
    }));
    auto notifies = referNotifies(a);
    REQUIRE(notifies.size() == 2);
    CHECK(notifies[1]->body().find("SIP/2.0 420") != std::string::npos);
    // RFC 3261 §12.2.1.1: our NOTIFYs continue the transferee's numbering
    CHECK(notifies[0]->cseq() == bSeq + 1);
    CHECK(notifies[1]->cseq() == bSeq + 2);
    CHECK(p.env().runUntil([&] { return p.parkedCount() == 0; })); // (a storage thread abandons a moment later)
    // the call is still the parker's: the transferee's BYE (its own next CSeq) reaches the parker raised past
    // the NOTIFYs (else sofia-sip answers 500 out of order, §12.2.2), and the 200 comes back with its number
    auto &bye = b.inDialog(*bIn, "BYE");
    REQUIRE(p.waitFinal(bye));
    CHECK(bye.request.cseq() == bSeq + 1);
    CHECK(bye.finalStatus == 200);
    REQUIRE(bye.response(200));
    CHECK(bye.response(200)->cseq() == bSeq + 1);
    REQUIRE(a.last("BYE"));
    CHECK(a.last("BYE")->request.cseq() == bSeq + 3);
}
