#include "fuzz_common.hh"

#include <dlfcn.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace parkway::fuzz {

namespace {

std::string makeTempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/parkway-fuzz-XXXXXX";
    if (!mkdtemp(tmpl.data()))
        fail("mkdtemp failed", tmpl);
    return tmpl;
}

void removeTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(tempDir(), ec);
}

bool writeProc(const char *path, const std::string &text) {
    int fd = ::open(path, O_WRONLY);
    if (fd < 0)
        return false;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

bool loopbackUp() {
    int s = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return false;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool ok = ::ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    ok = ok && ::ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    ::close(s);
    return ok;
}

} // namespace

const std::string &tempDir() {
    // Never destroyed: the atexit handler that removes the folder runs after static destructors would.
    static const std::string *dir = [] {
        auto *d = new std::string(makeTempDir());
        std::atexit(removeTempDir);
        return d;
    }();
    return *dir;
}

void writeFile(const std::string &path, std::string_view data) {
    FILE *f = std::fopen(path.c_str(), "wb");
    if (!f)
        fail("cannot write", path);
    if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size())
        fail("short write", path);
    std::fclose(f);
}

void isolateNetwork() {
    const char *skip = std::getenv("PARKWAY_FUZZ_NO_NETNS");
    if (skip && *skip && std::strcmp(skip, "0") != 0)
        return;
    if (::unshare(CLONE_NEWNET) != 0) {
        // Unprivileged: a user namespace makes us root inside it, which is enough for a network namespace.
        uid_t uid = ::getuid();
        gid_t gid = ::getgid();
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
            std::fprintf(stderr,
                         "fuzz: WARNING: no network namespace (%s): fuzzed messages may reach the "
                         "network\n",
                         std::strerror(errno));
            return;
        }
        writeProc("/proc/self/setgroups", "deny");
        writeProc("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
        writeProc("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    }
    if (!loopbackUp())
        fail("network namespace: cannot bring loopback up", std::strerror(errno));
}

std::string moduleDir() {
    return PARKWAY_MODULE_DIR;
}

void pinModules(const std::vector<std::string> &names) {
    for (const auto &n : names) {
        std::string path = moduleDir() + "/" + n + ".so";
        if (!::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))
            fail("dlopen failed", ::dlerror());
    }
}

bool verbose() {
    static const bool v = [] {
        const char *e = std::getenv("PARKWAY_FUZZ_VERBOSE");
        return e && *e && std::strcmp(e, "0") != 0;
    }();
    return v;
}

void fuzzLog(int level, const std::string &module, const std::string &text) {
    if (verbose())
        std::fprintf(stderr, "[%d %s] %s\n", level, module.c_str(), text.c_str());
}

std::vector<std::string_view> split(std::string_view data, char sep, size_t max) {
    std::vector<std::string_view> out;
    while (out.size() + 1 < max) {
        size_t p = data.find(sep);
        if (p == std::string_view::npos)
            break;
        out.push_back(data.substr(0, p));
        data.remove_prefix(p + 1);
    }
    out.push_back(data);
    return out;
}

void fail(const char *what, std::string_view text) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n--- text (%zu bytes, escaped) ---\n", what, text.size());
    for (unsigned char c : text.substr(0, 4096)) {
        if (c == '\n')
            std::fputs("\\n\n", stderr);
        else if (c >= 0x20 && c < 0x7f && c != '\\')
            std::fputc(c, stderr);
        else
            std::fprintf(stderr, "\\x%02x", c);
    }
    std::fputs("\n---\n", stderr);
    std::abort();
}

} // namespace parkway::fuzz
