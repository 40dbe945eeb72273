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
  kRefused = 4,      // refused, nothing done; the message names the option that asks for it
                     // (--create, --force, --replace, --lose, --as-image-user)
};

// How dump and run open their store (dump.cpp, run.cpp): the flags both take.
struct StoreMode {
  bool create = false;   // --create: make a store of an existing path that holds none
  bool force = false;    // --force: format the path whatever it holds
  bool replace = false;  // --replace: overwrite the process image the store holds
};
// Adds --create, --force and --replace to `sub`; `replace_help` says what --replace overwrites.
void add_store_mode_flags(CLI::App* sub, StoreMode* m, const std::string& replace_help);

// Set by a subcommand's callback; main() returns it.
using Runner = std::function<int()>;

void add_stat(CLI::App& app, Runner& run);
void add_inspect(CLI::App& app, Runner& run);  // inspect.cpp
void add_verify(CLI::App& app, Runner& run);   // verify.cpp
void add_dump(CLI::App& app, Runner& run);     // dump.cpp
void add_restore(CLI::App& app, Runner& run);  // restore.cpp
void add_run(CLI::App& app, Runner& run);      // run.cpp

}  // namespace ckpt_tool
