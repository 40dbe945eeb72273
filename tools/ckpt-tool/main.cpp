// SPDX-License-Identifier: MIT
// ckpt-tool: checkpoint and restore processes (dump, restore, run), inspect and verify ckpt
// stores, and show the module's live state.
#include "cmd.hpp"
#include "error.hpp"
#include "image.hpp"
#include "proc.hpp"

#include <linux/ckpt.h>

#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

double boottime_s() {
  timespec t;
  clock_gettime(CLOCK_BOOTTIME, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Seconds since this process was exec()ed (kernel start time, in clock ticks: 10 ms steps), or
// -1. With CKPT_TOOL_PHASES set, main() reports it and its own run time on stderr: the wall time
// of a command minus both is what exit costs (Documentation/whole-process.md, "Start-up").
double since_exec_s() {
  std::vector<uint64_t> f;  // f[0] is field 3; field 22 is the start time
  if (ckpt_tool::proc::read_stat(getpid(), &f) || f.size() < 22 - 2) return -1;
  return boottime_s() - double(f[22 - 3]) / double(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  const bool phases = std::getenv("CKPT_TOOL_PHASES") != nullptr;
  const double t_main = phases ? boottime_s() : 0;
  const double started = phases ? since_exec_s() : 0;
  int rc;
  {
    CLI::App app{
        "ckpt-tool: checkpoint and restore processes; inspect ckpt stores and the ckpt.ko "
        "module's live state"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "ckpt-tool " CKPT_VERSION " (process image " +
                                          std::to_string(ckpt_tool::image::kVersionMajor) + "." +
                                          std::to_string(ckpt_tool::image::kVersionMinor) +
                                          ", ckpt.ko API " + std::to_string(CKPT_API_VERSION) + ")");
    app.footer(
        "Exit status: 0 ok, 1 the operation found a problem, 2 bad arguments, 3 something it needs "
        "is missing (module not loaded, store not found), 4 refused, nothing done, and an option "
        "asks for it (--create, --force, --replace, --lose, --as-image-user).");
    ckpt_tool::Runner run;
    ckpt_tool::add_stat(app, run);
    ckpt_tool::add_inspect(app, run);
    ckpt_tool::add_verify(app, run);
    ckpt_tool::add_dump(app, run);
    ckpt_tool::add_restore(app, run);
    ckpt_tool::add_run(app, run);
    try {
      app.parse(argc, argv);
      rc = run ? run() : ckpt_tool::kUsage;
    } catch (const CLI::ParseError& e) {
      rc = app.exit(e);
      rc = rc == 0 ? 0 : ckpt_tool::kUsage;
    } catch (const ckpt_tool::Error& e) {
      // The one place a subcommand's failure is reported: "ckpt-tool SUBCOMMAND: why".
      std::string who = "ckpt-tool";
      if (!app.get_subcommands().empty()) who += " " + app.get_subcommands()[0]->get_name();
      std::fprintf(stderr, "%s: %s\n", who.c_str(), e.msg.c_str());
      if (!e.note.empty()) std::fprintf(stderr, "%s: %s\n", who.c_str(), e.note.c_str());
      rc = e.code;
    }
  }
  if (phases)
    std::fprintf(stderr, "ckpt-tool phases: exec to main %.3f s, main %.3f s (then exit)\n", started,
                 boottime_s() - t_main);
  return rc;
}
