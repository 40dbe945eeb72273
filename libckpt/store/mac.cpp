// SPDX-License-Identifier: MIT
// libckpt store: commit_mac() (mac.hpp).
#include "mac.hpp"

#include <dlfcn.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "format.hpp"

namespace ckpt::store {
namespace {

constexpr const char kSodiumSoname[] = "libsodium.so.23";  // Debian's libsodium23

struct Sodium {
  int (*init)() = nullptr;
  int (*generichash)(unsigned char*, size_t, const unsigned char*, unsigned long long,
                     const unsigned char*, size_t) = nullptr;
  std::string error;  // empty when loaded
};

Sodium load() {
  Sodium s;
  void* lib = dlopen(kSodiumSoname, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* e = dlerror();
    s.error = std::string(kSodiumSoname) +
              " cannot be loaded (a store key needs libsodium, Debian package libsodium23): " +
              (e ? e : "dlopen failed");
    return s;
  }
  s.init = reinterpret_cast<int (*)()>(dlsym(lib, "sodium_init"));
  s.generichash = reinterpret_cast<decltype(s.generichash)>(dlsym(lib, "crypto_generichash"));
  if (!s.init || !s.generichash || s.init() < 0) {
    s.error = std::string(kSodiumSoname) + " is not a usable libsodium";
    dlclose(lib);
    s.init = nullptr;
    s.generichash = nullptr;
  }
  return s;
}

}  // namespace

int commit_mac(const std::string& key, const void* slot, uint8_t out[kMacBytes], std::string* why) {
  if (key.size() < kMinMacKey || key.size() > kMaxMacKey) {
    if (why) *why = "a store key is 16 to 64 bytes";
    return -EINVAL;
  }
  static const Sodium s = load();  // once per process (thread-safe)
  if (!s.error.empty()) {
    if (why) *why = s.error;
    return -ELIBACC;
  }
  uint8_t buf[fmt::kBlockSize];
  std::memcpy(buf, slot, fmt::kBlockSize);
  fmt::CommitRecord cr;
  std::memcpy(&cr, buf, sizeof(cr));
  std::memset(cr.mac, 0, sizeof(cr.mac));
  cr.csum = 0;
  std::memcpy(buf, &cr, sizeof(cr));
  size_t n = sizeof(cr);
  if (cr.tail_csum != 0) {
    fmt::ProvenanceHeader h;
    std::memcpy(&h, buf + fmt::kProvOffset, sizeof(h));
    n = fmt::kProvOffset + sizeof(h) + std::min<size_t>(h.path_len, fmt::kMaxProvPath);
  }
  if (s.generichash(out, kMacBytes, buf, n, reinterpret_cast<const unsigned char*>(key.data()),
                    key.size()) != 0) {
    if (why) *why = "crypto_generichash failed";
    return -EINVAL;
  }
  return 0;
}

}  // namespace ckpt::store
