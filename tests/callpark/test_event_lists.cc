// RFC 4662 event lists: one SUBSCRIBE (Event: dialog, Supported: eventlist) to a lot's or a park group's list URI
// gets multipart/related NOTIFYs with an RLMI document and one dialog-info part per slot / member; a change sends
// only what changed (fullState="false"); without Supported: eventlist the answer is 421 + Require: eventlist.
#include "park_env.hh"

#include <regex>

using namespace parkway::test;

namespace {

std::vector<const SipMessage *> dialogNotifies(TestUa &ua) {
    std::vector<const SipMessage *> out;
    for (auto &in : ua.incoming)
        if (in->request.method() == "NOTIFY" && in->request.header("Event").rfind("dialog", 0) == 0)
            out.push_back(&in->request);
    return out;
}

struct Part {
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
};

// A multipart body split at its boundary (RFC 2046 §5.1.1); the CRLF before a delimiter is not the part's.
std::vector<Part> splitMultipart(const SipMessage &m) {
    std::vector<Part> parts;
    std::smatch sm;
    std::string ct = m.header("Content-Type");
    if (!std::regex_search(ct, sm, std::regex("boundary=\"?([^\";]+)\"?")))
        return parts;
    std::string delim = "--" + sm[1].str();
    std::string b = m.body();
    size_t pos = b.find(delim);
    while (pos != std::string::npos) {
        pos += delim.size();
        if (b.compare(pos, 2, "--") == 0)
            break; // the close delimiter
        pos += 2;  // CRLF after the delimiter
        size_t next = b.find("\r\n" + delim, pos);
        if (next == std::string::npos)
            break;
        std::string raw = b.substr(pos, next - pos);
        size_t hdrEnd = raw.find("\r\n\r\n");
        Part p;
        std::string hdrs = raw.substr(0, hdrEnd);
        p.body = hdrEnd == std::string::npos ? std::string() : raw.substr(hdrEnd + 4);
        size_t s = 0;
        while (s < hdrs.size()) {
            size_t e = hdrs.find("\r\n", s);
            std::string line = hdrs.substr(s, e == std::string::npos ? std::string::npos : e - s);
            size_t colon = line.find(':');
            if (colon != std::string::npos) {
                std::string name = line.substr(0, colon);
                for (auto &c : name)
                    c = char(std::tolower(static_cast<unsigned char>(c)));
                std::string value = line.substr(colon + 1);
                value.erase(0, value.find_first_not_of(' '));
                p.headers[name] = value;
            }
            if (e == std::string::npos)
                break;
            s = e + 2;
        }
        parts.push_back(std::move(p));
        pos = next + 2;
    }
    return parts;
}

std::vector<std::string> all(const std::string &text, const std::string &re) {
    std::vector<std::string> out;
    std::regex r(re);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), r); it != std::sregex_iterator(); ++it)
        out.push_back((*it)[1].str());
    return out;
}

std::string first(const std::string &text, const std::string &re) {
    auto v = all(text, re);
    return v.empty() ? std::string() : v[0];
}

Client &subscribeList(ParkEnv &p, TestUa &w, const std::string &ext, const std::string &list, bool eventlist) {
    RequestOptions o;
    o.from = "<" + aorOf(ext) + ">";
    o.to = "<sip:" + list + "@" + kDomain + ">";
    o.headers = {"Event: dialog", "Expires: 600",
                 "Accept: multipart/related, application/rlmi+xml, "
                 "application/dialog-info+xml"};
    if (eventlist)
        o.headers.push_back("Supported: eventlist");
    auto &c = w.send("SUBSCRIBE", "sip:" + list + "@" + kDomain, o);
    REQUIRE(p.waitFinal(c));
    return c;
}

// The checks every list NOTIFY passes: multipart/related with the RLMI root first (RFC 4662 §5, RFC 2387),
// each rlmi cid naming exactly one dialog-info part by its Content-ID. Returns the parts.
std::vector<Part> checkListNotify(const SipMessage &n) {
    std::string ct = n.header("Content-Type");
    INFO("Content-Type: " << ct);
    CHECK(ct.rfind("multipart/related", 0) == 0);
    CHECK(ct.find("type=\"application/rlmi+xml\"") != std::string::npos);
    CHECK(n.header("Require") == "eventlist");
    auto parts = splitMultipart(n);
    REQUIRE(!parts.empty());
    CHECK(parts[0].headers["content-type"] == "application/rlmi+xml");
    CHECK(ct.find("start=\"" + parts[0].headers["content-id"] + "\"") != std::string::npos);
    std::vector<std::string> cids = all(parts[0].body, "cid=\"([^\"]+)\"");
    REQUIRE(cids.size() + 1 == parts.size());
    for (size_t i = 1; i < parts.size(); ++i) {
        CHECK(parts[i].headers["content-type"] == "application/dialog-info+xml");
        CHECK(parts[i].headers["content-id"] == "<" + cids[i - 1] + ">");
    }
    return parts;
}

} // namespace

