// Change events across nodes: the listening connection's thread and the change log's encoding (change_feed.hh).
#include "change_feed.hh"

#include "pg.hh"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>

namespace parkway::engine {

using nlohmann::json;

namespace {

json callToJson(const ParkedCall &c) {
    return json{{"id", c.id},
                {"domain", c.domain},
                {"extension", c.extension},
                {"lot", c.lot},
                {"slot", c.slot},
                {"parker", c.parker},
                {"parked_uri", c.parkedUri},
                {"parked_display", c.parkedDisplay},
                {"group", c.group},
                {"parked_at", c.parkedAt},
                {"recall_at", c.recallAt},
                {"recall_stage", c.recallStage},
                {"state", toString(c.state)},
                {"version", c.version},
                {"request_key", c.requestKey},
                {"retriever", c.retriever},
                {"recall_answered", c.recallAnswered},
                {"final_recall", c.finalRecall},
                {"recall_seconds", c.recall.recallSeconds},
                {"recall_mode", toString(c.recall.mode)},
                {"ring_seconds", c.recall.ringSeconds},
                {"alternate_wait", c.recall.alternateWaitSeconds},
                {"retry_seconds", c.recall.retrySeconds},
                {"alternate", c.recall.alternate ? c.recall.alternate->toString() : std::string()},
                {"max_park_seconds", c.recall.maxParkSeconds}};
}

ParkedCall callFromJson(const json &j) {
    ParkedCall c;
    c.id = j.at("id").get<CallId>();
    c.domain = j.at("domain").get<std::string>();
    c.extension = j.value("extension", std::string());
    c.lot = j.value("lot", std::string());
    c.slot = j.value("slot", 0);
    c.parker = j.value("parker", std::string());
    c.parkedUri = j.value("parked_uri", std::string());
    c.parkedDisplay = j.value("parked_display", std::string());
    c.group = j.value("group", std::string());
    c.parkedAt = j.value("parked_at", Millis(0));
    c.recallAt = j.value("recall_at", Millis(0));
    c.recallStage = j.value("recall_stage", 0);
    c.state = parseCallState(j.value("state", std::string("parked"))).value_or(CallState::Parked);
    c.version = j.value("version", std::int64_t(1));
    c.requestKey = j.value("request_key", std::string());
    c.retriever = j.value("retriever", std::string());
    c.recallAnswered = j.value("recall_answered", false);
    c.finalRecall = j.value("final_recall", false);
    c.recall.recallSeconds = j.value("recall_seconds", 300);
    c.recall.mode = parseRecallMode(j.value("recall_mode", std::string("parker"))).value_or(RecallMode::Parker);
    c.recall.ringSeconds = j.value("ring_seconds", 30);
    c.recall.alternateWaitSeconds = j.value("alternate_wait", 30);
    c.recall.retrySeconds = j.value("retry_seconds", 10);
    c.recall.alternate = RecallTarget::parse(j.value("alternate", std::string()));
    c.recall.maxParkSeconds = j.value("max_park_seconds", 1800);
    return c;
}

std::optional<EventKind> parseEventKind(const std::string &s) {
    for (EventKind k : {EventKind::Parked, EventKind::RetrieveStarted, EventKind::Retrieved, EventKind::RetrieveAborted,
                        EventKind::RecallStarted, EventKind::RecallFailed, EventKind::Abandoned, EventKind::Moved})
        if (s == toString(k))
            return k;
    return std::nullopt;
}

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

std::string encodeEvent(const ChangeEvent &e) {
    json j = {{"kind", toString(e.kind)}, {"at", e.at}, {"call", callToJson(e.call)}};
    if (e.previous)
        j["previous"] = callToJson(*e.previous);
    json ts = json::array();
    for (const TargetVersion &t : e.targets)
        ts.push_back(
            json::array({static_cast<int>(t.target.kind), t.target.domain, t.target.name, t.target.slot, t.version}));
    j["targets"] = std::move(ts);
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool decodeEvent(const std::string &body, ChangeEvent *e) {
    json j = json::parse(body, nullptr, false);
    if (!j.is_object())
        return false;
    try {
        auto kind = parseEventKind(j.at("kind").get<std::string>());
        if (!kind)
            return false;
        e->kind = *kind;
        e->at = j.value("at", Millis(0));
        e->call = callFromJson(j.at("call"));
        if (j.contains("previous"))
            e->previous = callFromJson(j.at("previous"));
        e->targets.clear();
        for (const json &t : j.at("targets")) {
            int kindNo = t.at(0).get<int>();
            if (kindNo < static_cast<int>(TargetKind::Extension) || kindNo > static_cast<int>(TargetKind::Lot))
                return false;
            TargetVersion tv;
            tv.target.kind = static_cast<TargetKind>(kindNo);
            tv.target.domain = t.at(1).get<std::string>();
            tv.target.name = t.at(2).get<std::string>();
            tv.target.slot = t.at(3).get<int>();
            tv.version = t.at(4).get<std::int64_t>();
            e->targets.push_back(std::move(tv));
        }
    } catch (const json::exception &) {
        return false;
    }
    return true;
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
