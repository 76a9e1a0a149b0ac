#include "http_client.hh"

#include <curl/curl.h>
#include <fmt/format.h>

#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>

#ifndef PARKWAY_VERSION
#define PARKWAY_VERSION "0.0.0"
#endif

namespace parkway::tools {

namespace {

std::string lower(std::string s) {
    for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string trim(const std::string &s) {
    size_t a = s.find_first_not_of(" \t\r\n");
    if (a == std::string::npos) return "";
    size_t b = s.find_last_not_of(" \t\r\n");
    return s.substr(a, b - a + 1);
}

// One transfer's state, shared with libcurl's callbacks.
struct Transfer {
    Response head;
    bool headDone = false;
    bool stopped = false; // a callback asked to stop (not an error)
    const std::function<bool(const Response &)> *onHead = nullptr;
    const std::function<bool(const std::string &)> *onData = nullptr;
    Response *whole = nullptr;
};

size_t headerCb(char *buf, size_t size, size_t n, void *ud) {
    auto *t = static_cast<Transfer *>(ud);
    size_t len = size * n;
    std::string line(buf, len);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
        line.pop_back();
    if (line.compare(0, 5, "HTTP/") == 0) { // a status line: a new head (after a 1xx, the final one)
        t->head = Response{};
        size_t sp = line.find(' ');
        t->head.status = sp == std::string::npos ? 0 : std::atoi(line.c_str() + sp + 1);
        return len;
    }
    if (line.empty()) {
        if (t->head.status >= 100 && t->head.status < 200)
            return len; // 100 Continue and friends
        t->headDone = true;
        if (t->onHead && *t->onHead && !(*t->onHead)(t->head)) {
            t->stopped = true;
            return 0;
        }
        return len;
    }
    size_t colon = line.find(':');
    if (colon != std::string::npos)
        t->head.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
    return len;
}

size_t writeCb(char *p, size_t size, size_t n, void *ud) {
    auto *t = static_cast<Transfer *>(ud);
    size_t len = size * n;
    std::string data(p, len);
    if (t->whole)
        t->whole->body += data;
    if (t->onData && *t->onData && !(*t->onData)(data)) {
        t->stopped = true;
        return 0;
    }
    return len;
}

struct EasyFree {
    void operator()(CURL *h) const { curl_easy_cleanup(h); }
};
struct Headers {
    curl_slist *list = nullptr;
    ~Headers() { curl_slist_free_all(list); }
    void add(const std::string &line) {
        if (curl_slist *l = curl_slist_append(list, line.c_str()))
            list = l;
    }
};

} // namespace

Url parseUrl(const std::string &url) {
    Url u;
    std::string rest;
    if (url.compare(0, 8, "https://") == 0) {
        u.scheme = "https";
        rest = url.substr(8);
    } else if (url.compare(0, 7, "http://") == 0) {
        u.scheme = "http";
        rest = url.substr(7);
    } else {
        throw std::invalid_argument("URL \"" + url + "\" must start with http:// or https://");
    }
    size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    if (slash != std::string::npos) u.basePath = rest.substr(slash);
    while (!u.basePath.empty() && u.basePath.back() == '/') u.basePath.pop_back();
    if (authority.empty()) throw std::invalid_argument("URL \"" + url + "\" has no host");
    if (authority.find('@') != std::string::npos)
        throw std::invalid_argument("URL \"" + url + "\": no user or password in the URL (use --token)");
    std::string defaultPort = u.scheme == "https" ? "443" : "80";
    if (authority[0] == '[') {
        size_t close = authority.find(']');
        if (close == std::string::npos) throw std::invalid_argument("URL \"" + url + "\": unterminated [IPv6]");
        u.host = authority.substr(1, close - 1);
        u.port = defaultPort;
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') throw std::invalid_argument("URL \"" + url + "\": bad port");
            u.port = authority.substr(close + 2);
        }
    } else {
        size_t colon = authority.rfind(':');
        u.host = authority.substr(0, colon);
        u.port = colon != std::string::npos ? authority.substr(colon + 1) : defaultPort;
    }
    if (u.host.empty())
        throw std::invalid_argument("URL \"" + url + "\" has no host");
    if (u.port.empty() || u.port.find_first_not_of("0123456789") != std::string::npos || u.port.size() > 5)
        throw std::invalid_argument("URL \"" + url + "\": bad port \"" + u.port + "\"");
    return u;
}

std::string urlEncode(const std::string &s) {
    std::string out;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') out += static_cast<char>(c);
        else out += fmt::format("%{:02X}", c);
    }
    return out;
}

HttpClient::HttpClient(Url url, std::string token, int timeoutMs, TlsOptions tls)
    : url_(std::move(url)), token_(std::move(token)), timeoutMs_(timeoutMs), tls_(std::move(tls)) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

