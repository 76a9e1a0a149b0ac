// Loader tests: the loader accepts a good module and refuses each broken one with a message that names the
// file and the reason (issue 2 item 5).
#include "plugin/loader.hh"

#include <catch2/catch.hpp>

#include <string>

using namespace parkway::proxy;

namespace {
const std::string kDir = ABI_TEST_MODULE_DIR;
const std::map<std::string, std::string> kGoodParams{{"target", "sip:trunk@127.0.0.1"}};

// Load and return the LoadError message ("" when it loaded).
std::string loadError(const std::string &name, const std::map<std::string, std::string> &params = kGoodParams) {
    try {
        LoadedModule m = loadModule(name, kDir, params);
        unloadModule(m);
    } catch (const LoadError &e) {
        return e.what();
    }
    return "";
}
} // namespace

TEST_CASE("a good module loads by name with defaults applied and values normalised") {
    LoadedModule m = loadModule("abi_good", kDir, {{"target", "sip:x@127.0.0.1"}, {"timeout", "5m"}});
    REQUIRE(m.desc != nullptr);
    CHECK(std::string(m.desc->name) == "good");
    CHECK(m.path == kDir + "/abi_good.so");
    CHECK(m.dlHandle != nullptr);
    CHECK(m.params.at("greeting") == "hello \"world\"");
    CHECK(m.params.at("count") == "3");
    CHECK(m.params.at("enabled") == "true");
    CHECK(m.params.at("timeout") == "300000");
    CHECK(m.params.at("target") == "sip:x@127.0.0.1");
    unloadModule(m);
    CHECK(m.desc == nullptr);
    CHECK(m.dlHandle == nullptr);
}

TEST_CASE("a good module loads by path") {
    LoadedModule m = loadModule(kDir + "/abi_good.so", "/nonexistent", kGoodParams);
    CHECK(std::string(m.desc->name) == "good");
    unloadModule(m);
}

TEST_CASE("typed parameter values are parsed") {
    LoadedModule m = loadModule("abi_good", kDir,
                                {{"target", "t"}, {"count", "-12"}, {"enabled", "off"}, {"timeout", "500ms"}});
    CHECK(m.params.at("count") == "-12");
    CHECK(m.params.at("enabled") == "false");
    CHECK(m.params.at("timeout") == "500");
    unloadModule(m);
}

TEST_CASE("a missing file is refused naming the path") {
    std::string e = loadError("no_such_module");
    CHECK_THAT(e, Catch::Contains(kDir + "/no_such_module.so"));
    CHECK_THAT(e, Catch::Contains("cannot load module"));
}

TEST_CASE("a wrong ABI major is refused") {
    std::string e = loadError("abi_wrong_major");
    CHECK_THAT(e, Catch::Contains("abi_wrong_major.so"));
    CHECK_THAT(e, Catch::Contains("ABI major 2 does not match the host ABI major 1"));
}

TEST_CASE("a descriptor shorter than the v1.0 layout is refused") {
    std::string e = loadError("abi_short_struct");
    CHECK_THAT(e, Catch::Contains("abi_short_struct.so"));
    CHECK_THAT(e, Catch::Contains("shorter than the ABI v1.0 layout"));
}

TEST_CASE("a short parameter entry is refused") {
    std::string e = loadError("abi_short_param");
    CHECK_THAT(e, Catch::Contains("abi_short_param.so"));
    CHECK_THAT(e, Catch::Contains("parameter entry struct_size 8"));
}

TEST_CASE("a library without pw_module_entry is refused") {
    std::string e = loadError("abi_missing_symbol");
    CHECK_THAT(e, Catch::Contains("abi_missing_symbol.so"));
    CHECK_THAT(e, Catch::Contains("missing symbol 'pw_module_entry'"));
}

TEST_CASE("an entry returning NULL is refused") {
    std::string e = loadError("abi_null_entry");
    CHECK_THAT(e, Catch::Contains("abi_null_entry.so"));
    CHECK_THAT(e, Catch::Contains("returned NULL"));
}

