#include "wire/sdp.hh"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace parkway::callpark {
namespace {

// A line or field without its surrounding blanks (and the CR of a CRLF line end).
std::string_view trimLine(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> splitWs(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
            ++i;
        size_t j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t')
            ++j;
        if (j > i)
            out.push_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

// Whole string of decimal digits, within `max`.
template <typename T> bool parseNum(std::string_view s, T max, T *out) {
    if (s.empty() || s.size() > 20)
        return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
        if (next < v)
            return false;
        v = next;
    }
    if (v > static_cast<uint64_t>(max))
        return false;
    *out = static_cast<T>(v);
    return true;
}

bool equalsNoCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

std::optional<SdpDirection> directionFrom(std::string_view attr) {
    if (attr == "sendrecv")
        return SdpDirection::SendRecv;
    if (attr == "sendonly")
        return SdpDirection::SendOnly;
    if (attr == "recvonly")
        return SdpDirection::RecvOnly;
    if (attr == "inactive")
        return SdpDirection::Inactive;
    return std::nullopt;
}

bool fail(std::string *err, size_t lineNo, std::string_view what, std::string_view line) {
    if (err)
        *err = fmt::format("SDP line {}: {} '{}'", lineNo, what, line);
    return false;
}

// Payload types we can play: the static PCMU (0), PCMA (8) and G722 (9) of RFC 3551 §6, unless an rtpmap
// remaps them. G722's rtpmap clock rate is 8000 although it samples at 16 kHz (RFC 3551 §4.5.2). A codec on a
// dynamic payload type is not taken (practically unseen; the player keys on PT 0/8/9).
const char *playableEncoding(int pt) {
    switch (pt) {
    case 0:
        return "PCMU";
    case 8:
        return "PCMA";
    case 9:
        return "G722";
    default:
        return nullptr;
    }
}

bool isPlayable(const SdpMedia &m, int pt) {
    const char *enc = playableEncoding(pt);
    if (!enc)
        return false;
    for (const auto &r : m.rtpmaps) {
        if (r.pt != pt)
            continue;
        return r.clockRate == 8000 && equalsNoCase(r.encoding, enc);
    }
    return true;
}

std::string addrType(std::string_view ip) {
    return ip.find(':') != std::string_view::npos ? "IP6" : "IP4";
}

} // namespace

std::string_view toString(SdpDirection d) {
    switch (d) {
    case SdpDirection::SendRecv:
        return "sendrecv";
    case SdpDirection::SendOnly:
        return "sendonly";
    case SdpDirection::RecvOnly:
        return "recvonly";
    case SdpDirection::Inactive:
        return "inactive";
    }
    return "sendrecv";
}

const SdpMedia *SdpSession::audio() const {
    for (const auto &m : media)
        if (m.type == "audio" && m.port != 0)
            return &m;
    return nullptr;
}

std::optional<SdpSession> parseSdp(std::string_view text, std::string *err) {
    SdpSession s;
    bool haveV = false, haveO = false;
    std::optional<SdpDirection> sessionDir;
    std::vector<bool> mediaHasDir;
    size_t lineNo = 0;
    size_t pos = 0;
    if (text.empty()) {
        if (err)
            *err = "SDP is empty";
        return std::nullopt;
    }
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        std::string_view raw = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? text.size() : nl + 1;
        ++lineNo;
        std::string_view line = trimLine(raw);
        if (line.empty())
            continue; // tolerate blank lines (some stacks end with an extra CRLF)
        if (line.size() < 2 || line[1] != '=' || line[0] < 'a' || line[0] > 'z') {
            fail(err, lineNo, "not a <type>=<value> line", line);
            return std::nullopt;
        }
        char type = line[0];
        std::string_view value = line.substr(2);
        if (!haveV && type != 'v') {
            fail(err, lineNo, "SDP must start with v=", line);
            return std::nullopt;
        }
        SdpMedia *cur = s.media.empty() ? nullptr : &s.media.back();
        switch (type) {
        case 'v':
            if (value != "0") {
                fail(err, lineNo, "unsupported version", line);
                return std::nullopt;
            }
            haveV = true;
            break;
        case 'o': {
            auto f = splitWs(value);
            if (f.size() != 6 || !parseNum<uint64_t>(f[1], UINT64_MAX, &s.sessionId) ||
                !parseNum<uint64_t>(f[2], UINT64_MAX, &s.sessionVersion)) {
                fail(err, lineNo, "bad o= line", line);
                return std::nullopt;
            }
            s.originUser = std::string(f[0]);
            s.originAddr = std::string(f[5]);
            haveO = true;
            break;
        }
        case 'c': {
            auto f = splitWs(value);
            if (f.size() != 3 || f[0] != "IN") {
                fail(err, lineNo, "bad c= line", line);
                return std::nullopt;
            }
            std::string_view addr = f[2];
            // Multicast c= may carry /ttl; keep the address only.
            addr = addr.substr(0, addr.find('/'));
            (cur ? cur->connectionAddr : s.connectionAddr) = std::string(addr);
            break;
        }
        case 'm': {
            auto f = splitWs(value);
            SdpMedia m;
            std::string_view portText = f.size() >= 1 ? f.size() >= 2 ? f[1] : "" : "";
            portText = portText.substr(0, portText.find('/')); // m=audio 49170/2 ...
            if (f.size() < 4 || !parseNum<uint16_t>(portText, 65535, &m.port)) {
                fail(err, lineNo, "bad m= line", line);
                return std::nullopt;
            }
            m.type = std::string(f[0]);
            m.proto = std::string(f[2]);
            for (size_t i = 3; i < f.size(); ++i) {
                m.formats.emplace_back(f[i]);
                int pt = 0;
                if (parseNum<int>(f[i], 127, &pt))
                    m.payloadTypes.push_back(pt);
            }
            s.media.push_back(std::move(m));
            mediaHasDir.push_back(false);
            break;
        }
        case 'a': {
            std::string_view name = value.substr(0, value.find(':'));
            std::string_view arg = name.size() < value.size() ? value.substr(name.size() + 1) : "";
            if (auto d = directionFrom(name)) {
                if (cur) {
                    cur->direction = *d;
                    mediaHasDir.back() = true;
                } else {
                    sessionDir = d;
                }
            } else if (name == "rtpmap" && cur) {
                // a=rtpmap:<pt> <encoding>/<clock>[/<params>]
                auto sp = arg.find(' ');
                SdpRtpMap r;
                if (sp == std::string_view::npos || !parseNum<int>(arg.substr(0, sp), 127, &r.pt)) {
                    fail(err, lineNo, "bad rtpmap", line);
                    return std::nullopt;
                }
                std::string_view enc = trimLine(arg.substr(sp + 1));
                auto slash = enc.find('/');
                if (slash == std::string_view::npos) {
                    fail(err, lineNo, "bad rtpmap", line);
                    return std::nullopt;
                }
                r.encoding = std::string(enc.substr(0, slash));
                std::string_view rest = enc.substr(slash + 1);
                auto slash2 = rest.find('/');
                if (!parseNum<int>(rest.substr(0, slash2), 10000000, &r.clockRate)) {
                    fail(err, lineNo, "bad rtpmap clock rate", line);
                    return std::nullopt;
                }
                if (slash2 != std::string_view::npos)
                    r.params = std::string(rest.substr(slash2 + 1));
                cur->rtpmaps.push_back(std::move(r));
            } else if (name == "ptime" && cur) {
                int p = 0;
                if (parseNum<int>(trimLine(arg), 10000, &p))
                    cur->ptime = p; // a bad ptime is ignored
            }
            break;
        }
        default:
            break; // s=, t=, b=, k=, ... are not needed for hold
        }
    }
    if (!haveV) {
        if (err)
            *err = "SDP has no v= line";
        return std::nullopt;
    }
    if (!haveO) {
        if (err)
            *err = "SDP has no o= line";
        return std::nullopt;
    }
    for (size_t i = 0; i < s.media.size(); ++i) {
        auto &m = s.media[i];
        if (!mediaHasDir[i] && sessionDir)
            m.direction = *sessionDir;
        if (m.connectionAddr.empty())
            m.connectionAddr = s.connectionAddr;
        if (m.port != 0 && m.connectionAddr.empty()) {
            if (err)
                *err = fmt::format("SDP m={} section has no c= line (RFC 4566 §5.7)", m.type);
            return std::nullopt;
        }
    }
    return s;
}

