// SPDX-License-Identifier: MIT
// libckpt store: the on-store format, version 1.2 (Documentation/store-format.md).
//
// Every structure is little-endian, fixed-size and checksummed with XXH3-64. The store is an
// array of 4 KiB blocks:
//   block 0, 1   superblock, two identical copies (written once, at format)
//   block 2, 3   commit slots; epoch E is committed into slot E % 2
//   block 4..    data blocks and metadata blocks, allocated copy-on-write
// Nothing here does I/O: these are the encoders/decoders, shared by the store, the tests and
// the fuzz target. Thread-safe (pure functions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ckpt::store::fmt {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the on-store format is little-endian");

constexpr uint32_t kBlockSize = 4096;
constexpr uint32_t kFormatMajor = 1;  // a store of another major version is refused (-EPROTO)
constexpr uint32_t kFormatMinor = 2;  // newer minors only add fields that were reserved-zero
                                      // or features gated by an incompat bit

constexpr uint64_t kSuperMagic = 0x524f545354504b43ull;   // "CKPTSTOR"
constexpr uint64_t kCommitMagic = 0x54494d4354504b43ull;  // "CKPTCMIT"
constexpr uint64_t kMetaMagic = 0x4154454d54504b43ull;    // "CKPTMETA"

constexpr uint64_t kSuperBlock[2] = {0, 1};
constexpr uint64_t kCommitBlock[2] = {2, 3};
constexpr uint64_t kFirstDataBlock = 4;

constexpr uint32_t kSbGrowable = 1u << 0;  // a file store that grows on demand (flags)
// Set (superblock rewritten, before the first commit that needs it) once a store holds region
// changes: resize/remove/next-id entries and region ids with holes, which a 1.0 reader would
// misread. A store that never resizes or removes a region stays readable by 1.0.
constexpr uint64_t kIncompatRegionChange = 1ull << 0;
constexpr uint64_t kIncompatKnown = kIncompatRegionChange;  // incompat bits this reader understands

constexpr size_t kMaxName = 255;
constexpr uint64_t kMaxRegionBytes = 1ull << 46;  // 64 TiB: page indices fit 34 bits

struct SuperBlock {  // at offset 0 of blocks 0 and 1; the rest of each block is zero
  uint64_t magic;
  uint32_t major;
  uint32_t minor;
  uint32_t block_size;
  uint32_t flags;
  uint64_t incompat;
  uint8_t uuid[16];
  uint64_t commit_block[2];
  uint64_t first_data_block;
  uint64_t created_blocks;
  uint64_t created_ns;
  uint64_t reserved[4];
  uint64_t csum;  // XXH3-64 of the 120 bytes before it
};
static_assert(sizeof(SuperBlock) == 128);

struct EpochRef {  // how to rebuild one epoch's page map
  uint64_t epoch;          // 0 = none
  uint64_t snap_epoch;     // epoch of the snapshot the chain starts from
  uint64_t snap_head;      // first block of the snapshot record
  uint64_t delta_head;     // first block of the newest delta record, 0 = the epoch is the snapshot
  uint64_t chain_records;  // delta records from the snapshot to this epoch
  uint64_t meta_blocks;    // metadata blocks of the whole chain (snapshot + deltas)
  uint64_t nregions;       // regions defined as of this epoch
  uint64_t npages;         // pages mapped as of this epoch
};
static_assert(sizeof(EpochRef) == 64);

struct CommitRecord {  // at offset 0 of a commit slot; the rest of the block is zero
  uint64_t magic;
  uint8_t uuid[16];        // the superblock's: a record left by an earlier format never matches
  uint64_t epoch;          // == live.epoch
  uint64_t total_blocks;   // store size this epoch may reference
  EpochRef live;           // the committed epoch
  EpochRef retained;       // the older epoch kept restorable (its blocks are never reused)
  // Since 1.2: tail_csum() of the provenance after the record in the same slot (the program
  // that committed this epoch), 0 = none (written by 1.1 or older). Covered by csum, so a torn
  // provenance fails the record as a torn record does.
  uint64_t tail_csum;
  // Since 1.2: keyed MAC of the slot (mac.hpp) when the store was written with a key, else 0.
  uint8_t mac[32];
  uint64_t reserved[5];
  uint64_t csum;  // XXH3-64 of the 248 bytes before it
};
static_assert(sizeof(CommitRecord) == 256);

