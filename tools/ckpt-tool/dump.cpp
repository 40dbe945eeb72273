// ckpt-tool dump: checkpoint a running process into a whole-process image (image.hpp).
//
// Everything user space can read is read from user space: ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT for a stop, GETREGS, GETREGSET NT_X86_XSTATE), /proc/PID/{maps,pagemap,mem,
// fd,fdinfo,cwd,stat,status}. What only the kernel knows (signal handlers, sigaltstack,
// clear_child_tid, robust list, rseq, brk) comes from ckpt.ko's CKPT_IOC_DUMP_TASK, so no code
// is injected into the target.
#include <fcntl.h>
#include <linux/ckpt.h>
#include <linux/elf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "image.hpp"
#include "proc.hpp"
#include "wp.hpp"

namespace ckpt_tool {
namespace {

using namespace image;

constexpr long kERESTARTSYS = 512, kERESTARTNOINTR = 513, kERESTARTNOHAND = 514,
               kERESTART_RESTARTBLOCK = 516;

// A failure with the reason for the user; dump stops and the process is let go.
struct Error {
  int code;  // exit status
  std::string msg;
};

std::string errstr(int neg) { return strerror(-neg); }

// Holds the ptrace stop of every thread; lets the process continue unless told to kill it.
class Seized {
 public:
  explicit Seized(int pid) : pid_(pid) {}
  ~Seized() { detach(); }
  int pid() const { return pid_; }
  const std::vector<int>& tids() const { return tids_; }
  bool has(int tid) const { return std::find(tids_.begin(), tids_.end(), tid) != tids_.end(); }
  void add(int tid) { tids_.push_back(tid); }
  void detach() {
    for (int t : tids_) ptrace(PTRACE_DETACH, t, nullptr, nullptr);
    tids_.clear();
  }
  void kill_it() {
    if (tids_.empty()) return;
    ::kill(pid_, SIGKILL);
    // The leader is reported only after every other thread was reaped: it goes last.
    std::stable_partition(tids_.begin(), tids_.end(), [this](int t) { return t != pid_; });
    for (int t : tids_) {
      int st;
      while (waitpid(t, &st, __WALL) < 0 && errno == EINTR) {
      }
    }
    tids_.clear();
  }

 private:
  int pid_;
  std::vector<int> tids_;
};

// Exit statuses the dump's own waitpid() took from a child that died meanwhile (run's
// supervisor asks for them: it is the parent and would otherwise lose the status).
std::map<int, int> g_reaped;

void stop_one(Seized& s, int tid) {
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) < 0) {
    if (errno == ESRCH && tid != s.pid()) return;  // a thread that just exited
    if (errno == EPERM)
      throw Error{kFailed, "not allowed to ptrace " + std::to_string(s.pid()) +
                               ": dump needs the same user (and a dumpable process) or "
                               "CAP_SYS_PTRACE; see also /proc/sys/kernel/yama/ptrace_scope"};
    throw Error{kFailed, "ptrace(SEIZE) " + std::to_string(tid) + ": " + strerror(errno)};
  }
  s.add(tid);
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) < 0)
    throw Error{kFailed, std::string("ptrace(INTERRUPT): ") + strerror(errno)};
  for (;;) {
    int st;
    if (waitpid(tid, &st, __WALL) < 0) {
      if (errno == EINTR) continue;
      throw Error{kFailed, std::string("waitpid: ") + strerror(errno)};
    }
    if (WIFEXITED(st) || WIFSIGNALED(st)) {
      g_reaped[tid] = st;
      throw Error{kFailed, "the process exited"};
    }
    if (!WIFSTOPPED(st)) continue;
    if ((st >> 16) == PTRACE_EVENT_STOP) return;
    // A signal-delivery stop came first: deliver it and wait for our interrupt.
    if (ptrace(PTRACE_CONT, tid, nullptr, (void*)(long)WSTOPSIG(st)) < 0)
      throw Error{kFailed, std::string("ptrace(CONT): ") + strerror(errno)};
  }
}

// Stop every thread; threads created meanwhile are caught by listing again until stable.
void seize_and_stop(Seized& s) {
  for (int round = 0;; round++) {
    std::vector<int> tasks;
    if (int e = proc::list_tasks(s.pid(), &tasks); e)
      throw Error{kFailed, "process " + std::to_string(s.pid()) + ": " + errstr(e)};
    bool added = false;
    for (int t : tasks)
      if (!s.has(t)) {
        stop_one(s, t);
        added = true;
      }
    if (!added) return;
    if (round > 1000) throw Error{kFailed, "the process keeps creating threads"};
  }
}

