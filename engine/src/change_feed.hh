// Change events across nodes (internal; docs/cluster.md "Change events across nodes"): the listening connection
// and its thread, and the change log's event encoding.
//
// On PostgreSQL every write transaction that changes park state or configuration also sends a NOTIFY on the
// store's channel (delivered by the server only when it commits) and, for park state, writes the event to
// change_log. ChangeFeed holds a second connection that LISTENs on the channel, on a thread of its own; it
// never touches the engine: it only calls `wake` (from its thread) when another engine committed something, or
// when it (re)connected. The engine's owner then calls Engine::catchUp() on the engine's thread, which reads
// what changed from the store.
#pragma once

#include "parkway/engine/types.hh"

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace parkway::engine {

class PgConn;

// The NOTIFY payload (at most kMaxPayload bytes; PostgreSQL allows 8000), one of
//   event <sequence> <origin> <kind> <domain> <target-key>...
//   config <generation> <origin> <what> <domain> <name>
// Only the first three words are read by a receiver; the rest names the change for people and logs.
constexpr std::size_t kMaxPayload = 2000;
std::string eventPayloadTail(const ChangeEvent &e); // "<kind> <domain> <target-key>..." (bounded)

// change_log.body: the event without its sequence (the row's key) and without the call's blob.
std::string encodeEvent(const ChangeEvent &e);
bool decodeEvent(const std::string &body, ChangeEvent *e); // false: unreadable

// The channel of the store in `schema` (one database may hold several stores, one per schema).
std::string channelFor(const std::string &schema);

class ChangeFeed {
public:
    struct Stats {
        std::uint64_t connects = 0;      // successful LISTENs (the first one included)
        std::uint64_t disconnects = 0;   // the listening connection was lost
        std::uint64_t notifications = 0; // NOTIFYs received from other engines
        std::uint64_t wakes = 0;         // calls of wake
        int backendPid = 0;              // the listening connection's server process (0 while down)
    };

    // `origin`: this engine's instance id (its own NOTIFYs wake nobody). `retryMs`: the first pause before a
    // reconnect (doubling up to 2 s).
    ChangeFeed(std::string url, std::string channel, std::int64_t origin, std::function<void()> wake, int retryMs);
    ~ChangeFeed(); // stops and joins the thread, closes the connection
    ChangeFeed(const ChangeFeed &) = delete;
    ChangeFeed &operator=(const ChangeFeed &) = delete;

    // Connects and LISTENs on the caller's thread (so an error is the caller's), then starts the thread, which
    // calls wake once at once (catch up with what committed before the LISTEN). Empty on success.
    std::string start();
    Stats stats() const;

private:
    std::string connect(); // a new connection + LISTEN; empty on success
    void run();
    bool pause(int ms); // false: stop was asked
    void wakeUp();

    std::string url_, channel_;
    std::int64_t origin_;
    std::function<void()> wake_;
    int retryMs_;
    PgConn *conn_ = nullptr; // owned; used by the thread only once started
    int stopFd_[2] = {-1, -1};
    std::thread thread_;
    mutable std::mutex mu_;
    Stats stats_;
};

} // namespace parkway::engine
