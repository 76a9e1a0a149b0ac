// [proxy] tls_* keys and tls: listeners in the config loader: defaults, the sofia URL, and errors that name
// the key (files checked at load time: a bad certificate is a config error, not a failure at start).
#include "app/config.hh"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

using namespace parkway::proxy;

namespace {

struct Dir {
    std::string path;
    Dir() {
        char tmpl[] = "/tmp/parkway-tls-config-XXXXXX";
        REQUIRE(mkdtemp(tmpl));
        path = tmpl;
        REQUIRE(std::system(("sh '" PARKWAY_TLS_MAKE_CERTS "' '" + path + "'").c_str()) == 0);
    }
    ~Dir() { std::system(("rm -rf '" + path + "'").c_str()); }
    std::string write(const std::string &text) {
        std::string f = path + "/parkway.toml";
        std::ofstream(f) << text;
        return f;
    }
};

std::string errorOf(const std::string &file) {
    try {
        loadConfig(file);
    } catch (const ConfigError &e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("tls: listeners become sips: sofia URLs") {
    CHECK(listenToSofiaUrl("tls:127.0.0.1:5061") == "sips:127.0.0.1:5061");
    CHECK(listenToSofiaUrl("tls:[::1]:0") == "sips:[::1]:*");
    CHECK(listenToSofiaUrl("udp:127.0.0.1:5060") == "sip:127.0.0.1:5060;transport=udp");
    CHECK_THROWS_WITH(listenToSofiaUrl("dtls:127.0.0.1:5061"), Catch::Contains("udp, tcp or tls"));
}

TEST_CASE("a TLS config loads with files relative to the config file, and the defaults") {
    Dir d;
    AppConfig cfg = loadConfig(d.write("[proxy]\nlisten = [\"udp:127.0.0.1:5060\", \"tls:127.0.0.1:5061\"]\n"
                                       "tls_certificate = \"server.pem\"\ntls_private_key = \"server.key\"\n"
                                       "tls_ca_file = \"ca.pem\"\ntls_verify_client = \"require\"\n"));
    REQUIRE(cfg.core.listen.size() == 2);
    CHECK(cfg.core.listen[1] == "sips:127.0.0.1:5061");
    CHECK(cfg.core.tlsCertificate == d.path + "/server.pem");
    CHECK(cfg.core.tlsPrivateKey == d.path + "/server.key");
    CHECK(cfg.core.tlsCaFile == d.path + "/ca.pem");
    CHECK(cfg.core.tlsVerifyClient);
    CHECK(cfg.core.tlsVerifyServer); // default
    AppConfig plain = loadConfig(d.write("[proxy]\n"));
    CHECK_FALSE(plain.core.tlsVerifyClient);
    CHECK(plain.core.tlsVerifyServer);
    CHECK(plain.core.tlsCertificate.empty());
}

TEST_CASE("TLS config errors name the key") {
    Dir d;
    const std::string listen = "[proxy]\nlisten = [\"tls:127.0.0.1:5061\"]\n";
    CHECK_THAT(errorOf(d.write(listen)), Catch::Contains("proxy.tls_certificate: must be set when proxy.listen has "
                                                         "a tls: listener"));
    CHECK_THAT(errorOf(d.write(listen + "tls_certificate = \"server.pem\"\n")),
               Catch::Contains("proxy.tls_private_key: must be set"));
    CHECK_THAT(errorOf(d.write(listen + "tls_certificate = \"nope.pem\"\ntls_private_key = \"server.key\"\n")),
               Catch::Contains("proxy.tls_certificate: cannot read '" + d.path + "/nope.pem'"));
    CHECK_THAT(errorOf(d.write(listen + "tls_certificate = \"server.key\"\ntls_private_key = \"server.key\"\n")),
               Catch::Contains("proxy.tls_certificate: no PEM certificate"));
    CHECK_THAT(errorOf(d.write(listen + "tls_certificate = \"server.pem\"\ntls_private_key = \"phone.key\"\n")),
               Catch::Contains("proxy.tls_private_key: '" + d.path + "/phone.key' is not the key of tls_certificate"));
    CHECK_THAT(errorOf(d.write(listen + "tls_certificate = \"server.pem\"\ntls_private_key = \"server.pem\"\n")),
               Catch::Contains("proxy.tls_private_key: no unencrypted PEM private key"));
    CHECK_THAT(errorOf(d.write(listen + "tls_certificate = \"server.pem\"\ntls_private_key = \"server.key\"\n"
                                        "tls_verify_client = \"require\"\n")),
               Catch::Contains("proxy.tls_ca_file: must be set when proxy.tls_verify_client = \"require\""));
    CHECK_THAT(errorOf(d.write(listen + "tls_certificate = \"server.pem\"\ntls_private_key = \"server.key\"\n"
                                        "tls_ca_file = \"server.key\"\n")),
               Catch::Contains("proxy.tls_ca_file: no PEM certificate"));
    CHECK_THAT(errorOf(d.write("[proxy]\ntls_verify_client = \"optional\"\n")),
               Catch::Contains("proxy.tls_verify_client: 'optional' is not one of none, require"));
    CHECK_THAT(errorOf(d.write("[proxy]\ntls_verify_server = \"yes\"\n")),
               Catch::Contains("proxy.tls_verify_server: expected true or false"));
}

TEST_CASE("dump-config documents the TLS keys") {
    std::string dump = dumpCoreConfig();
    for (const char *k : {"tls_certificate = \"\"", "tls_private_key = \"\"", "tls_ca_file = \"\"",
                          "tls_verify_client = \"none\"", "tls_verify_server = true", "udp, tcp or tls"})
        CHECK(dump.find(k) != std::string::npos);
}