void read_thread(int tid, int ckpt_fd, Image* img, Thread* t) {
  user_regs_struct ur;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &ur) < 0)
    throw Error{kFailed, std::string("ptrace(GETREGS): ") + strerror(errno)};
  static_assert(sizeof(ur) == sizeof(Regs));
  std::memcpy(&t->regs, &ur, sizeof(ur));
  t->tid = uint64_t(tid);
  // Stopped inside a syscall that will be restarted: restart it after restore as the kernel
  // would have (what CRIU does). A restart_block cannot move to another process: -EINTR.
  Regs& g = t->regs;
  if (int64_t(g.orig_ax) >= 0) {
    switch (-int64_t(g.ax)) {
      case kERESTARTSYS:
      case kERESTARTNOINTR:
      case kERESTARTNOHAND:
        g.ax = g.orig_ax;
        g.ip -= 2;
        break;
      case kERESTART_RESTARTBLOCK:
        g.ax = uint64_t(-EINTR);
        break;
    }
  }
  alignas(64) static uint8_t xbuf[kMaxXsave];
  iovec iov{xbuf, sizeof(xbuf)};
  if (ptrace(PTRACE_GETREGSET, tid, (void*)NT_X86_XSTATE, &iov) < 0)
    throw Error{kFailed, std::string("ptrace(GETREGSET, NT_X86_XSTATE): ") + strerror(errno) +
                             " (a CPU with XSAVE is required)"};
  t->xsave.assign(xbuf, xbuf + iov.iov_len);

  ckpt_sigaction acts[CKPT_NSIG];
  ckpt_dump_task d{};
  d.pid = uint64_t(tid);
  d.actions = uint64_t(uintptr_t(acts));
  if (ioctl(ckpt_fd, CKPT_IOC_DUMP_TASK, &d) < 0)
    throw Error{kFailed, std::string("ckpt.ko DUMP_TASK: ") + strerror(errno)};
  for (int i = 0; i < kNsig; i++)
    img->actions[i] = {acts[i].handler, acts[i].flags, acts[i].restorer, acts[i].mask};
  t->sigmask = d.blocked;
  t->clear_child_tid = d.clear_child_tid;
  t->robust_list = d.robust_list;
  t->sas_sp = d.sas_ss_sp;
  t->sas_size = d.sas_ss_size;
  t->sas_flags = d.sas_ss_flags;
  t->rseq = d.rseq;
  t->rseq_sig = d.rseq_sig;
  img->start_brk = d.start_brk;
  img->brk = d.brk;
}

int open_module() {
  int fd = open("/dev/ckpt", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    throw Error{kUnavailable, std::string("/dev/ckpt: ") + strerror(errno) +
                                  " (load ckpt.ko; see Documentation/admin-guide.md)"};
  ckpt_api a{};
  a.api = CKPT_API_VERSION;
  if (ioctl(fd, CKPT_IOC_API, &a) < 0 || !(a.features & CKPT_FEATURE_DUMP)) {
    close(fd);
    throw Error{kUnavailable, "this ckpt.ko does not offer CKPT_FEATURE_DUMP"};
  }
  return fd;
}

FileId file_id(const std::string& path, uint64_t expect_ino, const std::string& what) {
  struct stat st;
  if (stat(path.c_str(), &st) < 0)
    throw Error{kFailed, what + " " + path + ": " + strerror(errno)};
  if (!S_ISREG(st.st_mode)) throw Error{kFailed, what + " " + path + " is not a regular file"};
  if (expect_ino && st.st_ino != expect_ino)
    throw Error{kFailed, what + " " + path +
                             " is not the file the process has (another mount namespace?)"};
  return FileId{path, uint64_t(st.st_ino), uint64_t(st.st_size),
                uint64_t(st.st_mtim.tv_sec) * 1000000000ull + uint64_t(st.st_mtim.tv_nsec)};
}

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

void read_stat_fields(int pid, Image* img) {
  std::string st;
  if (int e = proc::read_file("/proc/" + std::to_string(pid) + "/stat", &st); e)
    throw Error{kFailed, "/proc/PID/stat: " + errstr(e)};
  size_t rp = st.rfind(')');
  if (rp == std::string::npos) throw Error{kFailed, "unexpected /proc/PID/stat"};
  std::vector<uint64_t> f;  // f[0] is field 3 (state)
  const char* p = st.c_str() + rp + 2;
  while (*p) {
    char* end;
    f.push_back(strtoull(p, &end, 10));
    if (end == p) {  // the state letter
      while (*p && *p != ' ') p++;
    } else {
      p = end;
    }
    while (*p == ' ' || *p == '\n') p++;
  }
  auto field = [&](size_t n) { return n - 3 < f.size() ? f[n - 3] : 0; };
  if (f.size() < 51 - 2) throw Error{kFailed, "/proc/PID/stat lacks the mm fields"};
  img->start_code = field(26);
  img->end_code = field(27);
  img->start_stack = field(28);
  img->start_data = field(45);
  img->end_data = field(46);
  img->arg_start = field(48);
  img->arg_end = field(49);
  img->env_start = field(50);
  img->env_end = field(51);
}

void read_process(int pid, Image* img) {
  std::string base = "/proc/" + std::to_string(pid);
  img->pid = uint64_t(pid);
  std::string s;
  if (proc::read_file(base + "/comm", &s) == 0) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    img->comm = s.substr(0, 15);
  }
  if (int e = proc::read_link(base + "/cwd", &img->cwd); e)
    throw Error{kFailed, "cwd: " + errstr(e)};
  if (ends_with(img->cwd, " (deleted)"))
    throw Error{kFailed, "the working directory " + img->cwd + " is not supported"};
  proc::read_link(base + "/exe", &img->exe);
  if (proc::read_file(base + "/status", &s) == 0) {
    size_t p = s.find("Umask:\t");
    if (p != std::string::npos) img->umask = strtoull(s.c_str() + p + 7, nullptr, 8);
  }
  read_stat_fields(pid, img);
}

