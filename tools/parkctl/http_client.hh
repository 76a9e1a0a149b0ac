// parkctl's HTTP client, on libcurl: one request per connection, http:// and https:// (certificate and host name
// verified against the system CAs or --cacert; --insecure turns that off), Content-Length, chunked and
// read-to-EOF bodies, and a streaming mode for server-sent events.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace parkway::tools {

struct Url {
    std::string scheme = "http"; // http or https
    std::string host = "127.0.0.1";
    std::string port = "8089";
    std::string basePath; // without trailing '/'
};

// Throws std::invalid_argument naming the URL when it is not http(s)://host[:port][/path].
Url parseUrl(const std::string &url);

// How https:// URLs are checked.
struct TlsOptions {
    std::string caFile;    // PEM CA certificates to trust instead of the system's (--cacert, $PARKWAY_CACERT)
    bool insecure = false; // accept any certificate and host name (--insecure)
    std::string certFile;  // PEM client certificate, for an admin API with admin.tls_ca_file (--cert)
    std::string keyFile;   // its private key (--key; default: in certFile)
};

// The daemon could not be reached at all (refused, no route, DNS, connect timeout).
class Unreachable : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
// Reached, but the exchange broke (reset, timeout, not HTTP).
class ProtocolError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
// Reached, but TLS failed: the certificate was not verified, no handshake, an unusable CA file.
class TlsError : public ProtocolError {
public:
    using ProtocolError::ProtocolError;
};

struct Response {
    int status = 0;
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
};

class HttpClient {
public:
    HttpClient(Url url, std::string token, int timeoutMs = 30000, TlsOptions tls = {});
    // target: path + query ("/api/parked?domain=x"); appended to the URL's base path.
    Response request(const std::string &method, const std::string &target, const std::string &body = "",
                     const std::string &contentType = "application/json");
    // Streams the body to onData as it arrives (no read timeout); returns when the server closes or onData
    // returns false. The response status and headers are given to onHead first; return false to stop.
    void stream(const std::string &target, const std::function<bool(const Response &head)> &onHead,
                const std::function<bool(const std::string &chunk)> &onData);

private:
    void exchange(const std::string &method, const std::string &target, const std::string &body,
                  const std::string &contentType, bool withTimeout,
                  const std::function<bool(const Response &head)> &onHead,
                  const std::function<bool(const std::string &chunk)> &onData, Response *whole);
    Url url_;
    std::string token_;
    int timeoutMs_;
    TlsOptions tls_;
};

// Percent-encodes a query value or path segment (RFC 3986 unreserved characters stay).
std::string urlEncode(const std::string &s);

} // namespace parkway::tools
