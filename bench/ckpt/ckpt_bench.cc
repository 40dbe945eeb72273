// SPDX-License-Identifier: MIT
// libckpt end-to-end costs, each against the alternative measured in the same run:
//
//   latency     ckpt_checkpoint() latency vs dirty pages (1..10000) of a large region, per
//               tracker (module, uffd, mprotect, full) and per writer (DAX, io_uring file);
//               plus issue 4's check: N dirty pages in a big region vs the same N pages
//               making up a whole region of that size.
//   scaling     latency of a fixed number of dirty pages vs registered size (module, DAX).
//   throughput  Store persist (begin + N x put_page + commit) and restore (read_region) of N
//               pages vs plain memcpy of the same pages, per writer.
//   slowdown    throughput of a memory-bound loop checkpointed at 1, 10, 100 /s (module
//               tracker, DAX, ckpt_hook in the loop) vs the same loop without libckpt.
//
// Runs in the VM (scripts/bench.sh runs it; by hand:
//   scripts/vm/run -- build/cmake/bench/ckpt_bench SECTION --json F [--quick] ...).
// Every figure is repeated (--reps, default 5), reported as median, min, max; repeats of the
// things compared are interleaved so a burst of load on the shared host hits them alike.
// Writes a JSON document {"section":..., "figures":[...], "comparisons":[...]} for
// bench/report.py. Exit status 1 on any failure (a wrong page count, a failed call).
#include <ckpt/ckpt.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_time.hpp"
#include "store.hpp"

namespace {

using bench::now_ns;

using json = nlohmann::json;
constexpr size_t kPage = 4096;

struct Stats {
  double median = 0, min = 0, max = 0;
  size_t n = 0;
};

Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

[[noreturn]] void die(const std::string& what) { throw std::runtime_error(what); }

void check(int ret, const std::string& what, ckpt_t* c = nullptr) {
  if (ret >= 0) return;
  die(fmt::format("{}: {}{}{}", what, strerror(-ret), c ? ": " : "", c ? ckpt_last_error(c) : ""));
}

// Anonymous memory, pre-faulted (first-touch cost is not what is measured). THP off unless
// asked: the trackers' per-page behaviour is what is compared.
char* map_anon(size_t len, bool thp) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die(fmt::format("mmap {} bytes: {}", len, strerror(errno)));
  madvise(p, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  std::mt19937_64 rng(len);
  for (size_t off = 0; off < len; off += 8) *reinterpret_cast<uint64_t*>(static_cast<char*>(p) + off) = rng();
  return static_cast<char*>(p);
}

// Bytes of [addr, addr+len) backed by transparent huge pages: AnonHugePages of the mapping
// that contains addr (/proc/self/smaps). Recorded with the THP figures, so a "THP-backed" figure
// says how much of the region really was.
uint64_t anon_huge_bytes(const void* addr) {
  std::ifstream f("/proc/self/smaps");
  std::string line;
  uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  bool in = false;
  while (std::getline(f, line)) {
    unsigned long lo, hi;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find('-')) {
      in = a >= lo && a < hi;
      continue;
    }
    unsigned long kb;
    if (in && std::sscanf(line.c_str(), "AnonHugePages: %lu kB", &kb) == 1) return uint64_t(kb) << 10;
  }
  return 0;
}

uint64_t minor_faults() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

struct Out {
  json figures = json::array();
  json comparisons = json::array();

  void figure(const std::string& name, const std::string& unit, const std::vector<double>& v,
              json params = json::object()) {
    Stats s = stats_of(v);
    figures.push_back({{"name", name}, {"unit", unit}, {"median", s.median}, {"min", s.min},
                       {"max", s.max}, {"n", s.n}, {"samples", v}, {"params", params}});
  }
  // ratio = median(num) / median(den); the spread is that of the per-repeat ratios.
  // target: the ratio must be >= limit (at_most false) or <= limit (at_most true); no target
  // when limit < 0.
  // paired: num[i] and den[i] were measured side by side (a pair of runs next to each other in
  // time); the ratio is then the median of the per-pair ratios, which a drift of the host's load
  // from pair to pair does not bias.
  void compare(const std::string& name, const std::string& what, const std::vector<double>& num,
               const std::vector<double>& den, double limit, bool at_most, json params = json::object(),
               bool paired = false) {
    std::vector<double> per;
    for (size_t i = 0; i < std::min(num.size(), den.size()); i++) per.push_back(num[i] / den[i]);
    Stats s = stats_of(per);
    double ratio = paired ? s.median : stats_of(num).median / stats_of(den).median;
    json j = {{"name", name}, {"unit", "ratio"}, {"what", what}, {"median", s.median},
              {"min", s.min}, {"max", s.max}, {"n", s.n}, {"ratio", ratio}, {"params", params}};
    if (limit >= 0) {
      bool met = at_most ? ratio <= limit : ratio >= limit;
      j["target"] = fmt::format("{} {}", at_most ? "<=" : ">=", limit);
      j["met"] = met;
      fmt::print("  {:<60} {:9.3f}  target {} {} -> {}\n", name, ratio, at_most ? "<=" : ">=", limit,
                 met ? "met" : "NOT MET");
    } else {
      fmt::print("  {:<60} {:9.3f}\n", name, ratio);
    }
    comparisons.push_back(j);
  }
};

// slowdown --async: sessions use CKPT_CFG_ASYNC (the program is held only for the collect; the
// epoch is persisted in the background), and the figures are named "module-async".
bool g_async = false;