TEST_CASE("event list of a lot - full state with one dialog-info per slot - a park sends only that slot",
          "[event-lists][lot]") {
    ParkEnv p;
    int st = 0;
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 703}}, &st);
    REQUIRE(st == 200);
    p.command("rules.import", {{"text", "0\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"}}, &st);
    REQUIRE(st == 200);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribeList(p, w, "1010", "lot-main", true);
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 1; }));

    auto parts = checkListNotify(*dialogNotifies(w)[0]);
    const std::string &rlmi = parts[0].body;
    INFO(rlmi);
    CHECK(rlmi.find("xmlns=\"urn:ietf:params:xml:ns:rlmi\"") != std::string::npos);
    CHECK(first(rlmi, "<list[^>]* uri=\"([^\"]+)\"") == "sip:lot-main@" + kDomain);
    CHECK(first(rlmi, "<list[^>]* version=\"([0-9]+)\"") == "0");
    CHECK(first(rlmi, "<list[^>]* fullState=\"([a-z]+)\"") == "true");
    CHECK(all(rlmi, "<resource uri=\"([^\"]+)\"") ==
          std::vector<std::string>{"sip:701@" + kDomain, "sip:702@" + kDomain, "sip:703@" + kDomain});
    REQUIRE(parts.size() == 4);
    for (size_t i = 1; i < 4; ++i) {
        CHECK(first(parts[i].body, "entity=\"([^\"]+)\"") == "sip:70" + std::to_string(i) + "@" + kDomain);
        CHECK(first(parts[i].body, "<dialog-info[^>]* version=\"([0-9]+)\"") == "0");
        CHECK(parts[i].body.find("<dialog ") == std::string::npos); // idle
    }

    // park into the lot (700 -> first free slot, 701): one NOTIFY, partial, with 701 only
    auto &a = p.ua("a");
    a.autoAnswer("INVITE", 200, answerSdp(4130), "application/sdp");
    auto &inv = p.invite(a, "2001", "700", 4130, {}, "Lot Caller");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 2; }));
    p.env().runFor(200);
    CHECK(dialogNotifies(w).size() == 2);
    auto parts2 = checkListNotify(*dialogNotifies(w)[1]);
    INFO(parts2[0].body);
    CHECK(first(parts2[0].body, "<list[^>]* version=\"([0-9]+)\"") == "1");
    CHECK(first(parts2[0].body, "<list[^>]* fullState=\"([a-z]+)\"") == "false");
    CHECK(all(parts2[0].body, "<resource uri=\"([^\"]+)\"") == std::vector<std::string>{"sip:701@" + kDomain});
    REQUIRE(parts2.size() == 2);
    CHECK(first(parts2[1].body, "<dialog-info[^>]* version=\"([0-9]+)\"") == "1"); // 701's own sequence
    CHECK(parts2[1].body.find("Lot Caller") != std::string::npos);
    CHECK(parts2[1].body.find("<dialog ") != std::string::npos);
    CHECK(dialogNotifies(w)[1]->header("Subscription-State").rfind("active", 0) == 0);
}

TEST_CASE("event list URI without Supported: eventlist gets 421 with Require: eventlist", "[event-lists]") {
    ParkEnv p;
    int st = 0;
    p.command("lots.set", {{"domain", kDomain}, {"name", "main"}, {"first", 701}, {"last", 703}}, &st);
    REQUIRE(st == 200);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribeList(p, w, "1010", "lot-main", false);
    CHECK(sub.finalStatus == 421);
    const SipMessage *r = sub.response(421);
    REQUIRE(r);
    CHECK(r->header("Require") == "eventlist");
    p.env().runFor(200);
    CHECK(dialogNotifies(w).empty());
    // a lot that does not exist is no list of ours
    auto &none = subscribeList(p, w, "1010", "lot-nosuch", true);
    CHECK(none.finalStatus != 200);
    CHECK(none.finalStatus != 421);
}

TEST_CASE("event list of a park group lists its members - a park on a member sends that member only",
          "[event-lists][group]") {
    ParkEnv p;
    int st = 0;
    p.command("groups.set", {{"domain", kDomain}, {"name", "sales"}, {"members", {"101", "102"}}}, &st);
    REQUIRE(st == 200);
    auto &w = p.ua("w");
    w.autoAnswer("NOTIFY", 200);
    auto &sub = subscribeList(p, w, "1010", "group-sales", true);
    REQUIRE(sub.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 1; }));
    auto parts = checkListNotify(*dialogNotifies(w)[0]);
    INFO(parts[0].body);
    CHECK(first(parts[0].body, "<list[^>]* uri=\"([^\"]+)\"") == "sip:group-sales@" + kDomain);
    CHECK(first(parts[0].body, "<list[^>]* fullState=\"([a-z]+)\"") == "true");
    CHECK(all(parts[0].body, "<resource uri=\"([^\"]+)\"") ==
          std::vector<std::string>{"sip:101@" + kDomain, "sip:102@" + kDomain});
    REQUIRE(parts.size() == 3);
    CHECK(first(parts[1].body, "entity=\"([^\"]+)\"") == "sip:101@" + kDomain);
    CHECK(first(parts[2].body, "entity=\"([^\"]+)\"") == "sip:102@" + kDomain);

    // a directed park on member 102 (no group park: only the extension's state changes)
    auto &a = p.ua("a");
    auto &inv = p.invite(a, "2001", "*68102", 4132, {}, "Member Caller");
    REQUIRE(p.waitFinal(inv));
    REQUIRE(inv.finalStatus == 200);
    REQUIRE(p.env().runUntil([&] { return dialogNotifies(w).size() == 2; }));
    auto parts2 = checkListNotify(*dialogNotifies(w)[1]);
    INFO(parts2[0].body);
    CHECK(first(parts2[0].body, "<list[^>]* version=\"([0-9]+)\"") == "1");
    CHECK(first(parts2[0].body, "<list[^>]* fullState=\"([a-z]+)\"") == "false");
    CHECK(all(parts2[0].body, "<resource uri=\"([^\"]+)\"") == std::vector<std::string>{"sip:102@" + kDomain});
    REQUIRE(parts2.size() == 2);
    CHECK(parts2[1].body.find("Member Caller") != std::string::npos);
}