void HttpClient::exchange(const std::string &method, const std::string &target, const std::string &body,
                          const std::string &contentType, bool withTimeout,
                          const std::function<bool(const Response &head)> &onHead,
                          const std::function<bool(const std::string &chunk)> &onData, Response *whole) {
    std::unique_ptr<CURL, EasyFree> easy(curl_easy_init());
    if (!easy)
        throw ProtocolError("libcurl could not start a transfer");
    CURL *h = easy.get();
    const bool https = url_.scheme == "https";
    const std::string host = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    const std::string where = fmt::format("{}:{}", host, url_.port);
    const std::string full = fmt::format("{}://{}{}{}", url_.scheme, where, url_.basePath, target);

    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_URL, full.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(h, CURLOPT_USERAGENT, "parkctl/" PARKWAY_VERSION);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(timeoutMs_, 5000)));
    if (withTimeout)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeoutMs_));
    if (https) {
        curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
        if (!tls_.caFile.empty())
            curl_easy_setopt(h, CURLOPT_CAINFO, tls_.caFile.c_str());
        if (!tls_.certFile.empty()) {
            curl_easy_setopt(h, CURLOPT_SSLCERT, tls_.certFile.c_str());
            curl_easy_setopt(h, CURLOPT_SSLKEY, (tls_.keyFile.empty() ? tls_.certFile : tls_.keyFile).c_str());
        }
        if (tls_.insecure) {
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    }

    Headers headers;
    auto addHeader = [&](const std::string &line) { headers.add(line); };
    if (!token_.empty())
        addHeader("Authorization: Bearer " + token_);
    addHeader("Expect:"); // the body goes with the head (it is small; the daemon judges the head first anyway)
    if (method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    if (!body.empty() || method == "POST" || method == "PUT") {
        addHeader("Content-Type: " + contentType);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);

    Transfer t;
    t.onHead = &onHead;
    t.onData = &onData;
    t.whole = whole;
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &headerCb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &writeCb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);

    CURLcode rc = curl_easy_perform(h);
    if (whole) {
        whole->status = t.head.status;
        whole->headers = t.head.headers;
    }
    if (rc == CURLE_OK || t.stopped)
        return;

    std::string detail = err[0] ? err : curl_easy_strerror(rc);
    long osErrno = 0;
    curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &osErrno);
    curl_off_t connected = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
    // Plain HTTP to a TLS port: the daemon drops the connection without an answer.
    const std::string plainHint = https ? "" : " (if the admin API has TLS on, use an https:// URL)";
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        throw Unreachable(fmt::format("cannot resolve {}: {}", url_.host, detail));
    case CURLE_COULDNT_CONNECT:
        throw Unreachable(fmt::format("cannot connect to {}: {}", where,
                                      osErrno ? std::strerror(static_cast<int>(osErrno)) : detail));
    case CURLE_OPERATION_TIMEDOUT:
        if (connected == 0)
            throw Unreachable(fmt::format("cannot connect to {}: {}", where, detail));
        throw ProtocolError(t.headDone ? fmt::format("the answer did not complete within {} ms", timeoutMs_)
                                       : fmt::format("no answer within {} ms{}", timeoutMs_, plainHint));
    case CURLE_PEER_FAILED_VERIFICATION:
        throw TlsError(fmt::format("the certificate of {} was not verified: {} (give the CA that signed it with "
                                   "--cacert FILE or PARKWAY_CACERT)",
                                   where, detail));
    case CURLE_SSL_CACERT_BADFILE:
        throw TlsError(fmt::format("cannot use the CA file \"{}\": {}", tls_.caFile, detail));
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_USE_SSL_FAILED:
        throw TlsError(fmt::format("the TLS handshake with {} failed: {} (is TLS on at that port?)", where, detail));
    case CURLE_GOT_NOTHING:
        throw ProtocolError("the server closed the connection before answering" + plainHint);
    case CURLE_PARTIAL_FILE:
        throw ProtocolError("the server closed the connection in the middle of the body");
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        // TLS 1.3: a refused client certificate shows as an alert on the first read.
        if (https && !t.headDone && detail.find("SSL") != std::string::npos)
            throw TlsError(fmt::format("the TLS session with {} failed: {}{}", where, detail,
                                       detail.find("certificate") != std::string::npos
                                           ? " (the admin API asks for a client certificate: --cert FILE --key FILE)"
                                           : ""));
        throw ProtocolError(fmt::format("{}{}", detail, t.headDone ? "" : plainHint));
    case CURLE_WEIRD_SERVER_REPLY:
        throw ProtocolError(fmt::format("not an HTTP response: {}{}", detail, plainHint));
    default:
        throw ProtocolError(detail);
    }
}

Response HttpClient::request(const std::string &method, const std::string &target, const std::string &body,
                             const std::string &contentType) {
    Response r;
    exchange(method, target, body, contentType, true, nullptr, nullptr, &r);
    return r;
}

void HttpClient::stream(const std::string &target, const std::function<bool(const Response &head)> &onHead,
                        const std::function<bool(const std::string &chunk)> &onData) {
    exchange("GET", target, "", "", false, onHead, onData, nullptr);
}

} // namespace parkway::tools
