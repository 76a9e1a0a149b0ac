// Orbit parking by transfer to a slot number (issue 10 item 10, FreeSWITCH valet / 3CX style): a blind transfer
// to an empty lot slot (`702`) parks into it; an INVITE to the slot that is no transfer retrieves; a transfer to
// an occupied slot never connects the two callers (486, or the next free slot with `transfer=park_or_next`).
#include "park_env.hh"

using namespace parkway::test;
using nlohmann::json;

namespace {

// Lot main 701-720: 700 parks into a free slot, 7xx retrieves (and, by transfer, parks into) that slot.
void orbitLot(ParkEnv &p, const std::string &slotAttrs = "") {
    int st = 0;
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 720}}, &st);
    REQUIRE(st == 200);
    auto r = p.command("rules.import",
                       {{"text", "0\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"
                                 "0\t\t0\t11\tregex\t^7[0-9][0-9]$\t0\t\t\taction=retrieve;lot=main" +
                                     slotAttrs + "\n"}},
                       &st);
    INFO(r.dump());
    REQUIRE(st == 200);
}

std::string referredBy(const std::string &ext) {
    return "Referred-By: <" + aorOf(ext) + ">";
}

} // namespace

TEST_CASE("orbit by transfer - passthrough: the transferee's INVITE to slot 702 with Referred-By parks into 702",
          "[orbit][refer]") {
    ParkEnv p;
    orbitLot(p);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4600, 4602);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:702@" + kDomain + ">", referredBy("1003")};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202); // relayed to the transferee
    REQUIRE(b.count("REFER") == 1);
    auto &inv = p.invite(b, "2002", "702", 4604, {referredBy("1003")});
    REQUIRE(p.waitFinal(inv));
    CHECK(inv.finalStatus == 200);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["lot"] == "main");
    CHECK(list["parked"][0]["slot"] == 702);
    CHECK(list["parked"][0]["parker"] == "1003");
    CHECK(list["parked"][0]["parked_uri"] == aorOf("2002"));
    // a phone dialling 702 (no transfer) now retrieves it
    auto &ret = p.invite(p.ua("r"), "1005", "702", 4606);
    REQUIRE(p.waitFinal(ret));
    CHECK(ret.finalStatus == 200);
    CHECK(p.parkedCount() == 0);
}

TEST_CASE("orbit by transfer - passthrough: the REFER we saw makes the INVITE to 702 a park without Referred-By",
          "[orbit][refer]") {
    ParkEnv p;
    orbitLot(p);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4610, 4612);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:702@" + kDomain + ">"};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    auto &inv = p.invite(b, "2002", "702", 4614);
    REQUIRE(p.waitFinal(inv));
    CHECK(inv.finalStatus == 200);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["slot"] == 702);
    CHECK(list["parked"][0]["parker"] == "1003"); // the REFER's sender
}

TEST_CASE("orbit by transfer - an INVITE to an empty slot without Referred-By or a REFER is a retrieve: 404",
          "[orbit]") {
    ParkEnv p;
    orbitLot(p);
    auto &inv = p.invite(p.ua("x"), "2002", "702", 4620);
    REQUIRE(p.waitFinal(inv));
    CHECK(inv.finalStatus == 404);
    CHECK(p.parkedCount() == 0);
}

TEST_CASE("orbit by transfer - transfer=off keeps a transfer to a slot a retrieve: 404 on an empty slot", "[orbit]") {
    ParkEnv p;
    orbitLot(p, ";transfer=off");
    auto &inv = p.invite(p.ua("x"), "2002", "702", 4622, {referredBy("1003")});
    REQUIRE(p.waitFinal(inv));
    CHECK(inv.finalStatus == 404);
    CHECK(p.parkedCount() == 0);
}