// Since 1.2, at offset 256 of a commit slot (after the record), when the record's tail_csum is
// not 0: who committed the epoch. Then path_len bytes of the executable's path. 1.1 readers
// ignore it (the rest of a slot was zero and unread).
constexpr uint64_t kProvMagic = 0x564f525054504b43ull;  // "CKPTPROV"
constexpr size_t kProvOffset = sizeof(CommitRecord);
constexpr size_t kMaxBuildId = 64;
struct ProvenanceHeader {
  uint64_t magic;
  uint32_t version;       // 1
  uint16_t path_len;      // bytes of the executable path that follow, <= kMaxProvPath
  uint8_t build_id_len;   // bytes of build_id used (the ELF NT_GNU_BUILD_ID note), 0 = none
  uint8_t reserved0;
  uint8_t build_id[kMaxBuildId];
  uint64_t reserved[2];
};
static_assert(sizeof(ProvenanceHeader) == 96);
constexpr size_t kMaxProvPath = kBlockSize - kProvOffset - sizeof(ProvenanceHeader);  // 3744

enum MetaKind : uint32_t { kSnapshot = 1, kDelta = 2 };

struct MetaHeader {  // at offset 0 of a metadata block, followed by 32-byte entry slots
  uint64_t magic;
  uint64_t store_key;    // from the uuid: blocks of another store never match
  uint64_t epoch;
  uint32_t kind;         // MetaKind
  uint32_t nslots;       // used slots in this block
  uint64_t next;         // next block of the same record, 0 = last
  uint64_t prev_record;  // delta: head of the previous delta record, 0 = the snapshot is next
  uint32_t index;        // position of this block in its record
  uint32_t reserved;
  uint64_t csum;  // XXH3-64 of the block with this field taken as zero
};
static_assert(sizeof(MetaHeader) == 64);

constexpr size_t kSlot = 32;
constexpr size_t kSlotsPerBlock = (kBlockSize - sizeof(MetaHeader)) / kSlot;  // 126

enum EntryType : uint16_t {
  kPageEntry = 1,
  kRegionEntry = 2,
  // Since 1.1, only with kIncompatRegionChange:
  kResizeEntry = 3,  // delta only: a region's size changed
  kRemoveEntry = 4,  // delta only: a region was removed
  kNextIdEntry = 5,  // snapshot only, after its region entries: ids below are used (never reused)
};

struct PageEntry {  // one slot: page `page` of `region` lives in `block` with checksum `hash`
  uint16_t type;      // kPageEntry
  uint16_t reserved;
  uint32_t region;
  uint64_t page;
  uint64_t block;
  uint64_t hash;      // page_hash() of the 4 KiB
};
static_assert(sizeof(PageEntry) == kSlot);

struct RegionEntry {  // one slot, then ceil(name_len / 32) slots of name bytes
  uint16_t type;      // kRegionEntry
  uint16_t name_len;  // 1..255
  uint32_t region;    // id, >= 1
  uint64_t size;      // bytes, a multiple of kBlockSize
  uint64_t epoch;     // epoch that defined it
  uint64_t reserved;
};
static_assert(sizeof(RegionEntry) == kSlot);

// One slot. kResizeEntry: pages at and beyond `keep` bytes are dropped, then the region is
// `size` bytes (pages past the old size read as zeros); keep <= min(old size, size) because a
// region shrunk and grown again in one epoch loses the pages it dropped. kRemoveEntry: size and
// keep are zero; the region and its pages are gone, its id is never used again.
// kNextIdEntry: `region` is the next unused id, size and keep are zero. Reserved fields zero.
struct RegionChangeEntry {
  uint16_t type;
  uint16_t reserved;
  uint32_t region;
  uint64_t size;
  uint64_t keep;
  uint64_t reserved2;
};
static_assert(sizeof(RegionChangeEntry) == kSlot);

// Checksums.
uint64_t super_csum(const SuperBlock& sb);
uint64_t commit_csum(const CommitRecord& cr);
uint64_t meta_csum(const void* block);  // over the whole block, csum field as zero
uint64_t store_key(const uint8_t uuid[16]);
// XXH3-64 of the provenance header and path in a commit slot, never 0. `slot` is the 4 KiB slot.
uint64_t tail_csum(const void* slot);
// A page's checksum is seeded with where it belongs, so a block holding another page's bytes
// (a misdirected or stale write) fails as surely as a torn one.
uint64_t page_hash(const void* page, uint64_t key, uint32_t region, uint64_t index);

// Decoding: 0 if valid, else a negative errno and `why` set.
//   -ENOENT  no magic (nothing there)   -EPROTO  another format version / unknown incompat bits
//   -EUCLEAN magic but damaged
int check_super(const void* block, const char** why);
// `block` is the whole 4 KiB slot (the provenance after the record is checked too).
int check_commit(const void* block, const uint8_t uuid[16], const char** why);
int check_meta(const void* block, uint64_t key, const char** why);

// Sealing (used by the writer and by tests that forge well-formed but wrong metadata).
void seal_super(SuperBlock* sb);
void seal_commit(CommitRecord* cr);
void seal_meta(void* block);

// Checks are skipped, not only computed, in fuzzing builds so the fuzzer reaches the parsers.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
constexpr bool kFuzzing = true;
#else
constexpr bool kFuzzing = false;
#endif

}  // namespace ckpt::store::fmt
