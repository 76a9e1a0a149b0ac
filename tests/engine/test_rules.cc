// Dialplan rules: default feature codes, Kamailio semantics, errors naming the rule, file load, explain.
#include "helpers.hh"

#include <fstream>

using namespace parkway::engine;

namespace {
Rule rule(std::int64_t id, int pr, MatchOp op, std::string match, std::string attrs, int len = 0,
          std::string subst = "", std::string repl = "") {
    Rule r;
    r.id = id;
    r.pr = pr;
    r.matchOp = op;
    r.matchExp = std::move(match);
    r.attrs = std::move(attrs);
    r.matchLen = len;
    r.substExp = std::move(subst);
    r.replExp = std::move(repl);
    return r;
}
} // namespace

TEST_CASE("default rules: *68, *58, *88 with raw or escaped * and #") {
    FakeClock clock;
    auto e = memEngine(clock);
    struct Case {
        const char* dial;
        Action action;
        const char* ext;
    } cases[] = {
        {"*68103", Action::Park, "103"},     {"*68", Action::Park, ""},
        {"*68%23", Action::Park, ""},        {"*68103#", Action::Park, "103"},
        {"%2A68103", Action::Park, "103"},   {"%2a68103%23", Action::Park, "103"},
        {"*58", Action::GroupPark, ""},      {"*58#", Action::GroupPark, ""},
        {"%2A58%23", Action::GroupPark, ""}, {"*88103", Action::Retrieve, "103"},
        {"*88", Action::Retrieve, ""},       {"*88%23", Action::Retrieve, ""},
        {"103", Action::None, ""},           {"*69", Action::None, ""},
        {"68103", Action::None, ""},         {"*5812", Action::None, ""},
    };
    for (const auto& c : cases) {
        INFO(c.dial);
        auto r = e->classify("a.example", "100", c.dial);
        CHECK(r.action == c.action);
        CHECK(r.extension == c.ext);
    }
}

TEST_CASE("default rules follow the domain's feature codes") {
    FakeClock clock;
    auto e = memEngine(clock);
    DomainSettings d;
    d.name = "a.example";
    d.parkCode = "#70";
    d.retrieveCode = "*71";
    REQUIRE(e->setDomain(d).ok);
    CHECK(e->classify("a.example", "100", "#70103").action == Action::Park);
    CHECK(e->classify("a.example", "100", "%2370103").action == Action::Park);
    CHECK(e->classify("a.example", "100", "*68103").action == Action::None);
    CHECK(e->classify("b.example", "100", "*68103").action == Action::Park); // other domains keep defaults
    CHECK(e->classify("a.example", "100", "*71103").extension == "103");
    d.defaultRules = false;
    REQUIRE(e->setDomain(d).ok);
    CHECK(e->classify("a.example", "100", "#70103").action == Action::None);
}

TEST_CASE("setDomain remakes only that domain's plan: the others and the stored rules stay") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->replaceRules({rule(1, 10, MatchOp::Exact, "700", "action=park;lot=main")}).empty());
    DomainSettings a, b;
    a.name = "a.example";
    a.parkCode = "#70";
    b.name = "b.example";
    b.parkCode = "*80";
    REQUIRE(e->setDomain(a).ok);
    REQUIRE(e->setDomain(b).ok);
    a.parkCode = "#75";
    REQUIRE(e->setDomain(a).ok);
    CHECK(e->classify("a.example", "100", "#75103").action == Action::Park);
    CHECK(e->classify("a.example", "100", "#70103").action == Action::None);
    CHECK(e->classify("b.example", "100", "*80103").action == Action::Park);
    CHECK(e->classify("c.example", "100", "*68103").action == Action::Park); // no settings: the defaults
    for (const char *dom : {"a.example", "b.example", "c.example"})
        CHECK(e->classify(dom, "100", "700").lot == "main");
    // Rules replaced later apply to every domain's plan.
    REQUIRE(e->replaceRules({rule(2, 10, MatchOp::Exact, "701", "action=park;lot=side")}).empty());
    CHECK(e->classify("b.example", "100", "701").lot == "side");
    CHECK(e->classify("b.example", "100", "700").action == Action::None);
}

