// Retrieving: *88<ext>, *88, nothing parked, two retrievers at once, Replaces pickup, the bridge that
// follows (relay, BYE), offerless retrieve (RFC 3725), re-park from a bridged call.
#include "park_env.hh"

using namespace parkway::test;
using nlohmann::json;

namespace {

// Park `ua` (as extension `ext`) on `on`; the parked phone answers re-INVITEs with an SDP for `rtp`.
Client &parkCall(ParkEnv &p, TestUa &ua, const std::string &ext, const std::string &on, RawUdp &rtp) {
    ua.autoAnswer("INVITE", 200, answerSdp(rtp.port()), "application/sdp");
    auto &inv = p.invite(ua, ext, "*68" + on, rtp.port(), {}, "Parked " + ext);
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    return inv;
}

} // namespace

TEST_CASE("retrieve by star-88 ext re-INVITEs the parked party and bridges the two (RFC 3725)", "[retrieve]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    auto &parked = parkCall(p, a, "2001", "103", ma);
    REQUIRE(p.env().runUntil([&] { return rtpCount(ma) >= 2; }, 3000));

    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5006);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    // the parked party was re-INVITEd with the retriever's offer
    Incoming *reinv = a.last("INVITE");
    REQUIRE(reinv);
    CHECK(sdpAudioPort(reinv->request.body()) == 5006);
    // the retriever got the parked party's answer and identity
    CHECK(sdpAudioPort(ret.response(200)->body()) == ma.port());
    CHECK(ret.response(200)->header("P-Asserted-Identity").find(aorOf("2001")) != std::string::npos);
    CHECK(p.parkedCount() == 0);
    // music on hold stopped
    p.env().runFor(100);
    size_t n = rtpCount(ma);
    p.env().runFor(300);
    CHECK(rtpCount(ma) == n);

    // in-dialog INFO from the retriever is relayed to the parked party
    a.autoAnswer("INFO", 200);
    auto &info = r.inDialog(ret, "INFO");
    REQUIRE(p.waitFinal(info));
    CHECK(info.finalStatus == 200);
    CHECK(a.count("INFO") == 1);

    // BYE from the retriever reaches the parked party
    auto &bye = r.inDialog(ret, "BYE");
    REQUIRE(p.waitFinal(bye));
    CHECK(bye.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return a.count("BYE") == 1; }));
    (void)parked;
}

TEST_CASE("bare star-88 retrieves the call parked on the caller's own extension", "[retrieve]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    parkCall(p, a, "2001", "103", ma);
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "103", "*88", 5008);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    CHECK(p.parkedCount() == 0);
}

TEST_CASE("retrieve with nothing parked answers 404", "[retrieve]") {
    ParkEnv p;
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5010);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 404);
}

TEST_CASE("two simultaneous retrievers - exactly one gets the call and the other a 4xx", "[retrieve]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    parkCall(p, a, "2001", "103", ma);
    auto &r1 = p.ua("r1");
    auto &r2 = p.ua("r2");
    auto &c1 = p.invite(r1, "1005", "*88103", 5012);
    auto &c2 = p.invite(r2, "1006", "*88103", 5014);
    REQUIRE(p.env().runUntil([&] { return c1.finalStatus && c2.finalStatus; }));
    int wins = (c1.finalStatus == 200) + (c2.finalStatus == 200);
    CHECK(wins == 1);
    int loser = c1.finalStatus == 200 ? c2.finalStatus : c1.finalStatus;
    CHECK(loser >= 400);
    CHECK(loser < 500);
}

