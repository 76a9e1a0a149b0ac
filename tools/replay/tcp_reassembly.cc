// parkway-replay readers: TCP reassembly and SIP framing over the stream (tcp_reassembly.hh).
#include "tcp_reassembly.hh"

namespace parkway::replay::detail {

namespace {
constexpr size_t kMaxEarlySegments = 128; // out-of-order segments held before declaring a gap
constexpr size_t kMaxEarlyBytes = 4 * 1024 * 1024;
constexpr size_t kMaxPartialLine = 8 * 1024; // while resynchronising: longest line kept waiting for its end

// Signed distance a - b in sequence space (RFC 9293 §3.4: arithmetic modulo 2^32).
int32_t seqDiff(uint32_t a, uint32_t b) {
    return static_cast<int32_t>(a - b);
}

size_t leadingLineEnds(const std::string &b) {
    size_t n = 0;
    while (n < b.size() && (b[n] == '\r' || b[n] == '\n'))
        ++n;
    return n;
}
} // namespace

std::string TcpReassembly::name(const Stream &s) const {
    return "TCP " + s.src.str() + " -> " + s.dst.str();
}

TcpReassembly::Stream &TcpReassembly::stream(const TcpSegment &seg) {
    auto [it, inserted] = streams_.try_emplace(Key{seg.src, seg.dst});
    if (inserted) {
        it->second.src = seg.src;
        it->second.dst = seg.dst;
    }
    return it->second;
}

void TcpReassembly::add(TcpSegment seg) {
    curFrame_ = seg.frame;
    curTime_ = seg.time;
    Stream &s = stream(seg);
    // A SYN starts a new connection unless it repeats the one this stream began with (RFC 9293 §3.5).
    if (seg.syn && (!s.started || s.closed || !s.haveIsn || s.isn != seg.seq)) {
        if (s.started)
            finishStream(s); // a new connection on the same addresses: what the old one left is reported
        s = Stream{};
        s.src = seg.src;
        s.dst = seg.dst;
        s.started = true;
        s.haveIsn = true;
        s.isn = seg.seq;
        s.nextSeq = seg.seq + 1; // the SYN takes one sequence number; data (if any) follows it
        seg.seq += 1;
    } else if (seg.syn) {
        seg.seq += 1; // retransmitted SYN
    }
    if (!s.started) { // the capture began in the middle of the connection
        s.started = true;
        s.nextSeq = seg.seq;
    }
    if (seg.fin || seg.rst)
        s.closed = true;
    if (s.tls || seg.payload.empty())
        return;
    accept(s, std::move(seg));
}

void TcpReassembly::accept(Stream &s, TcpSegment seg) {
    int32_t d = seqDiff(seg.seq, s.nextSeq);
    if (d > 0) { // bytes before this one are missing so far
        auto [it, inserted] = s.early.try_emplace(seg.seq, seg);
        if (inserted) {
            s.earlyBytes += seg.payload.size();
        } else if (it->second.payload.size() < seg.payload.size()) { // keep the longer copy
            s.earlyBytes += seg.payload.size() - it->second.payload.size();
            it->second = std::move(seg);
        }
        if (s.early.size() > kMaxEarlySegments || s.earlyBytes > kMaxEarlyBytes)
            skipGap(s, "too many segments waiting for it");
        return;
    }
    size_t skip = static_cast<size_t>(-static_cast<int64_t>(d));
    if (skip >= seg.payload.size())
        return; // a retransmission of bytes we have
    s.buffer.append(seg.payload, skip, std::string::npos);
    s.nextSeq += static_cast<uint32_t>(seg.payload.size() - skip);
    uint64_t frame = std::max(seg.frame, curFrame_);
    cut(s, frame == seg.frame ? seg.time : curTime_, frame);
    drainEarly(s);
}

void TcpReassembly::drainEarly(Stream &s) {
    for (bool again = true; again && !s.tls;) {
        again = false;
        for (auto it = s.early.begin(); it != s.early.end(); ++it) {
            if (seqDiff(it->first, s.nextSeq) <= 0) {
                TcpSegment seg = std::move(it->second);
                s.earlyBytes -= seg.payload.size();
                s.early.erase(it);
                accept(s, std::move(seg));
                again = true;
                break;
            }
        }
    }
}

void TcpReassembly::skipGap(Stream &s, const char *why) {
    if (s.early.empty())
        return;
    auto next = s.early.begin();
    for (auto it = s.early.begin(); it != s.early.end(); ++it)
        if (seqDiff(it->first, s.nextSeq) < seqDiff(next->first, s.nextSeq))
            next = it;
    uint32_t missing = static_cast<uint32_t>(seqDiff(next->first, s.nextSeq));
    std::string text = name(s) + ": gap, " + std::to_string(missing) + " bytes missing before frame " +
                       std::to_string(next->second.frame) + " (" + why + ")";
    size_t partial = s.buffer.size() - leadingLineEnds(s.buffer);
    if (partial > 0)
        text += ", an incomplete message of " + std::to_string(partial) + " bytes dropped";
    out_.warn(text + "; resynchronising at the next SIP start line");
    s.buffer.clear();
    s.resync = true;
    s.nextSeq = next->first;
    drainEarly(s);
}

// Looks for a SIP start line at the beginning of a line; drops what comes before it. False: none yet.
bool TcpReassembly::findStart(Stream &s) {
    s.buffer.erase(0, leadingLineEnds(s.buffer));
    if (s.buffer.empty())
        return false;
    if (looksLikeTls(s.buffer)) {
        auto &back = streams_[Key{s.dst, s.src}];
        back.src = s.dst;
        back.dst = s.src;
        s.tls = back.tls = true;
        out_.warn("TCP " + s.src.str() + " <-> " + s.dst.str() + ": encrypted (TLS), not read");
        s.buffer.clear();
        s.early.clear();
        s.earlyBytes = 0;
        return false;
    }
    size_t pos = 0;
    for (size_t eol = s.buffer.find('\n'); eol != std::string::npos; eol = s.buffer.find('\n', pos)) {
        size_t within = startLineWithin(std::string_view(s.buffer).substr(pos, eol - pos));
        if (within != std::string_view::npos) {
            pos += within;
            s.skipped += pos;
            s.buffer.erase(0, pos);
            if (s.skipped > 0)
                out_.warn(name(s) + ": " + std::to_string(s.skipped) + " bytes before a SIP start line skipped");
            s.skipped = 0;
            s.resync = false;
            return true;
        }
        pos = eol + 1;
    }
    if (s.buffer.size() - pos > kMaxPartialLine)
        pos = s.buffer.size();
    s.skipped += pos;
    s.buffer.erase(0, pos);
    return false;
}

void TcpReassembly::cut(Stream &s, double time, uint64_t frame) {
    for (;;) {
        if (s.resync && !findStart(s))
            return;
        s.buffer.erase(0, leadingLineEnds(s.buffer)); // keep-alives between messages (RFC 5626 §3.5.1)
        if (s.buffer.empty())
            return;
        size_t eol = s.buffer.find('\n');
        if (eol == std::string::npos && s.buffer.size() <= kMaxPartialLine)
            return;
        if (eol == std::string::npos || !isSipStartLine(std::string_view(s.buffer).substr(0, eol))) {
            s.resync = true; // e.g. the body of a message that had no Content-Length
            continue;
        }
        Frame f = frameMessage(s.buffer);
        if (f.status == Frame::NeedMore)
            return;
        if (f.status == Frame::Bad) {
            out_.warn(name(s) + ": frame " + std::to_string(frame) + ": " + f.reason + "; resynchronising");
            size_t eol = s.buffer.find('\n');
            s.buffer.erase(0, eol == std::string::npos ? s.buffer.size() : eol + 1);
            s.resync = true;
            continue;
        }
        if (f.noLength)
            out_.warn(name(s) + ": frame " + std::to_string(frame) +
                      ": message without Content-Length (required on TCP, RFC 3261 §18.3), taken as 0");
        Captured c;
        c.time = time;
        c.transport = Transport::Tcp;
        c.src = s.src;
        c.dst = s.dst;
        c.data = s.buffer.substr(0, f.length);
        s.buffer.erase(0, f.length);
        out_.message(std::move(c), frame);
    }
}

void TcpReassembly::finishStream(Stream &s) {
    while (!s.early.empty() && !s.tls)
        skipGap(s, "never captured");
    if (s.tls)
        return;
    size_t partial = s.buffer.size() - leadingLineEnds(s.buffer);
    if (partial > 0 && !s.resync)
        out_.warn(name(s) + ": incomplete message at the end (" + std::to_string(partial) + " bytes), dropped");
    else if (s.skipped + partial > 0)
        out_.warn(name(s) + ": " + std::to_string(s.skipped + partial) + " bytes without a SIP start line skipped");
    s.buffer.clear();
    s.skipped = 0;
}

void TcpReassembly::finish() {
    curFrame_ = 0;
    curTime_ = 0;
    for (auto &entry : streams_)
        finishStream(entry.second);
}

} // namespace parkway::replay::detail
