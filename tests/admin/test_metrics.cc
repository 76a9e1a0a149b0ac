#include "admin/metrics.hh"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

using parkway::proxy::Metrics;

namespace {
bool hasLine(const std::string &text, const std::string &line) {
    return text.find(line + "\n") != std::string::npos &&
           (text.rfind(line + "\n", 0) == 0 || text.find("\n" + line + "\n") != std::string::npos);
}
} // namespace

TEST_CASE("counters render with HELP and TYPE and accumulate per label set", "[metrics]") {
    Metrics m;
    m.setHelp("parkway_parks_total", "Calls parked");
    m.counterAdd("parkway_parks_total", R"(domain="pbx.example.com")", 1);
    m.counterAdd("parkway_parks_total", R"(domain="pbx.example.com")", 2);
    m.counterAdd("parkway_parks_total", R"(domain="other")", 1);
    std::string text = m.renderPrometheus();
    CHECK(hasLine(text, "# HELP parkway_parks_total Calls parked"));
    CHECK(hasLine(text, "# TYPE parkway_parks_total counter"));
    CHECK(hasLine(text, R"(parkway_parks_total{domain="pbx.example.com"} 3)"));
    CHECK(hasLine(text, R"(parkway_parks_total{domain="other"} 1)"));
    CHECK(m.value("parkway_parks_total", R"(domain="pbx.example.com")") == 3);
    // HELP comes before TYPE, TYPE before the samples.
    CHECK(text.find("# HELP parkway_parks_total") < text.find("# TYPE parkway_parks_total"));
    CHECK(text.find("# TYPE parkway_parks_total") < text.find("parkway_parks_total{"));
}

TEST_CASE("counters never go down", "[metrics]") {
    Metrics m;
    m.counterAdd("c_total", "", 5);
    m.counterAdd("c_total", "", -3);
    m.counterAdd("c_total", "", std::nan(""));
    CHECK(m.value("c_total", "") == 5);
    CHECK(hasLine(m.renderPrometheus(), "c_total 5"));
}

TEST_CASE("gauges set and add, unlabelled samples have no braces", "[metrics]") {
    Metrics m;
    m.gaugeSet("parkway_sip_transactions", "", 7);
    m.gaugeAdd("parkway_parked_calls", R"(domain="d",lot="main")", 2);
    m.gaugeAdd("parkway_parked_calls", R"(domain="d",lot="main")", -1);
    std::string text = m.renderPrometheus();
    CHECK(hasLine(text, "# TYPE parkway_sip_transactions gauge"));
    CHECK(hasLine(text, "parkway_sip_transactions 7"));
    CHECK(hasLine(text, R"(parkway_parked_calls{domain="d",lot="main"} 1)"));
    CHECK(text.find("# HELP parkway_sip_transactions") == std::string::npos); // no help registered
}

TEST_CASE("histograms render cumulative buckets, +Inf, _sum and _count", "[metrics]") {
    Metrics m;
    m.setHelp("parkway_park_duration_seconds", "Time calls spent parked");
    m.setBuckets("parkway_park_duration_seconds", {10, 1, 5});
    for (double v : {0.5, 1.0, 3.0, 7.0, 100.0}) m.histogramObserve("parkway_park_duration_seconds", R"(domain="d")", v);
    std::string text = m.renderPrometheus();
    INFO(text);
    CHECK(hasLine(text, "# TYPE parkway_park_duration_seconds histogram"));
    CHECK(hasLine(text, R"(parkway_park_duration_seconds_bucket{domain="d",le="1"} 2)")); // 0.5 and 1.0 (le)
    CHECK(hasLine(text, R"(parkway_park_duration_seconds_bucket{domain="d",le="5"} 3)"));
    CHECK(hasLine(text, R"(parkway_park_duration_seconds_bucket{domain="d",le="10"} 4)"));
    CHECK(hasLine(text, R"(parkway_park_duration_seconds_bucket{domain="d",le="+Inf"} 5)"));
    CHECK(hasLine(text, R"(parkway_park_duration_seconds_sum{domain="d"} 111.5)"));
    CHECK(hasLine(text, R"(parkway_park_duration_seconds_count{domain="d"} 5)"));
    // Buckets are in ascending order.
    CHECK(text.find("le=\"1\"") < text.find("le=\"5\""));
    CHECK(text.find("le=\"5\"") < text.find("le=\"10\""));
    CHECK(text.find("le=\"10\"") < text.find("le=\"+Inf\""));
    CHECK(m.histogramCount("parkway_park_duration_seconds", R"(domain="d")") == 5);
    CHECK(m.histogramSum("parkway_park_duration_seconds", R"(domain="d")") == 111.5);
}

TEST_CASE("histograms default to park-duration buckets and work without labels", "[metrics]") {
    Metrics m;
    m.histogramObserve("h_seconds", "", 42);
    std::string text = m.renderPrometheus();
    INFO(text);
    CHECK(hasLine(text, R"(h_seconds_bucket{le="30"} 0)"));
    CHECK(hasLine(text, R"(h_seconds_bucket{le="60"} 1)"));
    CHECK(hasLine(text, R"(h_seconds_bucket{le="3600"} 1)"));
    CHECK(hasLine(text, R"(h_seconds_bucket{le="+Inf"} 1)"));
    CHECK(hasLine(text, "h_seconds_sum 42"));
    CHECK(hasLine(text, "h_seconds_count 1"));
}

TEST_CASE("label values and help text are escaped", "[metrics]") {
    Metrics m;
    std::string lbl = Metrics::labels({Metrics::label("domain", "a\"b\\c\nd"), "", Metrics::label("lot", "x")});
    CHECK(lbl == R"(domain="a\"b\\c\nd",lot="x")");
    m.setHelp("g", "line one\nback\\slash");
    m.gaugeSet("g", lbl, 1);
    std::string text = m.renderPrometheus();
    CHECK(hasLine(text, R"(# HELP g line one\nback\\slash)"));
    CHECK(hasLine(text, R"(g{domain="a\"b\\c\nd",lot="x"} 1)"));
}

TEST_CASE("a name used with two kinds keeps its first kind", "[metrics]") {
    Metrics m;
    m.counterAdd("x", "", 1);
    m.gaugeSet("x", "", 99);
    m.histogramObserve("x", "", 1);
    CHECK(m.value("x", "") == 1);
    std::string text = m.renderPrometheus();
    CHECK(hasLine(text, "# TYPE x counter"));
    CHECK(text.find("x_bucket") == std::string::npos);
}

TEST_CASE("special values and help-only families", "[metrics]") {
    Metrics m;
    m.setHelp("only_help", "never written");
    m.gaugeSet("g", "", std::numeric_limits<double>::infinity());
    m.gaugeSet("frac", "", 0.25);
    std::string text = m.renderPrometheus();
    CHECK(text.find("only_help") == std::string::npos);
    CHECK(hasLine(text, "g +Inf"));
    CHECK(hasLine(text, "frac 0.25"));
}
