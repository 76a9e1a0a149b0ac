// The installed fake host (parkway/testing/fake_host.hpp) with modules loaded through the real loader, so these
// tests also check what the loader accepts: requests are built from header lists, replies/targets/added headers
// are recorded, time and timers are controlled by the test.
#pragma once
#include "plugin/loader.hh"

#include <parkway/testing/fake_host.hpp>

#include <map>
#include <string>

namespace fakehost {

using parkway::testing::Dialog;
using parkway::testing::Reply;
using parkway::testing::Request;
using parkway::testing::Timer;

inline std::string lower(std::string s) {
    return parkway::testing::lowerCase(std::move(s));
}

struct Host : parkway::testing::FakeHost {
    parkway::proxy::LoadedModule mod;
    // loadModule() (validation, defaults, normalised values) then init + start on this host.
    int init(const std::string &name, const std::string &dir, const std::map<std::string, std::string> &p) {
        mod = parkway::proxy::loadModule(name, dir, p);
        int rc = start(mod.desc, mod.params);
        if (rc != PW_OK && !module())
            parkway::proxy::unloadModule(mod);
        return rc;
    }
    void destroy() {
        if (!mod.desc)
            return;
        stop();
        parkway::proxy::unloadModule(mod);
    }
};

} // namespace fakehost
