#include "log.hh"

#include <sofia-sip/su_log.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <sys/time.h>

extern "C" {
// Exported by libsofia-sip-ua but not declared in its public headers.
extern su_log_t nta_log[];
extern su_log_t tport_log[];
}

namespace parkway::proxy {

std::optional<LogLevel> parseLogLevel(const std::string &text) {
    if (text == "error") return LogLevel::Error;
    if (text == "warn" || text == "warning") return LogLevel::Warn;
    if (text == "info") return LogLevel::Info;
    if (text == "debug") return LogLevel::Debug;
    return std::nullopt;
}

const char *logLevelName(LogLevel level) {
    switch (level) {
    case LogLevel::Error: return "error";
    case LogLevel::Warn: return "warn";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    }
    return "info";
}

void Logger::write(LogLevel level, const std::string &text) const {
    timeval tv{};
    gettimeofday(&tv, nullptr);
    tm t{};
    gmtime_r(&tv.tv_sec, &t);
    // One fprintf per line keeps lines whole when several threads log.
    std::fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n", t.tm_year + 1900, t.tm_mon + 1,
                 t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<long>(tv.tv_usec / 1000),
                 logLevelName(level), text.c_str());
}

namespace {
void sofiaLogger(void *stream, char const *fmt, va_list ap) {
    auto *self = static_cast<Logger *>(stream);
    if (!self->enabled(LogLevel::Debug)) return;
    char buf[2048];
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    if (n <= 0) return;
    std::string line(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) self->write(LogLevel::Debug, "sofia: " + line);
}
} // namespace

void Logger::captureSofia() {
    unsigned sofiaLevel = enabled(LogLevel::Debug) ? 3 : 0;
    for (su_log_t *l : {su_log_default, nta_log, tport_log}) {
        su_log_redirect(l, sofiaLogger, this);
        su_log_set_level(l, sofiaLevel);
    }
}

} // namespace parkway::proxy
