// SPDX-License-Identifier: MIT
// ckpt-tool's dump pipeline, from inside. One checkpoint of a process (dump.cpp, take()):
//   seize    seize.cpp             stop every thread with ptrace (Seized)
//   capture  capture_threads.cpp   registers (arch_*.cpp), ckpt.ko's DUMP_TASK, queued signals
//            capture_process.cpp   /proc/PID/{status,stat,...}: credentials, limits, scheduling
//            capture_fds.cpp       the fd table, one FdKind per kind of descriptor
//            capture_mappings.cpp  /proc/PID/{maps,smaps}: the mappings
//            refusals.cpp          every state dump does not save, refused by name
//   plan     plan.cpp              which pages the image holds and which to read now
//                                  (pagemap, ckpt.ko's dirty logs), and the page reader
//   persist  persist.cpp           the image and the pages into one store commit
//   release  dump.cpp              the process runs on, or is killed (dump)
// Each step throws Error (error.hpp); take() forgets the dirty logs on any failure.
// wp.hpp is what dump, run and restore use from outside.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "error.hpp"
#include "image.hpp"
#include "proc.hpp"
#include "store.hpp"
#include "wp.hpp"

namespace ckpt_tool {
namespace dump {

using image::Image;

constexpr size_t kBatch = 256;  // pages per read from the process (1 MiB)
constexpr size_t kDepth = 3;    // buffers of kBatch pages the reader thread may fill ahead

// --- seize.cpp ---

// Holds the ptrace stop of every thread; lets the process continue unless told to kill it.
class Seized {
 public:
  explicit Seized(int pid) : pid_(pid) {}
  ~Seized() { detach(); }
  Seized(const Seized&) = delete;
  Seized& operator=(const Seized&) = delete;
  int pid() const { return pid_; }
  const std::vector<int>& tids() const { return tids_; }
  // Stop every thread; threads created meanwhile are caught by listing again until stable.
  void stop_all();
  // Let every thread go on.
  void detach();
  // SIGKILL the process and reap every thread.
  void kill_it();

 private:
  bool has(int tid) const;
  void stop_one(int tid);
  int pid_;
  std::vector<int> tids_;
};

// /dev/ckpt, handshaken, with CKPT_FEATURE_DUMP (kUnavailable without); *features: the
// module's CKPT_FEATURE_* bits.
int open_module(uint64_t* features = nullptr);

// --- capture: the stopped process into an Image ---

// Files already identified, by (path, inode): within one checkpoint a library is mapped several
// times, and `run`'s incremental checkpoints take the previous image's identities of the files
// the process still maps/has open under the same path and inode, instead of a stat (a round
// trip to a network file system) per mapping each time. Reusing the previous size and mtime is
// the conservative side: a file rewritten in place since is refused at restore as changed.
using KnownFiles = std::map<std::pair<std::string, uint64_t>, image::FileId>;
// The identity of the regular file at `path` (`what` names it in errors: "open file").
image::FileId file_id(const std::string& path, uint64_t expect_ino, const std::string& what,
                      KnownFiles* known);

// Every thread, the thread group leader first (restore turns it into the main thread):
// registers, DUMP_TASK's state, queued signals; then the process's shared pending signals.
void capture_threads(const Seized& s, int ckpt_fd, uint64_t features, Image* img);
// The signals queued for `tid` (flags 0) or for its whole process (PTRACE_PEEKSIGINFO_SHARED).
std::vector<std::vector<uint8_t>> peek_signals(int tid, unsigned flags);
// /proc/PID/{comm,cwd,exe,status,stat,personality,oom_score_adj}, scheduling, resource limits.
void capture_process(int pid, Image* img);
// /proc/PID/fd and fdinfo.
void capture_fds(int pid, Image* img, KnownFiles* known);
// /proc/PID/maps (or smaps, for the VmFlags); `last`: run's previous layout (see the .cpp).
void capture_mappings(int pid, Image* img, KnownFiles* known, std::vector<proc::MapsLine>* last);

// --- plan.cpp ---

// Per mapping: the pages the image holds after this checkpoint, and those to write now.
struct Plan {
  std::vector<bool> present;
  std::vector<uint64_t> put;  // page indices, ascending
  uint32_t region = 0;
};

struct Phases {  // seconds, for --stats and profiling
  std::chrono::steady_clock::time_point t;  // the end of the last phase (since(t))
  double seize = 0, proc = 0, plan = 0, regions = 0, pages = 0, commit = 0;
  double read = 0;     // part of pages: reading the process's memory
  double threads = 0;  // part of proc: registers and DUMP_TASK
  double pagemap = 0;  // part of plan: /proc/PID/pagemap
  double meta = 0;     // part of plan: encoding (and checking) the metadata
  double begin = 0;    // the store's begin()
  double kill = 0;     // dump: SIGKILL and reaping the process (its memory is freed then)
  double vmas = 0;     // part of proc: /proc/PID/maps (or smaps)
  double fds = 0;      // part of proc: /proc/PID/fd and fdinfo
  double collect = 0;  // part of plan: ckpt.ko's dirty logs (COLLECT)
};

// Seconds since t; t becomes now.
double since(std::chrono::steady_clock::time_point& t);

// Reads pages of the stopped process: process_vm_readv where the mapping is readable (many runs
// per call, straight into our buffer), /proc/PID/mem elsewhere (it reads through PROT_NONE and
// write-only protections, which process_vm_readv refuses).
class MemReader {
 public:
  explicit MemReader(int pid);
  ~MemReader();
  MemReader(const MemReader&) = delete;
  MemReader& operator=(const MemReader&) = delete;
  // Read the pages at page indices idx[0..n) of mapping v, ascending, into buf (n pages).
  void read(const image::Vma& v, const uint64_t* idx, size_t n, uint8_t* buf);

