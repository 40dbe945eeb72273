// SPDX-License-Identifier: MIT
// ckpt-tool --key-file: the key that authenticates a store's commit records (a keyed MAC;
// store-format.md "Keyed MAC"). One key per invocation; every store the tool opens uses it.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace ckpt_tool {

// Adds --key-file FILE to `sub`. The file's bytes are the key (16..64 bytes); a file that is
// missing, of another length, or readable by its group or by others is a usage error (exit 2),
// read before the subcommand runs.
void add_key_file_option(CLI::App* sub);

// The key given with --key-file, empty if none.
const std::string& store_key();

}  // namespace ckpt_tool
