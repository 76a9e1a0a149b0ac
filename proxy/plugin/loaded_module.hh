// A module that the loader (proxy/plugin/loader.*) has dlopen()ed and validated, ready for the host.
// Contract between the loader and the host core (proxy/core/host.*).
#pragma once
#include <parkway/module.h>

#include <map>
#include <string>

namespace parkway::proxy {

struct LoadedModule {
    std::string path;                          // file it came from; "" for a module linked into the binary
    const pw_module *desc = nullptr;           // validated: major matches, struct sizes ok, required hooks present
    std::map<std::string, std::string> params; // every declared parameter, textual value, defaults applied
    void *dlHandle = nullptr;                  // dlclose()d by the host after destroy(); nullptr if static
};

} // namespace parkway::proxy
