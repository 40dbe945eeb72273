// SPDX-License-Identifier: MIT
// ckpt-tool dump (and run's checkpoints): a running process into a libckpt store (image.hpp
// has the regions), one store transaction per checkpoint. take() runs the pipeline dump.hpp
// describes: seize, capture, plan, persist, release or kill.
//
// Everything user space can read is read from user space: ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT for a stop, GETREGS, GETREGSET NT_X86_XSTATE), /proc/PID/{maps,pagemap,
// fd,fdinfo,cwd,stat,status}, process_vm_readv for memory. What only the kernel knows (signal
// handlers, sigaltstack, clear_child_tid, robust list, rseq, brk, timers) comes from ckpt.ko's
// CKPT_IOC_DUMP_TASK, so no code is injected into the target.
#include <fcntl.h>
#include <linux/ckpt.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ckptdev.hpp"
#include "cmd.hpp"
#include "dump.hpp"
#include "key.hpp"
#include "refusals.hpp"

namespace ckpt_tool {

uint8_t* wp::Series::buffers(size_t n) {
  if (nbuf < n) {
    buf.reset();  // freed before the bigger one is taken
    buf.reset(new uint8_t[n * dump::kBatch * image::kPage]);
    nbuf = n;
  }
  return buf.get();
}

wp::Series::~Series() {
  if (fd >= 0) close(fd);
}

void wp::Series::reset() {
  for (auto& [start, r] : regs) ckptdev::unregister(fd, r.id);
  regs.clear();
  have_prev = false;
}

void wp::Series::unregister(uint64_t id) { ckptdev::unregister(fd, id); }

std::unique_ptr<wp::Series, wp::SeriesDeleter> wp::make_series() {
  return std::unique_ptr<Series, SeriesDeleter>(new Series);
}
void wp::SeriesDeleter::operator()(Series* t) const { delete t; }

namespace dump {
namespace {

using namespace image;

// A descriptor closed when it goes out of scope.
struct OwnedFd {
  int fd;
  explicit OwnedFd(int f) : fd(f) {}
  ~OwnedFd() {
    if (fd >= 0) close(fd);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
};

enum class After { kRun, kLeaveRunning, kKill };

// Capture: the stopped process into img (everything but its pages). Refuses what is not saved.
void capture(wp::Series& tr, const Seized& seized, int ckpt_fd, uint64_t features, Image* img,
             Phases& ph) {
  const int pid = seized.pid();
  capture_threads(seized, ckpt_fd, features, img);
  ph.threads = since(ph.t);
  capture_process(pid, img);
  KnownFiles known;
  if (tr.have_prev) {
    for (const auto& v : tr.prev.vmas)
      if (v.kind == kFile) known[{v.file.path, v.file.ino}] = v.file;
    for (const auto& f : tr.prev.fds)
      if (f.kind == kFdRegular) known[{f.file.path, f.file.ino}] = f.file;
  }
  auto f0 = std::chrono::steady_clock::now();
  capture_fds(pid, img, &known);
  ph.fds = since(f0);
  capture_mappings(pid, img, &known, tr.track ? &tr.last_maps : nullptr);
  refuse::outside_state(pid, *img, tr.lose);
  ph.vmas = since(f0);
  ph.proc = ph.threads + since(ph.t);
}

// The vdso's hash: restore refuses an image dumped under another kernel.
void hash_vdso(MemReader& mem, Image* img) {
  if (!img->vdso_start) return;
  std::vector<uint8_t> vd(img->vdso_end - img->vdso_start);
  uint64_t idx[64];
  Vma vv;
  vv.start = img->vdso_start;
  vv.prot = PROT_READ;
  for (size_t k = 0; k < vd.size() / kPage && k < 64; k++) idx[k] = k;
  if (vd.size() > 64 * kPage) throw Error{kFailed, "unexpected vdso size"};
  mem.read(vv, idx, vd.size() / kPage, vd.data());
  img->vdso_hash = hash(vd.data(), vd.size());
}

// The metadata region's bytes. What restore will read must decode: a bug here must not make
// an image.
std::vector<uint8_t> encode_checked(const Image& img) {
  std::vector<uint8_t> meta = encode_process(img);
  Image check;
  std::string why;
  if (decode_process(meta, &check, &why))
    throw Error{kFailed, "internal error, the image does not validate: " + why};
  return meta;
}

void print_phases(const Phases& ph, uint64_t put, const struct rusage& ru0) {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::fprintf(stderr,
               "ckpt-tool phases: seize %.4f proc %.4f (threads %.4f, fds %.4f, maps %.4f) "
               "plan %.4f (pagemap %.4f, collect %.4f, metadata %.4f) regions %.4f pages "
               "%.4f (begin %.4f, reading the process %.4f) commit %.4f kill %.4f s (%" PRIu64
               " pages; the tool's own page faults %ld)\n",
               ph.seize, ph.proc, ph.threads, ph.fds, ph.vmas, ph.plan, ph.pagemap, ph.collect,
               ph.meta, ph.regions, ph.pages, ph.begin, ph.read, ph.commit, ph.kill, put,
               ru.ru_minflt - ru0.ru_minflt);
}

// Seize: every thread stopped; with run's tracking, ckpt.ko's session ATTACHed (once).
void seize(wp::Series& tr, Seized& seized) {
  seized.stop_all();
  if (seized.tids().size() > kMaxThreads) refuse::too_many_threads();
  if (tr.track && tr.usable && tr.fd < 0) {
    tr.fd = open_module();
    if (ckptdev::attach(tr.fd, uint64_t(seized.pid()))) tr.usable = false;
  }
}

// Plan, persist, release: the pages and the metadata of img into one commit.
void plan_and_persist(wp::Series& tr, Seized& seized, Image& img, After after,
                      std::chrono::steady_clock::time_point t0, Phases& ph,
                      wp::DumpStats* stats) {
  const int pid = seized.pid();
  const std::string pagemap = "/proc/" + std::to_string(pid) + "/pagemap";
  OwnedFd pm(open(pagemap.c_str(), O_RDONLY | O_CLOEXEC));
  if (pm.fd < 0) throw Error{kFailed, pagemap + ": " + strerror(errno)};
  MemReader mem(pid);
  hash_vdso(mem, &img);
  try {
    Counts n;
    std::vector<Plan> plan = plan_pages(tr, pm.fd, img, ph, &n);
    auto m0 = std::chrono::steady_clock::now();
    const std::vector<uint8_t> meta = encode_checked(img);
    ph.meta = since(m0);
    ph.plan = since(ph.t);
    std::unique_ptr<ckpt::store::Txn> txn = begin_txn(tr);
    const uint32_t meta_region = place_regions(tr, *txn, img, meta, plan);
    ph.regions = since(ph.t);
    // The process is let go as soon as what the checkpoint needs from it is in our hands: the
    // pages are then checksummed and written while it runs (ckpt.ko has logged and
    // write-protected them again, so a write now is the next checkpoint's).
    bool let_go = false;
    double paused = 0;
    auto release = [&] {
      if (let_go) return;
      if (after != After::kKill) seized.detach();
      paused = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      let_go = true;
    };
    write_and_commit(tr, std::move(txn), img, plan, n.put, mem, meta_region, meta, release, ph);
    if (after == After::kKill) seized.kill_it();
    ph.kill = since(ph.t);
    tr.have_prev = tr.track && tr.usable;
    if (stats) {
      stats->threads = img.threads.size();
      stats->vmas = img.vmas.size();
      stats->pages = n.put;
      stats->reused = n.kept;
      stats->stopped_s = after == After::kKill ? 0 : paused;
      stats->total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      stats->epoch = tr.store->epoch();
      stats->bytes = (n.put + meta.size() / kPage) * kPage;
    }
    tr.prev = std::move(img);
  } catch (...) {
    // The dirty logs taken so far are in no image: the next checkpoint must be a full one.
    tr.reset();
    throw;
  }
}

// One checkpoint of `pid` into tr's store. Full unless tr tracks the process and has a
// previous checkpoint: then only the pages ckpt.ko logged as written since are read.
void take(wp::Series& tr, int pid, After after, wp::DumpStats* stats) {
  auto t0 = std::chrono::steady_clock::now();
  Phases ph;
  ph.t = t0;
  struct rusage ru0 {};
  getrusage(RUSAGE_SELF, &ru0);
  if (kill(pid, 0) < 0 && errno == ESRCH)
    throw Error{kFailed, "no process " + std::to_string(pid)};
  uint64_t features = 0;
  OwnedFd ckpt(open_module(&features));
  Seized seized(pid);
  seize(tr, seized);
  ph.seize = since(ph.t);
  Image img;
  capture(tr, seized, ckpt.fd, features, &img, ph);
  // Only now, with nothing refused: a refused dump leaves no store behind.
  open_store(tr);
  if (!tr.track) check_replace(tr, img);
  wp::DumpStats local;
  plan_and_persist(tr, seized, img, after, t0, ph, stats ? stats : &local);
  if (getenv("CKPT_TOOL_PHASES")) print_phases(ph, (stats ? stats : &local)->pages, ru0);
}

}  // namespace
}  // namespace dump

void wp::set_store_mode(Series* tr, bool create, bool force, bool replace) {
  tr->create = create;
  tr->force = force;
  tr->replace = replace;
}

void wp::checkpoint(const std::string& store, pid_t pid, Series* tr, DumpStats* stats) {
  if (tr->path.empty()) tr->path = store;
  dump::take(*tr, pid, dump::After::kRun, stats);
}

void add_dump(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    int pid = 0;
    bool leave_running = false;
    StoreMode mode;
    std::vector<std::string> lose;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "dump", "Checkpoint a running process (memory, registers, files) into a store; the "
              "process is killed afterwards unless --leave-running");
  add_key_file_option(sub);
  sub->add_option("--store", o->store,
                  "store to write (file, DAX file or device-DAX; created if missing); the "
                  "process image replaces the same process's earlier one, in one atomic commit")
      ->required();
  add_store_mode_flags(sub, &o->mode,
                       "overwrite the image of another process (another PID or program) the store "
                       "holds");
  sub->add_option("--lose", o->lose,
                  "dump although the process has this state, which is not saved and is lost at "
                  "restore: shared-offset (a file offset shared with another process), sysv-ipc "
                  "(System V IPC objects it used); repeatable")
      ->check(CLI::IsMember({"shared-offset", "sysv-ipc"}))
      ->allow_extra_args(false)
      ->delimiter(',');
  sub->add_option("pid", o->pid, "process to dump (you must be allowed to ptrace it)")
      ->required()
      ->check(CLI::PositiveNumber);
  sub->add_flag("--leave-running", o->leave_running, "let the process continue after the dump");
  sub->callback([&run, o] {
    run = [o] {
      auto t0 = std::chrono::steady_clock::now();
      wp::Series tr;
      tr.path = o->store;
      tr.track = false;
      tr.create = o->mode.create;
      tr.force = o->mode.force;
      tr.replace = o->mode.replace;
      tr.lose.insert(o->lose.begin(), o->lose.end());
      wp::DumpStats ds;
      dump::take(tr, o->pid, o->leave_running ? dump::After::kLeaveRunning : dump::After::kKill,
                 &ds);
      auto c0 = std::chrono::steady_clock::now();
      tr.store.reset();  // closed (io_uring torn down, lock released) before we say it is done
      if (getenv("CKPT_TOOL_PHASES"))
        std::fprintf(stderr, "ckpt-tool phases: store closed in %.4f s\n",
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count());
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr,
                   "ckpt-tool dump: pid %d: %" PRIu64 " threads, %" PRIu64 " mappings, %" PRIu64
                   " pages (%.1f MiB) in %.3f s, epoch %" PRIu64 "; %s\n",
                   o->pid, ds.threads, ds.vmas, ds.pages, double(ds.pages * image::kPage) / (1 << 20),
                   secs, ds.epoch, o->leave_running ? "left running" : "killed");
      return int(kOk);
    };
  });
}

}  // namespace ckpt_tool
