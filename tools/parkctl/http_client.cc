#include "http_client.hh"

#include <fmt/format.h>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>

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

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

} // namespace

Url parseUrl(const std::string &url) {
    const std::string scheme = "http://";
    if (url.compare(0, scheme.size(), scheme) != 0)
        throw std::invalid_argument("URL \"" + url + "\" must start with http:// (the admin API speaks plain HTTP)");
    std::string rest = url.substr(scheme.size());
    Url u;
    size_t slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    if (slash != std::string::npos) u.basePath = rest.substr(slash);
    while (!u.basePath.empty() && u.basePath.back() == '/') u.basePath.pop_back();
    if (authority.empty()) throw std::invalid_argument("URL \"" + url + "\" has no host");
    if (authority[0] == '[') {
        size_t close = authority.find(']');
        if (close == std::string::npos) throw std::invalid_argument("URL \"" + url + "\": unterminated [IPv6]");
        u.host = authority.substr(1, close - 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') throw std::invalid_argument("URL \"" + url + "\": bad port");
            u.port = authority.substr(close + 2);
        }
    } else {
        size_t colon = authority.rfind(':');
        u.host = authority.substr(0, colon);
        if (colon != std::string::npos) u.port = authority.substr(colon + 1);
        else u.port = "80";
    }
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

HttpClient::HttpClient(Url url, std::string token, int timeoutMs)
    : url_(std::move(url)), token_(std::move(token)), timeoutMs_(timeoutMs) {}

int HttpClient::connectSocket(bool withReadTimeout) {
    const std::string where = fmt::format("{}:{}", url_.host, url_.port);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo *res = nullptr;
    int rc = getaddrinfo(url_.host.c_str(), url_.port.c_str(), &hints, &res);
    if (rc != 0) throw Unreachable(fmt::format("cannot resolve {}: {}", url_.host, gai_strerror(rc)));
    std::string lastErr = "no address";
    int fd = -1;
    for (addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            lastErr = std::strerror(errno);
            continue;
        }
        // Non-blocking connect with a bounded wait, then back to blocking.
        int flags = fcntl(fd, F_GETFL, 0);
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        int c = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (c != 0 && errno == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            int n = ::poll(&p, 1, std::min(timeoutMs_, 5000));
            if (n == 1) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                c = err == 0 ? 0 : -1;
                errno = err;
            } else {
                c = -1;
                errno = ETIMEDOUT;
            }
        }
        if (c != 0) {
            lastErr = std::strerror(errno);
            ::close(fd);
            fd = -1;
            continue;
        }
        fcntl(fd, F_SETFL, flags);
    }
    freeaddrinfo(res);
    if (fd < 0) throw Unreachable(fmt::format("cannot connect to {}: {}", where, lastErr));
    if (withReadTimeout) {
        timeval tv{timeoutMs_ / 1000, (timeoutMs_ % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

void HttpClient::exchange(const std::string &method, const std::string &target, const std::string &body,
                          const std::string &contentType, bool withReadTimeout,
                          const std::function<bool(const Response &head)> &onHead,
                          const std::function<bool(const std::string &chunk)> &onData, Response *whole) {
    Fd sock;
    sock.fd = connectSocket(withReadTimeout);

    std::string host = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    std::string req = fmt::format("{} {}{} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: parkctl/{}\r\n"
                                  "Accept: */*\r\nConnection: close\r\n",
                                  method, url_.basePath, target, host, url_.port, PARKWAY_VERSION);
    if (!token_.empty()) req += "Authorization: Bearer " + token_ + "\r\n";
    if (!body.empty() || method == "POST" || method == "PUT")
        req += fmt::format("Content-Type: {}\r\nContent-Length: {}\r\n", contentType, body.size());
    req += "\r\n";
    req += body;
    for (size_t off = 0; off < req.size();) {
        ssize_t n = ::send(sock.fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) throw ProtocolError(fmt::format("sending the request failed: {}", std::strerror(errno)));
        off += static_cast<size_t>(n);
    }

    std::string buf;
    bool eof = false;
    auto fill = [&]() -> bool { // false on EOF
        char tmp[16384];
        for (;;) {
            ssize_t n = ::recv(sock.fd, tmp, sizeof tmp, 0);
            if (n > 0) {
                buf.append(tmp, static_cast<size_t>(n));
                return true;
            }
            if (n == 0) {
                eof = true;
                return false;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                throw ProtocolError(fmt::format("no answer within {} ms", timeoutMs_));
            throw ProtocolError(fmt::format("reading the response failed: {}", std::strerror(errno)));
        }
    };

    // Status line and headers.
    size_t headEnd;
    while ((headEnd = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!fill()) throw ProtocolError("the server closed the connection before answering");
        if (buf.size() > 65536) throw ProtocolError("response headers too large");
    }
    Response head;
    {
        std::string headText = buf.substr(0, headEnd);
        buf.erase(0, headEnd + 4);
        size_t lineEnd = headText.find("\r\n");
        std::string status = headText.substr(0, lineEnd);
        if (status.compare(0, 5, "HTTP/") != 0 || status.size() < 12)
            throw ProtocolError("not an HTTP response: \"" + status.substr(0, 60) + "\"");
        head.status = std::atoi(status.c_str() + 9);
        size_t pos = lineEnd == std::string::npos ? headText.size() : lineEnd + 2;
        while (pos < headText.size()) {
            size_t e = headText.find("\r\n", pos);
            if (e == std::string::npos) e = headText.size();
            std::string line = headText.substr(pos, e - pos);
            size_t colon = line.find(':');
            if (colon != std::string::npos) head.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
            pos = e + 2;
        }
    }
    if (onHead && !onHead(head)) return;

    auto deliver = [&](const std::string &data) -> bool {
        if (whole) whole->body += data;
        return onData ? onData(data) : true;
    };

    const bool chunked = lower(head.headers["transfer-encoding"]).find("chunked") != std::string::npos;
    if (chunked) {
        for (;;) {
            size_t le;
            while ((le = buf.find("\r\n")) == std::string::npos)
                if (!fill()) throw ProtocolError("the server closed the connection in the middle of the body");
            std::string sizeLine = buf.substr(0, le);
            size_t size = std::strtoul(sizeLine.c_str(), nullptr, 16);
            buf.erase(0, le + 2);
            if (size == 0) break; // trailers ignored
            while (buf.size() < size + 2)
                if (!fill()) throw ProtocolError("the server closed the connection in the middle of a chunk");
            if (!deliver(buf.substr(0, size))) return;
            buf.erase(0, size + 2);
        }
    } else if (head.headers.count("content-length")) {
        size_t want = std::strtoul(head.headers["content-length"].c_str(), nullptr, 10);
        while (buf.size() < want)
            if (!fill()) throw ProtocolError("the server closed the connection in the middle of the body");
        deliver(buf.substr(0, want));
    } else {
        while (!eof) {
            if (!buf.empty()) {
                if (!deliver(buf)) return;
                buf.clear();
            }
            fill();
        }
        if (!buf.empty()) deliver(buf);
    }
    if (whole) {
        whole->status = head.status;
        whole->headers = head.headers;
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
