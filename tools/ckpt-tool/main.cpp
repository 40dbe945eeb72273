// ckpt-tool: inspect and verify ckpt stores, and show the module's live state.
#include "cmd.hpp"

#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"ckpt-tool: inspect ckpt stores and the ckpt.ko module's live state"};
  app.require_subcommand(1);
  app.footer(
      "Exit status: 0 ok, 1 the operation found a problem, 2 bad arguments, 3 something it needs "
      "is missing (module not loaded, store not found).");
  ckpt_tool::Runner run;
  ckpt_tool::add_stat(app, run);
  ckpt_tool::add_inspect(app, run);
  ckpt_tool::add_verify(app, run);
  ckpt_tool::add_dump(app, run);
  ckpt_tool::add_restore(app, run);
  ckpt_tool::add_run(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : ckpt_tool::kUsage;
  }
  return run ? run() : ckpt_tool::kUsage;
}
