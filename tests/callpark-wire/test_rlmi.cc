// RFC 4662 RLMI document and the multipart/related body (RFC 2387, RFC 2046 §5.1.1) of event list NOTIFYs.
#include "wire/rlmi.hh"

#include <catch2/catch.hpp>

#include <regex>

using namespace parkway::callpark;

TEST_CASE("rlmi list - uri version fullState - one resource with one instance and cid each - escaped", "[rlmi]") {
    std::vector<RlmiResource> rs(2);
    rs[0].uri = "sip:701@example.com";
    rs[0].instanceId = "701";
    rs[0].cid = "701.3.1@example.com";
    rs[1].uri = "sip:7<2>@example.com";
    rs[1].instanceId = "702";
    rs[1].cid = "702.3.1@example.com";
    rs[1].name = "Slot \"2\"";
    std::string x = buildRlmi("sip:lot-main@example.com", 3, false, rs);
    CHECK(x.find("<list xmlns=\"urn:ietf:params:xml:ns:rlmi\" uri=\"sip:lot-main@example.com\" version=\"3\" "
                 "fullState=\"false\">") != std::string::npos);
    CHECK(x.find("<resource uri=\"sip:701@example.com\">") != std::string::npos);
    CHECK(x.find("<instance id=\"701\" state=\"active\" cid=\"701.3.1@example.com\"/>") != std::string::npos);
    CHECK(x.find("<resource uri=\"sip:7&lt;2&gt;@example.com\">") != std::string::npos);
    CHECK(x.find("<name>Slot &quot;2&quot;</name>") != std::string::npos);
    CHECK(buildRlmi("sip:l@d", 0, true, {}).find("fullState=\"true\"") != std::string::npos);
}

TEST_CASE("multipart/related - root first named by start - Content-IDs - CRLFs - boundary not in any part",
          "[rlmi][multipart]") {
    std::vector<MimePart> parts = {
        {"application/rlmi+xml", "list.0.1@d", "<list cid=\"a.0.1@d\"/>\n"},
        {"application/dialog-info+xml", "a.0.1@d", "<dialog-info>pw-b</dialog-info>\n--pw-b0\r\n"},
    };
    // the seed and its first extension occur in a part: the boundary must be longer
    MultipartBody mb = buildMultipartRelated(parts, "pw-b");
    INFO(mb.contentType << "\n" << mb.body);
    CHECK(mb.boundary.rfind("pw-b", 0) == 0);
    for (const auto &p : parts)
        CHECK(p.body.find(mb.boundary) == std::string::npos);
    CHECK(mb.contentType ==
          "multipart/related;type=\"application/rlmi+xml\";start=\"<list.0.1@d>\";boundary=\"" + mb.boundary + "\"");
    std::string expected = "--" + mb.boundary + "\r\n" +
                           "Content-Transfer-Encoding: binary\r\n"
                           "Content-ID: <list.0.1@d>\r\n"
                           "Content-Type: application/rlmi+xml\r\n\r\n" +
                           parts[0].body + "\r\n--" + mb.boundary + "\r\n" +
                           "Content-Transfer-Encoding: binary\r\n"
                           "Content-ID: <a.0.1@d>\r\n"
                           "Content-Type: application/dialog-info+xml\r\n\r\n" +
                           parts[1].body + "\r\n--" + mb.boundary + "--\r\n";
    CHECK(mb.body == expected);
    // every line ends with CRLF outside the parts' own text: no bare LF in the MIME structure
    std::string structure = mb.body;
    for (const auto &p : parts)
        structure.replace(structure.find(p.body), p.body.size(), "");
    CHECK(std::regex_search(structure, std::regex("[^\r]\n")) == false);
    // the rlmi cid names the dialog-info part's Content-ID
    CHECK(mb.body.find("Content-ID: <a.0.1@d>") != std::string::npos);
}