TEST_CASE("orbit by transfer - to an occupied slot: 486 by default and the parked call is untouched, never bridged",
          "[orbit]") {
    ParkEnv p;
    orbitLot(p);
    // 701 and 702 taken by dialling 700 (park into a free slot), so this also runs without transfer-to-slot
    // support: there the transfer below was a retrieve that connected the two callers.
    auto &zero = p.ua("zero");
    auto &i0 = p.invite(zero, "2000", "700", 4628);
    REQUIRE(p.waitFinal(i0));
    REQUIRE(i0.finalStatus == 200);
    auto &first = p.ua("first");
    first.autoAnswer("INVITE", 200, answerSdp(4630), "application/sdp");
    first.autoAnswer("BYE", 200);
    auto &i1 = p.invite(first, "2001", "700", 4630);
    REQUIRE(p.waitFinal(i1));
    REQUIRE(i1.finalStatus == 200);
    json before = p.command("parked.list", {{"lot", "main"}});
    REQUIRE(before["parked"].size() == 2);
    json parked702;
    for (auto &c : before["parked"])
        if (c["slot"] == 702)
            parked702 = c;
    REQUIRE(parked702["parked_uri"] == aorOf("2001"));

    auto &second = p.ua("second");
    auto &i2 = p.invite(second, "2002", "702", 4632, {referredBy("1004")});
    REQUIRE(p.waitFinal(i2));
    CHECK(i2.finalStatus == 486);
    json after = p.command("parked.list", {{"lot", "main"}});
    REQUIRE(after["parked"].size() == 2);
    bool still = false;
    for (auto &c : after["parked"])
        if (c["slot"] == 702) {
            still = true;
            CHECK(c["id"] == parked702["id"]);
            CHECK(c["state"] == "parked");
        }
    CHECK(still);
    CHECK(first.count("INVITE") == 0); // no re-INVITE: the first caller was not connected to anybody
    CHECK(first.count("BYE") == 0);
}

TEST_CASE("orbit by transfer - to an occupied slot with transfer=park_or_next: parked into the next free slot",
          "[orbit]") {
    ParkEnv p;
    orbitLot(p, ";transfer=park_or_next");
    auto &first = p.ua("first");
    auto &i1 = p.invite(first, "2001", "702", 4640, {referredBy("1003")});
    REQUIRE(p.waitFinal(i1));
    REQUIRE(i1.finalStatus == 200);
    auto &second = p.ua("second");
    auto &i2 = p.invite(second, "2002", "702", 4642, {referredBy("1004")});
    REQUIRE(p.waitFinal(i2));
    CHECK(i2.finalStatus == 200);
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 2);
    std::map<std::string, int> slotOf;
    for (auto &c : list["parked"])
        slotOf[c["parked_uri"].get<std::string>()] = c["slot"].get<int>();
    CHECK(slotOf[aorOf("2001")] == 702);
    CHECK(slotOf[aorOf("2002")] == 703);
    CHECK(first.count("INVITE") == 0);
}

TEST_CASE("orbit by transfer - takeover: a REFER to slot 702 parks the transferee into 702", "[orbit][refer]") {
    ParkEnvOptions o;
    o.params["refer_mode"] = "takeover";
    ParkEnv p(o);
    orbitLot(p);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4650, 4652);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:702@" + kDomain + ">", referredBy("1003")};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    CHECK(b.count("REFER") == 0); // the module took it
    REQUIRE(p.env().runUntil([&] {
        for (auto *n : referNotifies(a))
            if (n->body().find("SIP/2.0 200") != std::string::npos)
                return true;
        return false;
    }));
    json list = p.command("parked.list");
    REQUIRE(list["parked"].size() == 1);
    CHECK(list["parked"][0]["lot"] == "main");
    CHECK(list["parked"][0]["slot"] == 702);
    CHECK(list["parked"][0]["parker"] == "1003");
    CHECK(list["parked"][0]["parked_uri"] == aorOf("2002"));
}

TEST_CASE("orbit by transfer - takeover: a REFER to an occupied slot fails in the sipfrag (486), the call stays",
          "[orbit][refer]") {
    ParkEnvOptions o;
    o.params["refer_mode"] = "takeover";
    ParkEnv p(o);
    orbitLot(p);
    auto &x = p.ua("x");
    auto &i0 = p.invite(x, "2009", "702", 4660, {referredBy("1004")});
    REQUIRE(p.waitFinal(i0));
    REQUIRE(i0.finalStatus == 200);
    auto &a = p.phone("1003");
    auto &b = p.phone("2002");
    auto &c = callThroughProxy(p, a, b, 4662, 4664);
    RequestOptions r;
    r.headers = {"Refer-To: <sip:702@" + kDomain + ">"};
    auto &refer = a.inDialog(c, "REFER", r);
    REQUIRE(p.waitFinal(refer));
    CHECK(refer.finalStatus == 202);
    REQUIRE(p.env().runUntil([&] {
        for (auto *n : referNotifies(a))
            if (n->header("Subscription-State").rfind("terminated", 0) == 0)
                return true;
        return false;
    }));
    for (auto *n : referNotifies(a))
        if (n->header("Subscription-State").rfind("terminated", 0) == 0)
            CHECK(n->body().find("SIP/2.0 486") != std::string::npos);
    CHECK(p.parkedCount() == 1);
    for (auto &in : b.incoming)
        CHECK(in->request.header("Replaces").empty()); // the call stays with the parker
    CHECK(x.count("INVITE") == 0);
}