HoldAnswer buildHoldAnswer(const SdpSession &offer, std::string_view localIp, uint16_t localPort, uint64_t sessionId,
                           uint64_t version) {
    HoldAnswer a;
    a.direction = SdpDirection::Inactive;
    std::string at = addrType(localIp);
    std::string out = fmt::format("v=0\r\no=parkway {} {} IN {} {}\r\ns=parkway\r\nc=IN {} {}\r\nt=0 0\r\n", sessionId,
                                  version, at, localIp, at, localIp);
    const SdpMedia *audio = offer.audio();
    for (const auto &m : offer.media) {
        if (&m != audio) {
            // RFC 3264 §6: same number of m= lines; reject what we do not take with port 0.
            std::string fmts;
            for (const auto &f : m.formats)
                fmts += " " + f;
            out += fmt::format("m={} 0 {}{}\r\n", m.type, m.proto, fmts);
            continue;
        }
        a.remoteIp = m.connectionAddr;
        a.remotePort = m.port;
        int chosen = -1;
        for (int pt : m.payloadTypes) {
            if (isPlayable(m, pt)) {
                chosen = pt;
                break;
            }
        }
        // RFC 3264 §6.1: we only send (music); the parked party only listens.
        SdpDirection dir = SdpDirection::Inactive;
        if (chosen >= 0 && (m.direction == SdpDirection::SendRecv || m.direction == SdpDirection::RecvOnly))
            dir = SdpDirection::SendOnly;
        a.direction = dir;
        if (chosen >= 0) {
            a.chosenPt = chosen;
            out += fmt::format("m=audio {} {} {}\r\na=rtpmap:{} {}/8000\r\na=ptime:20\r\na={}\r\n", localPort, m.proto,
                               chosen, chosen, playableEncoding(chosen), toString(dir));
        } else {
            // No common codec: still a valid answer (RFC 3264 §6), offered formats, inactive.
            std::string fmts;
            for (const auto &f : m.formats)
                fmts += " " + f;
            out += fmt::format("m=audio {} {}{}\r\na=inactive\r\n", localPort, m.proto, fmts);
        }
    }
    a.sdp = std::move(out);
    return a;
}

