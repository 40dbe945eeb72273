// SPDX-License-Identifier: MIT
// ckpt-tool restore, become (restore.hpp): the child's sequence. It opens its /dev/ckpt
// sessions, takes the image's credentials (--as-image-user), moves its vdso and builds the
// image's memory (become_memory.cpp), its descriptors (become_fds.cpp) and what a process sets
// on itself (become_task.cpp); on the parent's word it hands the layout to
// CKPT_IOC_RESTORE_PREPARE (CKPT_VMA_PREBUILT: keep what the child built), starts one helper
// thread per other image thread (each parks in RESTORE_THREAD), and enters the image through
// RESTORE_COMMIT (arch::jump), which unmaps the rest of the child, maps and fills the staged
// mappings and returns into the image's registers. A failure before that goes to the parent
// on the status pipe.
#include <fcntl.h>
#include <linux/ckpt.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ckptdev.hpp"
#include "cmd.hpp"
#include "restore.hpp"

namespace ckpt_tool::restore {
namespace {

using namespace image;

int g_status = -1;  // the status pipe to the parent
// The parent's word that its checks (check_image) passed: one byte on this pipe; end of file
// (the checks refused the image, or the parent died) ends the child before PREPARE.
int g_go = -1;

// A helper thread: becomes one of the image's threads.
struct Helper {
  const Thread* t = nullptr;
  int fd = -1;  // its own /dev/ckpt session
  ckpt_restore_thread req{};
  arch::Xsave* xs = nullptr;
  pid_t tid = 0;  // what clone3 gave it
};

// The helper threads are raw clone3 threads, not pthreads, so that each can ask for its image
// thread's TID (set_tid; see Clone3). They run on a stack of their own but share the main
// thread's TLS, which they only read (the stack protector's canary): nothing here may write
// errno, allocate, or take a lock: raw syscalls only.
[[noreturn]] void helper_fail(const char* what, long err) {
  int64_t one = kStatusFailed;
  const char* why = strerrordesc_np(int(-err));
  if (write(g_status, &one, sizeof(one)) == sizeof(one)) {
    (void)!write(g_status, what, strlen(what));
    (void)!write(g_status, ": ", 2);
    (void)!write(g_status, why ? why : "?", why ? strlen(why) : 1);
  }
  syscall(SYS_exit_group, 1);
  __builtin_unreachable();
}

// What an image thread sets on itself when ckpt.ko restores it.
void thread_state(const image::Thread& t, ckpt_thread_state* s) {
  static_assert(sizeof(s->regs) == sizeof(t.regs));
  std::memcpy(&s->regs, &t.regs, sizeof(s->regs));
  s->sigmask = t.sigmask;
  s->clear_child_tid = t.clear_child_tid;
  s->robust_list = t.robust_list;
  s->rseq = t.rseq;
  s->rseq_sig = t.rseq_sig;
}

void helper_main(void* arg) {
  auto* h = static_cast<Helper*>(arg);
  if (long e = altstack(*h->t); e < 0)
    helper_fail("restoring a thread's alternate signal stack", e);
  int signo;
  if (long e = requeue(h->t->pending, true, &signo); e < 0)
    helper_fail("queueing a thread's pending signal again", e);
  thread_state(*h->t, &h->req.thread);
  h->req.self_fd = uint64_t(h->fd);
  arch::jump(h->t->regs.fs_base, h->t->regs.gs_base, h->xs, arch::rfbm(), h->fd,
             CKPT_IOC_RESTORE_THREAD, uint64_t(uintptr_t(&h->req)), 98);
}

// A /dev/ckpt session; *features: the module's.
int open_session(uint64_t* features) {
  ckptdev::Session dev;
  if (int e = dev.open()) {
    if (e == -EPROTONOSUPPORT)
      throw Error{kFailed, "this ckpt.ko speaks API version " + std::to_string(dev.module_api()) +
                               ", ckpt-tool " + std::to_string(CKPT_API_VERSION)};
    throw Error{kFailed, std::string("/dev/ckpt: ") + strerror(-e) + " (is ckpt.ko loaded?)"};
  }
  if (!dev.has(CKPT_FEATURE_RESTORE))
    throw Error{kFailed, "this ckpt.ko does not offer CKPT_FEATURE_RESTORE"};
  *features = dev.features();
  return dev.take_fd();
}

// What the child built, for PREPARE.
struct Built {
  int ckpt = -1;                 // the main thread's session
  std::vector<Helper> helpers;   // one per other image thread
  std::vector<int> files;        // one descriptor per mapped file
  std::vector<int> vfile;        // per mapping: its index in files, or -1
  int data = -1;                 // the memfd of the staged pages
  std::vector<uint64_t> data_off;
  std::vector<bool> built;       // per mapping: CKPT_VMA_PREBUILT
};

// The sessions: one for the main thread, one per helper thread; their XSAVE images.
void open_sessions(const Image& img, Built* b, uint64_t* features) {
  b->ckpt = open_session(features);
  b->helpers.resize(img.threads.size() - 1);
  for (size_t i = 0; i < b->helpers.size(); i++) {
    Helper& h = b->helpers[i];
    h.t = &img.threads[i + 1];
    h.fd = open_session(features);
    h.xs = new arch::Xsave;
    std::memset(h.xs, 0, sizeof(arch::Xsave));
    std::memcpy(h.xs->b, img.threads[i + 1].xsave.data(), img.threads[i + 1].xsave.size());
  }
}

// One descriptor per mapped file, however many mappings it has (the module takes its own
// reference for each mapping): a process with more file mappings than the restorer's
// RLIMIT_NOFILE allows descriptors failed with EMFILE when each mapping had its own. The
// soft limit is raised to the hard one for the restore (the image's limits are set before
// COMMIT), so only more distinct files than the hard limit fail.
void open_mapped_files(const Image& img, Built* b) {
  if (img.has_rlimits) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      setrlimit(RLIMIT_NOFILE, &rl);  // best effort: the opens below say if it was needed
    }
  }
  b->vfile.assign(img.vmas.size(), -1);
  std::map<std::string, int> opened;  // path -> index in b->files
  for (size_t i = 0; i < img.vmas.size(); i++) {
    if (img.vmas[i].kind != kFile && img.vmas[i].kind != kSharedFile) continue;
    const std::string& path = img.vmas[i].file.path;
    auto it = opened.find(path);
    if (it == opened.end()) {
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw Error{kFailed, path + ": " + strerror(errno)};
      it = opened.emplace(path, int(b->files.size())).first;
      b->files.push_back(fd);
    }
    b->vfile[i] = it->second;
  }
}

