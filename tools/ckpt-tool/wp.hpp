// SPDX-License-Identifier: MIT
// ckpt-tool: whole-process dump/restore entry points shared by dump, restore and run.
// Failures throw Error (error.hpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

namespace ckpt_tool::wp {

struct DumpStats {
  uint64_t threads = 0, vmas = 0;
  uint64_t pages = 0;    // pages read from the process and written to the store
  uint64_t reused = 0;   // pages of the image left as earlier checkpoints wrote them
  double stopped_s = 0;  // how long the process was stopped
  double total_s = 0;    // the whole checkpoint, from stopping the process to the commit
  uint64_t epoch = 0;    // the store epoch the checkpoint committed
  uint64_t bytes = 0;    // bytes written to the store (pages and metadata)
};

// A series: the state kept between incremental checkpoints of one process (design.md,
// "Glossary"): its store (open and locked while the Series lives), a ckpt.ko session ATTACHed
// to it with one region per private mapping, and the last checkpoint's metadata.
struct Series;
struct SeriesDeleter {
  void operator()(Series* t) const;
};
std::unique_ptr<Series, SeriesDeleter> make_series();
// How the first checkpoint opens an existing path that holds no store: --create makes one of
// an empty or zeroed file (or a block device libblkid finds nothing on), --force formats it
// whatever it holds. Default: refused (exit status kRefused), as ckpt::store::Options says.
void set_store_mode(Series* tr, bool create, bool force, bool replace = false);

// One checkpoint of `pid` (left running) into the store at `store` (opened on the first call,
// created if missing): the first one (and any after a failure, or when the module cannot track
// the process) writes every page the process has; later ones read from the process, while it
// is stopped, only the pages the module logged as written since, and write just those and the
// metadata. One store commit each: a crash at any instant leaves the previous checkpoint.
void checkpoint(const std::string& store, pid_t pid, Series* tr, DumpStats* stats);

// Recreate the process of the store's newest committed (and intact) epoch as a child of the
// caller; *pid gets its PID. The store is closed again when this returns.
void restore(const std::string& store, pid_t* pid);

// The wait status of `pid` if a dump's waitpid() took it (the process died during a dump).
bool reaped_status(pid_t pid, int* wstatus);

// Checkpoint child `pid` into `store` every interval_ms (0: never on a timer) and whenever the
// caller receives SIGUSR1, until the child exits; returns its exit status (128+N if killed by
// signal N). Progress and pauses go to stderr; with a stats_path, one JSON line per checkpoint
// is appended to that file (Documentation/ckpt-tool.1 lists the fields).
// Call catch_checkpoint_requests() before starting the child, so that no SIGUSR1 is lost.
// `replace`: the store's image may be another process's (dump --replace); restore --interval
// sets it for the process it made from that very store, whose /proc/PID/exe names ckpt-tool.
int supervise(const std::string& store, pid_t pid, unsigned interval_ms,
              const std::string& stats_path = {}, bool create = false, bool force = false,
              bool replace = false);
// Does the store at `path` hold a committed process image? Then *what says whose ("process 123
// (/usr/bin/prog)", or "a process" when it cannot be read). A path that holds no store, or one
// that cannot be opened, holds none (opening it for writing then says why).
bool holds_image(const std::string& path, std::string* what);
// Install the SIGUSR1 handler supervise() listens to.
void catch_checkpoint_requests();

}  // namespace ckpt_tool::wp
