// parkway/engine/json.hh — JSON views of engine objects for the admin plane (`parked.list`,
// `groups.set`, `rules.explain`, the event stream). Returns compact JSON text; field names are snake_case
// and stable (documented in docs/engine.md).
#pragma once

#include "parkway/engine/rules.hh"
#include "parkway/engine/types.hh"

#include <string>
#include <vector>

namespace parkway::engine {

std::string toJson(const ParkedCall& c);            // the blob is not included (opaque, may be binary)
std::string toJson(const std::vector<ParkedCall>& calls);
std::string toJson(const CallResult& r);
std::string toJson(const ChangeEvent& e);
std::string toJson(const TargetState& s);
std::string toJson(const DomainSettings& d);
std::string toJson(const Group& g);
std::string toJson(const std::vector<Group>& gs);
std::string toJson(const Lot& l);
std::string toJson(const Rule& r);
std::string toJson(const std::vector<Rule>& rs);
std::string toJson(const std::vector<RuleError>& errors);
std::string toJson(const Classification& c);
std::string toJson(const Explanation& e);
std::string toJson(const Status& s);

// Parse the admin plane's JSON for groups/domains/lots/rules. Returns an empty string on success, else a
// message naming the bad field (e.g. "group: 'members' must be an array of strings").
std::string groupFromJson(const std::string& json, Group& out);
std::string domainFromJson(const std::string& json, DomainSettings& out); // missing fields keep `out`'s
std::string lotFromJson(const std::string& json, Lot& out);
std::string ruleFromJson(const std::string& json, Rule& out);

} // namespace parkway::engine
