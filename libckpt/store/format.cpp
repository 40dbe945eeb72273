// SPDX-License-Identifier: MIT
// libckpt store: checksums and validation of the on-store structures (format.hpp).
#include "format.hpp"

#include <cerrno>
#include <algorithm>
#include <cstddef>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>
#include <xxh_x86dispatch.h>  // Debian's libxxhash exports the dispatching entry points

namespace ckpt::store::fmt {

uint64_t super_csum(const SuperBlock& sb) { return XXH3_64bits(&sb, offsetof(SuperBlock, csum)); }

uint64_t commit_csum(const CommitRecord& cr) {
  return XXH3_64bits(&cr, offsetof(CommitRecord, csum));
}

uint64_t meta_csum(const void* block) {
  // Hash the header up to csum, then the entries: the csum field counts as zero without
  // copying the block.
  const auto* b = static_cast<const uint8_t*>(block);
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  XXH3_64bits_update(&st, b, offsetof(MetaHeader, csum));
  XXH3_64bits_update(&st, b + sizeof(MetaHeader), kBlockSize - sizeof(MetaHeader));
  return XXH3_64bits_digest(&st);
}

uint64_t store_key(const uint8_t uuid[16]) { return XXH3_64bits(uuid, 16) | 1; }

uint64_t tail_csum(const void* slot) {
  const auto* b = static_cast<const uint8_t*>(slot) + kProvOffset;
  ProvenanceHeader h;
  std::memcpy(&h, b, sizeof(h));
  const size_t n = sizeof(h) + std::min<size_t>(h.path_len, kMaxProvPath);
  return XXH3_64bits(b, n) | 1;
}

uint64_t page_hash(const void* page, uint64_t key, uint32_t region, uint64_t index) {
  const uint64_t seed = key ^ (uint64_t(region) << 40) ^ (index * 0x9e3779b97f4a7c15ull);
  // libxxhash's x86 dispatcher: the widest vector unit the CPU has (AVX2/AVX-512), the same
  // value as the SSE2 default. Per 4 KiB page (one run, see store-format.md): 19 GB/s vs 14 on
  // the host; under QEMU TCG, whose SSE2 emulation is slow, about 900 MiB/s vs 180.
  return XXH3_64bits_withSeed_dispatch(page, kBlockSize, seed);
}

int check_super(const void* block, const char** why) {
  SuperBlock sb;
  std::memcpy(&sb, block, sizeof(sb));
  if (sb.magic != kSuperMagic) {
    *why = "no store magic";
    return -ENOENT;
  }
  // The version is read before the checksum: a future layout may checksum differently.
  if (sb.major != kFormatMajor) {
    *why = "store format major version differs from this library's";
    return -EPROTO;
  }
  if (!kFuzzing && super_csum(sb) != sb.csum) {
    *why = "superblock checksum mismatch";
    return -EUCLEAN;
  }
  if (sb.incompat & ~kIncompatKnown) {
    *why = "store uses incompatible features this library does not know";
    return -EPROTO;
  }
  if (sb.block_size != kBlockSize || sb.first_data_block != kFirstDataBlock ||
      sb.commit_block[0] != kCommitBlock[0] || sb.commit_block[1] != kCommitBlock[1]) {
    *why = "superblock geometry is not version 1's";
    return -EUCLEAN;
  }
  return 0;
}

int check_commit(const void* block, const uint8_t uuid[16], const char** why) {
  CommitRecord cr;
  std::memcpy(&cr, block, sizeof(cr));
  if (cr.magic != kCommitMagic) {
    *why = "no commit record";
    return -ENOENT;
  }
  if (!kFuzzing && commit_csum(cr) != cr.csum) {
    *why = "commit record checksum mismatch";
    return -EUCLEAN;
  }
  if (std::memcmp(cr.uuid, uuid, 16) != 0) {
    *why = "commit record of another store";
    return -EUCLEAN;
  }
  if (cr.epoch == 0 || cr.live.epoch != cr.epoch || cr.retained.epoch >= cr.epoch) {
    *why = "commit record epochs inconsistent";
    return -EUCLEAN;
  }
  if (cr.tail_csum != 0) {
    ProvenanceHeader h;
    std::memcpy(&h, static_cast<const uint8_t*>(block) + kProvOffset, sizeof(h));
    if (h.magic != kProvMagic || h.version != 1 || h.path_len > kMaxProvPath ||
        h.build_id_len > kMaxBuildId || (!kFuzzing && tail_csum(block) != cr.tail_csum)) {
      *why = "commit record's provenance damaged";
      return -EUCLEAN;
    }
  }
  return 0;
}

int check_meta(const void* block, uint64_t key, const char** why) {
  MetaHeader h;
  std::memcpy(&h, block, sizeof(h));
  if (h.magic != kMetaMagic || h.store_key != key) {
    *why = "metadata block missing";
    return -EUCLEAN;
  }
  if (!kFuzzing && meta_csum(block) != h.csum) {
    *why = "metadata block checksum mismatch";
    return -EUCLEAN;
  }
  if ((h.kind != kSnapshot && h.kind != kDelta) || h.nslots > kSlotsPerBlock) {
    *why = "metadata block header invalid";
    return -EUCLEAN;
  }
  return 0;
}

void seal_super(SuperBlock* sb) { sb->csum = super_csum(*sb); }
void seal_commit(CommitRecord* cr) { cr->csum = commit_csum(*cr); }
void seal_meta(void* block) {
  auto* h = static_cast<MetaHeader*>(block);
  h->csum = meta_csum(block);
}

}  // namespace ckpt::store::fmt