const char* tracker_name(uint32_t t) {
  switch (t) {
    case CKPT_TRACKER_MODULE: return "module";
    case CKPT_TRACKER_UFFD: return "uffd";
    case CKPT_TRACKER_MPROTECT: return "mprotect";
    case CKPT_TRACKER_FULL: return "full";
  }
  return "?";
}

std::vector<double> g_open_ms;  // ckpt_open (format) times: not a figure, a note on run length
// The 4 KiB-page latency samples per (tracker, writer), for the THP variant's ratios.
std::map<std::pair<uint32_t, std::string>, std::vector<std::vector<double>>> g_latency_4k;

struct Target {
  std::string writer;  // "dax" or "io_uring"
  std::string path;
};

// A session on `t` with one tracker, the store formatted afresh.
ckpt_t* open_session(const Target& t, uint32_t tracker, uint64_t interval_ms = 0) {
  if (t.writer != "dax") std::filesystem::remove(t.path);
  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.tracker = tracker;
  cfg.writer = t.writer == "dax" ? CKPT_WRITER_DAX : CKPT_WRITER_URING;
  cfg.flags = CKPT_CFG_FORMAT | (g_async ? CKPT_CFG_ASYNC : 0);
  cfg.interval_ms = interval_ms;
  ckpt_t* c = nullptr;
  double t0 = now_ns();
  int r = ckpt_open(t.path.c_str(), &cfg, &c);
  g_open_ms.push_back((now_ns() - t0) / 1e6);
  if (r < 0)
    die(fmt::format("ckpt_open {} (tracker {}, writer {}): {}: {}", t.path, tracker_name(tracker), t.writer,
                    strerror(-r), ckpt_open_error()));
  return c;
}

void close_session(ckpt_t* c, const Target& t) {
  check(ckpt_close(c), "ckpt_close");
  if (t.writer != "dax") std::filesystem::remove(t.path);
}

// Write one byte into `n` distinct pages spread evenly over the region, starting at `phase`.
void dirty_pages(char* base, size_t pages, size_t n, size_t phase) {
  size_t stride = pages / n;
  for (size_t i = 0; i < n; i++) {
    volatile char* p = base + ((phase + i * stride) % pages) * kPage;
    *p = *p + 1;
  }
}

// Where one checkpoint's time went (ckpt_session_stats' split, milliseconds).
struct Split {
  double stop = 0, collect = 0, persist = 0;
};

// Time one checkpoint after dirtying n pages; check the tracker reported them.
double timed_checkpoint(ckpt_t* c, char* base, size_t pages, size_t n, size_t phase, uint32_t tracker,
                        Split* split = nullptr) {
  dirty_pages(base, pages, n, phase);
  ckpt_session_stats st0{};
  check(ckpt_get_stats(c, &st0), "ckpt_get_stats");
  double t0 = now_ns();
  check(ckpt_checkpoint(c), "ckpt_checkpoint", c);
  double dt = now_ns() - t0;
  ckpt_session_stats st{};
  check(ckpt_get_stats(c, &st), "ckpt_get_stats");
  if (split) {
    split->stop = (st.total_stop_ns - st0.total_stop_ns) / 1e6;
    split->collect = (st.total_collect_ns - st0.total_collect_ns) / 1e6;
    split->persist = (st.total_persist_ns - st0.total_persist_ns) / 1e6;
  }
  uint64_t want = tracker == CKPT_TRACKER_FULL ? pages : n;
  if (st.last_pages < want)
    die(fmt::format("tracker {} wrote {} pages, {} were dirtied", tracker_name(tracker), st.last_pages, want));
  return dt;
}

