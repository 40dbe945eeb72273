// SPDX-License-Identifier: MIT
// ckpt-tool: opening a store for inspection (never creates, formats or repairs it).
#pragma once

#include <memory>
#include <string>

#include "cmd.hpp"
#include "store.hpp"

namespace ckpt_tool {

// Opens `path` read-only in spirit (Options::no_modify). On failure throws Error saying why:
// kUnavailable for a missing, busy or non-store path, kFailed for a damaged one.
std::unique_ptr<ckpt::store::Store> open_for_inspection(const std::string& path);

// "4.0 KiB", "12.5 MiB", ...
std::string human_bytes(unsigned long long bytes);

}  // namespace ckpt_tool
