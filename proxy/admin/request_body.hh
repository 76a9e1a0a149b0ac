// Admin API request bodies: size, UTF-8 and nesting depth are checked on the raw bytes BEFORE the JSON parser
// runs, so no recursive code (parser, dump, copy, destruction) ever sees a deeply nested value. Free of libevent
// so the fuzz target and unit tests call it directly. See docs/admin-api.md "Limits".
#pragma once
#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace parkway::proxy {

struct BodyLimits {
    size_t maxBytes = 1u << 20; // admin.max_body_bytes
    size_t maxDepth = 32;       // admin.max_json_depth: nested arrays/objects
};

// Why a body was refused (a metric label: parkway_admin_refused_total{reason}).
enum class BodyError { None, TooLarge, InvalidUtf8, TooDeep, InvalidJson, NotObject };
const char *bodyErrorReason(BodyError e);

// The body as a JSON object; empty or blank = {}. On refusal: nullopt, `error` says what and where (for a 400
// or 413 JSON answer) and `why` (when given) the kind.
std::optional<nlohmann::json> parseRequestBody(std::string_view body, std::string &error, const BodyLimits &limits = {},
                                               BodyError *why = nullptr);

// RFC 3629 UTF-8 (no overlongs, no surrogates, at most U+10FFFF). On false, *badOffset is the first bad byte.
bool isValidUtf8(std::string_view text, size_t *badOffset = nullptr);

// Every invalid sequence replaced by U+FFFD. Bytes >= 0x80 are never JSON syntax, so a JSON text stays
// well-formed: used on module answers before they are sent.
std::string toValidUtf8(std::string_view text);

} // namespace parkway::proxy
