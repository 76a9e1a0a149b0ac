// Config errors name the key and the line: every file in bad/ says on its first line what the error must
// contain ("# expect: a * b" = a then b). The example config must load.
#include "app/config.hh"
#include "plugin/loader.hh"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <fstream>
#include <unistd.h>
#include <vector>

using namespace parkway::proxy;

namespace {
const std::string kBad = PARKWAY_CONFIG_BAD_DIR;
const std::string kModDir = PARKWAY_TEST_MODULE_DIR;

std::vector<std::string> badFiles() {
    std::vector<std::string> out;
    DIR *d = opendir(kBad.c_str());
    REQUIRE(d);
    while (dirent *e = readdir(d)) {
        std::string n = e->d_name;
        if (n.size() > 5 && n.substr(n.size() - 5) == ".toml") out.push_back(kBad + "/" + n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

std::string errorOf(const std::string &file) {
    try {
        AppConfig cfg = loadConfig(file);
        auto mods = loadModules(cfg, kModDir);
        for (auto &m : mods) unloadModule(m);
    } catch (const std::exception &e) {
        return e.what();
    }
    return "";
}
} // namespace

TEST_CASE("every bad config is refused with a message naming file, key and line") {
    auto files = badFiles();
    REQUIRE(files.size() >= 10);
    for (const auto &f : files) {
        DYNAMIC_SECTION(f) {
            std::ifstream in(f);
            std::string first;
            std::getline(in, first);
            REQUIRE(first.rfind("# expect: ", 0) == 0);
            std::string expect = first.substr(10);
            std::string err = errorOf(f);
            INFO("error: " << err);
            REQUIRE_FALSE(err.empty());
            CHECK(err.rfind(f, 0) == 0); // starts with the file name
            size_t pos = 0, at = 0;
            while (pos <= expect.size()) {
                size_t star = expect.find(" * ", pos);
                std::string piece = expect.substr(pos, star == std::string::npos ? std::string::npos : star - pos);
                size_t found = err.find(piece, at);
                INFO("missing piece: " << piece);
                CHECK(found != std::string::npos);
                if (found != std::string::npos) at = found + piece.size();
                if (star == std::string::npos) break;
                pos = star + 3;
            }
        }
    }
}

TEST_CASE("the example config loads with its modules") {
    AppConfig cfg = loadConfig(PARKWAY_EXAMPLE_CONFIG);
    CHECK(cfg.core.listen == std::vector<std::string>{"sip:127.0.0.1:5060;transport=udp", "sip:127.0.0.1:5060;transport=tcp"});
    CHECK(cfg.modules == std::vector<std::string>{"registrar", "callpark", "router"});
    CHECK(cfg.adminEnabled);
    CHECK(cfg.admin.token == "change-me");
    CHECK(cfg.admin.metricsRequireToken);
    CHECK(cfg.core.configDir + "/parkway.db" == cfg.core.database); // relative module files resolve here too
    CHECK(cfg.core.database.size() > 11);
    CHECK(cfg.core.database.substr(cfg.core.database.size() - 11) == "/parkway.db"); // next to the config file
    auto mods = loadModules(cfg, kModDir);
    REQUIRE(mods.size() == 3);
    CHECK(mods[0].params.at("min_expires") == "60");
    CHECK(mods[1].params.at("provision_file") == "provision.toml");
    for (auto &m : mods) unloadModule(m);
}

TEST_CASE("listen addresses become sofia URLs") {
    CHECK(listenToSofiaUrl("udp:127.0.0.1:5060") == "sip:127.0.0.1:5060;transport=udp");
    CHECK(listenToSofiaUrl("tcp:[::1]:5070") == "sip:[::1]:5070;transport=tcp");
    CHECK(listenToSofiaUrl("udp:127.0.0.1:0") == "sip:127.0.0.1:*;transport=udp");
    CHECK_THROWS_WITH(listenToSofiaUrl("127.0.0.1:5060"), Catch::Contains("unknown transport"));
    CHECK_THROWS_WITH(listenToSofiaUrl("udp:127.0.0.1"), Catch::Contains("missing port"));
    CHECK_THROWS_WITH(listenToSofiaUrl("udp:127.0.0.1:x"), Catch::Contains("bad port"));
}

TEST_CASE("module parameters: arrays arrive newline-joined, scalars as text") {
    char tmpl[] = "/tmp/parkway-cfg-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    std::ofstream(tmpl) << "[modules]\nload = [\"router\"]\n[module.router]\nroutes = [\"prefix:9 => sip:a\", "
                           "\"regex:^1{2,3} => sip:b\"]\nuse_received = true\n";
    AppConfig cfg = loadConfig(tmpl);
    CHECK(cfg.moduleParams["router"]["routes"] == "prefix:9 => sip:a\nregex:^1{2,3} => sip:b");
    CHECK(cfg.moduleParams["router"]["use_received"] == "true");
    std::remove(tmpl);
}

TEST_CASE("dumpCoreConfig documents every core key") {
    std::string d = dumpCoreConfig();
    for (const char *k : {"[proxy]", "listen =", "domains =", "database =", "record_route =", "log_level =",
                          "module_dir =", "instance =", "t1_ms =", "[admin]", "token =", "[modules]", "load ="})
        CHECK_THAT(d, Catch::Contains(k));
}

TEST_CASE("admin.console is read from the config (on by default)") {
    char tmpl[] = "/tmp/parkway-cfg-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    std::ofstream(tmpl) << "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\n";
    CHECK(loadConfig(tmpl).admin.console);
    std::ofstream(tmpl) << "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\nconsole = false\n";
    CHECK_FALSE(loadConfig(tmpl).admin.console);
    std::ofstream(tmpl) << "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\nconsole = \"yes\"\n";
    CHECK_THROWS_WITH(loadConfig(tmpl), Catch::Contains("admin.console"));
    std::remove(tmpl);
}

TEST_CASE("admin.metrics_require_token is read from the config") {
    char tmpl[] = "/tmp/parkway-cfg-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    std::ofstream(tmpl) << "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\nmetrics_require_token = false\n";
    AppConfig cfg = loadConfig(tmpl);
    CHECK_FALSE(cfg.admin.metricsRequireToken);
    CHECK(cfg.admin.requireToken);
    std::ofstream(tmpl) << "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"t\"\nmetrics_require_token = 3\n";
    CHECK_THROWS_WITH(loadConfig(tmpl), Catch::Contains("admin.metrics_require_token"));
    std::remove(tmpl);
}