TEST_CASE("Kamailio semantics: lower pr first, first match wins, disabled is skipped") {
    FakeClock clock;
    auto e = memEngine(clock);
    std::vector<Rule> rs = {rule(1, 20, MatchOp::Glob, "7*", "action=route"),
                            rule(2, 10, MatchOp::Exact, "700", "action=park;lot=main"),
                            rule(3, 5, MatchOp::Exact, "700", "action=reject;code=488")};
    rs[2].disabled = true;
    REQUIRE(e->replaceRules(rs).empty());
    auto c = e->classify("a.example", "100", "700");
    CHECK(c.action == Action::Park);
    CHECK(c.ruleId == 2);
    CHECK(c.lot == "main");
    CHECK(c.slot == 0);
    CHECK(e->classify("a.example", "100", "701").action == Action::Route);
    CHECK(e->classify("a.example", "100", "701").route == "701");
}

TEST_CASE("Kamailio semantics: match_len groups are tried before match_len 0") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->replaceRules({rule(1, 1, MatchOp::Regex, "^7", "action=route;route=any"),
                             rule(2, 50, MatchOp::Regex, "^7", "action=watch;lot=main", 3)})
                .empty());
    // Length 3: the match_len=3 rule wins although its pr is higher.
    CHECK(e->classify("a.example", "100", "701").ruleId == 2);
    // Length 4: the match_len=3 rule does not apply.
    CHECK(e->classify("a.example", "100", "7011").ruleId == 1);
}

TEST_CASE("back-references: subst_exp groups fill repl_exp and attrs, subst must match too") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->setLot({"a.example", "main", 701, 720, SlotChoice::First, {}, {}}).ok);
    REQUIRE(e->replaceRules({
                rule(1, 1, MatchOp::Regex, "^7(0[1-9]|1[0-9]|20)$", "action=retrieve;lot=main", 0,
                     "^(7)(0[1-9]|1[0-9]|20)$", "\\1\\2"),
                rule(2, 2, MatchOp::Regex, "^\\*69", "action=park;lot=main;slot=\\1", 0, "^\\*69(7[0-9][0-9])$", "\\0"),
                rule(3, 3, MatchOp::Regex, "^9(.*)$", "action=route", 0, "^9(.*)$", "+1\\1"),
            })
                .empty());
    auto c = e->classify("a.example", "100", "705");
    CHECK(c.action == Action::Retrieve);
    CHECK(c.output == "705");
    CHECK(c.slot == 705);
    auto p = e->classify("a.example", "100", "*69712");
    CHECK(p.action == Action::Park);
    CHECK(p.slot == 712);
    CHECK(p.output == "*69712");
    CHECK(e->classify("a.example", "100", "95551234").route == "+15551234");
    // match_exp matches but subst_exp does not: translation fails, nothing is done (Kamailio).
    auto f = e->classify("a.example", "100", "*69abc");
    CHECK(f.action == Action::None);
    CHECK(f.ruleId == 2);
}

TEST_CASE("continue: attrs accumulate and matching goes on with the translated string") {
    FakeClock clock;
    auto e = memEngine(clock);
    Rule strip = rule(1, 1, MatchOp::Regex, "%23$", "recall=45", 0, "^(.*)%23$", "\\1");
    strip.cont = true;
    Rule park = rule(2, 2, MatchOp::Regex, "^\\*77", "action=park", 0, "^\\*77(.*)$", "\\1");
    REQUIRE(e->replaceRules({strip, park}).empty());
    auto c = e->classify("a.example", "100", "*77103%23");
    CHECK(c.action == Action::Park);
    CHECK(c.extension == "103");
    CHECK(c.matched == std::vector<std::int64_t>{1, 2});
    REQUIRE(c.overrides.recallSeconds);
    CHECK(*c.overrides.recallSeconds == 45);
    // Without the continue flag the first rule stops the search (and has no action).
    strip.cont = false;
    strip.attrs = "action=route";
    REQUIRE(e->replaceRules({strip, park}).empty());
    CHECK(e->classify("a.example", "100", "*77103%23").action == Action::Route);
}

