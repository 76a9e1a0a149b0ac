// parkway-replay: the JUnit XML report of a replay (compare.hh writeJunit, docs/replay.md "Comparison").
// The de-facto JUnit schema CI systems read (Jenkins, GitLab): <testsuites> with one <testsuite> carrying
// tests/failures/errors/skipped/time, one <testcase> per step, <failure message=...>diff</failure> or
// <skipped/>. Everything from the wire is escaped, and bytes XML 1.0 cannot carry (control characters,
// broken UTF-8) are replaced, so the report always parses.
#include "compare.hh"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <stdexcept>

namespace parkway::replay {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8Length(const std::string &s, size_t i) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size())
        return 0;
    for (size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2)
            return 0;
    return n;
}

// XML 1.0 §2.2 Char: tab, LF, CR and everything from 0x20; the five special characters as entities.
std::string escape(const std::string &s) {
    std::string out;
    for (size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t n = utf8Length(s, i);
        if (n == 0 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r')) {
            out += "\xEF\xBF\xBD"; // U+FFFD REPLACEMENT CHARACTER
            ++i;
            continue;
        }
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&apos;";
            break;
        case '\r':
            out += "&#13;";
            break;
        default:
            out.append(s, i, n);
        }
        i += n;
    }
    return out;
}

std::string seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", s < 0 ? 0.0 : s);
    return buf;
}

std::string timestamp() {
    std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return buf;
}

std::string firstLine(const std::string &s) {
    auto nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
}

std::string testcase(const std::string &suite, const StepOutcome &o) {
    std::string name = o.name.empty() ? "step " + std::to_string(o.step) : o.name;
    std::string out = "    <testcase name=\"" + escape(name) + "\" classname=\"" + escape(suite) + "\" time=\"" +
                      seconds(o.seconds) + "\"";
    if (o.passed && !o.skipped)
        return out + "/>\n";
    out += ">\n";
    if (o.skipped)
        out += "      <skipped message=\"" +
               escape(o.failure.empty() ? "optional step did not come" : firstLine(o.failure)) + "\"/>\n";
    else
        out += "      <failure message=\"" + escape(firstLine(o.failure)) + "\" type=\"difference\">" +
               escape(o.failure) + "</failure>\n";
    return out + "    </testcase>\n";
}

} // namespace

std::string junitXml(const std::string &suite, const std::vector<StepOutcome> &outcomes, double total) {
    size_t failures = 0, skipped = 0;
    for (const auto &o : outcomes) {
        skipped += o.skipped ? 1 : 0;
        failures += !o.skipped && !o.passed ? 1 : 0;
    }
    std::string counts = "tests=\"" + std::to_string(outcomes.size()) + "\" failures=\"" + std::to_string(failures) +
                         "\" errors=\"0\" skipped=\"" + std::to_string(skipped) + "\" time=\"" + seconds(total) + "\"";
    std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"parkway-replay\" " + counts +
                      ">\n  <testsuite name=\"" + escape(suite) + "\" " + counts + " timestamp=\"" + timestamp() +
                      "\">\n";
    for (const auto &o : outcomes)
        out += testcase(suite, o);
    return out + "  </testsuite>\n</testsuites>\n";
}

void writeJunit(const std::string &path, const std::string &suite, const std::vector<StepOutcome> &outcomes,
                double seconds) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out)
        throw std::runtime_error(path + ": cannot write the JUnit report");
    out << junitXml(suite, outcomes, seconds);
    if (!out.flush())
        throw std::runtime_error(path + ": writing the JUnit report failed");
}

} // namespace parkway::replay