// The request for CKPT_IOC_RESTORE_PREPARE, and the arrays it points to.
struct Prepare {
  std::vector<ckpt_restore_vma> vmas;
  std::vector<ckpt_restore_run> runs;
  ckpt_restore_prepare p{};
};

void make_prepare(const Image& img, const Built& b, Prepare* out) {
  const Thread& t = img.threads[0];
  const std::vector<bool>& built = b.built;
  const std::vector<uint64_t>& data_off = b.data_off;
  const int ckpt = b.ckpt, data = b.data;
  size_t run_no = 0;
  for (size_t i = 0; i < img.vmas.size(); i++) {
    const Vma& v = img.vmas[i];
    ckpt_restore_vma k{};
    k.start = v.start;
    k.len = v.end - v.start;
    k.prot = v.prot;
    // A read-only shared file mapping (always built by the child, build_layout) is, to the
    // module, a file mapping the child built: of a file opened read-only, the kernel made it
    // without VM_SHARED, which is what ckpt.ko's check of a prebuilt mapping compares
    // (CKPT_VMA_SHARED is for anonymous memory).
    const bool file = v.kind == kFile || v.kind == kSharedFile;
    k.flags = (file ? CKPT_VMA_FILE : 0) |
              (v.kind == kSharedAnon ? CKPT_VMA_SHARED : 0) | (v.growsdown ? CKPT_VMA_GROWSDOWN : 0) | (built[i] ? CKPT_VMA_PREBUILT : 0);
    if (file) {
      k.fd = uint64_t(b.files[size_t(b.vfile[i])]);
      k.pgoff = v.pgoff;
    }
    out->vmas.push_back(k);
    if (!built[i])
      for (const auto& r : v.runs)
        out->runs.push_back({.addr = v.start + r.offset, .len = r.len,
                             .data_off = data_off[run_no++], .reserved = 0});
  }
  out->p.flags = CKPT_RESTORE_STATUS_FD;
  out->p.self_fd = uint64_t(ckpt);
  out->p.vmas = uint64_t(uintptr_t(out->vmas.data()));
  out->p.nr_vmas = out->vmas.size();
  out->p.runs = uint64_t(uintptr_t(out->runs.data()));
  out->p.nr_runs = out->runs.size();
  out->p.vma_size = sizeof(ckpt_restore_vma);
  out->p.run_size = sizeof(ckpt_restore_run);
  out->p.data_fd = uint64_t(data);
  out->p.status_fd = uint64_t(g_status);
  if (img.vdso_start) {
    out->p.keep_start = img.vvar_start;
    out->p.keep_end = img.vdso_end;
  }
  out->p.start_code = img.start_code;
  out->p.end_code = img.end_code;
  out->p.start_data = img.start_data;
  out->p.end_data = img.end_data;
  out->p.start_brk = img.start_brk;
  out->p.brk = img.brk;
  out->p.start_stack = img.start_stack;
  out->p.arg_start = img.arg_start;
  out->p.arg_end = img.arg_end;
  out->p.env_start = img.env_start;
  out->p.env_end = img.env_end;
  thread_state(t, &out->p.thread);
}