TEST_CASE("bad rules are errors naming the rule id and the problem, nothing changes") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->replaceRules({rule(1, 1, MatchOp::Exact, "700", "action=park;lot=main")}).empty());
    auto errs = e->replaceRules({rule(7, 1, MatchOp::Regex, "^(7", "action=park")});
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].ruleId == 7);
    CHECK(errs[0].message.find("rule 7") != std::string::npos);
    CHECK(errs[0].message.find("regex") != std::string::npos);
    errs = e->replaceRules({rule(8, 1, MatchOp::Exact, "700", "action=teleport")});
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].message.find("rule 8") != std::string::npos);
    CHECK(errs[0].message.find("teleport") != std::string::npos);
    errs = e->replaceRules({rule(9, 1, MatchOp::Exact, "700", "action=park;recall=0")});
    CHECK(errs.at(0).message.find("recall") != std::string::npos);
    errs = e->replaceRules({rule(10, 1, MatchOp::Regex, "^7", "action=route", 0, "^(7)$", "\\2")});
    CHECK(errs.at(0).message.find("\\2") != std::string::npos);
    errs = e->replaceRules({rule(11, 1, MatchOp::Exact, "700", "")});
    CHECK(errs.at(0).message.find("action") != std::string::npos);
    errs = e->replaceRules({rule(12, 1, MatchOp::Exact, "700", "lot")});
    CHECK(errs.at(0).message.find("key=value") != std::string::npos);
    // The old rule is still in force.
    REQUIRE(e->rules().size() == 1);
    CHECK(e->classify("a.example", "100", "700").action == Action::Park);
}

TEST_CASE("rules file: load, errors with file and line, reload is an atomic swap") {
    FakeClock clock;
    TempDir dir;
    auto e = memEngine(clock);
    std::string good = dir.file("rules.tsv");
    {
        std::ofstream f(good);
        f << "# Orbit-style lot: dial 700 to park, 701-720 to retrieve\n"
          << "id\tdomain\tdpid\tpr\tmatch_op\tmatch_exp\tmatch_len\tsubst_exp\trepl_exp\tattrs\tdisabled\tcontinue\n"
          << "1\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"
          << "2\t\t0\t20\tregex\t^7(0[1-9]|1[0-9]|20)$\t3\t\t\taction=retrieve;lot=main\t0\t0\n"
          << "3\tb.example\t0\t5\tglob\t8??\t0\t\t\taction=reject;code=403\n";
    }
    REQUIRE(e->loadRulesFile(good).empty());
    CHECK(e->rules().size() == 3);
    CHECK(e->classify("a.example", "100", "700").action == Action::Park);
    CHECK(e->classify("a.example", "100", "715").slot == 715);
    CHECK(e->classify("a.example", "100", "801").action == Action::None);
    CHECK(e->classify("b.example", "100", "801").action == Action::Reject);
    CHECK(e->classify("b.example", "100", "801").rejectCode == 403);
    CHECK(e->classify("a.example", "100", "*68").action == Action::Park); // defaults still apply

    std::string bad = dir.file("bad.tsv");
    {
        std::ofstream f(bad);
        f << "1\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"
          << "4\t\t0\t10\tregex\t[\t0\t\t\taction=park\n"
          << "5\t\t0\tten\texact\t1\n";
    }
    auto errs = e->loadRulesFile(bad);
    REQUIRE(errs.size() == 2);
    CHECK(errs[0].line == 2);
    CHECK(errs[0].ruleId == 4);
    CHECK(errs[0].message.find("bad.tsv:2") != std::string::npos);
    CHECK(errs[1].message.find("pr 'ten'") != std::string::npos);
    CHECK(e->rules().size() == 3); // unchanged
    CHECK(e->loadRulesFile(dir.file("missing.tsv")).at(0).message.find("missing.tsv") != std::string::npos);

    // Round trip through the text format.
    std::vector<RuleError> perr;
    auto again = parseRulesText(formatRules(e->rules()), "roundtrip", perr);
    CHECK(perr.empty());
    CHECK(again.size() == 3);
}