// ---- latency ----
void latency(Out& o, const std::vector<Target>& targets, size_t region_mib, std::vector<size_t> dirty,
             int reps, bool thp, const std::vector<uint32_t>& trackers, bool quick) {
  size_t len = region_mib << 20, pages = len / kPage;
  dirty.erase(std::remove_if(dirty.begin(), dirty.end(), [&](size_t d) { return d == 0 || d > pages; }),
              dirty.end());
  char* buf = map_anon(len, thp);
  // The THP variant is named apart ("latency-thp/...") and says how much of the region was
  // huge-page backed when the tracker took it and after its last checkpoint.
  const std::string kind = thp ? "latency-thp" : "latency";
  uint64_t huge0 = anon_huge_bytes(buf);
  if (thp) fmt::print("  THP: {} of {} MiB huge-page backed before registering\n", huge0 >> 20, region_mib);
  std::map<std::pair<uint32_t, std::string>, std::vector<std::vector<double>>> all;
  for (const Target& t : targets) {
    for (uint32_t tr : trackers) {
      // Smoke check: every tracker on the first writer, the module on the others (each session
      // costs seconds to format under TCG).
      if (quick && &t != &targets.front() && tr != CKPT_TRACKER_MODULE) continue;
      if (thp) {  // a module or userspace session may have split the huge pages: fault them back
        madvise(buf, len, MADV_DONTNEED);
        for (size_t off = 0; off < len; off += kPage) buf[off] = static_cast<char>(off >> 12);
      }
      uint64_t huge_reg = anon_huge_bytes(buf);
      ckpt_t* c = open_session(t, tr);
      check(ckpt_register(c, "big", buf, len), "ckpt_register", c);
      check(ckpt_checkpoint(c), "first checkpoint", c);  // the full copy, not measured
      std::vector<std::vector<double>> ms(dirty.size());
      for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < dirty.size(); i++)
          ms[i].push_back(timed_checkpoint(c, buf, pages, dirty[i], r * 7 + i, tr) / 1e6);
      uint64_t huge_end = anon_huge_bytes(buf);
      close_session(c, t);
      if (thp)
        fmt::print("  THP {:<8}: {} MiB huge-page backed at register, {} MiB after the last checkpoint\n",
                   tracker_name(tr), huge_reg >> 20, huge_end >> 20);
      for (size_t i = 0; i < dirty.size(); i++) {
        Stats s = stats_of(ms[i]);
        fmt::print("  {} {:<8} {:<8} {:>6} dirty of {} pages: {:9.3f} ms (min {:.3f}, max {:.3f})\n", kind,
                   tracker_name(tr), t.writer, dirty[i], pages, s.median, s.min, s.max);
        json p = {{"tracker", tracker_name(tr)}, {"writer", t.writer}, {"dirty_pages", dirty[i]},
                  {"region_bytes", len}, {"thp", thp}};
        if (thp) p["huge_bytes_at_register"] = huge_reg, p["huge_bytes_after"] = huge_end;
        o.figure(fmt::format("{}/{}/{}/dirty={}", kind, tracker_name(tr), t.writer, dirty[i]), "ms", ms[i], p);
      }
      all[{tr, t.writer}] = ms;
      if (thp) {  // against the 4 KiB-page figures of the same tracker and writer, same run
        auto base = g_latency_4k.find({tr, t.writer});
        if (base == g_latency_4k.end()) continue;
        for (size_t i = 0; i < dirty.size() && i < base->second.size(); i++)
          o.compare(fmt::format("latency THP-backed / 4 KiB pages ({}, {}, {} dirty)", tracker_name(tr), t.writer,
                                dirty[i]),
                    "checkpoint latency with the region THP-backed over MADV_NOHUGEPAGE (lower is better)", ms[i],
                    base->second[i], -1, false,
                    {{"tracker", tracker_name(tr)}, {"writer", t.writer}, {"dirty_pages", dirty[i]},
                     {"huge_bytes_at_register", huge_reg}});
      } else {
        g_latency_4k[{tr, t.writer}] = ms;
      }
    }
    if (thp) continue;
    // Each tracker against the module, per dirty count (same run, same region, same writer).
    auto mod = all.find({CKPT_TRACKER_MODULE, t.writer});
    if (mod == all.end()) continue;
    for (uint32_t tr : trackers) {
      auto other = all.find({tr, t.writer});
      if (tr == CKPT_TRACKER_MODULE || other == all.end()) continue;  // not measured (--quick)
      for (size_t i = 0; i < dirty.size(); i++)
        o.compare(fmt::format("latency {} / module ({}, {} dirty)", tracker_name(tr), t.writer, dirty[i]),
                  "checkpoint latency with this tracker over the module's (higher: the module is faster)",
                  other->second[i], mod->second[i], -1, false,
                  {{"tracker", tracker_name(tr)}, {"writer", t.writer}, {"dirty_pages", dirty[i]}});
    }
  }
  munmap(buf, len);
}

// Issue 4: N dirty pages in a big region vs a region of exactly N pages, all dirty. Module
// tracker (what the target is about), both writers; interleaved.
void issue4(Out& o, const std::vector<Target>& targets, size_t big_mib, size_t small_kib, int reps,
            uint32_t tracker) {
  size_t big = big_mib << 20, small = small_kib << 10, n = small / kPage;
  char* b = map_anon(big, false);
  char* s = map_anon(small, false);
  for (const Target& t : targets) {
    ckpt_t* cb = open_session(t, tracker);
    check(ckpt_register(cb, "big", b, big), "ckpt_register big", cb);
    check(ckpt_checkpoint(cb), "first checkpoint (big)", cb);
    // One store at a time (a device-DAX store is the whole device): the big region's repeats
    // in one session, then the small region's in another.
    Target t2 = t;
    if (t.writer != "dax") t2.path += ".small";
    // Spread (the target: the pages anywhere in the region) and contiguous (the same N pages as
    // the small region, at the start of the big one): the difference between the two is the
    // cost of the dirty pages' layout, the rest of the gap to the small region that of its size.
    std::vector<double> big_ms, contig_ms;
    // The split of each (collect: the tracker; persist: the store), printed as medians.
    std::map<std::string, std::vector<Split>> split;
    for (int r = 0; r < reps; r++) {
      Split sp;
      big_ms.push_back(timed_checkpoint(cb, b, big / kPage, n, r * 13, tracker, &sp) / 1e6);
      split["big"].push_back(sp);
      contig_ms.push_back(timed_checkpoint(cb, b, n, n, 0, tracker, &sp) / 1e6);
      split["big_contiguous"].push_back(sp);
    }
    close_session(cb, t);
    ckpt_t* cs = open_session(t2, tracker);
    check(ckpt_register(cs, "small", s, small), "ckpt_register small", cs);
    check(ckpt_checkpoint(cs), "first checkpoint (small)", cs);
    std::vector<double> small_ms;
    for (int r = 0; r < reps; r++) {
      Split sp;
      small_ms.push_back(timed_checkpoint(cs, s, n, n, 0, tracker, &sp) / 1e6);
      split["small"].push_back(sp);
    }
    close_session(cs, t2);
    for (const auto& [what, v] : split) {
      std::vector<double> a, c, d;
      for (const Split& x : v) a.push_back(x.stop), c.push_back(x.collect), d.push_back(x.persist);
      fmt::print("  issue4 {:<8} {:<15} median ms: stop {:.3f}  collect {:.3f}  persist {:.3f}\n", t.writer, what,
                 stats_of(a).median, stats_of(c).median, stats_of(d).median);
    }
    json p = {{"tracker", tracker_name(tracker)}, {"writer", t.writer}, {"dirty_pages", n},
              {"big_region_bytes", big}, {"small_region_bytes", small}};
    o.figure(fmt::format("issue4/{}/{}/big", tracker_name(tracker), t.writer), "ms", big_ms, p);
    o.figure(fmt::format("issue4/{}/{}/small", tracker_name(tracker), t.writer), "ms", small_ms, p);
    o.figure(fmt::format("issue4/{}/{}/big_contiguous", tracker_name(tracker), t.writer), "ms", contig_ms, p);
    o.compare(fmt::format("issue4 {} KiB dirty, contiguous: {} MiB region / {} KiB region ({}, {})", small_kib,
                          big_mib, small_kib, tracker_name(tracker), t.writer),
              "the same pages contiguous at the start of the big region: what the region size alone costs",
              contig_ms, small_ms, -1, true, p);
    o.compare(fmt::format("issue4 {} KiB dirty: {} MiB region / {} KiB region ({}, {})", small_kib, big_mib,
                          small_kib, tracker_name(tracker), t.writer),
              "checkpoint latency, big region over small region (lower is better)", big_ms, small_ms,
              t.writer == "dax" ? 2.0 : -1, true, p);
  }
  munmap(b, big);
  munmap(s, small);
}