TEST_CASE("INVITE with Replaces naming the park dialog picks the call up (RFC 3891)", "[retrieve]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    auto &inv = parkCall(p, a, "2001", "103", ma);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    json d = list["parked"][0]["dialog"];
    // the park dialog as dialog-info shows it: our tag is the local tag
    CHECK(d["call_id"] == inv.request.callId());
    CHECK(d["remote_tag"] == inv.request.fromTag());
    std::string replaces = d["call_id"].get<std::string>() + ";to-tag=" + d["local_tag"].get<std::string>() +
                           ";from-tag=" + d["remote_tag"].get<std::string>();
    auto &r = p.ua("r");
    auto &pick = p.invite(r, "1005", "103", 5016, {"Replaces: " + replaces});
    REQUIRE(p.waitFinal(pick));
    CHECK(pick.finalStatus == 200);
    CHECK(p.parkedCount() == 0);

    // early-only against a confirmed dialog: 486 (RFC 3891 §3); a second park for it first
    auto &b = p.ua("b");
    RawUdp mb;
    parkCall(p, b, "2002", "104", mb);
    json d2 = p.command("parked.list")["parked"][0]["dialog"];
    std::string rep2 = d2["call_id"].get<std::string>() + ";to-tag=" + d2["local_tag"].get<std::string>() +
                       ";from-tag=" + d2["remote_tag"].get<std::string>() + ";early-only";
    auto &pick2 = p.invite(r, "1005", "104", 5018, {"Replaces: " + rep2});
    REQUIRE(p.waitFinal(pick2));
    CHECK(pick2.finalStatus == 486);
}

TEST_CASE("offerless retrieve - the parked party's offer goes to the retriever and its ACK answer back", "[retrieve]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    auto &inv = p.invite(a, "2001", "*68103", ma.port());
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    a.autoAnswer("INVITE", 200, offerSdp(ma.port()), "application/sdp");
    auto &r = p.ua("r");
    RequestOptions o;
    o.from = "<" + aorOf("1005") + ">";
    o.autoAck = false;
    auto &ret = r.send("INVITE", "sip:*88103@" + kDomain, o);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    Incoming *reinv = a.last("INVITE");
    REQUIRE(reinv);
    CHECK(reinv->request.body().empty());
    CHECK(sdpAudioPort(ret.response(200)->body()) == ma.port());
    r.ack(ret, answerSdp(5020), "application/sdp");
    REQUIRE(p.env().runUntil([&] {
        for (auto &in : a.incoming)
            for (auto &ack : in->acks)
                if (sdpAudioPort(ack.body()) == 5020) return true;
        SipMessage *s = a.lastAck();
        return s && sdpAudioPort(s->body()) == 5020;
    }));
}

TEST_CASE("a REFER from a bridged leg to a park code re-parks the other party", "[retrieve][refer]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    parkCall(p, a, "2001", "103", ma);
    auto &r = p.ua("r");
    r.autoAnswer("NOTIFY", 200);
    auto &ret = p.invite(r, "1005", "*88103", 5022);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    REQUIRE(p.parkedCount() == 0);

    RequestOptions o;
    o.headers = {"Refer-To: <sip:*68104@" + kDomain + ">", "Referred-By: <" + aorOf("1005") + ">"};
    auto &refer = r.inDialog(ret, "REFER", o);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    // sipfrag NOTIFYs: 100 Trying at once, then 200 OK
    REQUIRE(p.env().runUntil([&] {
        for (auto &in : r.incoming)
            if (in->request.method() == "NOTIFY" && in->request.body().find("SIP/2.0 200") != std::string::npos)
                return true;
        return false;
    }));
    bool trying = false;
    for (auto &in : r.incoming)
        if (in->request.method() == "NOTIFY" && in->request.body().find("SIP/2.0 100") != std::string::npos) trying = true;
    CHECK(trying);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["extension"] == "104");
    CHECK(list["parked"][0]["parker"] == "1005");
    // the parked party got a hold offer and hears music again
    REQUIRE(p.env().runUntil([&] { return rtpCount(ma) >= 3; }, 3000));
    // the transferor leaves; the parked call stays
    auto &bye = r.inDialog(ret, "BYE");
    REQUIRE(p.waitFinal(bye));
    p.env().runFor(200);
    CHECK(p.parkedCount() == 1);
    CHECK(a.count("BYE") == 0);
}

