// SPDX-License-Identifier: MIT
// ckpt-tool: one file per subcommand; each registers its CLI11 subcommand and returns the
// process exit status from its handler.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace ckpt_tool {

// Exit statuses shared by every subcommand (documented in ckpt-tool --help and the man page).
enum Exit : int {
  kOk = 0,
  kFailed = 1,       // the operation ran and found a problem (e.g. verify: not restorable)
  kUsage = 2,        // bad arguments
  kUnavailable = 3,  // something needed is missing (module not loaded, store not found)
  kRefused = 4,      // refused: it would destroy data (--create, --force, --replace ask for it)
};

// Set by a subcommand's callback; main() returns it.
using Runner = std::function<int()>;

void add_stat(CLI::App& app, Runner& run);
void add_inspect(CLI::App& app, Runner& run);  // inspect.cpp
void add_verify(CLI::App& app, Runner& run);   // verify.cpp
void add_dump(CLI::App& app, Runner& run);     // dump.cpp
void add_restore(CLI::App& app, Runner& run);  // restore.cpp
void add_run(CLI::App& app, Runner& run);      // run.cpp

}  // namespace ckpt_tool
