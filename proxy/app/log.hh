// Levelled logging on stderr for the daemon (and sofia-sip's su_log routed into it).
#pragma once
#include <fmt/format.h>

#include <atomic>
#include <optional>
#include <string>

namespace parkway::proxy {

enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

std::optional<LogLevel> parseLogLevel(const std::string &text); // error|warn|info|debug
const char *logLevelName(LogLevel level);

// One per process, owned by main() and passed by reference; the level may change on SIGHUP.
class Logger {
public:
    explicit Logger(LogLevel level = LogLevel::Info) : level_(level) {}
    void setLevel(LogLevel level) { level_ = level; }
    LogLevel level() const { return level_; }
    bool enabled(LogLevel level) const { return level <= level_.load(); }
    void write(LogLevel level, const std::string &text) const;

    template <typename... A> void error(fmt::format_string<A...> f, A &&...a) { log(LogLevel::Error, f, std::forward<A>(a)...); }
    template <typename... A> void warn(fmt::format_string<A...> f, A &&...a) { log(LogLevel::Warn, f, std::forward<A>(a)...); }
    template <typename... A> void info(fmt::format_string<A...> f, A &&...a) { log(LogLevel::Info, f, std::forward<A>(a)...); }
    template <typename... A> void debug(fmt::format_string<A...> f, A &&...a) { log(LogLevel::Debug, f, std::forward<A>(a)...); }

    // Route sofia-sip's default, nta and tport logs here (shown at debug).
    void captureSofia();

private:
    template <typename... A> void log(LogLevel l, fmt::format_string<A...> f, A &&...a) {
        if (enabled(l)) write(l, fmt::format(f, std::forward<A>(a)...));
    }
    std::atomic<LogLevel> level_;
};

} // namespace parkway::proxy
