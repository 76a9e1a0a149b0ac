// SIP over TLS on sofia-sip 1.12: the certificate folder its tport reads and the TLS 1.2 floor (tls.hh).
#include "tls.hh"
#include "core_config.hh"

#include <sofia-sip/tport_tag.h>

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace parkway::proxy {
namespace {

struct BioFree {
    void operator()(BIO *b) const { BIO_free(b); }
};
struct X509Free {
    void operator()(X509 *x) const { X509_free(x); }
};
struct PkeyFree {
    void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// An encrypted key must not make OpenSSL prompt on the terminal: no passphrase is given.
int noPassphrase(char *, int, int, void *) {
    return -1;
}

std::string readable(const std::string &path) {
    if (access(path.c_str(), R_OK) != 0)
        return fmt::format("cannot read '{}': {}", path, strerror(errno));
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        return fmt::format("'{}' is not a file", path);
    return {};
}

std::string slurp(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw std::runtime_error(fmt::format("cannot read '{}': {}", path, strerror(errno)));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void writePrivate(const std::string &path, const std::string &data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        throw std::runtime_error(fmt::format("cannot create '{}': {}", path, strerror(errno)));
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            ::close(fd);
            throw std::runtime_error(fmt::format("cannot write '{}': {}", path, strerror(e)));
        }
        off += static_cast<size_t>(n);
    }
    ::close(fd);
}

} // namespace

bool isTlsListenUrl(const std::string &url) {
    if (url.compare(0, 5, "sips:") == 0)
        return true;
    auto p = url.find(";transport=");
    return p != std::string::npos && strncasecmp(url.c_str() + p + 11, "tls", 3) == 0;
}

std::string systemCaBundle() {
    for (const char *p : {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"})
        if (access(p, R_OK) == 0)
            return p;
    return {};
}

std::string checkTlsFiles(const std::string &certificate, const std::string &privateKey, const std::string &caFile) {
    std::unique_ptr<X509, X509Free> cert;
    if (!certificate.empty()) {
        if (auto e = readable(certificate); !e.empty())
            return "tls_certificate: " + e;
        BioPtr b(BIO_new_file(certificate.c_str(), "r"));
        if (b)
            cert.reset(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
        ERR_clear_error();
        if (!cert)
            return fmt::format("tls_certificate: no PEM certificate in '{}'", certificate);
    }
    if (!privateKey.empty()) {
        if (auto e = readable(privateKey); !e.empty())
            return "tls_private_key: " + e;
        BioPtr b(BIO_new_file(privateKey.c_str(), "r"));
        std::unique_ptr<EVP_PKEY, PkeyFree> key;
        if (b)
            key.reset(PEM_read_bio_PrivateKey(b.get(), nullptr, noPassphrase, nullptr));
        ERR_clear_error();
        if (!key)
            return fmt::format("tls_private_key: no unencrypted PEM private key in '{}' (a key with a passphrase "
                               "is not supported)",
                               privateKey);
        if (cert && X509_check_private_key(cert.get(), key.get()) != 1) {
            ERR_clear_error();
            return fmt::format("tls_private_key: '{}' is not the key of tls_certificate '{}'", privateKey, certificate);
        }
    }
    if (!caFile.empty()) {
        if (auto e = readable(caFile); !e.empty())
            return "tls_ca_file: " + e;
        BioPtr b(BIO_new_file(caFile.c_str(), "r"));
        int n = 0;
        while (b) {
            std::unique_ptr<X509, X509Free> ca(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
            if (!ca)
                break;
            ++n;
        }
        ERR_clear_error();
        if (n == 0)
            return fmt::format("tls_ca_file: no PEM certificate in '{}'", caFile);
    }
    return {};
}

TlsMaterial::TlsMaterial(const CoreConfig &cfg) {
    if (cfg.tlsCertificate.empty())
        throw std::runtime_error("proxy.tls_certificate: a tls: listener needs a certificate (and tls_private_key)");
    if (cfg.tlsPrivateKey.empty())
        throw std::runtime_error("proxy.tls_private_key: a tls: listener needs the certificate's private key");
    if (cfg.tlsVerifyClient && cfg.tlsCaFile.empty())
        throw std::runtime_error("proxy.tls_ca_file: tls_verify_client = \"require\" needs the CAs that sign "
                                 "client certificates");
    if (auto e = checkTlsFiles(cfg.tlsCertificate, cfg.tlsPrivateKey, cfg.tlsCaFile); !e.empty())
        throw std::runtime_error("proxy." + e);
    const char *tmp = getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/parkway-tls-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) // mode 0700
        throw std::runtime_error(fmt::format("proxy.tls_certificate: cannot create a folder for sofia-sip ({}): {}",
                                             pattern, strerror(errno)));
    dir_ = buf.data();
    try {
        // sofia-sip loads agent.pem as the certificate and again as the private key (tport_type_tls.c).
        std::string agent = slurp(cfg.tlsCertificate);
        if (!agent.empty() && agent.back() != '\n')
            agent += '\n';
        agent += slurp(cfg.tlsPrivateKey);
        writePrivate(dir_ + "/agent.pem", agent);
        std::string ca = cfg.tlsCaFile.empty() ? systemCaBundle() : cfg.tlsCaFile;
        if (!ca.empty())
            writePrivate(dir_ + "/cafile.pem", slurp(ca));
    } catch (...) {
        remove();
        throw;
    }
    // Incoming: with TPTLS_VERIFY_IN sofia sets SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, a client
    // without a certificate signed by cafile.pem fails the handshake (there is no "optional" mode).
    // Outgoing: the server's certificate must chain to cafile.pem and name the host we connected to (its
    // subjectAltName DNS entries or its CN, RFC 5922 §7).
    policy_ = (cfg.tlsVerifyClient ? unsigned(TPTLS_VERIFY_IN) : 0u) |
              (cfg.tlsVerifyServer ? unsigned(TPTLS_VERIFY_SUBJECTS_OUT) : 0u);
}

void TlsMaterial::remove() {
    if (dir_.empty())
        return;
    for (const char *f : {"/agent.pem", "/cafile.pem", "/tls_seed.dat"})
        ::unlink((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
    dir_.clear();
}

TlsMaterial::~TlsMaterial() {
    remove();
}

void enforceTlsFloor() {
    // Load the system configuration first (once per process), so it cannot later replace ours; sofia-sip's
    // own SSL_library_init() is then a no-op. Our ssl_conf replaces the ssl_conf section of the system file.
    OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr);
    static const char kConf[] = "parkway_tls = parkway_init\n"
                                "[parkway_init]\n"
                                "ssl_conf = parkway_ssl\n"
                                "[parkway_ssl]\n"
                                "system_default = parkway_system_default\n"
                                "[parkway_system_default]\n"
                                "MinProtocol = TLSv1.2\n"
                                "CipherString = DEFAULT:@SECLEVEL=2\n";
    std::unique_ptr<CONF, decltype(&NCONF_free)> conf(NCONF_new(nullptr), NCONF_free);
    BioPtr b(BIO_new_mem_buf(kConf, -1));
    long line = 0;
    if (!conf || !b || NCONF_load_bio(conf.get(), b.get(), &line) <= 0 ||
        CONF_modules_load(conf.get(), "parkway_tls", 0) <= 0) {
        unsigned long e = ERR_get_error();
        char err[256] = "";
        ERR_error_string_n(e, err, sizeof err);
        ERR_clear_error();
        throw std::runtime_error(fmt::format("proxy: cannot set the TLS 1.2 minimum in OpenSSL: {}", err));
    }
    // Check it took: a context created now must refuse TLS 1.1.
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> probe(SSL_CTX_new(TLS_method()), SSL_CTX_free);
    if (!probe || SSL_CTX_get_min_proto_version(probe.get()) < TLS1_2_VERSION)
        throw std::runtime_error("proxy: OpenSSL did not take the TLS 1.2 minimum");
}

} // namespace parkway::proxy