// ---- scaling: fixed dirty pages, growing registered size (module tracker, DAX) ----
void scaling(Out& o, const Target& t, const std::vector<size_t>& sizes_mib, size_t n, int reps, uint32_t tracker) {
  for (size_t mib : sizes_mib) {
    size_t len = mib << 20, pages = len / kPage;
    if (n > pages) continue;
    char* buf = map_anon(len, false);
    ckpt_t* c = open_session(t, tracker);
    double t0 = now_ns();
    check(ckpt_register(c, "r", buf, len), "ckpt_register", c);
    double reg_ms = (now_ns() - t0) / 1e6;
    check(ckpt_checkpoint(c), "first checkpoint", c);
    std::vector<double> ms;
    for (int r = 0; r < reps; r++) ms.push_back(timed_checkpoint(c, buf, pages, n, r * 3, tracker) / 1e6);
    close_session(c, t);
    munmap(buf, len);
    Stats s = stats_of(ms);
    fmt::print("  scaling {} {} dirty of {} MiB: {:.3f} ms (register {:.1f} ms)\n", tracker_name(tracker), n, mib,
               s.median, reg_ms);
    o.figure(fmt::format("scaling/{}/{}/region_mib={}", tracker_name(tracker), t.writer, mib), "ms", ms,
             {{"tracker", tracker_name(tracker)}, {"writer", t.writer}, {"dirty_pages", n},
              {"region_bytes", len}, {"register_ms", reg_ms}});
  }
}

// ---- throughput: Store persist / restore vs memcpy ----
// A store of the target's writer, formatted anew (a file target is recreated).
std::unique_ptr<ckpt::store::Store> open_store(const Target& t) {
  namespace st = ckpt::store;
  if (t.writer != "dax") std::filesystem::remove(t.path);
  st::Options opts;
  opts.writer = t.writer == "dax" ? st::Writer::kDax : st::Writer::kUring;
  opts.force_format = true;
  std::string why;
  opts.why = &why;
  std::unique_ptr<st::Store> s;
  int r = st::Store::open(t.path, opts, &s);
  if (r) die(fmt::format("Store::open {}: {}: {}", t.path, strerror(-r), why));
  return s;
}

