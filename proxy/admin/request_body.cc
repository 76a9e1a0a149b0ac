#include "request_body.hh"

#include <fmt/format.h>

namespace parkway::proxy {

namespace {

// Length of the valid UTF-8 sequence starting at text[i], or 0 when it is invalid (RFC 3629 §4 table).
size_t utf8SequenceLength(std::string_view text, size_t i) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    unsigned char c = byte(i);
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c == 0xE0)
        n = 3, lo = 0xA0; // no overlongs
    else if (c == 0xED)
        n = 3, hi = 0x9F; // no UTF-16 surrogates
    else if (c >= 0xE1 && c <= 0xEF)
        n = 3;
    else if (c == 0xF0)
        n = 4, lo = 0x90; // no overlongs
    else if (c == 0xF4)
        n = 4, hi = 0x8F; // nothing above U+10FFFF
    else if (c >= 0xF1 && c <= 0xF3)
        n = 4;
    else
        return 0;
    if (i + n > text.size())
        return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi)
        return 0;
    for (size_t k = 2; k < n; ++k)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF)
            return 0;
    return n;
}

// Deepest nesting of arrays/objects outside string literals; stops counting once over `limit` and reports
// where. Linear, no recursion: this is what keeps a 100,000-deep body away from the parser.
bool depthWithin(std::string_view text, size_t limit, size_t &where) {
    size_t depth = 0;
    bool inString = false, escaped = false;
    for (size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (inString) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                inString = false;
            continue;
        }
        if (c == '"')
            inString = true;
        else if (c == '[' || c == '{') {
            if (++depth > limit) {
                where = i;
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0)
            --depth;
    }
    return true;
}

bool blank(std::string_view text) {
    return text.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

} // namespace

const char *bodyErrorReason(BodyError e) {
    switch (e) {
    case BodyError::None:
        return "none";
    case BodyError::TooLarge:
        return "body_too_large";
    case BodyError::InvalidUtf8:
        return "invalid_utf8";
    case BodyError::TooDeep:
        return "json_too_deep";
    case BodyError::InvalidJson:
        return "invalid_json";
    case BodyError::NotObject:
        return "not_an_object";
    }
    return "other";
}

bool isValidUtf8(std::string_view text, size_t *badOffset) {
    for (size_t i = 0; i < text.size();) {
        size_t n = utf8SequenceLength(text, i);
        if (n == 0) {
            if (badOffset)
                *badOffset = i;
            return false;
        }
        i += n;
    }
    return true;
}

std::string toValidUtf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        size_t n = utf8SequenceLength(text, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD"; // U+FFFD, one per bad byte
            ++i;
        } else {
            out.append(text.data() + i, n);
            i += n;
        }
    }
    return out;
}

std::optional<nlohmann::json> parseRequestBody(std::string_view body, std::string &error, const BodyLimits &limits,
                                               BodyError *why) {
    auto refuse = [&](BodyError e, std::string message) -> std::optional<nlohmann::json> {
        error = std::move(message);
        if (why)
            *why = e;
        return std::nullopt;
    };
    if (why)
        *why = BodyError::None;
    if (body.size() > limits.maxBytes)
        return refuse(BodyError::TooLarge,
                      fmt::format("request body is {} bytes; the limit is {} (admin.max_body_bytes)", body.size(),
                                  limits.maxBytes));
    if (blank(body))
        return nlohmann::json::object();
    size_t at = 0;
    if (!isValidUtf8(body, &at))
        return refuse(BodyError::InvalidUtf8,
                      fmt::format("request body is not valid UTF-8 (bad byte 0x{:02X} at byte {})",
                                  static_cast<unsigned char>(body[at]), at));
    if (!depthWithin(body, limits.maxDepth, at))
        return refuse(BodyError::TooDeep, fmt::format("request body is nested deeper than {} levels (at byte {}; "
                                                      "admin.max_json_depth)",
                                                      limits.maxDepth, at));
    nlohmann::json value;
    try {
        value = nlohmann::json::parse(body);
    } catch (const nlohmann::json::parse_error &e) {
        return refuse(BodyError::InvalidJson,
                      fmt::format("invalid JSON in request body at byte {}: {}", e.byte, e.what()));
    } catch (const nlohmann::json::exception &e) {
        // out_of_range.406: a number no double holds ({"a":1e400}); the client's input, so 400, not 500
        return refuse(BodyError::InvalidJson, fmt::format("invalid JSON in request body: {}", e.what()));
    }
    if (!value.is_object())
        return refuse(BodyError::NotObject, "request body must be a JSON object");
    return value;
}

} // namespace parkway::proxy