std::string buildHoldOffer(std::string_view localIp, uint16_t localPort, uint64_t sessionId, uint64_t version) {
    std::string at = addrType(localIp);
    return fmt::format(
        "v=0\r\no=parkway {} {} IN {} {}\r\ns=parkway\r\nc=IN {} {}\r\nt=0 0\r\n"
        "m=audio {} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=sendonly\r\n",
        sessionId, version, at, localIp, at, localIp, localPort);
}

namespace {
// Locate the o= line: [start, end) of the line content (without CR/LF).
bool findOrigin(std::string_view sdp, size_t *start, size_t *end) {
    size_t pos = 0;
    while (pos < sdp.size()) {
        size_t nl = sdp.find('\n', pos);
        size_t e = nl == std::string_view::npos ? sdp.size() : nl;
        size_t ce = (e > pos && sdp[e - 1] == '\r') ? e - 1 : e;
        if (ce - pos >= 2 && sdp[pos] == 'o' && sdp[pos + 1] == '=') {
            *start = pos;
            *end = ce;
            return true;
        }
        pos = e + 1;
    }
    return false;
}
} // namespace

std::optional<uint64_t> sdpOriginVersion(std::string_view sdp) {
    size_t s = 0, e = 0;
    if (!findOrigin(sdp, &s, &e))
        return std::nullopt;
    auto f = splitWs(sdp.substr(s + 2, e - s - 2));
    uint64_t v = 0;
    if (f.size() != 6 || !parseNum<uint64_t>(f[2], UINT64_MAX, &v))
        return std::nullopt;
    return v;
}

std::optional<std::string> withOriginVersion(std::string_view sdp, uint64_t version) {
    size_t s = 0, e = 0;
    if (!findOrigin(sdp, &s, &e))
        return std::nullopt;
    auto f = splitWs(sdp.substr(s + 2, e - s - 2));
    uint64_t v = 0;
    if (f.size() != 6 || !parseNum<uint64_t>(f[2], UINT64_MAX, &v))
        return std::nullopt;
    std::string line = fmt::format("o={} {} {} {} {} {}", f[0], f[1], version, f[3], f[4], f[5]);
    std::string out;
    out.reserve(sdp.size() + 8);
    out.append(sdp.substr(0, s));
    out.append(line);
    out.append(sdp.substr(e));
    return out;
}

namespace {
// The body without its o= line (the rest compared byte for byte).
std::string withoutOrigin(std::string_view sdp) {
    size_t s = 0, e = 0;
    if (!findOrigin(sdp, &s, &e))
        return std::string(sdp);
    std::string out(sdp.substr(0, s));
    out.append(sdp.substr(e));
    return out;
}
} // namespace

std::optional<std::string> withLegOrigin(std::string_view body, std::string_view lastSent, SdpOrigin &origin) {
    size_t s = 0, e = 0;
    if (!findOrigin(body, &s, &e))
        return std::nullopt;
    auto f = splitWs(body.substr(s + 2, e - s - 2));
    uint64_t v = 0;
    if (f.size() != 6 || !parseNum<uint64_t>(f[2], UINT64_MAX, &v))
        return std::nullopt;
    if (lastSent.empty() || withoutOrigin(body) != withoutOrigin(lastSent))
        ++origin.version;
    std::string line = fmt::format("o={} {} {} IN {} {}", origin.user, origin.sessionId, origin.version,
                                   addrType(origin.addr), origin.addr);
    std::string out;
    out.reserve(body.size() + line.size());
    out.append(body.substr(0, s));
    out.append(line);
    out.append(body.substr(e));
    return out;
}

uint64_t newSdpSessionId() {
    // NTP seconds (RFC 4566 §5.2 suggestion) mixed with sub-second time so two in one second differ.
    auto now = std::chrono::system_clock::now().time_since_epoch();
    uint64_t us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
    uint64_t ntp = us / 1000000 + 2208988800ull;
    uint64_t id = (ntp << 20) ^ (us % 1000000);
    return id == 0 ? 1 : id;
}

} // namespace parkway::callpark
