#include "output.hh"

#include <algorithm>

namespace parkway::tools {

using json = nlohmann::json;

const json *findRows(const json &result) {
    if (result.is_array()) return &result;
    if (result.is_object())
        for (const auto &[k, v] : result.items())
            if (v.is_array()) return &v;
    return nullptr;
}

std::string cell(const json &v) {
    if (v.is_null() || ((v.is_object() || v.is_array()) && v.empty())) return "-";
    if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (v.is_object() && !v.empty() &&
        std::all_of(v.begin(), v.end(), [](const json &x) { return x.is_primitive(); })) {
        std::string out; // {"mode":"parker","ring_seconds":30} -> mode=parker ring_seconds=30
        for (const auto &[k, x] : v.items()) out += (out.empty() ? "" : " ") + k + "=" + cell(x);
        return out;
    }
    if (v.is_array()) {
        bool scalars = std::all_of(v.begin(), v.end(), [](const json &x) { return x.is_primitive(); });
        if (scalars) {
            std::string out;
            for (const auto &x : v) out += (out.empty() ? "" : ",") + cell(x);
            return out.empty() ? "-" : out;
        }
    }
    return v.dump();
}

namespace {
std::string upper(std::string s) {
    for (char &c : s) c = c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}
// Display width of UTF-8 text (code points; good enough for names and numbers).
size_t width(const std::string &s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}
void flatten(const json &v, const std::string &prefix, std::vector<std::pair<std::string, std::string>> &out) {
    if (v.is_object() && !v.empty()) {
        for (const auto &[k, x] : v.items()) flatten(x, prefix.empty() ? k : prefix + "." + k, out);
        return;
    }
    out.emplace_back(prefix.empty() ? "value" : prefix, cell(v));
}
} // namespace

std::string renderTable(const json &rows, const std::vector<std::string> &preferred, const std::string &empty,
                        bool strict) {
    if (!rows.is_array() || rows.empty()) return empty + "\n";
    std::vector<std::string> cols;
    auto present = [&](const std::string &k) {
        return std::any_of(rows.begin(), rows.end(), [&](const json &r) { return r.is_object() && r.contains(k); });
    };
    for (const auto &p : preferred)
        if (present(p)) cols.push_back(p);
    for (const auto &r : rows) {
        if (!r.is_object() || strict) continue;
        for (const auto &[k, v] : r.items())
            if (std::find(cols.begin(), cols.end(), k) == cols.end()) cols.push_back(k);
    }
    bool scalarRows = cols.empty() && !strict;
    if (scalarRows) cols.push_back("value");
    std::vector<std::vector<std::string>> table;
    std::vector<std::string> header;
    for (const auto &c : cols) header.push_back(upper(c));
    table.push_back(header);
    for (const auto &r : rows) {
        std::vector<std::string> line;
        for (const auto &c : cols)
            line.push_back(scalarRows ? cell(r) : (r.is_object() && r.contains(c) ? cell(r[c]) : "-"));
        table.push_back(line);
    }
    std::vector<size_t> w(cols.size(), 0);
    for (const auto &line : table)
        for (size_t i = 0; i < line.size(); ++i) w[i] = std::max(w[i], width(line[i]));
    std::string out;
    for (const auto &line : table) {
        std::string l;
        for (size_t i = 0; i < line.size(); ++i) {
            l += line[i];
            if (i + 1 < line.size()) l += std::string(w[i] - width(line[i]) + 2, ' ');
        }
        while (!l.empty() && l.back() == ' ') l.pop_back();
        out += l + "\n";
    }
    return out;
}

std::string renderObject(const json &obj) {
    std::vector<std::pair<std::string, std::string>> kv;
    flatten(obj, "", kv);
    size_t w = 0;
    for (const auto &[k, v] : kv) w = std::max(w, width(k));
    std::string out;
    for (const auto &[k, v] : kv) out += k + ":" + std::string(w - width(k) + 1, ' ') + v + "\n";
    return out;
}

} // namespace parkway::tools