TEST_CASE("reloadRules picks up rows edited in SQLite, setRule and removeRule") {
    FakeClock clock;
    TempDir dir;
    std::string path = dir.db("p.db");
    auto e = Engine::open(path, clock);
    auto other = Engine::open(path, clock);
    Rule r = rule(0, 10, MatchOp::Exact, "700", "action=park;lot=main");
    REQUIRE(other->setRule(r).empty());
    CHECK(r.id > 0);
    CHECK(e->classify("a.example", "1", "700").action == Action::None); // not reloaded yet
    REQUIRE(e->reloadRules().empty());
    CHECK(e->classify("a.example", "1", "700").action == Action::Park);
    r.attrs = "action=reject";
    REQUIRE(e->setRule(r).empty());
    CHECK(e->rules().size() == 1);
    CHECK(e->classify("a.example", "1", "700").action == Action::Reject);
    REQUIRE(e->removeRule(r.id).ok);
    CHECK(e->classify("a.example", "1", "700").action == Action::None);
    CHECK(e->removeRule(r.id).error == ErrorCode::NotFound);
}

TEST_CASE("explain shows the rule, attrs, the slot it would pick and the ladder, changing nothing") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->setLot({"a.example", "main", 701, 720, SlotChoice::First, {}, {}}).ok);
    REQUIRE(e->replaceRules({rule(1, 10, MatchOp::Exact, "700", "action=park;lot=main;recall=90;mode=parker")}).empty());
    ParkRequest lp;
    lp.domain = "a.example";
    lp.how = ParkHow::Lot;
    lp.lot = "main";
    REQUIRE(e->park(lp).ok); // takes 701
    auto seq = e->lastEventSequence();
    auto x = e->explain("a.example", "100", "700");
    CHECK(x.result.action == Action::Park);
    CHECK(x.result.ruleId == 1);
    CHECK(x.wouldParkLot == "main");
    CHECK(x.wouldParkSlot == 702);
    CHECK(x.recall.recallSeconds == 90);
    REQUIRE(x.ladder.size() == 1);
    CHECK(x.ladder[0].target.kind == RecallTarget::Kind::Parker);
    CHECK(x.wouldFail == ErrorCode::None);
    CHECK(e->list({}).size() == 1);
    CHECK(e->lastEventSequence() == seq);
    auto r = e->explain("a.example", "100", "*88103");
    CHECK(r.result.action == Action::Retrieve);
    CHECK(r.wouldFail == ErrorCode::NotFound);
    REQUIRE(e->park(directed("103")).ok);
    auto r2 = e->explain("a.example", "100", "*88103");
    REQUIRE(r2.wouldRetrieve);
    CHECK(r2.wouldRetrieve->extension == "103");
    CHECK(e->get(r2.wouldRetrieve->id)->state == CallState::Parked); // not claimed
    auto n = e->explain("a.example", "100", "555");
    CHECK(n.result.action == Action::None);
    CHECK_FALSE(n.trace.empty());
}

TEST_CASE("classification turns into engine requests and watch targets") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto c = e->classify("a.example", "100", "*68103");
    auto pr = makeParkRequest(c, "a.example", "100");
    CHECK(pr.how == ParkHow::Directed);
    CHECK(pr.extension == "103");
    CHECK(makeParkRequest(e->classify("a.example", "100", "*68"), "a.example", "100").how == ParkHow::Own);
    CHECK(makeParkRequest(e->classify("a.example", "100", "*58"), "a.example", "100").how == ParkHow::Group);
    auto rr = makeRetrieveRequest(e->classify("a.example", "100", "*88"), "a.example", "100");
    CHECK(rr.by == RetrieveRequest::By::Own);
    auto w = watchTarget(e->classify("a.example", "100", "*88103"), "a.example", "100");
    CHECK(w.key() == "ext:103");
}