void throughput(Out& o, const std::vector<Target>& targets, size_t pages, int reps) {
  namespace st = ckpt::store;
  size_t len = pages * kPage;
  char* src = map_anon(len, false);
  char* dst = map_anon(len, false);
  for (const Target& t : targets) {
    std::unique_ptr<ckpt::store::Store> s = open_store(t);
    int r;
    uint32_t id;
    if ((r = s->define_region("tp", len, &id))) die(fmt::format("define_region: {}: {}", strerror(-r), s->last_error()));
    std::vector<double> persist, persist_bulk, restore, cp_in, cp_out;
    // Warm-up, not measured: three epochs, so every block the timed epochs use has been written
    // before (the store reuses the blocks freed two commits back). The first write to a page of
    // an emulated NVDIMM costs a host page fault, which is the emulator's, not the store's.
    for (int w = 0; w < 3; w++) {
      std::unique_ptr<st::Txn> txn;
      if ((r = s->begin(&txn)) || (r = txn->put_pages(id, 0, src, pages)) || (r = txn->commit()))
        die(fmt::format("warm-up: {}: {}", strerror(-r), s->last_error()));
    }
    for (int rep = 0; rep < reps; rep++) {
      for (size_t off = 0; off < len; off += kPage) src[off] = static_cast<char>(rep + off / kPage);
      double t0 = now_ns();
      std::memcpy(dst, src, len);
      cp_in.push_back((now_ns() - t0) / 1e6);
      t0 = now_ns();
      std::unique_ptr<st::Txn> txn;
      if ((r = s->begin(&txn))) die(fmt::format("begin: {}", strerror(-r)));
      for (size_t p = 0; p < pages && !r; p++) r = txn->put_page(id, p, src + p * kPage);
      if (!r) r = txn->commit();
      if (r) die(fmt::format("persist: {}: {}", strerror(-r), s->last_error()));
      persist.push_back((now_ns() - t0) / 1e6);
      // The same with one put_pages of the whole run (what ckpt-tool dump uses).
      for (size_t off = 0; off < len; off += kPage) src[off] = static_cast<char>(rep + 7 + off / kPage);
      t0 = now_ns();
      if ((r = s->begin(&txn))) die(fmt::format("begin: {}", strerror(-r)));
      r = txn->put_pages(id, 0, src, pages);
      if (!r) r = txn->commit();
      if (r) die(fmt::format("persist (put_pages): {}: {}", strerror(-r), s->last_error()));
      persist_bulk.push_back((now_ns() - t0) / 1e6);
      std::memset(dst, 0, len);
      t0 = now_ns();
      std::memcpy(dst, src, len);
      cp_out.push_back((now_ns() - t0) / 1e6);
      std::memset(dst, 0, len);
      t0 = now_ns();
      st::ReadReport rep_;
      if ((r = s->read_region(id, dst, len, &rep_))) die(fmt::format("read_region: {}: {}", strerror(-r), s->last_error()));
      restore.push_back((now_ns() - t0) / 1e6);
      if (std::memcmp(dst, src, len)) die("restored bytes differ from the persisted ones");
    }
    s.reset();
    if (t.writer != "dax") std::filesystem::remove(t.path);
    auto mibs = [&](const std::vector<double>& ms) {
      std::vector<double> v;
      for (double m : ms) v.push_back(len / 1048576.0 / (m / 1e3));
      return v;
    };
    json p = {{"writer", t.writer}, {"pages", pages}, {"bytes", len}};
    o.figure(fmt::format("throughput/{}/persist", t.writer), "MiB/s", mibs(persist), p);
    o.figure(fmt::format("throughput/{}/persist_bulk", t.writer), "MiB/s", mibs(persist_bulk), p);
    o.figure(fmt::format("throughput/{}/memcpy_before_persist", t.writer), "MiB/s", mibs(cp_in), p);
    o.figure(fmt::format("throughput/{}/restore", t.writer), "MiB/s", mibs(restore), p);
    o.figure(fmt::format("throughput/{}/memcpy_before_restore", t.writer), "MiB/s", mibs(cp_out), p);
    double lim = t.writer == "dax" ? 0.5 : -1;
    // Throughput ratio = memcpy time / store time.
    o.compare(fmt::format("persist throughput / memcpy ({}, {} MiB)", t.writer, len >> 20),
              "store begin + put_page x N + commit vs memcpy of the same pages (higher is better)", cp_in,
              persist, lim, false, p);
    o.compare(fmt::format("persist throughput, put_pages / memcpy ({}, {} MiB)", t.writer, len >> 20),
              "store begin + put_pages of the run + commit vs memcpy of the same pages (higher is better)", cp_in,
              persist_bulk, -1, false, p);
    o.compare(fmt::format("restore throughput / memcpy ({}, {} MiB)", t.writer, len >> 20),
              "store read_region vs memcpy of the same pages (higher is better)", cp_out, restore, lim, false, p);
  }
  // What ckpt-tool dump pays in the store for a process image: a store created anew, one big
  // region and 63 small ones defined (a process's mappings), every page put with put_pages,
  // one commit. Define and put are timed apart; the first has no memcpy counterpart.
  for (const Target& t : targets) {
    std::vector<double> define_ms, put_ms, commit_ms, cp;
    for (int rep = 0; rep < reps; rep++) {
      std::unique_ptr<ckpt::store::Store> s = open_store(t);
      int r;
      const size_t small = 4, nsmall = 63, big = pages - small * nsmall;
      std::vector<uint32_t> ids;
      double t0 = now_ns();
      for (size_t i = 0; i <= nsmall && !r; i++) {
        uint32_t id;
        r = s->define_region(fmt::format("vma:{}", i), (i ? small : big) * kPage, &id);
        ids.push_back(id);
      }
      if (r) die(fmt::format("define_region: {}: {}", strerror(-r), s->last_error()));
      define_ms.push_back((now_ns() - t0) / 1e6);
      t0 = now_ns();
      std::unique_ptr<st::Txn> txn;
      if ((r = s->begin(&txn))) die(fmt::format("begin: {}", strerror(-r)));
      for (size_t i = 0, off = 0; i <= nsmall && !r; i++) {
        const size_t n = i ? small : big;
        r = txn->put_pages(ids[i], 0, src + off * kPage, n);
        off += n;
      }
      if (r) die(fmt::format("put_pages: {}: {}", strerror(-r), s->last_error()));
      put_ms.push_back((now_ns() - t0) / 1e6);
      t0 = now_ns();
      if ((r = txn->commit())) die(fmt::format("commit: {}: {}", strerror(-r), s->last_error()));
      commit_ms.push_back((now_ns() - t0) / 1e6);
      s.reset();
      t0 = now_ns();
      std::memcpy(dst, src, len);
      cp.push_back((now_ns() - t0) / 1e6);
    }
    if (t.writer != "dax") std::filesystem::remove(t.path);
    json p = {{"writer", t.writer}, {"pages", pages}, {"bytes", len}, {"regions", 64}};
    o.figure(fmt::format("dump_store/{}/define_regions", t.writer), "ms", define_ms, p);
    o.figure(fmt::format("dump_store/{}/put_pages", t.writer), "ms", put_ms, p);
    o.figure(fmt::format("dump_store/{}/commit", t.writer), "ms", commit_ms, p);
    std::vector<double> total;
    for (size_t i = 0; i < define_ms.size(); i++) total.push_back(define_ms[i] + put_ms[i] + commit_ms[i]);
    fmt::print("  dump_store {:<8}: define {:.1f} ms, put_pages {:.1f} ms, commit {:.1f} ms (medians, {} MiB, 64 regions)\n",
               t.writer, stats_of(define_ms).median, stats_of(put_ms).median, stats_of(commit_ms).median, len >> 20);
    o.compare(fmt::format("dump into a new store / memcpy ({}, {} MiB, 64 regions)", t.writer, len >> 20),
              "memcpy time over define_region x 64 + put_pages + commit on a store created anew (higher is better)",
              cp, total, -1, false, p);
  }
  munmap(src, len);
  munmap(dst, len);
}

