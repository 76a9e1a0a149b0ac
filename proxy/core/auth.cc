// Identity of a request's sender: digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), trusted peers with
// P-Asserted-Identity (RFC 3325) and the users' credentials. docs/auth.md.
#include "core_impl.hh"

namespace parkway::proxy {

bool Proxy::Impl::challenge(pw_request *) { return false; }

CommandResult Proxy::setUser(const std::string &, const std::string &, const std::string &,
                             const std::vector<std::string> &) {
    return {501, R"({"error":"not implemented yet"})"};
}
CommandResult Proxy::deleteUser(const std::string &, const std::string &) {
    return {501, R"({"error":"not implemented yet"})"};
}
CommandResult Proxy::listUsers(const std::string &) { return {501, R"({"error":"not implemented yet"})"}; }

} // namespace parkway::proxy
