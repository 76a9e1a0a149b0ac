// parkway-replay readers: text traces — Parkway's own (trace.hh), Kamailio's sipdump text file and sngrep's text
// export. SIPp's -trace_msg log is in read_sipp.cc. docs/replay.md "Trace formats read" shows each format.
#include "read_internal.hh"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <numeric>
#include <regex>

namespace parkway::replay::detail {

double utcSeconds(int year, int month, int day, int hour, int minute, int second, double fraction) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return double(timegm(&tm)) + fraction;
}

namespace {

struct Line {
    std::string_view text; // without the line end
    size_t next;           // offset of the following line
};

Line lineAt(std::string_view b, size_t pos) {
    size_t eol = b.find('\n', pos);
    if (eol == std::string_view::npos)
        return {b.substr(pos), b.size()};
    std::string_view t = b.substr(pos, eol - pos);
    if (!t.empty() && t.back() == '\r')
        t.remove_suffix(1);
    return {t, eol + 1};
}

size_t lineNumber(std::string_view b, size_t pos) {
    return 1 + size_t(std::count(b.begin(), b.begin() + std::min(pos, b.size()), '\n'));
}

// "127.0.0.1:5060", "[::1]:5060" and the bracket-less "::1:5060" some tools write.
Address looseAddress(const std::string &text) {
    if (!text.empty() && text[0] != '[' && std::count(text.begin(), text.end(), ':') > 1) {
        size_t colon = text.rfind(':');
        return parseAddress("[" + text.substr(0, colon) + "]" + text.substr(colon));
    }
    return parseAddress(text);
}

uint16_t port(const std::string &text) {
    if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(text) > 65535)
        throw TraceError("bad port '" + text + "'");
    return static_cast<uint16_t>(std::stoul(text));
}

std::string unbracket(std::string ip) {
    if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']')
        return ip.substr(1, ip.size() - 2);
    return ip;
}

// ---------------------------------------------------------------- Parkway's text trace (trace.hh)
const std::string kParkwayMagic = "# parkway sip trace 1";

// "2026-12-01T14:50:00.123456Z"
bool parseIsoUtc(const std::string &s, double &out) {
    int y, mo, d, h, mi, sec, n = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return false;
    double frac = 0;
    std::string rest = s.substr(size_t(n));
    if (!rest.empty() && rest[0] == '.') {
        size_t digits = rest.find_first_not_of("0123456789", 1);
        std::string f = rest.substr(0, digits);
        if (f.size() < 2)
            return false;
        frac = std::stod("0" + f);
        rest = digits == std::string::npos ? "" : rest.substr(digits);
    }
    if (rest != "Z")
        return false;
    out = utcSeconds(y, mo, d, h, mi, sec, frac);
    return true;
}

void readParkway(std::string_view b, Collector &out) {
    static const std::regex head(R"(--- (\S+) (recv|send) ([A-Za-z]+) (\S+) -> (\S+) ([0-9]{1,9}))");
    size_t pos = lineAt(b, 0).next;
    uint64_t record = 0;
    while (pos < b.size()) {
        Line l = lineAt(b, pos);
        std::string text(l.text);
        if (text.empty() || text[0] == '#') {
            pos = l.next;
            continue;
        }
        std::string where = out.name() + ": line " + std::to_string(lineNumber(b, pos));
        std::smatch m;
        if (text.size() > 400 || !std::regex_match(text, m, head)) // std::regex recurses per character
            throw TraceError(where + ": expected '--- TIME recv|send TRANSPORT SRC -> DST BYTES', got '" +
                             text.substr(0, 80) + "'");
        Captured c;
        if (!parseIsoUtc(m[1], c.time))
            throw TraceError(where + ": bad time '" + m[1].str() + "' (want 2026-12-01T14:50:00.123456Z)");
        try {
            c.transport = parseTransport(m[3]);
            c.src = parseAddress(m[4]);
            c.dst = parseAddress(m[5]);
        } catch (const TraceError &e) {
            throw TraceError(where + ": " + e.what());
        }
        size_t count = std::stoul(m[6]);
        if (l.next + count > b.size()) {
            out.warn(where + ": record cut short (" + std::to_string(b.size() - l.next) + " of " +
                     std::to_string(count) + " bytes), dropped");
            return;
        }
        c.data = std::string(b.substr(l.next, count));
        pos = l.next + count;
        if (pos < b.size() && b[pos] == '\n')
            ++pos;
        if (startsWithSip(c.data))
            out.message(std::move(c), ++record);
        else
            out.warn(where + ": not a SIP message, skipped");
    }
}

// ---------------------------------------------------------------- Kamailio sipdump text (mode 1)
// ====================\n  key: value lines (tag, pid, process, time, date, proto, srcip, srcport, dstip, dstport)
// ~~~~~~~~~~~~~~~~~~~~\n  the message bytes, then ||||||||||||||||||||\n
const std::string kKamStart = "====================\n";
const std::string kKamData = "~~~~~~~~~~~~~~~~~~~~\n";
const std::string kKamEnd = "||||||||||||||||||||\n";