void read_fds(int pid, Image* img) {
  std::string base = "/proc/" + std::to_string(pid);
  std::vector<int> fds;
  if (int e = proc::list_fds(pid, &fds); e) throw Error{kFailed, "fd list: " + errstr(e)};
  for (int n : fds) {
    std::string fdp = base + "/fd/" + std::to_string(n), link, info;
    if (proc::read_link(fdp, &link)) continue;  // closed meanwhile
    struct stat st;
    if (stat(fdp.c_str(), &st) < 0) throw Error{kFailed, "fd " + std::to_string(n) + ": " + strerror(errno)};
    if (int e = proc::read_file(base + "/fdinfo/" + std::to_string(n), &info); e)
      throw Error{kFailed, "fdinfo: " + errstr(e)};
    Fd f;
    f.fd = uint64_t(n);
    size_t p = info.find("pos:");
    if (p != std::string::npos) f.pos = strtoull(info.c_str() + p + 4, nullptr, 10);
    p = info.find("flags:");
    if (p != std::string::npos) f.flags = strtoull(info.c_str() + p + 6, nullptr, 8);
    f.cloexec = f.flags & O_CLOEXEC;
    f.flags &= ~uint64_t(O_CLOEXEC);
    static const char* kDevices[] = {"/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"};
    bool device = false;
    for (const char* d : kDevices) device |= link == d;
    if (S_ISREG(st.st_mode) && !link.empty() && link[0] == '/' && !ends_with(link, " (deleted)")) {
      f.kind = kFdRegular;
      f.file = file_id(link, st.st_ino, "open file");
    } else if (S_ISCHR(st.st_mode) && device) {
      f.kind = kFdDevice;
      f.file = FileId{link, 0, 0, 0};
    } else if (n <= 2 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      f.kind = kFdInherit;  // tty, pipe, socket on stdio: the restorer's own stdio
    } else {
      throw Error{kFailed, "fd " + std::to_string(n) + " (" + link +
                               ") is not supported: only regular files, /dev/null-like devices "
                               "and stdio are (see Documentation/whole-process.md)"};
    }
    img->fds.push_back(std::move(f));
  }
}

// Per page of the mapping: does it hold data the restore must write? From pagemap.
std::vector<bool> want_pages(int pagemap_fd, const Vma& v) {
  constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62, kFilePage = 1ull << 61;
  uint64_t pages = (v.end - v.start) / kPage;
  std::vector<bool> want(pages);
  std::vector<uint64_t> ent(std::min<uint64_t>(pages, 65536));
  for (uint64_t i = 0; i < pages;) {
    uint64_t n = std::min<uint64_t>(pages - i, ent.size());
    ssize_t got = pread(pagemap_fd, ent.data(), n * 8, off_t((v.start / kPage + i) * 8));
    if (got != ssize_t(n * 8)) throw Error{kFailed, std::string("pagemap: ") + strerror(errno)};
    for (uint64_t k = 0; k < n; k++) {
      uint64_t e = ent[k];
      if (v.kind == kSharedAnon)
        want[i + k] = true;
      else if (v.kind == kFile)
        want[i + k] = (e & kSwapped) || ((e & kPresent) && !(e & kFilePage));
      else
        want[i + k] = e & (kPresent | kSwapped);
    }
    i += n;
  }
  return want;
}

