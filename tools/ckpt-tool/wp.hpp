// ckpt-tool: whole-process dump/restore entry points shared by dump, restore and run.
// Each returns an exit status (cmd.hpp's Exit) and sets *why on failure.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace ckpt_tool::wp {

struct DumpStats {
  uint64_t threads = 0, vmas = 0, pages = 0;
  double stopped_s = 0;  // how long the process was stopped
};

// Dump `pid` into the image file `store` (replaced atomically); leave it running or kill it.
int dump(const std::string& store, pid_t pid, bool leave_running, DumpStats* stats,
         std::string* why);

// Recreate the process of the image `store` as a child of the caller; *pid gets its PID.
int restore(const std::string& store, bool verify, pid_t* pid, std::string* why);

// Checkpoint child `pid` into `store` every interval_ms until it exits; returns its exit status
// (128+N if killed by signal N). Progress and pauses go to stderr.
int supervise(const std::string& store, pid_t pid, unsigned interval_ms);

}  // namespace ckpt_tool::wp