 private:
  int pid_;
  int mem_;
};

struct Counts {
  uint64_t put = 0;   // pages to read and write now
  uint64_t kept = 0;  // pages of the image left as earlier checkpoints wrote them
};

}  // namespace dump

// The state kept between the checkpoints of one process: its store (open, locked), a ckpt.ko
// session ATTACHed to it with one region per private mapping, and the metadata of the last
// committed checkpoint.
struct wp::Series {
  std::string path;
  bool create = false;    // --create: make a store of an existing path that holds none
  bool force = false;     // --force: format whatever the path holds
  bool replace = false;   // dump --replace: overwrite the image of another process
  std::set<std::string> lose;  // dump --lose: state not saved that the caller accepts to lose
  std::unique_ptr<ckpt::store::Store> store;
  bool track = true;      // incremental checkpoints through ckpt.ko (run); false: dump
  int fd = -1;            // session ATTACHed to the process, -1 before the first checkpoint
  bool usable = true;     // false: the module cannot track this process (full checkpoints)
  struct Reg {
    uint64_t id, start, end;
  };
  std::map<uint64_t, Reg> regs;  // by start: mappings tracked since the last checkpoint
  bool have_prev = false;
  image::Image prev;             // metadata of the last checkpoint this tracker committed
  // The buffers pages travel through from the process to the store (kDepth of kBatch pages,
  // for the reader thread of a big checkpoint; one for a small one), kept from one checkpoint
  // to the next: a fresh one costs a page fault per page in every checkpoint's pause.
  std::unique_ptr<uint8_t[]> buf;
  size_t nbuf = 0;
  uint8_t* buffers(size_t n);
  std::vector<uint64_t> scratch;  // pagemap entries, COLLECT addresses; kept for the same reason
  std::vector<proc::MapsLine> last_maps;  // the last checkpoint's mappings, with VmFlags
  ~Series();
  // Forget the dirty logs: the next checkpoint is a full one.
  void reset();
  void unregister(uint64_t id);
};

namespace dump {

// plan.cpp: the pages of every mapping of `img` the image holds after this checkpoint, and
// those to read now: all of them for a mapping tr does not track yet (registering it with
// ckpt.ko when tr tracks), else those ckpt.ko logged as written since tr's last checkpoint.
// Sets each mapping's runs in img.
std::vector<Plan> plan_pages(wp::Series& tr, int pagemap_fd, Image& img, Phases& ph,
                             Counts* counts);

// --- persist.cpp ---

// Opens tr's store (once), refusing a path that holds something else.
void open_store(wp::Series& tr);
// dump: refuses a store that holds another process's image, unless --replace.
void check_replace(wp::Series& tr, const Image& img);
// The checkpoint's store transaction (begin; it is committed by write_and_commit).
std::unique_ptr<ckpt::store::Txn> begin_txn(wp::Series& tr);
// The store's regions follow the image's mappings, in txn; sets each plan's region. Returns
// the metadata's region.
uint32_t place_regions(wp::Series& tr, ckpt::store::Txn& txn, const Image& img,
                       const std::vector<uint8_t>& meta, std::vector<Plan>& plan);
// The planned pages, read from the process through `mem`, and the metadata into one store
// transaction, committed. release() is called as soon as nothing more is needed from the
// process (before the commit persists).
void write_and_commit(wp::Series& tr, std::unique_ptr<ckpt::store::Txn> txn, const Image& img,
                      const std::vector<Plan>& plan, uint64_t put, MemReader& mem,
                      uint32_t meta_region, const std::vector<uint8_t>& meta,
                      const std::function<void()>& release, Phases& ph);

}  // namespace dump
}  // namespace ckpt_tool
