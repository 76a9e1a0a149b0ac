// SIP over TLS (RFC 3261 §26.2, RFC 5630) on sofia-sip 1.12's tport: what its TLS transport needs from us.
//
// sofia-sip 1.12 (Debian 12) takes its certificate only as a folder, TPTAG_CERTIFICATE(dir), holding
// "agent.pem" (certificate then private key) and "cafile.pem" (the CAs peers are verified against); it has no
// tag for a minimum protocol version nor for the SSL_CTX. So:
//  - TlsMaterial assembles that folder (mode 0700, files 0600) from the configured PEM files; sofia reads it
//    only while the transports are created, and the folder is removed right after (or when TlsMaterial dies).
//  - enforceTlsFloor() makes OpenSSL's "system_default" settings of this process refuse anything older than
//    TLS 1.2: every SSL_CTX created afterwards (sofia's included) starts with MinProtocol TLSv1.2.
#pragma once
#include <string>
#include <vector>

namespace parkway::proxy {

struct CoreConfig;

// Whether a sofia listen URL is a TLS one ("sips:..." or ";transport=tls").
bool isTlsListenUrl(const std::string &url);

// Checks the configured files can be used: readable PEM, a certificate and the private key matching it, a CA
// file holding at least one certificate. Returns "" when usable, else "<key>: <reason>" where key is one of
// tls_certificate, tls_private_key, tls_ca_file.
std::string checkTlsFiles(const std::string &certificate, const std::string &privateKey, const std::string &caFile);

// Where outgoing TLS looks for CAs when tls_ca_file is not set ("" when the system has no bundle).
std::string systemCaBundle();

class TlsMaterial {
public:
    // Creates the folder from cfg.tlsCertificate/tlsPrivateKey/tlsCaFile (system CAs when tlsCaFile is empty).
    // Throws std::runtime_error naming the [proxy] key at fault.
    explicit TlsMaterial(const CoreConfig &cfg);
    ~TlsMaterial();
    TlsMaterial(const TlsMaterial &) = delete;
    TlsMaterial &operator=(const TlsMaterial &) = delete;

    const std::string &dir() const { return dir_; }
    // TPTAG_TLS_VERIFY_POLICY value for cfg's tls_verify_client / tls_verify_server.
    unsigned verifyPolicy() const { return policy_; }
    void remove(); // deletes the folder (idempotent)

private:
    std::string dir_;
    unsigned policy_ = 0;
};

// OpenSSL: from now on every new SSL_CTX of this process refuses TLS 1.1 and older (RFC 8996). Throws
// std::runtime_error when OpenSSL refuses the setting.
void enforceTlsFloor();

} // namespace parkway::proxy
