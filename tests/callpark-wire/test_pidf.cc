#include <catch2/catch.hpp>

#include "wire/pidf.hh"

using namespace parkway::callpark;

TEST_CASE("pidf for a free park slot: one open tuple, no activity, no note (golden)") {
    CHECK(buildPidf("sip:*88103@pbx.example.net", {}) ==
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
          "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:*88103@pbx.example.net\">\n"
          "  <tuple id=\"park-slot\">\n"
          "    <status><basic>open</basic></status>\n"
          "  </tuple>\n"
          "</presence>\n");
}

TEST_CASE("pidf for an occupied park slot: open + rpid on-the-phone + an escaped note (golden)") {
    std::string xml =
        buildPidf("sip:*88103@pbx.example.net", {Identity{"sip:1004@pbx.example.net", "Alice <\"South\"> & co"}});
    CHECK(xml == "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\" "
                 "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\" entity=\"sip:*88103@pbx.example.net\">\n"
                 "  <tuple id=\"park-slot\">\n"
                 "    <status><basic>open</basic></status>\n"
                 "    <note>Parked: Alice &lt;&quot;South&quot;&gt; &amp; co</note>\n"
                 "  </tuple>\n"
                 "  <dm:person id=\"park-slot-person\">\n"
                 "    <rpid:activities><rpid:on-the-phone/></rpid:activities>\n"
                 "  </dm:person>\n"
                 "</presence>\n");
}

TEST_CASE("pidf escapes the entity - a party without a display name shows its URI - several parked are listed") {
    std::string xml = buildPidf("sip:a&\"b\"@d", {Identity{"sip:2001@d;x=<1>", ""}, Identity{"sip:2002@d", "B"}});
    CHECK(xml.find("entity=\"sip:a&amp;&quot;b&quot;@d\"") != std::string::npos);
    CHECK(xml.find("<note>Parked: sip:2001@d;x=&lt;1&gt;, B</note>") != std::string::npos);
    CHECK(xml.find("\"b\"") == std::string::npos);
}
