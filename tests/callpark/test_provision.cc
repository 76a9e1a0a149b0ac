// provision_file: a typo in a key is an error naming the key with file:line:col (as in the main config),
// at start and on reload (docs/callpark.md "provision_file").
#include "park_env.hh"

#include <cstdio>
#include <fstream>

using namespace parkway;
using namespace parkway::test;

namespace {

struct Provisioned {
    std::string db = tempDb();
    std::string file = db + ".toml";
    std::vector<std::string> errors; // error lines the modules logged
    std::unique_ptr<SipTestEnv> env;

    void write(const std::string &text) { std::ofstream(file, std::ios::trunc) << text; }
    // Start registrar + callpark with the file; false when a module's init failed (see errors).
    bool start() {
        proxy::CoreConfig cfg = SipTestEnv::defaultConfig();
        cfg.database = db;
        cfg.logSink = [this](int level, const std::string &, const std::string &text) {
            if (level == PW_LOG_ERROR)
                errors.push_back(text);
        };
        env = std::make_unique<SipTestEnv>(cfg);
        env->add(proxy::loadModule("registrar", SipTestEnv::moduleDir(), {}));
        env->add(proxy::loadModule("callpark", SipTestEnv::moduleDir(),
                                   {{"moh_port_min", "30000"},
                                    {"moh_port_max", "39998"},
                                    {"database", db + ".park"},
                                    {"provision_file", file}}));
        try {
            env->start();
            return true;
        } catch (const std::exception &) {
            return false;
        }
    }
    bool logged(const std::string &piece) const {
        for (const auto &e : errors)
            UNSCOPED_INFO("logged: " << e);
        for (const auto &e : errors)
            if (e.find(piece) != std::string::npos)
                return true;
        return false;
    }
    ~Provisioned() {
        env.reset();
        std::remove(file.c_str());
        for (std::string f : {db, db + ".park"})
            for (const char *suffix : {"", "-wal", "-shm"})
                std::remove((f + suffix).c_str());
    }
};

const char *kGood = "[[domain]]\n"
                    "name = \"parkway.test\"\n"
                    "recall_time = 120\n"
                    "\n"
                    "[[domain.group]]\n"
                    "name = \"sales\"\n"
                    "members = [\"101\", \"102\"]\n"
                    "\n"
                    "[[domain.lot]]\n"
                    "name = \"main\"\n"
                    "first = 701\n"
                    "last = 720\n";

} // namespace

TEST_CASE("provision file: an unknown key at start is an error with file:line:col naming it", "[provision]") {
    Provisioned p;
    p.write("[[domain]]\nname = \"parkway.test\"\nrecal_time = 5\n");
    CHECK_FALSE(p.start());
    CHECK(p.logged(p.file + ":3:1: domain.recal_time: unknown key (known: name, park_code,"));
    CHECK(p.logged("recall_time"));
}

TEST_CASE("provision file: unknown keys in groups, lots and at the top are refused on reload", "[provision]") {
    Provisioned p;
    p.write(kGood);
    REQUIRE(p.start());
    struct Case {
        std::string text, expect;
    } cases[] = {
        {std::string(kGood) + "notify_parkr = true\n", ":13:1: domain.lot.notify_parkr: unknown key"},
        {std::string(kGood).replace(std::string(kGood).find("members"), 7, "membrs"),
         ":7:1: domain.group.membrs: unknown key (known: name, members, notify_parker, recall_time,"},
        {"domains = []\n" + std::string(kGood), ":1:1: domains: unknown key (known: domain)"},
        {std::string(kGood).replace(std::string(kGood).find("recall_time"), 11, "recall_tme"),
         ":3:1: domain.recall_tme: unknown key"},
        {std::string(kGood) + "[[domain.lot]]\nname = \"b\"\nfirst = 1\nlast = 2\nchoise = \"next\"\n",
         ":17:1: domain.lot.choise: unknown key"},
        {"[[domain]]\nname = \"parkway.test\"\nextensions = \"101\"\n", ":3: 'extensions' must be an array of strings"},
    };
    for (const auto &c : cases) {
        INFO(c.text);
        p.errors.clear();
        p.write(c.text);
        CHECK(p.env->proxy().reload() == 1);
        CHECK(p.logged(p.file + c.expect));
    }
    // The good file still applies (nothing was half-applied by the bad ones).
    p.errors.clear();
    p.write(kGood);
    CHECK(p.env->proxy().reload() == 0);
    CHECK(p.errors.empty());
}