// ---- slowdown of a memory-bound loop ----
// One step reads 64 KiB of the working set (sums it) and writes one byte into a page of the
// current write window (1% of the pages); the window moves on after each checkpoint (without
// libckpt: every 1/rate seconds), so each interval dirties at most 1% of the pages.
//
// Making the baseline comparable (the previous version measured 1/s at 123% of its baseline):
//  - each checkpointed run has its own baseline run at the same rate (the same window moves,
//    so the same pages are written), and the two are interleaved in each repeat, alternating
//    which goes first, with the order of the rates rotated from repeat to repeat;
//  - every run, either kind, starts with the same warm-up: one write to every page of the working
//    set. A session that ends leaves its region write-protected (the module and the userspace
//    trackers make a page writable again at its next write fault, not at unregister), so a
//    baseline run that followed a checkpointed one used to pay a minor fault per page it wrote
//    -- more of them than the 1/s run, whose window moves ten times less often;
//  - each run records its minor faults, so a difference in faults shows in the results.
struct LoopResult {
  double steps_per_s = 0;
  double ckpts_per_s = 0;
  double pages_per_ckpt = 0;
  double ckpt_fraction = 0;  // share of the run's wall time spent inside checkpoints
  double collect_fraction = 0, persist_fraction = 0;  // its parts (ckpt_session_stats)
  double faults_per_s = 0;   // minor faults
};

uint64_t g_sink;

void warm_up(char* ws, size_t pages) {
  for (size_t p = 0; p < pages; p++) {
    volatile char* q = ws + p * kPage;
    *q = *q;
  }
}

LoopResult run_loop(char* ws, size_t pages, double seconds, double rate, ckpt_t* c) {
  bench::MemLoop lp{reinterpret_cast<unsigned char*>(ws), pages, std::max<size_t>(1, pages / 100)};
  const double interval_ns = 1e9 / rate;
  ckpt_session_stats s0{}, s1{};
  if (c) check(ckpt_get_stats(c, &s0), "ckpt_get_stats");
  uint64_t f0 = minor_faults();
  double t0 = now_ns(), next_move = t0 + interval_ns, end = t0 + seconds * 1e9, t = t0;
  for (;;) {
    lp.step();
    bool moved = false;
    if (c) {
      int r = ckpt_hook(c);
      check(r, "ckpt_hook", c);
      moved = r == 1;
    }
    if ((lp.steps & 15) == 0) {
      t = now_ns();
      if (t >= end) break;
      if (!c && t >= next_move) {
        moved = true;
        next_move += interval_ns;
      }
    }
    if (moved) lp.move_window();
  }
  uint64_t f1 = minor_faults();
  g_sink += lp.sum;
  LoopResult lr;
  double dt = (t - t0) / 1e9;
  lr.steps_per_s = lp.steps / dt;
  lr.faults_per_s = (f1 - f0) / dt;
  if (c) {
    check(ckpt_get_stats(c, &s1), "ckpt_get_stats");
    uint64_t n = s1.checkpoints - s0.checkpoints;
    lr.ckpts_per_s = n / dt;
    lr.pages_per_ckpt = n ? double(s1.pages_written - s0.pages_written) / n : 0;
    lr.ckpt_fraction = (s1.total_ns - s0.total_ns) / 1e9 / dt;
    lr.collect_fraction = (s1.total_collect_ns - s0.total_collect_ns) / 1e9 / dt;
    lr.persist_fraction = (s1.total_persist_ns - s0.total_persist_ns) / 1e9 / dt;
  }
  return lr;
}

// ns per ckpt_hook() call when nothing is due: the loop pays it at every step.
double hook_ns(const Target& t, char* ws, size_t len, uint32_t tracker) {
  ckpt_t* c = open_session(t, tracker, 3600 * 1000);
  check(ckpt_register(c, "ws", ws, len), "ckpt_register", c);
  const int n = 200000;
  double t0 = now_ns();
  for (int i = 0; i < n; i++) check(ckpt_hook(c), "ckpt_hook", c);
  double ns = (now_ns() - t0) / n;
  close_session(c, t);
  return ns;
}

// ns per clock_gettime() of `clk`: the precise clock may be a system call in this guest.
double clock_ns(clockid_t clk) {
  const int n = 100000;
  timespec ts;
  double t0 = now_ns();
  for (int i = 0; i < n; i++) clock_gettime(clk, &ts);
  return (now_ns() - t0) / n;
}

