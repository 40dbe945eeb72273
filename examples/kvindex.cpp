// SPDX-License-Identifier: MIT
//
// kvindex: a pointer-rich index built in libckpt's persistent heap — a chained hash table that
// grows by rehashing, filled with N key/value records. Every record, bucket array and pointer
// lives in the heap, so a restore brings the structure back at the same address, links intact.
//
//   kvindex --store PATH [--records 200000] [--heap-mib 64] [--every 5000] [--quiet]
//
// Checkpoints every --every inserts (ckpt_hook with every_n). Killed and started again with
// the same arguments, it resumes and prints the same result as an uninterrupted run:
//   result: records=N buckets=B checksum=XXXXXXXXXXXXXXXX
#include <ckpt/ckpt.h>

#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Record {
  Record* next;
  uint64_t key;
  uint64_t value;
  char tag[32];
};

struct Table {
  uint64_t inserted;   // records inserted so far (the program's progress)
  uint64_t nbuckets;
  Record** buckets;
};

uint64_t mix(uint64_t x) {  // splitmix64: distinct, well-spread keys from 0, 1, 2, ...
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

int die(const char* what, int rc, ckpt_t* c) {
  std::fprintf(stderr, "kvindex: %s: %s%s%s\n", what, std::strerror(-rc), c ? " — " : "",
               c ? ckpt_last_error(c) : "");
  return 1;
}

// Doubles the bucket array. All allocation comes from the heap, so a crash in the middle leaves
// the last checkpoint (taken only between inserts) intact.
int grow(ckpt_heap_t* h, Table* t) {
  uint64_t nb = t->nbuckets * 2;
  void* mem;
  if (int rc = ckpt_heap_alloc(h, nb * sizeof(Record*), &mem); rc < 0) return rc;
  auto** nbk = static_cast<Record**>(mem);
  std::memset(nbk, 0, nb * sizeof(Record*));
  for (uint64_t i = 0; i < t->nbuckets; i++) {
    for (Record* r = t->buckets[i]; r;) {
      Record* next = r->next;
      uint64_t b = r->key & (nb - 1);
      r->next = nbk[b];
      nbk[b] = r;
      r = next;
    }
  }
  ckpt_heap_free(h, t->buckets);
  t->buckets = nbk;
  t->nbuckets = nb;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string store;
  uint64_t records = 200000, heap_mib = 64, every = 5000;
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--store" && i + 1 < argc) store = argv[++i];
    else if (a == "--records" && i + 1 < argc) records = std::strtoull(argv[++i], nullptr, 0);
    else if (a == "--heap-mib" && i + 1 < argc) heap_mib = std::strtoull(argv[++i], nullptr, 0);
    else if (a == "--every" && i + 1 < argc) every = std::strtoull(argv[++i], nullptr, 0);
    else if (a == "--quiet") quiet = true;
    else {
      std::fprintf(stderr, "usage: kvindex --store PATH [--records N] [--heap-mib M] [--every K] [--quiet]\n");
      return 2;
    }
  }
  if (store.empty() || every == 0) {
    std::fprintf(stderr, "kvindex: --store is required and --every must be > 0\n");
    return 2;
  }

  ckpt_config_t cfg;
  ckpt_config_init(&cfg);
  cfg.every_n = every;
  cfg.flags |= CKPT_CFG_CREATE;  // an existing empty file or zeroed device becomes a store too
  ckpt_t* c = nullptr;
  if (int rc = ckpt_open(store.c_str(), &cfg, &c); rc < 0) return die("open store", rc, nullptr);
  ckpt_heap_t* h = nullptr;
  if (int rc = ckpt_heap_open(c, "kvindex.heap", heap_mib << 20, nullptr, &h); rc < 0)
    return die("open heap", rc, c);

  Table* t = nullptr;
  int rc = ckpt_restore(c);
  if (rc == 0) {
    void* root;
    ckpt_heap_root(h, &root);
    t = static_cast<Table*>(root);
    if (!t) return die("restored heap has no root", -EIO, c);
    std::printf("resumed at record %" PRIu64 " (epoch %" PRIu64 ")\n", t->inserted, ckpt_epoch(c));
  } else if (rc == -ENOENT) {
    void* mem;
    if ((rc = ckpt_heap_alloc(h, sizeof(Table), &mem)) < 0) return die("alloc", rc, c);
    t = static_cast<Table*>(mem);
    t->inserted = 0;
    t->nbuckets = 1024;
    if ((rc = ckpt_heap_alloc(h, t->nbuckets * sizeof(Record*), &mem)) < 0) return die("alloc", rc, c);
    t->buckets = static_cast<Record**>(mem);
    std::memset(t->buckets, 0, t->nbuckets * sizeof(Record*));
    ckpt_heap_set_root(h, t);
    std::printf("starting: %" PRIu64 " records into a %" PRIu64 " MiB persistent heap\n", records,
                heap_mib);
  } else {
    return die("restore", rc, c);
  }
  std::fflush(stdout);

  while (t->inserted < records) {
    uint64_t i = t->inserted;
    if (i >= t->nbuckets * 2)
      if ((rc = grow(h, t)) < 0) return die("grow", rc, c);
    void* mem;
    if ((rc = ckpt_heap_alloc(h, sizeof(Record), &mem)) < 0) return die("alloc record", rc, c);
    auto* r = static_cast<Record*>(mem);
    r->key = mix(i);
    r->value = mix(r->key);
    std::snprintf(r->tag, sizeof(r->tag), "rec-%" PRIu64, i);
    uint64_t b = r->key & (t->nbuckets - 1);
    r->next = t->buckets[b];
    t->buckets[b] = r;
    t->inserted = i + 1;  // the insert is complete: a consistent point
    rc = ckpt_hook(c);
    if (rc < 0) return die("checkpoint", rc, c);
    if (rc == 1 && !quiet) {
      ckpt_session_stats st;
      ckpt_get_stats(c, &st);
      std::printf("record %" PRIu64 ": checkpoint epoch %" PRIu64 " wrote %" PRIu64 " pages in %.2f ms\n",
                  t->inserted, st.epoch, st.last_pages, st.last_ns / 1e6);
      std::fflush(stdout);
    }
  }
  if ((rc = ckpt_checkpoint(c)) < 0) return die("final checkpoint", rc, c);

  // Verify every key through the links, then checksum the structure in bucket order.
  uint64_t h64 = 1469598103934665603ULL, found = 0;
  for (uint64_t i = 0; i < t->inserted; i++) {
    uint64_t k = mix(i);
    for (Record* r = t->buckets[k & (t->nbuckets - 1)]; r; r = r->next)
      if (r->key == k) {
        if (r->value != mix(k)) return die("corrupt value", -EIO, c);
        found++;
        break;
      }
  }
  if (found != t->inserted) return die("records missing from the index", -EIO, c);
  for (uint64_t b = 0; b < t->nbuckets; b++)
    for (Record* r = t->buckets[b]; r; r = r->next)
      h64 = (h64 ^ r->key ^ (r->value << 1)) * 1099511628211ULL;
  std::printf("result: records=%" PRIu64 " buckets=%" PRIu64 " checksum=%016" PRIx64 "\n",
              t->inserted, t->nbuckets, h64);
  ckpt_close(c);
  return 0;
}
