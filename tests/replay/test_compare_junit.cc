// The JUnit report (tools/replay/compare.hh writeJunit): well-formed XML with counts and escaped diffs.
#include "compare.hh"

#include <catch2/catch.hpp>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace parkway::replay;

namespace {
std::string attr(xmlNode *n, const char *name) {
    xmlChar *v = xmlGetProp(n, reinterpret_cast<const xmlChar *>(name));
    std::string out = v ? reinterpret_cast<const char *>(v) : "";
    xmlFree(v);
    return out;
}
xmlNode *child(xmlNode *n, const char *name) {
    for (xmlNode *c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && std::string(reinterpret_cast<const char *>(c->name)) == name)
            return c;
    return nullptr;
}
} // namespace

TEST_CASE("the JUnit report is well-formed, counts right and carries the escaped diff") {
    std::string diff =
        "step 14 bob: expect NOTIFY (dialog {{call3}}, Event dialog)\n"
        "  body dialog-info: dialog[@id=a&b]/state: expected '<confirmed>', got \"terminated\"\x01\xff\n";
    std::vector<StepOutcome> outcomes = {{1, "1 alice send INVITE", true, false, 0.01, ""},
                                         {2, "2 alice expect 100", false, true, 0, ""},
                                         {14, "14 bob expect NOTIFY <dialog>", false, false, 1.5, diff}};
    char path[] = "/tmp/replay-junit-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    writeJunit(path, "park & retrieve", outcomes, 2.25);

    xmlDoc *doc = xmlReadFile(path, nullptr, XML_PARSE_NONET);
    REQUIRE(doc != nullptr);
    xmlNode *suites = xmlDocGetRootElement(doc);
    xmlNode *suite = child(suites, "testsuite");
    REQUIRE(suite != nullptr);
    CHECK(attr(suite, "name") == "park & retrieve");
    CHECK(attr(suite, "tests") == "3");
    CHECK(attr(suite, "failures") == "1");
    CHECK(attr(suite, "skipped") == "1");
    CHECK(attr(suite, "time") == "2.250");
    int cases = 0;
    std::string failureText, failureMessage;
    for (xmlNode *c = suite->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        ++cases;
        if (xmlNode *f = child(c, "failure")) {
            failureMessage = attr(f, "message");
            xmlChar *t = xmlNodeGetContent(f);
            failureText = reinterpret_cast<const char *>(t);
            xmlFree(t);
        }
    }
    xmlFreeDoc(doc);
    CHECK(cases == 3);
    CHECK(failureMessage == "step 14 bob: expect NOTIFY (dialog {{call3}}, Event dialog)");
    CHECK(failureText.find("dialog[@id=a&b]/state: expected '<confirmed>', got \"terminated\"") != std::string::npos);

    // A second, independent parser (the one CI tools written in Python use).
    std::string cmd =
        std::string("python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' ") + path;
    CHECK(std::system(cmd.c_str()) == 0);
    std::remove(path);
    CHECK_THROWS_WITH(writeJunit("/nonexistent-dir/x.xml", "s", outcomes, 1),
                      Catch::Contains("/nonexistent-dir/x.xml"));
}
