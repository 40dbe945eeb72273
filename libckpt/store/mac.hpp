// SPDX-License-Identifier: MIT
// libckpt store: the keyed MAC of commit records (Options::mac_key, store-format.md "Keyed
// MAC"). libsodium's crypto_generichash (BLAKE2b) keyed with 16..64 bytes, 32-byte output.
// libsodium is loaded (dlopen of Debian's libsodium.so.23) only when a store is opened with a
// key, never linked: programs that use no key load nothing more.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "store.hpp"  // kMinMacKey, kMaxMacKey

namespace ckpt::store {

constexpr size_t kMacBytes = 32;

// MAC of a commit slot: the record's 256 bytes with its mac and csum fields taken as zero, then
// the provenance after it (its header and path). 0, -EINVAL (key length), or -ELIBACC
// (libsodium cannot be loaded; *why says so).
int commit_mac(const std::string& key, const void* slot, uint8_t out[kMacBytes], std::string* why);

}  // namespace ckpt::store