void slowdown(Out& o, const Target& t, size_t ws_mib, const std::vector<double>& rates, double seconds, int reps,
              uint32_t tracker) {
  size_t len = ws_mib << 20, pages = len / kPage;
  const std::string mode = std::string(tracker_name(tracker)) + (g_async ? "-async" : "");
  const size_t nr = rates.size();
  char* ws = map_anon(len, false);
  std::vector<std::vector<double>> base(nr), with(nr), achieved(nr), ppc(nr), frac(nr), bfault(nr), cfault(nr),
      cfrac(nr), pfrac(nr);
  for (int r = 0; r < reps; r++) {
    for (size_t k = 0; k < nr; k++) {
      size_t i = (k + r) % nr;
      for (int side = 0; side < 2; side++) {
        bool ckpt = (side + r + k) % 2 == 1;
        warm_up(ws, pages);
        if (!ckpt) {
          LoopResult lr = run_loop(ws, pages, seconds, rates[i], nullptr);
          base[i].push_back(lr.steps_per_s);
          bfault[i].push_back(lr.faults_per_s);
          continue;
        }
        ckpt_t* c = open_session(t, tracker, static_cast<uint64_t>(1000 / rates[i]));
        check(ckpt_register(c, "ws", ws, len), "ckpt_register", c);
        check(ckpt_checkpoint(c), "first checkpoint", c);
        LoopResult lr = run_loop(ws, pages, seconds, rates[i], c);
        close_session(c, t);
        with[i].push_back(lr.steps_per_s);
        achieved[i].push_back(lr.ckpts_per_s);
        ppc[i].push_back(lr.pages_per_ckpt);
        frac[i].push_back(lr.ckpt_fraction);
        cfrac[i].push_back(lr.collect_fraction);
        pfrac[i].push_back(lr.persist_fraction);
        cfault[i].push_back(lr.faults_per_s);
      }
    }
  }
  std::vector<double> hook, clk, coarse;
  for (int r = 0; r < std::max(1, std::min(reps, 3)); r++) {
    hook.push_back(hook_ns(t, ws, len, tracker));
    clk.push_back(clock_ns(CLOCK_MONOTONIC));
    coarse.push_back(clock_ns(CLOCK_MONOTONIC_COARSE));
  }
  munmap(ws, len);
  auto mibs = [](const std::vector<double>& steps) {
    std::vector<double> v;
    for (double s : steps) v.push_back(s * 16 * kPage / 1048576.0);
    return v;
  };
  json p0 = {{"working_set_bytes", len}, {"seconds_per_run", seconds}, {"write_window_pages", pages / 100},
             {"tracker", tracker_name(tracker)}, {"writer", t.writer},
             {"async", g_async}};
  o.figure(fmt::format("slowdown/{}/{}/hook_ns", mode, t.writer), "ns", hook, p0);
  o.figure("slowdown/clock_monotonic_ns", "ns", clk, p0);
  o.figure("slowdown/clock_monotonic_coarse_ns", "ns", coarse, p0);
  for (size_t i = 0; i < nr; i++) {
    json p = p0;
    p["rate_per_s"] = rates[i];
    std::string pre = fmt::format("slowdown/{}/{}/rate={}", mode, t.writer, rates[i]);
    o.figure(fmt::format("slowdown/baseline{}/rate={}", g_async ? "-async" : "", rates[i]), "MiB/s read", mibs(base[i]), p);
    o.figure(fmt::format("slowdown/baseline{}/rate={}/faults_per_s", g_async ? "-async" : "", rates[i]), "faults/s", bfault[i], p);
    o.figure(pre, "MiB/s read", mibs(with[i]), p);
    o.figure(pre + "/achieved_rate", "checkpoints/s", achieved[i], p);
    o.figure(pre + "/pages_per_checkpoint", "pages", ppc[i], p);
    o.figure(pre + "/checkpoint_time_fraction", "fraction", frac[i], p);
    o.figure(pre + "/collect_time_fraction", "fraction", cfrac[i], p);
    o.figure(pre + "/persist_time_fraction", "fraction", pfrac[i], p);
    o.figure(pre + "/faults_per_s", "faults/s", cfault[i], p);
    o.compare(fmt::format("throughput kept at {}/s ({}, {})", rates[i], mode, t.writer),
              "loop throughput with checkpoints / without, median of paired runs (higher is better)", with[i],
              base[i], rates[i] == 10 ? 0.95 : -1, false, p, true);
    // Load-proof bound: the share of the run's own wall time the loop was not stopped in a
    // checkpoint. A burst of host load stretches both parts alike, so this does not swing with it
    // as the paired throughput ratio does; the throughput kept cannot exceed it (faults come on top).
    std::vector<double> outside;
    for (double x : frac[i]) outside.push_back(1 - x);
    o.figure(pre + "/time_outside_checkpoints", "fraction", outside, p);
    Stats f = stats_of(frac[i]), bf = stats_of(bfault[i]), cf = stats_of(cfault[i]);
    fmt::print("    {}/s: {:.1f}% of the time in checkpoints (collect {:.1f}%, persist {:.1f}%), {:.0f} vs {:.0f} "
               "minor faults/s (baseline), hook {:.0f} ns/call, clock_gettime {:.0f} ns, coarse {:.0f} ns\n",
               rates[i], 100 * f.median, 100 * stats_of(cfrac[i]).median, 100 * stats_of(pfrac[i]).median,
               cf.median, bf.median, stats_of(hook).median, stats_of(clk).median, stats_of(coarse).median);
  }
}

