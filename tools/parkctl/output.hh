// Human-readable rendering of admin API results for parkctl: aligned tables for lists, key/value blocks for
// objects. Never loses data: columns not in the preferred list are appended, nested values shown as JSON.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace parkway::tools {

// The rows of a list result: the value itself when it is an array, else the first array member of an object
// (e.g. {"parked":[...]}). Empty when there is none.
const nlohmann::json *findRows(const nlohmann::json &result);

// An aligned table. Columns: the preferred ones present in any row (in that order), then every other key
// in first-seen order. Header in upper case. "empty" is printed when there are no rows.
// strict: only the preferred columns (the rest stays available with --json).
std::string renderTable(const nlohmann::json &rows, const std::vector<std::string> &preferred,
                        const std::string &empty, bool strict = false);

// "key: value" lines, nested objects flattened with dots ("requests.INVITE: 3"), keys aligned.
std::string renderObject(const nlohmann::json &obj);

// One cell: strings bare, arrays of scalars joined with ",", other nested values as compact JSON.
std::string cell(const nlohmann::json &v);

} // namespace parkway::tools