bool kamailioRecord(std::string_view b, size_t &pos, Collector &out, uint64_t record) {
    std::string where =
        out.name() + ": record " + std::to_string(record) + " (line " + std::to_string(lineNumber(b, pos)) + ")";
    size_t dataAt = b.find(kKamData, pos);
    if (dataAt == std::string_view::npos)
        return out.warn(where + ": cut short, dropped"), false;
    std::map<std::string, std::string> fields;
    for (size_t p = pos + kKamStart.size(); p < dataAt;) {
        Line l = lineAt(b, p);
        size_t colon = l.text.find(": ");
        if (colon != std::string_view::npos)
            fields[std::string(l.text.substr(0, colon))] = std::string(l.text.substr(colon + 2));
        p = l.next;
    }
    size_t start = dataAt + kKamData.size();
    size_t end = b.find(kKamEnd + kKamStart, start);
    if (end == std::string_view::npos) {
        end = b.size() >= start + kKamEnd.size() && b.substr(b.size() - kKamEnd.size()) == kKamEnd
                  ? b.size() - kKamEnd.size()
                  : std::string_view::npos;
        if (end == std::string_view::npos)
            return out.warn(where + ": cut short, dropped"), false;
    }
    pos = end + kKamEnd.size();
    Captured c;
    try {
        c.time = std::stod(fields.at("time"));
        std::string proto = fields.at("proto");
        c.transport = parseTransport(proto.substr(0, proto.find(' ')));
        c.src = Address{unbracket(fields.at("srcip")), port(fields.at("srcport"))};
        c.dst = Address{unbracket(fields.at("dstip")), port(fields.at("dstport"))};
    } catch (const std::exception &) {
        out.warn(where + ": missing or bad field (time, proto, srcip, srcport, dstip, dstport), dropped");
        return true;
    }
    c.data = std::string(b.substr(start, end - start));
    if (startsWithSip(c.data))
        out.message(std::move(c), record);
    else if (!onlyLineEnds(c.data))
        out.warn(where + ": not a SIP message, skipped");
    return true;
}

void readKamailio(std::string_view b, Collector &out) {
    size_t pos = 0;
    for (uint64_t record = 1; pos < b.size(); ++record) {
        if (b.compare(pos, kKamStart.size(), kKamStart) != 0) {
            size_t next = b.find("\n" + kKamStart, pos);
            out.warn(out.name() + ": line " + std::to_string(lineNumber(b, pos)) + ": not a sipdump record, skipped");
            if (next == std::string_view::npos)
                return;
            pos = next + 1;
        }
        if (!kamailioRecord(b, pos, out, record))
            return;
    }
}

// ---------------------------------------------------------------- sngrep text export (Save as .txt)
// "2026/12/01 14:54:21.890896 127.0.0.1:26072 -> 127.0.0.1:26070\n" + message + "\n\n", dialog by dialog.
const std::regex &sngrepHead() {
    static const std::regex r(
        R"(([0-9]{4})/([0-9]{2})/([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})? (\S+) -> (\S+))");
    return r;
}

// `keep` holds the text the match refers to.
bool isSngrepLine(std::string_view line, std::smatch *m = nullptr, std::string *keep = nullptr) {
    std::smatch local;
    std::string own;
    std::string &s = keep ? *keep : own;
    s = std::string(line.substr(0, 200));
    return line.size() < 200 && std::regex_match(s, m ? *m : local, sngrepHead());
}

struct SngrepEntry {
    size_t headAt, dataAt, dataEnd;
};

void readSngrep(std::string_view b, Collector &out) {
    std::vector<SngrepEntry> entries;
    for (size_t pos = 0; pos < b.size();) {
        Line l = lineAt(b, pos);
        if ((pos == 0 || (pos >= 2 && b[pos - 1] == '\n' && b[pos - 2] == '\n')) && isSngrepLine(l.text)) {
            if (!entries.empty())
                entries.back().dataEnd = pos - 2;
            entries.push_back({pos, l.next, b.size()});
        }
        pos = l.next;
    }
    if (!entries.empty() && b.size() >= 2 && b.substr(b.size() - 2) == "\n\n")
        entries.back().dataEnd = std::max(entries.back().dataAt, b.size() - 2);
    std::vector<std::pair<double, Captured>> found;
    for (const auto &e : entries) {
        std::smatch m;
        std::string head;
        isSngrepLine(lineAt(b, e.headAt).text, &m, &head);
        std::string where = out.name() + ": line " + std::to_string(lineNumber(b, e.headAt));
        Captured c;
        c.time = utcSeconds(std::stoi(m[1]), std::stoi(m[2]), std::stoi(m[3]), std::stoi(m[4]), std::stoi(m[5]),
                            std::stoi(m[6]), m[7].matched ? std::stod("0" + m[7].str()) : 0);
        try {
            c.src = looseAddress(m[8]);
            c.dst = looseAddress(m[9]);
        } catch (const TraceError &err) {
            out.warn(where + ": " + err.what() + ", skipped");
            continue;
        }
        c.data = datagramMessage(b.substr(e.dataAt, e.dataEnd - e.dataAt), nullptr);
        if (!startsWithSip(c.data)) {
            out.warn(where + ": not a SIP message, skipped");
            continue;
        }
        c.transport = topViaTransport(c.data);
        found.emplace_back(c.time, std::move(c));
    }
    // sngrep writes dialog by dialog; capture order is time order.
    std::stable_sort(found.begin(), found.end(), [](const auto &x, const auto &y) { return x.first < y.first; });
    uint64_t n = 0;
    for (auto &f : found)
        out.message(std::move(f.second), ++n);
    if (!found.empty())
        out.warn(out.name() + ": sngrep text export: transports taken from each message's top Via, times read as UTC");
}

} // namespace

bool readTextTrace(const std::string &bytes, Collector &out) {
    std::string_view b(bytes);
    if (b.compare(0, kParkwayMagic.size(), kParkwayMagic) == 0 && lineAt(b, 0).text == kParkwayMagic)
        readParkway(b, out);
    else if (b.compare(0, kKamStart.size(), kKamStart) == 0 && b.find("\ntag: ") < 64)
        readKamailio(b, out);
    else if (isSngrepLine(lineAt(b, 0).text))
        readSngrep(b, out);
    else if (isSippLog(b))
        readSippLog(bytes, out);
    else
        return false;
    return true;
}

} // namespace parkway::replay::detail