// Waits for the parent's word, then hands the child to the module.
void prepare(Prepare& req) {
  // Nothing so far touched anything but this child; what follows hands it to the module.
  char go = 0;
  ssize_t got;
  do got = read(g_go, &go, 1); while (got < 0 && errno == EINTR);
  if (got != 1) _exit(1);
  close(g_go);
  phase("PREPARE");
  if (int rc = ckptdev::restore_prepare(int(req.p.self_fd), &req.p)) {
    int e = -rc;
    const char* hint = e == EINVAL ? " (the image's layout or registers were refused)"
                       : e == EACCES ? " (a mapped file is not a regular file)"
                                     : "";
    throw Error{kFailed, std::string("ckpt.ko RESTORE_PREPARE: ") + strerror(e) + hint};
  }
}

// The other threads park in the kernel; COMMIT wants them all there.
void start_threads(std::vector<Helper>& helpers) {
  // Each asks for its image thread's TID first; those refused go in a second round, so that
  // one taking a new TID cannot take the old TID of another image thread still to come (a
  // permuted TID would misdirect signals; a new one only makes them fail).
  const uint64_t kThreadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                                CLONE_SYSVSEM;
  constexpr size_t kHelperStack = 64 << 10;
  for (int round = 0; round < 2; round++)
    for (auto& h : helpers) {
      if (h.tid > 0) continue;
      Clone3 c(kThreadFlags, h.t->tid, round == 0);
      if (round == 0 && !c.want) continue;
      void* stack = mmap(nullptr, kHelperStack, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
      if (stack == MAP_FAILED)
        throw Error{kFailed, std::string("a thread's stack: ") + strerror(errno)};
      c.a.stack = uint64_t(uintptr_t(stack));
      c.a.stack_size = kHelperStack;
      long tid = restore_clone3_thread(&c.a, sizeof(c.a), helper_main, &h);
      if (tid > 0) {
        h.tid = pid_t(tid);
        continue;
      }
      munmap(stack, kHelperStack);
      if (round == 1 || (tid != -EEXIST && tid != -EPERM && tid != -EINVAL && tid != -E2BIG &&
                         tid != -ENOSYS))
        throw Error{kFailed, std::string("creating a thread: ") + strerror(int(-tid))};
    }
}

// Everything up to PREPARE; what the child holds for the rest is in *b.
void build(const Image& img, Loaded& ld, bool as_image_user, Built* b) {
  set_task_state(img);
  uint64_t features = 0;
  open_sessions(img, b, &features);
  if (as_image_user) become_image_user(img);
  open_mapped_files(img, b);
  // The image's vdso address first: the mappings built next must not take it.
  Vdso own;
  if (own_vdso(&own)) throw Error{kFailed, "/proc/self/maps"};
  move_vdso(img, &own);
  std::vector<int> vfd(img.vmas.size(), -1);  // per mapping
  for (size_t i = 0; i < vfd.size(); i++)
    if (b->vfile[i] >= 0) vfd[i] = b->files[size_t(b->vfile[i])];
  b->built = build_layout(img, ld, vfd, features & CKPT_FEATURE_RESTORE_PREBUILT, &b->data,
                          &b->data_off);
  phase("pages read");

  // The store's descriptors go with everything else the image does not have.
  std::vector<int*> helpers = {&b->ckpt, &b->data, &g_status, &g_go};
  for (int& fd : b->files) helpers.push_back(&fd);
  for (auto& h : b->helpers) helpers.push_back(&h.fd);
  set_fds(img, helpers);

  if (chdir(img.cwd.c_str()) < 0)
    throw Error{kFailed, "working directory " + img.cwd + ": " + strerror(errno)};
  umask(mode_t(img.umask));
  prctl(PR_SET_NAME, img.comm.c_str(), 0, 0, 0);
  set_signals(img);
}

// From PREPARE to COMMIT, which does not return.
[[noreturn]] void enter(const Image& img, Built& b) {
  const Thread& t = img.threads[0];
  const int ckpt = b.ckpt;
  {
    Prepare req;
    make_prepare(img, b, &req);
    prepare(req);
  }
  // The kernel holds its own references now.
  close(b.data);
  for (int fd : b.files) close(fd);
  start_threads(b.helpers);
  std::vector<Helper>& helpers = b.helpers;
  for (int i = 0;; i++) {
    int e = ckptdev::restore_commit_check(ckpt);
    if (e == 0) break;
    if (e != -EBUSY)
      throw Error{kFailed, std::string("ckpt.ko RESTORE_COMMIT check: ") + strerror(-e)};
    if (i > 30000) throw Error{kFailed, "the helper threads did not park in ckpt.ko within 30 s"};
    usleep(1000);
  }
  queue_signals(img.shared_pending, false);
  queue_signals(t.pending, true);
  set_rlimits(img);
  {
    std::vector<pid_t> tids{pid_t(syscall(SYS_gettid))};
    for (const auto& h : helpers) tids.push_back(h.tid);
    set_sched(img, tids);
  }
  set_altstack(t);
  set_itimer(img);
  arm_timerfds(img);
  phase("COMMIT");
  static arch::Xsave xs;
  std::memcpy(xs.b, t.xsave.data(), t.xsave.size());
  arch::jump(t.regs.fs_base, t.regs.gs_base, &xs, arch::rfbm(), ckpt, CKPT_IOC_RESTORE_COMMIT, 0,
             99);
}

// Tells the parent why the child failed (kStatusFailed and the message) and ends it.
[[noreturn]] void report(const std::string& msg) {
  int64_t one = kStatusFailed;
  if (write(g_status, &one, sizeof(one)) == sizeof(one))
    (void)!write(g_status, msg.data(), msg.size());
  _exit(1);
}

}  // namespace

void child(const Image& img, Loaded& ld, int status_w, int go_r, bool as_image_user) {
  g_status = status_w;
  g_go = go_r;
  phase("child started");
  // No signal may run a handler of the image before the image is there.
  uint64_t all = ~0ull;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, nullptr, 8);
  try {
    Built b;
    build(img, ld, as_image_user, &b);
    enter(img, b);
  } catch (const Error& e) {
    report(e.msg);
  }
}

}  // namespace ckpt_tool::restore