TEST_CASE("attrs parsing") {
    Attrs a;
    CHECK(parseAttrs(" action = park ; lot=main;;x=", a).empty());
    REQUIRE(a.size() == 3);
    CHECK(a[0] == std::make_pair(std::string("action"), std::string("park")));
    CHECK(a[2].second.empty());
    CHECK_FALSE(parseAttrs("=x", a).empty());
}

TEST_CASE("hostile dial strings: very long or odd bytes never crash and match nothing harmful") {
    FakeClock clock;
    auto e = memEngine(clock);
    CHECK(e->classify("a.example", "100", "*68" + std::string(5000, '1')).action == Action::None);
    CHECK(e->classify("a.example", "100", "*68" + std::string(127, '1')).extension.size() == 127);
    CHECK(e->classify("a.example", "100", "*68" + std::string(128, '1')).action == Action::None); // never truncated
    // A NUL byte is never part of a SIP URI: such a dial string matches no rule (regex, glob or exact).
    CHECK(e->classify("a.example", "100", std::string("*68\0\xff", 5)).action == Action::None);
    CHECK(e->classify("a.example", "100", "*68\xff\xfe").extension == "\xff\xfe"); // any other byte is data
    CHECK(e->classify("a.example", "100", "").action == Action::None);
    CHECK(e->classify("", "", "*88").action == Action::Retrieve);
}

TEST_CASE("the first-byte index never changes which rule wins (fast path == explain's full scan)") {
    FakeClock clock;
    auto e = memEngine(clock);
    std::mt19937 rng(7);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    const char* alphabet = "*#%2A36780x";
    auto word = [&](int len) {
        std::string s;
        for (int i = 0; i < len; ++i) s.push_back(alphabet[pick(11)]);
        return s;
    };
    const char* regexes[] = {"^7", "^\\*6", "^7?8", "^(7|8)", "^[78]", "^x|^7", "68$", "^%2", "^\\#", "^A*3", "3{2}"};
    const char* globs[] = {"7*", "[*]6*", "*8", "?3*", "\\*8*", "[!7]*", "%2A*"};
    for (int round = 0; round < 20; ++round) {
        std::vector<Rule> rules;
        for (int i = 1; i <= 40; ++i) {
            Rule r;
            r.id = i;
            r.pr = pick(10);
            r.matchLen = pick(4) == 0 ? 3 : 0;
            r.attrs = i % 2 ? "action=route" : "action=watch";
            switch (pick(3)) {
            case 0: r.matchOp = MatchOp::Exact; r.matchExp = word(1 + pick(3)); break;
            case 1: r.matchOp = MatchOp::Regex; r.matchExp = regexes[pick(11)]; break;
            default: r.matchOp = MatchOp::Glob; r.matchExp = globs[pick(7)]; break;
            }
            r.disabled = pick(10) == 0;
            rules.push_back(r);
        }
        auto errs = e->replaceRules(rules);
        REQUIRE(errs.empty());
        for (int i = 0; i < 300; ++i) {
            std::string dial = word(pick(6));
            auto fast = e->classify("a.example", "100", dial);
            auto full = e->explain("a.example", "100", dial).result;
            INFO("dial '" << dial << "' round " << round);
            REQUIRE(fast.ruleId == full.ruleId);
            REQUIRE(fast.action == full.action);
            REQUIRE(fast.output == full.output);
        }
    }
}

