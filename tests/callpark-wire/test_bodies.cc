#include <catch2/catch.hpp>

#include "wire/bodies.hh"

using namespace parkway::callpark;

TEST_CASE("xmlEscape escapes markup and drops forbidden control characters") {
    CHECK(xmlEscape("a&b<c>d\"e'f") == "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    CHECK(xmlEscape(std::string("x\x01y\tz", 5)) == "xy&#9;z");
    CHECK(xmlEscape("a\r\nb") == "a&#13;&#10;b"); // kept through attribute-value normalisation
}

TEST_CASE("xmlEscape makes any bytes well-formed UTF-8: invalid sequences become U+FFFD") {
    CHECK(xmlEscape("Jos\xe9") == "Jos\xef\xbf\xbd");                   // ISO-8859-1 e-acute
    CHECK(xmlEscape("Jos\xc3\xa9") == "Jos\xc3\xa9");                   // valid UTF-8 is kept as is
    CHECK(xmlEscape("\xc0\xaf<") == "\xef\xbf\xbd&lt;");                // overlong '/' (one U+FFFD), then markup
    CHECK(xmlEscape("\xed\xa0\x80").find("\xed") == std::string::npos); // a UTF-16 surrogate is not UTF-8
    CHECK(xmlEscape("a\xef\xbf\xbe"
                    "b\xef\xbf\xbf") == "ab"); // XML non-characters dropped
    std::string body = buildBroadWorksCallparkInfo(Identity{"sip:2001@x", "Jos\xe9 \"<&>\""});
    CHECK(body.find("display=\"Jos\xef\xbf\xbd &quot;&lt;&amp;&gt;&quot;\"") != std::string::npos);
}

TEST_CASE("dialog-info for a parked slot (golden)") {
    DialogInfoDialog d;
    d.id = "pk-17";
    d.callId = "c1@192.0.2.14";
    d.localTag = "pw-abc";
    d.remoteTag = "gs-123";
    d.direction = "recipient";
    d.state = DialogState::Early;
    d.remote = {"sip:1004@pbx.example.net", "Alice <South> & co"};
    d.remoteTarget = "sip:1004@pbx.example.net";
    d.local = {"sip:103@pbx.example.net", ""};
    d.localTarget = "sip:*88103@pbx.example.net";
    std::string xml = buildDialogInfo("sip:*88103@pbx.example.net", 3, DialogInfoState::Full, {d});
    CHECK(xml ==
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"3\" state=\"full\" "
          "entity=\"sip:*88103@pbx.example.net\">\n"
          "  <dialog id=\"pk-17\" call-id=\"c1@192.0.2.14\" local-tag=\"pw-abc\" remote-tag=\"gs-123\" "
          "direction=\"recipient\">\n"
          "    <state>early</state>\n"
          "    <local><identity>sip:103@pbx.example.net</identity>"
          "<target uri=\"sip:*88103@pbx.example.net\"/></local>\n"
          "    <remote><identity display=\"Alice &lt;South&gt; &amp; co\">sip:1004@pbx.example.net</identity>"
          "<target uri=\"sip:1004@pbx.example.net\"/></remote>\n"
          "  </dialog>\n"
          "</dialog-info>\n");
}

TEST_CASE("dialog-info idle full state, terminated partial state, BroadWorks extension") {
    CHECK(buildDialogInfo("sip:*88103@d", 0, DialogInfoState::Full, {}) ==
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"0\" state=\"full\" "
          "entity=\"sip:*88103@d\">\n"
          "</dialog-info>\n");

    DialogInfoDialog t;
    t.id = "pk-17";
    t.state = DialogState::Terminated;
    t.stateEvent = "remote-bye";
    CHECK(buildDialogInfo("sip:*88103@d", 4, DialogInfoState::Partial, {t}) ==
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"4\" state=\"partial\" "
          "entity=\"sip:*88103@d\">\n"
          "  <dialog id=\"pk-17\">\n"
          "    <state event=\"remote-bye\">terminated</state>\n"
          "  </dialog>\n"
          "</dialog-info>\n");

    DialogInfoDialog bw;
    bw.id = "x";
    bw.state = DialogState::Confirmed;
    bw.remote = {"sip:+15550001111@d;user=phone", "Alice South"};
    bw.broadworksCallpark = true;
    std::string xml = buildDialogInfo("sip:103@d", 1, DialogInfoState::Full, {bw});
    CHECK_THAT(xml, Catch::Contains("xmlns:bw=\"http://schema.broadsoft.com/callpark\""));
    CHECK_THAT(xml, Catch::Contains("<bw:callpark><bw:parked><identity display=\"Alice South\">"
                                    "sip:+15550001111@d;user=phone</identity></bw:parked></bw:callpark>"));
    CHECK_THAT(xml, Catch::Contains("<state>confirmed</state>"));
}

TEST_CASE("park-info body (golden, docs/park-info.md)") {
    ParkInfoEntry e;
    e.id = "42";
    e.state = ParkInfoState::Parked;
    e.parkedOn = "sip:103@pbx.example.net";
    e.parker = {"sip:1003@pbx.example.net", "James"};
    e.parkedParty = {"sip:+15550001111@pbx.example.net", "Alice \"Al\" South"};
    e.retrieve = "sip:*88103@pbx.example.net";
    e.group = "Sales & Support";
    e.parkedAt = 1795910400;  // 2026-11-29T00:00:00Z
    e.recallAt = 1795910700;
    e.changedAt = 1795910400;
    std::string xml = buildParkInfo("sip:103@pbx.example.net", 7, {e});
    CHECK(xml ==
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<park-info xmlns=\"urn:parkway:params:xml:ns:park-info\" version=\"7\" entity=\"sip:103@pbx.example.net\">\n"
          "  <parked id=\"42\" state=\"parked\">\n"
          "    <parked-on>sip:103@pbx.example.net</parked-on>\n"
          "    <parker display=\"James\">sip:1003@pbx.example.net</parker>\n"
          "    <parked-party display=\"Alice &quot;Al&quot; South\">sip:+15550001111@pbx.example.net</parked-party>\n"
          "    <retrieve>sip:*88103@pbx.example.net</retrieve>\n"
          "    <group>Sales &amp; Support</group>\n"
          "    <parked-at>2026-11-29T00:00:00Z</parked-at>\n"
          "    <recall-at>2026-11-29T00:05:00Z</recall-at>\n"
          "    <changed-at>2026-11-29T00:00:00Z</changed-at>\n"
          "  </parked>\n"
          "</park-info>\n");

    ParkInfoEntry r;
    r.id = "43";
    r.state = ParkInfoState::Abandoned;
    r.parkedOn = "sip:701@d";
    r.lot = "main";
    r.slot = "701";
    std::string x2 = buildParkInfo("sip:701@d", 8, {r});
    CHECK_THAT(x2, Catch::Contains("<parked id=\"43\" state=\"abandoned\">"));
    CHECK_THAT(x2, Catch::Contains("<lot slot=\"701\">main</lot>"));
    CHECK(x2.find("<parker") == std::string::npos);
    CHECK(toString(ParkInfoState::Retrieved) == "retrieved");
    CHECK(toString(ParkInfoState::Recalled) == "recalled");
}

TEST_CASE("BroadWorks x-broadworks-callpark-info (golden)") {
    CHECK(buildBroadWorksCallparkInfo(std::nullopt) ==
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<x-broadworks-callpark-info xmlns=\"http://schema.broadsoft.com/callpark\">\n"
          "  <callpark/>\n"
          "</x-broadworks-callpark-info>\n");
    CHECK(buildBroadWorksCallparkInfo(Identity{"sip:C@as.example.net;user=phone", "C. Parked"}) ==
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<x-broadworks-callpark-info xmlns=\"http://schema.broadsoft.com/callpark\">\n"
          "  <callpark>\n"
          "    <parked>\n"
          "      <identity display=\"C. Parked\">sip:C@as.example.net;user=phone</identity>\n"
          "    </parked>\n"
          "  </callpark>\n"
          "</x-broadworks-callpark-info>\n");
}

TEST_CASE("message/sipfrag bodies") {
    CHECK(buildSipfrag(100) == "SIP/2.0 100 Trying\r\n");
    CHECK(buildSipfrag(200) == "SIP/2.0 200 OK\r\n");
    CHECK(buildSipfrag(486) == "SIP/2.0 486 Busy Here\r\n");
    CHECK(buildSipfrag(404, "No Parked Call") == "SIP/2.0 404 No Parked Call\r\n");
    CHECK(buildSipfrag(480, "bad\r\nX-Injected: 1") == "SIP/2.0 480 badX-Injected: 1\r\n");
    CHECK(buildSipfrag(499) == "SIP/2.0 499 Request Failure\r\n");
    CHECK(buildSipfrag(42) == "SIP/2.0 500 Server Internal Error\r\n");
    CHECK(kSipfragContentType == "message/sipfrag;version=2.0");
}
