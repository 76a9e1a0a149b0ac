// Change events across nodes: the listening connection's thread and the change log's encoding (change_feed.hh).
#include "change_feed.hh"

#include "pg.hh"

#include <fmt/format.h>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>

namespace parkway::engine {

namespace {

// Text the server accepts in a payload: valid UTF-8 is not checked by NOTIFY, but a NUL would cut it.
std::string bounded(std::string s) {
    std::replace(s.begin(), s.end(), '\0', ' ');
    if (s.size() > kMaxPayload - 64) { // room for "event <seq> <origin> "
        s.resize(kMaxPayload - 64);
        while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) // no split UTF-8 sequence
            s.pop_back();
        if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0)
            s.pop_back();
    }
    return s;
}

} // namespace

std::string eventPayloadTail(const ChangeEvent &e) {
    std::string s = fmt::format("{} {}", toString(e.kind), e.call.domain);
    for (const TargetVersion &t : e.targets)
        s += " " + t.target.key();
    return bounded(std::move(s));
}

std::string channelFor(const std::string &schema) {
    std::string c = "parkway." + schema;
    if (c.size() > 63) // NAMEDATALEN - 1: a longer channel name is refused by pg_notify
        c = fmt::format("parkway.{:016x}", std::hash<std::string>{}(schema));
    return c;
}

// ---------------------------------------------------------------------------------------------------------

ChangeFeed::ChangeFeed(std::string url, std::string channel, std::int64_t origin, std::function<void()> wake,
                       int retryMs)
    : url_(std::move(url)), channel_(std::move(channel)), origin_(origin), wake_(std::move(wake)),
      retryMs_(std::max(retryMs, 1)) {}

ChangeFeed::~ChangeFeed() {
    if (thread_.joinable()) {
        char b = 1;
        [[maybe_unused]] ssize_t n = ::write(stopFd_[1], &b, 1);
        thread_.join();
    }
    delete conn_;
    for (int fd : stopFd_)
        if (fd >= 0)
            ::close(fd);
}

std::string ChangeFeed::connect() {
    auto c = std::make_unique<PgConn>();
    std::string e = c->connect(url_);
    if (e.empty()) {
        char *quoted = PQescapeIdentifier(c->get(), channel_.c_str(), channel_.size());
        if (!quoted)
            return PQerrorMessage(c->get());
        std::string listen = std::string("LISTEN ") + quoted;
        PQfreemem(quoted);
        e = c->exec(listen.c_str());
    }
    if (!e.empty())
        return e;
    if (PQsetnonblocking(c->get(), 1) != 0)
        return PQerrorMessage(c->get());
    delete conn_;
    conn_ = c.release();
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.connects;
    stats_.backendPid = PQbackendPID(conn_->get());
    return {};
}

std::string ChangeFeed::start() {
    if (::pipe(stopFd_) != 0)
        return "cannot create a pipe";
    std::string e = connect();
    if (!e.empty())
        return e;
    thread_ = std::thread([this] { run(); });
    return {};
}

ChangeFeed::Stats ChangeFeed::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

void ChangeFeed::wakeUp() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++stats_.wakes;
    }
    try {
        wake_();
    } catch (...) {
        // The owner's wake must not throw; nothing to undo here.
    }
}

bool ChangeFeed::pause(int ms) {
    pollfd p{stopFd_[0], POLLIN, 0};
    return ::poll(&p, 1, ms) == 0;
}

void ChangeFeed::run() {
    wakeUp(); // what committed before the LISTEN: the owner catches up from the sequence it last saw
    int retry = retryMs_;
    for (;;) {
        if (!conn_) { // lost: reconnect with a growing pause; NOTIFY has no replay, so catch up after it
            if (!pause(retry))
                return;
            retry = std::min(retry * 2, 2000);
            if (!connect().empty())
                continue;
            retry = retryMs_;
            wakeUp();
        }
        pollfd p[2] = {{PQsocket(conn_->get()), POLLIN, 0}, {stopFd_[0], POLLIN, 0}};
        if (::poll(p, 2, -1) < 0)
            continue; // EINTR
        if (p[1].revents)
            return;
        bool remote = false;
        bool lost = PQconsumeInput(conn_->get()) == 0 || PQstatus(conn_->get()) != CONNECTION_OK;
        while (PGnotify *n = PQnotifies(conn_->get())) {
            // "<word> <number> <origin> ...": our own changes were delivered to our listeners at commit.
            long long origin = 0;
            std::sscanf(n->extra, "%*s %*s %lld", &origin);
            if (origin != static_cast<long long>(origin_)) {
                remote = true;
                std::lock_guard<std::mutex> lock(mu_);
                ++stats_.notifications;
            }
            PQfreemem(n);
        }
        if (remote)
            wakeUp();
        if (lost) {
            delete conn_;
            conn_ = nullptr;
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.disconnects;
            stats_.backendPid = 0;
        }
    }
}

} // namespace parkway::engine
