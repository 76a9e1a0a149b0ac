// Thread-safe metrics registry. Written on the SIP thread (host API counter_add/gauge_set/histogram_observe,
// core SIP counters), read by the admin thread for GET /metrics (Prometheus text exposition format 0.0.4).
#pragma once
#include <initializer_list>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace parkway::proxy {

class Metrics {
public:
    // name: metric name ("parkway_parks_total"); labels: Prometheus label list without braces
    // ('domain="pbx.example.com",lot="main"'), may be empty. help may be registered once per name.
    void counterAdd(const std::string &name, const std::string &labels, double delta);
    void gaugeSet(const std::string &name, const std::string &labels, double value);
    void gaugeAdd(const std::string &name, const std::string &labels, double delta);
    void histogramObserve(const std::string &name, const std::string &labels, double value);
    void setHelp(const std::string &name, const std::string &help);
    // Default buckets (seconds) suit park durations: 1,5,10,30,60,120,300,600,1800,3600.
    void setBuckets(const std::string &name, std::vector<double> upperBounds);

    std::string renderPrometheus() const;
    double value(const std::string &name, const std::string &labels) const; // tests; 0 when absent
    // Histogram figures for one label set (tests); 0 when absent.
    double histogramCount(const std::string &name, const std::string &labels) const;
    double histogramSum(const std::string &name, const std::string &labels) const;

    // One escaped label pair for the labels argument: label("domain", "a\"b") -> domain="a\\\"b".
    // Escapes backslash, double quote and newline (exposition format 0.0.4).
    static std::string label(const std::string &key, const std::string &value);
    // Joins label pairs with commas, skipping empty ones.
    static std::string labels(std::initializer_list<std::string> pairs);

private:
    struct Histogram {
        std::vector<double> bounds;
        std::vector<double> counts; // per bound, non-cumulative
        double sum = 0, count = 0;
    };
    enum class Kind { Counter, Gauge, Histogram };
    struct Family {
        Kind kind = Kind::Counter;
        bool typed = false; // false while only help/buckets were set
        std::string help;
        std::map<std::string, double> values;        // labels -> value
        std::map<std::string, Histogram> histograms; // labels -> histogram
        std::vector<double> bounds;
    };
    // nullptr when name is already a family of another kind (the write is dropped, not a crash).
    Family *family(const std::string &name, Kind kind);
    mutable std::mutex mu_;
    std::map<std::string, Family> families_;
};

} // namespace parkway::proxy
