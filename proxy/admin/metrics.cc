#include "metrics.hh"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace parkway::proxy {

namespace {

const std::vector<double> kDefaultBuckets{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

// Exposition format 0.0.4: values are Go-style floats; +Inf/-Inf/NaN spelled out.
std::string num(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    return fmt::format("{}", v);
}

// HELP text escapes only backslash and newline.
std::string escapeHelp(const std::string &s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string braces(const std::string &labels) { return labels.empty() ? std::string() : "{" + labels + "}"; }

std::string withLe(const std::string &labels, const std::string &le) {
    return "{" + (labels.empty() ? std::string() : labels + ",") + "le=\"" + le + "\"}";
}

} // namespace

std::string Metrics::label(const std::string &key, const std::string &value) {
    std::string out = key + "=\"";
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    out += '"';
    return out;
}

std::string Metrics::labels(std::initializer_list<std::string> pairs) {
    std::string out;
    for (const auto &p : pairs) {
        if (p.empty()) continue;
        if (!out.empty()) out += ',';
        out += p;
    }
    return out;
}

Metrics::Family *Metrics::family(const std::string &name, Kind kind) {
    Family &f = families_[name];
    if (!f.typed) {
        f.kind = kind;
        f.typed = true;
        if (kind == Kind::Histogram && f.bounds.empty()) f.bounds = kDefaultBuckets;
    }
    return f.kind == kind ? &f : nullptr;
}

void Metrics::counterAdd(const std::string &name, const std::string &labels, double delta) {
    if (!(delta >= 0)) return; // counters only go up (also drops NaN)
    std::lock_guard<std::mutex> lock(mu_);
    if (Family *f = family(name, Kind::Counter)) f->values[labels] += delta;
}

void Metrics::gaugeSet(const std::string &name, const std::string &labels, double value) {
    std::lock_guard<std::mutex> lock(mu_);
    if (Family *f = family(name, Kind::Gauge)) f->values[labels] = value;
}

void Metrics::gaugeAdd(const std::string &name, const std::string &labels, double delta) {
    std::lock_guard<std::mutex> lock(mu_);
    if (Family *f = family(name, Kind::Gauge)) f->values[labels] += delta;
}

void Metrics::histogramObserve(const std::string &name, const std::string &labels, double value) {
    if (std::isnan(value)) return;
    std::lock_guard<std::mutex> lock(mu_);
    Family *f = family(name, Kind::Histogram);
    if (!f) return;
    auto it = f->histograms.find(labels);
    if (it == f->histograms.end()) {
        Histogram h;
        h.bounds = f->bounds;
        h.counts.assign(h.bounds.size(), 0);
        it = f->histograms.emplace(labels, std::move(h)).first;
    }
    Histogram &h = it->second;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
        if (value <= h.bounds[i]) { // "le": less than or equal
            h.counts[i] += 1;
            break;
        }
    }
    h.sum += value;
    h.count += 1;
}

void Metrics::setHelp(const std::string &name, const std::string &help) {
    std::lock_guard<std::mutex> lock(mu_);
    families_[name].help = help;
}

void Metrics::setBuckets(const std::string &name, std::vector<double> upperBounds) {
    std::sort(upperBounds.begin(), upperBounds.end());
    upperBounds.erase(std::unique(upperBounds.begin(), upperBounds.end()), upperBounds.end());
    upperBounds.erase(std::remove_if(upperBounds.begin(), upperBounds.end(),
                                     [](double b) { return std::isnan(b) || std::isinf(b); }),
                      upperBounds.end());
    std::lock_guard<std::mutex> lock(mu_);
    Family &f = families_[name];
    // Only before the first observation: existing series keep their buckets.
    if (f.histograms.empty()) f.bounds = std::move(upperBounds);
}

std::string Metrics::renderPrometheus() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto &[name, f] : families_) {
        if (!f.typed) continue; // help registered but never written: nothing to expose
        if (!f.help.empty()) out += "# HELP " + name + " " + escapeHelp(f.help) + "\n";
        switch (f.kind) {
        case Kind::Counter:
            out += "# TYPE " + name + " counter\n";
            break;
        case Kind::Gauge:
            out += "# TYPE " + name + " gauge\n";
            break;
        case Kind::Histogram:
            out += "# TYPE " + name + " histogram\n";
            break;
        }
        if (f.kind != Kind::Histogram) {
            for (const auto &[labels, v] : f.values) out += name + braces(labels) + " " + num(v) + "\n";
            continue;
        }
        for (const auto &[labels, h] : f.histograms) {
            double cumulative = 0;
            for (size_t i = 0; i < h.bounds.size(); ++i) {
                cumulative += h.counts[i];
                out += name + "_bucket" + withLe(labels, num(h.bounds[i])) + " " + num(cumulative) + "\n";
            }
            out += name + "_bucket" + withLe(labels, "+Inf") + " " + num(h.count) + "\n";
            out += name + "_sum" + braces(labels) + " " + num(h.sum) + "\n";
            out += name + "_count" + braces(labels) + " " + num(h.count) + "\n";
        }
    }
    return out;
}

double Metrics::value(const std::string &name, const std::string &labels) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto f = families_.find(name);
    if (f == families_.end()) return 0;
    auto v = f->second.values.find(labels);
    return v == f->second.values.end() ? 0 : v->second;
}

double Metrics::histogramCount(const std::string &name, const std::string &labels) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto f = families_.find(name);
    if (f == families_.end()) return 0;
    auto h = f->second.histograms.find(labels);
    return h == f->second.histograms.end() ? 0 : h->second.count;
}

double Metrics::histogramSum(const std::string &name, const std::string &labels) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto f = families_.find(name);
    if (f == families_.end()) return 0;
    auto h = f->second.histograms.find(labels);
    return h == f->second.histograms.end() ? 0 : h->second.sum;
}

} // namespace parkway::proxy
