// The operator console's static files (HTML, JS, CSS; no data), built into the binary from the committed build
// output ui/dist by cmake/EmbedUi.cmake. The admin server serves them under /ui/ (docs/console.md); it knows
// nothing of what they contain.
#pragma once
#include <string_view>

namespace parkway::proxy {

struct UiAsset {
    std::string_view path;        // relative to /ui/, e.g. "index.html", "assets/index-1a2b3c.js"
    std::string_view contentType; // from the file name's extension
    std::string_view body;
};

// Every file, ended by an entry with an empty path.
const UiAsset *uiAssets();

// The file at `path` (relative to /ui/), or nullptr.
inline const UiAsset *findUiAsset(std::string_view path) {
    for (const UiAsset *a = uiAssets(); !a->path.empty(); ++a)
        if (a->path == path)
            return a;
    return nullptr;
}

} // namespace parkway::proxy
