// Embedded schema migrations (generated from schema/*.sql at build time).
#pragma once

#include <string>
#include <vector>

namespace parkway::engine {

struct Migration {
    int version;        // PRAGMA user_version after this step
    const char* name;   // file name, for error messages
    const char* sql;
};

const std::vector<Migration>& migrations(); // ascending versions

} // namespace parkway::engine