// Which pages of a mapping hold data the restore must write: read from pagemap.
void select_pages(int pagemap_fd, const Vma& v, std::vector<Run>* runs) {
  constexpr uint64_t kPresent = 1ull << 63, kSwapped = 1ull << 62, kFilePage = 1ull << 61;
  uint64_t pages = (v.end - v.start) / kPage;
  std::vector<uint64_t> ent(std::min<uint64_t>(pages, 65536));
  uint64_t run_start = 0, run_len = 0;
  for (uint64_t i = 0; i < pages;) {
    uint64_t n = std::min<uint64_t>(pages - i, ent.size());
    ssize_t got = pread(pagemap_fd, ent.data(), n * 8, off_t((v.start / kPage + i) * 8));
    if (got != ssize_t(n * 8)) throw Error{kFailed, std::string("pagemap: ") + strerror(errno)};
    for (uint64_t k = 0; k < n; k++) {
      uint64_t e = ent[k];
      bool want;
      if (v.kind == kSharedAnon)
        want = true;
      else if (v.kind == kFile)
        want = (e & kSwapped) || ((e & kPresent) && !(e & kFilePage));
      else
        want = e & (kPresent | kSwapped);
      uint64_t off = (i + k) * kPage;
      if (want && run_len && run_start + run_len == off) {
        run_len += kPage;
      } else if (want) {
        if (run_len) runs->push_back({run_start, run_len, 0});
        run_start = off;
        run_len = kPage;
      }
    }
    i += n;
  }
  if (run_len) runs->push_back({run_start, run_len, 0});
}

void read_vmas(int pid, Image* img) {
  std::vector<proc::MapsLine> maps;
  if (int e = proc::read_maps(pid, &maps); e) throw Error{kFailed, "maps: " + errstr(e)};
  uint64_t vvar_end = 0;
  for (const auto& m : maps) {
    std::string where = "mapping " + m.path + " at 0x" +
                        [](uint64_t a) { char b[32]; snprintf(b, sizeof b, "%" PRIx64, a); return std::string(b); }(m.start);
    if (m.path == "[vsyscall]") continue;
    if (m.path == "[vvar]") {
      img->vvar_start = m.start;
      vvar_end = m.end;
      continue;
    }
    if (m.path == "[vdso]") {
      img->vdso_start = m.start;
      img->vdso_end = m.end;
      continue;
    }
    Vma v;
    v.start = m.start;
    v.end = m.end;
    v.prot = (m.perms[0] == 'r' ? PROT_READ : 0) | (m.perms[1] == 'w' ? PROT_WRITE : 0) |
             (m.perms[2] == 'x' ? PROT_EXEC : 0);
    bool shared = m.perms[3] == 's';
    if (shared) {
      if (m.path != "/dev/zero (deleted)" && !m.path.empty())
        throw Error{kFailed, where + ": shared file mappings (and System V / memfd shared "
                                     "memory) are not supported"};
      if (!(v.prot & PROT_WRITE))
        throw Error{kFailed, where + ": read-only shared anonymous memory is not supported"};
      v.kind = kSharedAnon;
    } else if (m.path.empty() || m.path == "[heap]" || m.path == "[stack]" ||
               m.path.rfind("[anon:", 0) == 0) {
      v.kind = kAnon;
      v.growsdown = m.path == "[stack]";
    } else if (m.path[0] == '[') {
      throw Error{kFailed, where + " is not supported"};
    } else {
      if (ends_with(m.path, " (deleted)"))
        throw Error{kFailed, where + ": the mapped file was deleted; not supported"};
      v.kind = kFile;
      v.pgoff = m.offset;
      v.file = file_id(m.path, m.ino, "mapped file");
    }
    img->vmas.push_back(std::move(v));
  }
  if (img->vdso_start && (!img->vvar_start || vvar_end != img->vdso_start))
    throw Error{kFailed, "unexpected layout: [vvar] is not directly below [vdso]"};
}

struct Written {
  uint64_t pages = 0;
};

