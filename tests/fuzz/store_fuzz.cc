// SPDX-License-Identifier: MIT
// libFuzzer target over the store reader: the input is a store image (any bytes). Opening it,
// listing, reading every region, verifying and committing on top must each succeed or fail
// with -errno — never crash, hang or leak. Built with clang -fsanitize=fuzzer,address as
// `store_fuzz` (tests/fuzz/CMakeLists.txt, where its checksums are skipped so the fuzzer gets
// past them: FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION); the same entry point runs under
// GoogleTest over a deterministic corpus of corrupted stores (tests/unit/store_corrupt_test.cc).
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "medium.hpp"
#include "store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ckpt::store;
  if (size > (64u << 20)) return 0;
  std::vector<uint8_t> img(data, data + size);
  img.resize((size + 4095) & ~size_t(4095), 0);
  MediumInfo info;
  info.path = "fuzz";
  info.device = false;
  std::unique_ptr<Store> s;
  Options o;
  if (open_on_medium(memory_medium(std::move(img), false), info, o, &s) != 0) return 0;
  std::vector<uint8_t> buf;
  for (const RegionInfo& r : s->regions()) {
    buf.resize(r.size);
    ReadReport rep;
    (void)s->read_region(r.id, buf.data(), r.size, &rep);
    (void)s->read_region(r.id, buf.data(), r.size + 4096, &rep);  // wrong size
  }
  VerifyReport vr;
  (void)s->verify(&vr);
  StoreStat st;
  (void)s->stat(&st);
  // Regions that change, on top of what was read: a page range, a resize, a removal.
  const auto regions = s->regions();
  if (!regions.empty()) {
    buf.resize(4096);
    (void)s->read_range(regions[0].id, regions[0].size - 4096, buf.data(), 4096, nullptr);
    std::unique_ptr<Txn> t;
    if (s->begin(&t) == 0) {  // abandoned: the changes stay pending for the next commit
      (void)t->resize_region(regions[0].id, regions[0].size + 4096);
      (void)t->remove_region(regions.back().id);
    }
  }
  // Writing on top of what was read must not trip over it either.
  std::unique_ptr<Txn> t;
  if (s->begin(&t) == 0) {
    std::vector<uint8_t> page(s->page_size(), 0x5a);
    for (const RegionInfo& r : s->regions()) (void)t->put_page(r.id, 0, page.data());
    uint32_t id;
    (void)s->define_region("fuzz-new", 4096, &id);
    (void)t->commit();
  }
  return 0;
}