uint32_t parse_tracker(const std::string& s) {
  if (s == "module") return CKPT_TRACKER_MODULE;
  if (s == "uffd") return CKPT_TRACKER_UFFD;
  if (s == "mprotect") return CKPT_TRACKER_MPROTECT;
  if (s == "full") return CKPT_TRACKER_FULL;
  die("unknown tracker " + s + " (module|uffd|mprotect|full)");
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows live through the guest's pipe
  CLI::App app{"libckpt checkpoint, throughput and slowdown benchmarks (run in the VM)"};
  app.require_subcommand(1);
  app.fallthrough();  // the common options may follow the section name
  std::string json_path, dax = "/dev/dax0.0", file = "/mnt/pmem/bench.store";
  bool quick = false, thp = false;
  int reps = 5;
  std::vector<std::string> trackers{"module", "uffd", "mprotect", "full"}, writers{"dax", "io_uring"};
  app.add_option("--json", json_path, "write the results here (JSON)")->required();
  app.add_option("--dax", dax, "DAX store (device-DAX node or a file on a -o dax mount)");
  app.add_option("--file", file, "file store for the io_uring writer");
  app.add_option("--reps", reps, "repeats of each measurement")->check(CLI::Range(1, 1000));
  app.add_option("--trackers", trackers, "trackers to compare")->delimiter(',');
  app.add_option("--writers", writers, "writers to compare (dax, io_uring)")->delimiter(',');
  app.add_flag("--quick", quick, "tiny sizes (smoke check)");
  app.add_flag("--thp", thp, "let the measured regions use transparent huge pages");

  size_t region_mib = 256, tp_pages = 16384, ws_mib = 256, issue4_mib = 1024;
  double seconds = 2;
  std::vector<size_t> dirty{1, 10, 100, 1000, 10000}, sizes{1, 4, 16, 64, 256};
  std::vector<double> rates{1, 10, 100};
  auto* lat = app.add_subcommand("latency", "checkpoint latency vs dirty pages, per tracker and writer");
  lat->add_option("--region-mib", region_mib, "registered region size");
  lat->add_option("--dirty", dirty, "dirty page counts")->delimiter(',');
  lat->add_option("--issue4-mib", issue4_mib, "big region of issue 4's check (1 MiB dirty in it vs in 1 MiB)");
  bool no_thp = false, issue4_only = false;
  lat->add_flag("--no-thp-variant", no_thp, "skip the THP-backed latency variant");
  lat->add_flag("--issue4-only", issue4_only, "only issue 4's check (for measuring it alone)");
  auto* sc = app.add_subcommand("scaling", "latency of 256 dirty pages vs registered size (module, DAX)");
  sc->add_option("--sizes-mib", sizes, "registered sizes")->delimiter(',');
  auto* tp = app.add_subcommand("throughput", "persist and restore throughput vs memcpy");
  tp->add_option("--pages", tp_pages, "pages per persist / restore");
  auto* sd = app.add_subcommand("slowdown", "memory-bound loop at 1, 10, 100 checkpoints/s");
  sd->add_option("--ws-mib", ws_mib, "working set");
  sd->add_option("--seconds", seconds, "length of each run");
  sd->add_option("--rates", rates, "checkpoints per second")->delimiter(',');
  sd->add_flag("--async", g_async, "asynchronous checkpoints (CKPT_CFG_ASYNC), figures named module-async");
  CLI11_PARSE(app, argc, argv);

  if (quick) {
    region_mib = 8, issue4_mib = 8, tp_pages = 512, ws_mib = 8, seconds = 0.2;
    dirty = {1, 10, 100, 1000};
    sizes = {1, 8};
    rates = {10};  // one rate runs every path of the slowdown loop
    reps = 1;
  }
  std::vector<Target> targets;
  for (auto& w : writers) {
    if (w == "dax") targets.push_back({"dax", dax});
    else if (w == "io_uring") targets.push_back({"io_uring", file});
    else {
      fmt::print(stderr, "ckpt_bench: unknown writer {}\n", w);
      return 2;
    }
  }
  Out o;
  std::string section = app.get_subcommands().front()->get_name();
  try {
    std::vector<uint32_t> tr;
    for (auto& s : trackers) tr.push_back(parse_tracker(s));
    fmt::print("ckpt_bench {}: {} repeats{}\n", section, reps, quick ? " (quick)" : "");
    if (section == "latency") {
      if (!issue4_only) latency(o, targets, region_mib, dirty, reps, thp, tr, quick);
      if (!thp && !no_thp && !issue4_only) {
        // THP-backed (the Debian kernel's default is "always"): the trackers that track pages
        // (full copies everything either way), the first writer.
        // The smoke check (--quick) takes the module's only: each session costs seconds there.
        std::vector<uint32_t> tt;
        for (uint32_t x : tr)
          if (x != CKPT_TRACKER_FULL && (!quick || x == CKPT_TRACKER_MODULE)) tt.push_back(x);
        latency(o, {targets.front()}, region_mib, dirty, reps, true, tt, quick);
      }
      // Cheap (a few ms per checkpoint): more repeats than the rest, its ratio sits near its target.
      issue4(o, quick ? std::vector<Target>{targets.front()} : targets, issue4_mib, quick ? 64 : 1024,
             quick ? reps : 2 * reps + 1,
             CKPT_TRACKER_MODULE);
    } else if (section == "scaling") {
      scaling(o, targets.front(), sizes, quick ? 16 : 256, quick ? reps : 2 * reps + 1, CKPT_TRACKER_MODULE);
    } else if (section == "throughput") {
      throughput(o, targets, tp_pages, reps);
    } else if (section == "slowdown") {
      slowdown(o, targets.front(), ws_mib, rates, seconds, reps, CKPT_TRACKER_MODULE);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "ckpt_bench {}: {}\n", section, e.what());
    return 1;
  }
  if (!g_open_ms.empty())
    fmt::print("  (setup, not measured: {} ckpt_open with format, median {:.0f} ms)\n", g_open_ms.size(),
               stats_of(g_open_ms).median);
  json doc = {{"section", section}, {"quick", quick}, {"reps", reps}, {"figures", o.figures},
              {"comparisons", o.comparisons}};
  std::filesystem::path jp(json_path);
  if (jp.has_parent_path()) std::filesystem::create_directories(jp.parent_path());
  std::ofstream(jp) << doc.dump(1) << "\n";
  return 0;
}