TEST_CASE("retrieve_mode replaces - the retriever's INVITE goes to the parked party with Replaces",
          "[retrieve]") {
    ParkEnvOptions o;
    o.params["retrieve_mode"] = "replaces";
    ParkEnv p(o);
    auto &a = p.ua("a");
    RawUdp ma;
    auto &inv = parkCall(p, a, "2001", "103", ma);
    auto &r = p.ua("r");
    auto &ret = p.invite(r, "1005", "*88103", 5030);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    // the parked party got the retriever's INVITE (new Call-ID) naming its park dialog
    Incoming *in = nullptr;
    for (auto &x : a.incoming)
        if (x->request.method() == "INVITE" && !x->request.header("Replaces").empty()) in = x.get();
    REQUIRE(in);
    CHECK(in->request.callId() != inv.request.callId());
    std::string rep = in->request.header("Replaces");
    CHECK(rep.find(inv.request.callId()) == 0);
    CHECK(rep.find("to-tag=" + inv.request.fromTag()) != std::string::npos); // its own tag
    CHECK(sdpAudioPort(in->request.body()) == 5030);
    REQUIRE(p.env().runUntil([&] { return p.parkedCount() == 0; }));
    // we left the path: the old park dialog is ended
    REQUIRE(p.env().runUntil([&] { return a.count("BYE") == 1; }));

    // a parked party that refuses: the call stays parked, the retriever sees the refusal
    auto &b = p.ua("b");
    RawUdp mb;
    parkCall(p, b, "2002", "104", mb);
    b.clearRules();
    b.autoAnswer("INVITE", 488);
    auto &ret2 = p.invite(r, "1005", "*88104", 5032);
    REQUIRE(p.waitFinal(ret2));
    CHECK(ret2.finalStatus == 488);
    // (with a storage thread the claim is given back a moment after the refusal went out)
    REQUIRE(p.env().runUntil(
        [&] { return p.parkedCount() == 1 && p.command("parked.list")["parked"][0]["state"] == "parked"; }));
}

TEST_CASE("a REFER elsewhere from a bridged leg is carried out as a blind transfer", "[retrieve][refer]") {
    ParkEnv p;
    auto &a = p.ua("a");
    RawUdp ma;
    parkCall(p, a, "2001", "103", ma);
    auto &r = p.ua("r");
    r.autoAnswer("NOTIFY", 200);
    auto &ret = p.invite(r, "1005", "*88103", 5034);
    REQUIRE(p.waitFinal(ret));
    REQUIRE(ret.finalStatus == 200);
    auto &t = p.phone("1007");
    t.autoAnswer("INVITE", 200, offerSdp(5036), "application/sdp");
    RequestOptions o;
    o.headers = {"Refer-To: <" + aorOf("1007") + ">"};
    auto &refer = r.inDialog(ret, "REFER", o);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    // the target is INVITEd (offerless) and the transferee re-INVITEd with the target's offer
    REQUIRE(p.env().runUntil([&] {
        for (auto &in : a.incoming)
            if (in->request.method() == "INVITE" && sdpAudioPort(in->request.body()) == 5036) return true;
        return false;
    }));
    REQUIRE(p.env().runUntil([&] {
        for (auto &in : r.incoming)
            if (in->request.method() == "NOTIFY" && in->request.body().find("SIP/2.0 200") != std::string::npos)
                return true;
        return false;
    }));
    CHECK(t.last("INVITE")->request.header("From").find(aorOf("2001")) != std::string::npos);
    // the transferee and the target are connected: BYE from the target reaches the transferee
    auto *tin = t.last("INVITE");
    a.autoAnswer("BYE", 200);
    auto &bye = t.inDialog(*tin, "BYE");
    REQUIRE(p.waitFinal(bye));
    REQUIRE(p.env().runUntil([&] { return a.count("BYE") == 1; }));
}