TEST_CASE("explain a group park: the member hunting would pick, or the error it would get") {
    FakeClock clock;
    auto e = memEngine(clock);
    Group g{"a.example", "sales", {"201", "202"}, false, {}, {}};
    g.settings.occupied = OccupiedPolicy::Reject;
    g.settings.recallSeconds = 45;
    REQUIRE(e->setGroup(g).ok);
    REQUIRE(e->park(directed("201")).ok);
    auto x = e->explain("a.example", "202", "*58#");
    CHECK(x.result.action == Action::GroupPark);
    CHECK(x.wouldParkOn == "202");
    CHECK(x.recall.recallSeconds == 45);
    CHECK(x.occupied == OccupiedPolicy::Reject);
    REQUIRE(e->park(directed("202")).ok);
    auto full = e->explain("a.example", "202", "*58");
    CHECK(full.wouldFail == ErrorCode::GroupFull);
    CHECK(e->explain("a.example", "999", "*58").wouldFail == ErrorCode::NoGroup);
    CHECK(e->list({}).size() == 2);
}

TEST_CASE("regex rules run in linear time: ^(a+)+$ with a long dial string answers at once") {
    // A backtracking matcher (std::regex) takes 2^n steps here: hours at n = 60, far past any test timeout.
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->replaceRules({rule(1, 1, MatchOp::Regex, "^(a+)+$", "action=route"),
                             rule(2, 2, MatchOp::Regex, "^b", "action=route", 0, "^(a|aa)+$|^b(.*)$", "\\2")})
                .empty());
    std::string evil = std::string(60, 'a') + "!";
    CHECK(e->classify("a.example", "100", evil).action == Action::None);
    CHECK(e->explain("a.example", "100", evil).result.action == Action::None);
    CHECK(e->classify("a.example", "100", std::string(255, 'a')).ruleId == 1);
    auto sub = e->classify("a.example", "100", "b" + std::string(60, 'a') + "!");
    CHECK(sub.ruleId == 2);
    CHECK(sub.output == std::string(60, 'a') + "!");
}

TEST_CASE("RE2 syntax: back-references and look-around in a pattern are refused naming the rule") {
    FakeClock clock;
    auto e = memEngine(clock);
    auto errs = e->checkRules({rule(21, 1, MatchOp::Regex, "^(7)\\1$", "action=route")});
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].ruleId == 21);
    CHECK_THAT(errs[0].message, Catch::Contains("rule 21") && Catch::Contains("match_exp") &&
                                    Catch::Contains("back-references or look-around"));
    errs = e->checkRules({rule(22, 1, MatchOp::Regex, "^7", "action=route", 0, "^(?=7)(.*)$", "\\1")});
    REQUIRE(errs.size() == 1);
    CHECK_THAT(errs[0].message, Catch::Contains("rule 22") && Catch::Contains("subst_exp"));
    // The same from a rules file names the line.
    std::vector<RuleError> fileErrs;
    parseRulesText("# x\n5\t\t0\t1\tregex\t^(?<=a)7\t0\t\t\taction=route\n", "rules.tsv", fileErrs);
    REQUIRE(fileErrs.size() == 1);
    CHECK_THAT(fileErrs[0].message, Catch::StartsWith("rules.tsv:2: rule 5: bad regex in match_exp"));
}

TEST_CASE("RE2 syntax the prefilters do not understand never hides a match") {
    // (?i), \x41 and \Q..\E make plain-looking letters mean something else: no literal or first-byte filter.
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(e->replaceRules({rule(1, 1, MatchOp::Regex, "(?i)^park7$", "action=route;route=ci"),
                             rule(2, 2, MatchOp::Regex, "^\\x378$", "action=route;route=hex"),
                             rule(3, 3, MatchOp::Regex, "^\\Q*9\\E1$", "action=route;route=quoted"),
                             rule(4, 4, MatchOp::Regex, "^5.$", "action=route;route=byte")})
                .empty());
    CHECK(e->classify("a.example", "100", "PARK7").route == "ci");
    CHECK(e->classify("a.example", "100", "78").route == "hex");
    CHECK(e->classify("a.example", "100", "*91").route == "quoted");
    CHECK(e->classify("a.example", "100", "5\xff").route == "byte"); // bytes, not UTF-8 characters
}