TEST_CASE("a module without a required hook is refused") {
    std::string e = loadError("abi_missing_hook");
    CHECK_THAT(e, Catch::Contains("abi_missing_hook.so"));
    CHECK_THAT(e, Catch::Contains("no on_request hook"));
}

TEST_CASE("a module with an invalid name is refused") {
    CHECK_THAT(loadError("abi_bad_name"), Catch::Contains("module name 'Bad-Name' is invalid"));
}

TEST_CASE("a REST route naming a command the module does not have is refused (ABI 1.4)") {
    std::string e = loadError("abi_bad_route");
    CHECK_THAT(e, Catch::Contains("route GET /api/bad"));
    CHECK_THAT(e, Catch::Contains("'no.such'"));
}

TEST_CASE("an unknown parameter is refused naming it and the known ones") {
    std::string e = loadError("abi_good", {{"target", "t"}, {"colour", "blue"}});
    CHECK_THAT(e, Catch::Contains("abi_good.so"));
    CHECK_THAT(e, Catch::Contains("unknown parameter 'colour'"));
    CHECK_THAT(e, Catch::Contains("count"));
}

TEST_CASE("a bad typed value is refused naming parameter and value") {
    CHECK_THAT(loadError("abi_good", {{"target", "t"}, {"count", "three"}}),
               Catch::Contains("parameter 'count' = 'three' is not a valid int"));
    CHECK_THAT(loadError("abi_good", {{"target", "t"}, {"enabled", "maybe"}}),
               Catch::Contains("parameter 'enabled' = 'maybe' is not a valid bool"));
    CHECK_THAT(loadError("abi_good", {{"target", "t"}, {"timeout", "30 fortnights"}}),
               Catch::Contains("parameter 'timeout' = '30 fortnights' is not a valid duration"));
}

TEST_CASE("a missing required parameter is refused") {
    CHECK_THAT(loadError("abi_good", {}), Catch::Contains("required parameter 'target' is missing"));
}

TEST_CASE("a static module goes through the same validation") {
    LoadedModule good = openModule("abi_good", kDir);
    LoadedModule s = staticModule(good.desc, kGoodParams);
    CHECK(s.path.empty());
    CHECK(s.dlHandle == nullptr);
    CHECK(s.params.at("count") == "3");
    CHECK_THROWS_WITH(staticModule(good.desc, {}), Catch::Contains("module good: module 'good': required"));
    CHECK_THROWS_AS(staticModule(nullptr, {}), LoadError);
    unloadModule(good);
}

TEST_CASE("dumpParams documents every parameter as usable TOML") {
    LoadedModule good = openModule("abi_good", kDir);
    std::string d = dumpParams(good.desc);
    CHECK_THAT(d, Catch::Contains("[module.good]"));
    CHECK_THAT(d, Catch::Contains("# count (int): how many times\ncount = 3\n"));
    CHECK_THAT(d, Catch::Contains("greeting = \"hello \\\"world\\\"\""));
    CHECK_THAT(d, Catch::Contains("timeout = \"30s\""));
    CHECK_THAT(d, Catch::Contains("# target =    # REQUIRED"));
    CHECK_THAT(d, Catch::Contains("ping"));
    unloadModule(good);
}

TEST_CASE("value parsers") {
    CHECK(parseDurationMs("30s") == 30000);
    CHECK(parseDurationMs("5m") == 300000);
    CHECK(parseDurationMs("1h") == 3600000);
    CHECK(parseDurationMs("250") == 250);
    CHECK_FALSE(parseDurationMs("s").has_value());
    CHECK_FALSE(parseDurationMs("-5s").has_value());
    CHECK(parseInt(" 42 ") == 42);
    CHECK_FALSE(parseInt("4x").has_value());
    CHECK_FALSE(parseInt("99999999999999999999").has_value());
    CHECK(parseBool("Yes") == true);
    CHECK_FALSE(parseBool("2").has_value());
}
