// SPDX-License-Identifier: MIT
// ckpt-tool: the options several subcommands share (cmd.hpp).
#include "cmd.hpp"

namespace ckpt_tool {

void add_store_mode_flags(CLI::App* sub, StoreMode* m, const std::string& replace_help) {
  sub->add_flag("--create", m->create,
                "make a store of an existing path that holds none (an empty or zeroed file, a "
                "block device libblkid finds nothing on)");
  sub->add_flag("--force", m->force,
                "format the path whatever it holds: a file system, partition table, other data "
                "(destroys it)");
  sub->add_flag("--replace", m->replace, replace_help);
}

}  // namespace ckpt_tool