TEST_CASE("RuleMatcher: the parser and matcher without an engine or SQLite") {
    std::vector<RuleError> errs;
    auto rules = parseRulesText("1\t\t0\t10\texact\t700\t0\t\t\taction=park;lot=main\n"
                                "2\t\t0\t20\tregex\t^7(0[1-9])$\t3\t^7(0[1-9])$\t\\1\taction=retrieve;lot=main\n",
                                "rules.tsv", errs);
    REQUIRE(errs.empty());
    DomainSettings d;
    d.name = "a.example";
    d.parkCode = "#70";
    RuleMatcher m = RuleMatcher::compile(rules, {d}, errs);
    REQUIRE(errs.empty());
    REQUIRE_FALSE(m.empty());
    CHECK(m.classify("a.example", "100", "700").action == Action::Park);
    auto r = m.classify("a.example", "100", "705");
    CHECK(r.action == Action::Retrieve);
    CHECK(r.slot == 5);
    CHECK(m.classify("a.example", "100", "#70103").extension == "103"); // the domain's own defaults
    CHECK(m.classify("other.example", "100", "*68103").extension == "103");
    std::vector<RuleTrace> trace;
    m.classify("a.example", "100", "799", &trace);
    CHECK_FALSE(trace.empty());
    // A bad rule: empty matcher, the error names it.
    Rule bad = rules[0];
    bad.id = 9;
    bad.attrs = "action=fly";
    RuleMatcher none = RuleMatcher::compile({bad}, {}, errs);
    CHECK(none.empty());
    REQUIRE(errs.size() == 1);
    CHECK_THAT(errs[0].message, Catch::Contains("rule 9"));
    CHECK(none.classify("a.example", "100", "700").action == Action::None);
}

TEST_CASE("transfer= on a lot slot rule: a transfer parks into the slot (default), the next free one, or not") {
    FakeClock clock;
    auto e = memEngine(clock);
    REQUIRE(
        e->replaceRules({rule(1, 10, MatchOp::Regex, "^7[0-9][0-9]$", "action=retrieve;lot=main"),
                         rule(2, 10, MatchOp::Regex, "^8[0-9][0-9]$", "action=retrieve;lot=b;transfer=off"),
                         rule(3, 10, MatchOp::Regex, "^9[0-9][0-9]$", "action=retrieve;lot=c;transfer=park_or_next")})
            .empty());
    auto slot = e->classify("a.example", "100", "702");
    CHECK(slot.action == Action::Retrieve); // dialled: still a retrieve
    CHECK(slot.transfer == TransferToSlot::Park);
    auto parkInto = transferToSlot(slot);
    REQUIRE(parkInto);
    CHECK(parkInto->action == Action::Park);
    auto pr = makeParkRequest(*parkInto, "a.example", "100");
    CHECK(pr.how == ParkHow::Lot);
    CHECK(pr.lot == "main");
    CHECK(pr.slot == 702);
    CHECK_FALSE(pr.slotOrNext);
    CHECK_FALSE(transferToSlot(e->classify("a.example", "100", "802")));
    auto next = transferToSlot(e->classify("a.example", "100", "902"));
    REQUIRE(next);
    CHECK(makeParkRequest(*next, "a.example", "100").slotOrNext);
    CHECK_FALSE(transferToSlot(e->classify("a.example", "100", "*68103"))); // not a lot slot
    CHECK_FALSE(transferToSlot(e->classify("a.example", "100", "*88103")));
    auto errs = e->replaceRules({rule(4, 10, MatchOp::Exact, "700", "action=retrieve;lot=main;transfer=maybe")});
    REQUIRE(errs.size() == 1);
    CHECK(errs[0].message.find("transfer=maybe") != std::string::npos);
}