// Page data: every run of every mapping, in order, from /proc/PID/mem to the image.
void write_data(int pid, int out, Image* img, Written* w) {
  std::string base = "/proc/" + std::to_string(pid);
  int pm = open((base + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  int mem = open((base + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (pm < 0 || mem < 0) {
    int e = errno;
    if (pm >= 0) close(pm);
    if (mem >= 0) close(mem);
    throw Error{kFailed, base + "/{pagemap,mem}: " + strerror(e)};
  }
  std::unique_ptr<int, void (*)(int*)> guard(new int[2]{pm, mem}, [](int* p) {
    close(p[0]);
    close(p[1]);
    delete[] p;
  });
  constexpr size_t kBuf = 1 << 20;
  std::unique_ptr<uint8_t[]> buf(new uint8_t[kBuf]);
  uint64_t off = kHeaderSize;
  if (img->vdso_start) {
    std::vector<uint8_t> vd(img->vdso_end - img->vdso_start);
    if (pread(mem, vd.data(), vd.size(), off_t(img->vdso_start)) != ssize_t(vd.size()))
      throw Error{kFailed, std::string("reading the vdso: ") + strerror(errno)};
    img->vdso_hash = hash(vd.data(), vd.size());
  }
  for (auto& v : img->vmas) {
    select_pages(pm, v, &v.runs);
    XXH64_state_t* st = XXH64_createState();
    XXH64_reset(st, 0);
    for (auto& r : v.runs) {
      r.data_off = off;
      for (uint64_t done = 0; done < r.len;) {
        size_t n = size_t(std::min<uint64_t>(r.len - done, kBuf));
        ssize_t got = pread(mem, buf.get(), n, off_t(v.start + r.offset + done));
        if (got != ssize_t(n)) {
          XXH64_freeState(st);
          throw Error{kFailed, std::string("reading process memory: ") +
                                   (got < 0 ? strerror(errno) : "short read")};
        }
        XXH64_update(st, buf.get(), n);
        for (size_t put = 0; put < n;) {
          ssize_t k = pwrite(out, buf.get() + put, n - put, off_t(off + done + put));
          if (k <= 0) {
            XXH64_freeState(st);
            throw Error{kFailed, std::string("writing the image: ") + strerror(errno)};
          }
          put += size_t(k);
        }
        done += n;
      }
      off += r.len;
      w->pages += r.len / kPage;
    }
    v.data_hash = XXH64_digest(st);
    XXH64_freeState(st);
  }
}

void pwrite_all(int fd, const void* p, size_t n, uint64_t off) {
  const auto* c = static_cast<const uint8_t*>(p);
  while (n) {
    ssize_t k = pwrite(fd, c, n, off_t(off));
    if (k <= 0) throw Error{kFailed, std::string("writing the image: ") + strerror(errno)};
    c += k;
    n -= size_t(k);
    off += uint64_t(k);
  }
}

int do_dump(const std::string& store, int pid, bool leave_running, wp::DumpStats* stats,
            bool quiet) {
  auto t0 = std::chrono::steady_clock::now();
  struct stat sst;
  if (stat(store.c_str(), &sst) == 0 && !S_ISREG(sst.st_mode))
    throw Error{kUsage, "--store " + store +
                            ": whole-process images are files for now (not devices; see "
                            "Documentation/whole-process.md)"};
  if (kill(pid, 0) < 0 && errno == ESRCH)
    throw Error{kFailed, "no process " + std::to_string(pid)};
  int ckpt_fd = open_module();
  std::unique_ptr<int, void (*)(int*)> ckpt_guard(new int(ckpt_fd), [](int* p) {
    close(*p);
    delete p;
  });

  Seized seized(pid);
  seize_and_stop(seized);
  if (seized.tids().size() > kMaxThreads)
    throw Error{kFailed, "more than " + std::to_string(kMaxThreads) + " threads"};
  Image img;
  // The thread group leader first: restore turns it into the main thread.
  std::vector<int> order = seized.tids();
  std::stable_partition(order.begin(), order.end(), [pid](int t) { return t == pid; });
  if (order.empty() || order[0] != pid) throw Error{kFailed, "the main thread has exited"};
  for (int tid : order) {
    img.threads.emplace_back();
    read_thread(tid, ckpt_fd, &img, &img.threads.back());
  }
  read_process(pid, &img);
  read_fds(pid, &img);
  read_vmas(pid, &img);

  std::string tmp = store + ".tmp." + std::to_string(getpid());
  int out = open(tmp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (out < 0) throw Error{kFailed, tmp + ": " + strerror(errno)};
  Written w;
  try {
    write_data(pid, out, &img, &w);
    uint64_t data_end = kHeaderSize + w.pages * kPage;
    std::vector<uint8_t> meta = encode_meta(img);
    // Check what we wrote the way restore will read it: a bug here must not make an image.
    Image check;
    std::string why;
    if (decode_meta(meta, data_end, &check, &why))
      throw Error{kFailed, "internal error, the image does not validate: " + why};
    pwrite_all(out, meta.data(), meta.size(), data_end);
    Header h;
    h.data_len = data_end - kHeaderSize;
    h.meta_off = data_end;
    h.meta_len = meta.size();
    h.meta_hash = hash(meta.data(), meta.size());
    std::vector<uint8_t> hb = encode_header(h);
    pwrite_all(out, hb.data(), hb.size(), 0);
    if (fsync(out) < 0) throw Error{kFailed, std::string("fsync: ") + strerror(errno)};
  } catch (...) {
    close(out);
    unlink(tmp.c_str());
    throw;
  }
  close(out);
  if (rename(tmp.c_str(), store.c_str()) < 0) {
    int e = errno;
    unlink(tmp.c_str());
    throw Error{kFailed, "rename to " + store + ": " + strerror(e)};
  }
  std::string dir = store.find('/') == std::string::npos ? "." : store.substr(0, store.rfind('/'));
  if (dir.empty()) dir = "/";
  if (int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  if (leave_running)
    seized.detach();
  else
    seized.kill_it();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) {
    stats->threads = img.threads.size();
    stats->vmas = img.vmas.size();
    stats->pages = w.pages;
    stats->stopped_s = secs;
  }
  if (!quiet)
    std::fprintf(stderr,
               "ckpt-tool dump: pid %d: %zu threads, %zu mappings, %" PRIu64
               " pages (%.1f MiB) in %.3f s; %s\n",
               pid, img.threads.size(), img.vmas.size(), w.pages, double(w.pages * kPage) / (1 << 20), secs,
               leave_running ? "left running" : "killed");
  return kOk;
}

// --- Incremental checkpoints for `run`: the module's tracking of every private mapping. ---

}  // namespace

struct wp::Tracker {
  int fd = -1;            // session ATTACHed to the process, -1 before the first checkpoint
  bool usable = true;     // false: the module cannot track this process (full dumps)
  struct Reg {
    uint64_t id, start, end;
  };
  std::map<uint64_t, Reg> regs;  // by start: mappings tracked since the last checkpoint
  bool have_prev = false;
  Image prev;                    // metadata of the last image this tracker committed
  ino_t prev_ino = 0;
  uint64_t epoch = 0;            // checkpoints committed
  ~Tracker() {
    if (fd >= 0) close(fd);
  }
  // Forget everything: the next checkpoint is a full one.
  void reset() {
    for (auto& [start, r] : regs) {
      ckpt_unregister u{};
      u.id = r.id;
      ioctl(fd, CKPT_IOC_UNREGISTER, &u);
    }
    regs.clear();
    have_prev = false;
  }
};

bool wp::reaped_status(pid_t pid, int* wstatus) {
  auto it = g_reaped.find(pid);
  if (it == g_reaped.end()) return false;
  *wstatus = it->second;
  g_reaped.erase(it);
  return true;
}

std::unique_ptr<wp::Tracker, wp::TrackerDeleter> wp::make_tracker() {
  return std::unique_ptr<Tracker, TrackerDeleter>(new Tracker);
}
void wp::TrackerDeleter::operator()(Tracker* t) const { delete t; }

namespace {

// Where the bytes of a run of the new image come from.
struct Src {
  bool prev = false;      // from the previous image (pages clean since then) ...
  uint64_t prev_off = 0;  // ... at this offset; else from the process's memory
};

// The dirty pages of a tracked region (addresses), taking the module's log.
std::vector<uint64_t> collect(int fd, uint64_t id) {
  std::vector<uint64_t> out, buf(16384);
  for (;;) {
    ckpt_collect c{};
    c.id = id;
    c.buf = uint64_t(uintptr_t(buf.data()));
    c.buf_len = buf.size() * 8;
    if (ioctl(fd, CKPT_IOC_COLLECT, &c) < 0)
      throw Error{kFailed, std::string("ckpt.ko COLLECT: ") + strerror(errno)};
    out.insert(out.end(), buf.begin(), buf.begin() + long(c.count));
    if (!c.remaining) return out;
  }
}

void copy_range(int from, uint64_t from_off, int to, uint64_t to_off, uint64_t len) {
  static std::vector<uint8_t> buf(1 << 20);
  while (len) {
    size_t n = size_t(std::min<uint64_t>(len, buf.size()));
    if (pread(from, buf.data(), n, off_t(from_off)) != ssize_t(n))
      throw Error{kFailed, "reading the previous image: short read"};
    pwrite_all(to, buf.data(), n, to_off);
    from_off += n;
    to_off += n;
    len -= n;
  }
}

int do_checkpoint(const std::string& store, int pid, wp::Tracker& tr, wp::DumpStats* stats) {
  auto t0 = std::chrono::steady_clock::now();
  int ckpt_fd = open_module();
  std::unique_ptr<int, void (*)(int*)> ckpt_guard(new int(ckpt_fd), [](int* p) {
    close(*p);
    delete p;
  });
  Seized seized(pid);
  seize_and_stop(seized);
  if (tr.usable && tr.fd < 0) {
    tr.fd = open_module();
    ckpt_attach a{};
    a.pid = uint64_t(pid);
    if (ioctl(tr.fd, CKPT_IOC_ATTACH, &a) < 0) tr.usable = false;
  }
  Image img;
  std::vector<int> order = seized.tids();
  std::stable_partition(order.begin(), order.end(), [pid](int t) { return t == pid; });
  if (order.empty() || order[0] != pid) throw Error{kFailed, "the main thread has exited"};
  for (int tid : order) {
    img.threads.emplace_back();
    read_thread(tid, ckpt_fd, &img, &img.threads.back());
  }
  read_process(pid, &img);
  read_fds(pid, &img);
  read_vmas(pid, &img);

  // The previous image, if it is still the one we wrote.
  int prev_fd = -1;
  if (tr.have_prev) {
    prev_fd = open(store.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (prev_fd >= 0 && (fstat(prev_fd, &st) || st.st_ino != tr.prev_ino)) {
      close(prev_fd);
      prev_fd = -1;
    }
  }
  std::unique_ptr<int, void (*)(int*)> prev_guard(new int(prev_fd), [](int* p) {
    if (*p >= 0) close(*p);
    delete p;
  });

  std::string base = "/proc/" + std::to_string(pid);
  int pm = open((base + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC);
  int mem = open((base + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  std::unique_ptr<int, void (*)(int*)> g2(new int[2]{pm, mem}, [](int* p) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    delete[] p;
  });
  if (pm < 0 || mem < 0) throw Error{kFailed, base + "/{pagemap,mem}: " + strerror(errno)};

  std::string tmp = store + ".tmp." + std::to_string(getpid());
  int out = open(tmp.c_str(), O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
  if (out < 0) throw Error{kFailed, tmp + ": " + strerror(errno)};
  uint64_t fresh = 0, reused = 0;
  try {
    // 1. Plan every mapping's runs and where their bytes come from. Regions whose mapping
    // changed (split, grown, moved, gone) stop being tracked first, so that the new mappings
    // there can be registered.
    for (auto it = tr.regs.begin(); it != tr.regs.end();) {
      bool same = false;
      for (const auto& v : img.vmas) same |= v.start == it->second.start && v.end == it->second.end;
      if (same) {
        ++it;
        continue;
      }
      ckpt_unregister u{};
      u.id = it->second.id;
      ioctl(tr.fd, CKPT_IOC_UNREGISTER, &u);
      it = tr.regs.erase(it);
    }
    std::vector<std::vector<Src>> srcs(img.vmas.size());
    std::map<uint64_t, wp::Tracker::Reg> keep;
    uint64_t off = kHeaderSize;
    for (size_t i = 0; i < img.vmas.size(); i++) {
      Vma& v = img.vmas[i];
      uint64_t pages = (v.end - v.start) / kPage;
      // 0 none, 1 from the process, 2 from the previous image
      std::vector<uint8_t> from(pages, 0);
      std::vector<uint64_t> prev_off(pages, 0);
      const Vma* pv = nullptr;
      auto it = tr.regs.find(v.start);
      if (prev_fd >= 0 && it != tr.regs.end() && it->second.end == v.end) {
        for (const auto& p : tr.prev.vmas)
          if (p.start == v.start && p.end == v.end && p.kind == v.kind &&
              p.pgoff == v.pgoff && p.file.ino == v.file.ino)
            pv = &p;
      }
      if (pv) {
        for (const auto& r : pv->runs)
          for (uint64_t k = 0; k < r.len / kPage; k++) {
            from[r.offset / kPage + k] = 2;
            prev_off[r.offset / kPage + k] = r.data_off + k * kPage;
          }
        std::vector<uint64_t> dirty = collect(tr.fd, it->second.id);
        if (!dirty.empty()) {
          std::vector<bool> want = want_pages(pm, v);
          for (uint64_t a : dirty)
            if (a >= v.start && a < v.end) {
              uint64_t pg = (a - v.start) / kPage;
              from[pg] = want[pg] ? 1 : 0;
            }
        }
        keep[v.start] = it->second;
        tr.regs.erase(it);
      } else {
        std::vector<bool> want = want_pages(pm, v);
        for (uint64_t k = 0; k < pages; k++) from[k] = want[k] ? 1 : 0;
        if (tr.usable && v.kind != kSharedAnon) {
          ckpt_register r{};
          r.start = v.start;
          r.len = v.end - v.start;
          if (ioctl(tr.fd, CKPT_IOC_REGISTER, &r) == 0) keep[v.start] = {r.id, v.start, v.end};
        }
      }
      // Coalesce pages with one source (and, from the previous image, contiguous there).
      for (uint64_t k = 0; k < pages;) {
        if (!from[k]) {
          k++;
          continue;
        }
        uint64_t e = k + 1;
        while (e < pages && from[e] == from[k] &&
               (from[k] == 1 || prev_off[e] == prev_off[k] + (e - k) * kPage))
          e++;
        v.runs.push_back({k * kPage, (e - k) * kPage, off});
        srcs[i].push_back({from[k] == 2, prev_off[k]});
        off += (e - k) * kPage;
        k = e;
      }
    }
    // Regions whose mapping changed or went away: stop tracking them.
    for (auto& [start, r] : tr.regs) {
      ckpt_unregister u{};
      u.id = r.id;
      ioctl(tr.fd, CKPT_IOC_UNREGISTER, &u);
    }
    tr.regs = std::move(keep);

    // 2. While stopped: the pages only the process has, and the vdso.
    static std::vector<uint8_t> buf(1 << 20);
    if (img.vdso_start) {
      std::vector<uint8_t> vd(img.vdso_end - img.vdso_start);
      if (pread(mem, vd.data(), vd.size(), off_t(img.vdso_start)) != ssize_t(vd.size()))
        throw Error{kFailed, std::string("reading the vdso: ") + strerror(errno)};
      img.vdso_hash = hash(vd.data(), vd.size());
    }
    for (size_t i = 0; i < img.vmas.size(); i++)
      for (size_t k = 0; k < img.vmas[i].runs.size(); k++) {
        const Run& r = img.vmas[i].runs[k];
        if (srcs[i][k].prev) continue;
        for (uint64_t done = 0; done < r.len;) {
          size_t n = size_t(std::min<uint64_t>(r.len - done, buf.size()));
          if (pread(mem, buf.data(), n, off_t(img.vmas[i].start + r.offset + done)) != ssize_t(n))
            throw Error{kFailed, std::string("reading process memory: ") + strerror(errno)};
          pwrite_all(out, buf.data(), n, r.data_off + done);
          done += n;
        }
        fresh += r.len / kPage;
      }
    seized.detach();
    double paused = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    // 3. The process runs again: the clean pages from the previous image, checksums, commit.
    for (size_t i = 0; i < img.vmas.size(); i++)
      for (size_t k = 0; k < img.vmas[i].runs.size(); k++)
        if (srcs[i][k].prev) {
          const Run& r = img.vmas[i].runs[k];
          copy_range(prev_fd, srcs[i][k].prev_off, out, r.data_off, r.len);
          reused += r.len / kPage;
        }
    for (auto& v : img.vmas) {
      XXH64_state_t* st = XXH64_createState();
      XXH64_reset(st, 0);
      for (const auto& r : v.runs)
        for (uint64_t done = 0; done < r.len;) {
          size_t n = size_t(std::min<uint64_t>(r.len - done, buf.size()));
          if (pread(out, buf.data(), n, off_t(r.data_off + done)) != ssize_t(n)) {
            XXH64_freeState(st);
            throw Error{kFailed, "reading back the image"};
          }
          XXH64_update(st, buf.data(), n);
          done += n;
        }
      v.data_hash = XXH64_digest(st);
      XXH64_freeState(st);
    }
    uint64_t data_end = off;
    std::vector<uint8_t> meta = encode_meta(img);
    Image check;
    std::string why;
    if (decode_meta(meta, data_end, &check, &why))
      throw Error{kFailed, "internal error, the image does not validate: " + why};
    pwrite_all(out, meta.data(), meta.size(), data_end);
    Header h;
    h.data_len = data_end - kHeaderSize;
    h.meta_off = data_end;
    h.meta_len = meta.size();
    h.meta_hash = hash(meta.data(), meta.size());
    std::vector<uint8_t> hb = encode_header(h);
    pwrite_all(out, hb.data(), hb.size(), 0);
    if (fsync(out) < 0) throw Error{kFailed, std::string("fsync: ") + strerror(errno)};
    struct stat st;
    fstat(out, &st);
    close(out);
    out = -1;
    if (rename(tmp.c_str(), store.c_str()) < 0)
      throw Error{kFailed, "rename to " + store + ": " + strerror(errno)};
    std::string dir = store.find('/') == std::string::npos ? "." : store.substr(0, store.rfind('/'));
    if (dir.empty()) dir = "/";
    if (int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
      fsync(dfd);
      close(dfd);
    }
    tr.prev = std::move(img);
    tr.prev_ino = st.st_ino;
    tr.have_prev = tr.usable;
    tr.epoch++;
    if (stats) {
      stats->epoch = tr.epoch;
      stats->bytes = uint64_t(st.st_size);
      stats->total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      stats->threads = tr.prev.threads.size();
      stats->vmas = tr.prev.vmas.size();
      stats->pages = fresh;
      stats->reused = reused;
      stats->stopped_s = paused;
    }
  } catch (...) {
    // The dirty logs taken so far are in no image: the next checkpoint must be a full one.
    tr.reset();
    if (out >= 0) close(out);
    unlink(tmp.c_str());
    throw;
  }
  return kOk;
}

}  // namespace

int wp::checkpoint(const std::string& store, pid_t pid, Tracker* tr, DumpStats* stats,
                   std::string* why) {
  try {
    return do_checkpoint(store, pid, *tr, stats);
  } catch (const Error& e) {
    *why = e.msg;
    return e.code;
  }
}

namespace {

}  // namespace

int wp::dump(const std::string& store, pid_t pid, bool leave_running, DumpStats* stats,
             std::string* why) {
  try {
    return do_dump(store, pid, leave_running, stats, true);
  } catch (const Error& e) {
    *why = e.msg;
    return e.code;
  }
}

void add_dump(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    int pid = 0;
    bool leave_running = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "dump", "Checkpoint a running process (memory, registers, files) into an image; the "
              "process is killed afterwards unless --leave-running");
  sub->add_option("--store", o->store, "image file to write (replaced atomically)")->required();
  sub->add_option("pid", o->pid, "process to dump (you must be allowed to ptrace it)")
      ->required()
      ->check(CLI::PositiveNumber);
  sub->add_flag("--leave-running", o->leave_running, "let the process continue after the dump");
  sub->callback([&run, o] {
    run = [o] {
      try {
        return do_dump(o->store, o->pid, o->leave_running, nullptr, false);
      } catch (const Error& e) {
        std::fprintf(stderr, "ckpt-tool dump: %s\n", e.msg.c_str());
        return e.code;
      }
    };
  });
}

}  // namespace ckpt_tool
