// ckpt-tool: whole-process dump/restore entry points shared by dump, restore and run.
// Each returns an exit status (cmd.hpp's Exit) and sets *why on failure.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ckpt_tool::wp {

struct DumpStats {
  uint64_t threads = 0, vmas = 0;
  uint64_t pages = 0;    // pages read from the process
  uint64_t reused = 0;   // pages taken from the previous image (clean since)
  double stopped_s = 0;  // how long the process was stopped
};

// The state kept between incremental checkpoints of one process: a ckpt.ko session ATTACHed
// to it with one region per private mapping, and the last image's metadata.
struct Tracker;
struct TrackerDeleter {
  void operator()(Tracker* t) const;
};
std::unique_ptr<Tracker, TrackerDeleter> make_tracker();

// One checkpoint of `pid` (left running) into `store`: the first one (and any after a failure
// or when the module cannot track the process) is full; later ones read from the process only
// the pages the module logged as written since, while it is stopped, and take the others from
// the previous image after it runs again.
int checkpoint(const std::string& store, pid_t pid, Tracker* tr, DumpStats* stats,
               std::string* why);

// Dump `pid` into the image file `store` (replaced atomically); leave it running or kill it.
int dump(const std::string& store, pid_t pid, bool leave_running, DumpStats* stats,
         std::string* why);

// Recreate the process of the image `store` as a child of the caller; *pid gets its PID.
int restore(const std::string& store, bool verify, pid_t* pid, std::string* why);

// The wait status of `pid` if a dump's waitpid() took it (the process died during a dump).
bool reaped_status(pid_t pid, int* wstatus);

// Checkpoint child `pid` into `store` every interval_ms until it exits; returns its exit status
// (128+N if killed by signal N). Progress and pauses go to stderr.
int supervise(const std::string& store, pid_t pid, unsigned interval_ms);

}  // namespace ckpt_tool::wp
