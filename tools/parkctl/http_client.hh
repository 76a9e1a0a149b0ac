// A small blocking HTTP/1.1 client for parkctl: one request per connection (Connection: close), plain
// http:// only (the admin API is loopback by default), Content-Length, chunked and read-to-EOF bodies, and a
// streaming mode for server-sent events.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

namespace parkway::tools {

struct Url {
    std::string host = "127.0.0.1";
    std::string port = "8089";
    std::string basePath; // without trailing '/'
};

// Throws std::invalid_argument naming the URL when it is not http://host[:port][/path].
Url parseUrl(const std::string &url);

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

struct Response {
    int status = 0;
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
};

class HttpClient {
public:
    HttpClient(Url url, std::string token, int timeoutMs = 30000);
    // target: path + query ("/api/parked?domain=x"); appended to the URL's base path.
    Response request(const std::string &method, const std::string &target, const std::string &body = "",
                     const std::string &contentType = "application/json");
    // Streams the body to onData as it arrives (no read timeout); returns when the server closes or onData
    // returns false. The response status and headers are given to onHead first; return false to stop.
    void stream(const std::string &target, const std::function<bool(const Response &head)> &onHead,
                const std::function<bool(const std::string &chunk)> &onData);

private:
    int connectSocket(bool withReadTimeout);
    void exchange(const std::string &method, const std::string &target, const std::string &body,
                  const std::string &contentType, bool withReadTimeout,
                  const std::function<bool(const Response &head)> &onHead,
                  const std::function<bool(const std::string &chunk)> &onData, Response *whole);
    Url url_;
    std::string token_;
    int timeoutMs_;
};

// Percent-encodes a query value or path segment (RFC 3986 unreserved characters stay).
std::string urlEncode(const std::string &s);

} // namespace parkway::tools
