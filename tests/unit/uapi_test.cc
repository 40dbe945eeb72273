// SPDX-License-Identifier: MIT
// Host checks of the ioctl ABI in include/uapi/linux/ckpt.h: the properties the header promises
// (u64-only layouts, directions, distinct numbers) hold for every command.
#include <linux/ckpt.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <set>

namespace {

template <typename T>
constexpr bool only_u64 = sizeof(T) % sizeof(__u64) == 0 && alignof(T) == alignof(__u64);

TEST(Uapi, StructsAreU64Only) {
  static_assert(only_u64<ckpt_api>);
  static_assert(only_u64<ckpt_register>);
  static_assert(only_u64<ckpt_unregister>);
  static_assert(only_u64<ckpt_collect>);
  static_assert(only_u64<ckpt_stats>);
  static_assert(only_u64<ckpt_attach>);
  // Layouts are ABI: fields must not move.
  EXPECT_EQ(offsetof(ckpt_api, api), 0u);
  EXPECT_EQ(offsetof(ckpt_api, features), 8u);
  EXPECT_EQ(offsetof(ckpt_api, reserved), 32u);
  EXPECT_EQ(sizeof(ckpt_api), 64u);
  EXPECT_EQ(offsetof(ckpt_collect, buf), 16u);
  EXPECT_EQ(offsetof(ckpt_collect, seq), 48u);
}

TEST(Uapi, IoctlDirections) {
  // Commands that return data must be _IOWR; commands that only take data _IOW.
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_API), _IOC_READ | _IOC_WRITE);
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_REGISTER), _IOC_READ | _IOC_WRITE);
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_UNREGISTER), static_cast<unsigned>(_IOC_WRITE));
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_COLLECT), _IOC_READ | _IOC_WRITE);
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_STATS), _IOC_READ | _IOC_WRITE);
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_ATTACH), static_cast<unsigned>(_IOC_WRITE));
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_RELEASE), _IOC_READ | _IOC_WRITE);
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_RESTORE_PREPARE), static_cast<unsigned>(_IOC_WRITE));
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_RESTORE_COMMIT), static_cast<unsigned>(_IOC_NONE));
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_RESTORE_THREAD), static_cast<unsigned>(_IOC_WRITE));
  EXPECT_EQ(_IOC_DIR(CKPT_IOC_DUMP_TASK), _IOC_READ | _IOC_WRITE);
}

// API version 2's layouts: the arrays' elements have reserved fields and their size is passed;
// the per-thread state is one struct in both restore commands, where the fields were before.
TEST(Uapi, RestoreLayouts) {
  static_assert(only_u64<ckpt_restore_run>);
  static_assert(only_u64<ckpt_restore_vma>);
  static_assert(only_u64<ckpt_thread_state>);
  static_assert(only_u64<ckpt_restore_prepare>);
  static_assert(only_u64<ckpt_restore_thread>);
  EXPECT_EQ(sizeof(ckpt_restore_run), 32u);
  EXPECT_EQ(offsetof(ckpt_restore_run, reserved), 24u);
  EXPECT_EQ(sizeof(ckpt_restore_vma), 64u);
  EXPECT_EQ(sizeof(ckpt_thread_state), 256u);
  // Version 1 had the same sizes and the thread fields at these offsets.
  EXPECT_EQ(sizeof(ckpt_restore_prepare), 488u);
  EXPECT_EQ(offsetof(ckpt_restore_prepare, thread), 168u);
  EXPECT_EQ(offsetof(ckpt_restore_prepare, vma_size), 424u);
  EXPECT_EQ(sizeof(ckpt_restore_thread), 312u);
  EXPECT_EQ(offsetof(ckpt_restore_thread, self_fd), 256u);
  EXPECT_EQ(_IOC_SIZE(CKPT_IOC_RESTORE_PREPARE), sizeof(ckpt_restore_prepare));
  EXPECT_EQ(_IOC_SIZE(CKPT_IOC_RESTORE_THREAD), sizeof(ckpt_restore_thread));
  EXPECT_EQ(_IOC_SIZE(CKPT_IOC_DUMP_TASK), sizeof(ckpt_dump_task));
}

TEST(Uapi, IoctlNumbersAreDistinctAndSized) {
  const unsigned cmds[] = {CKPT_IOC_API,         CKPT_IOC_REGISTER,        CKPT_IOC_UNREGISTER,
                           CKPT_IOC_COLLECT,     CKPT_IOC_STATS,           CKPT_IOC_ATTACH,
                           CKPT_IOC_RELEASE,     CKPT_IOC_RESTORE_PREPARE, CKPT_IOC_RESTORE_COMMIT,
                           CKPT_IOC_RESTORE_THREAD, CKPT_IOC_DUMP_TASK};
  std::set<unsigned> nrs;
  for (unsigned c : cmds) {
    EXPECT_EQ(_IOC_TYPE(c), static_cast<unsigned>(CKPT_IOC_MAGIC));
    nrs.insert(_IOC_NR(c));
  }
  EXPECT_EQ(nrs.size(), std::size(cmds));
  EXPECT_EQ(_IOC_SIZE(CKPT_IOC_API), sizeof(ckpt_api));
  EXPECT_EQ(_IOC_SIZE(CKPT_IOC_COLLECT), sizeof(ckpt_collect));
  // Every ioctl number must fit the 64-bit ckpt_api.ioctls mask.
  for (unsigned c : cmds) EXPECT_LT(_IOC_NR(c), 64u);
}

}  // namespace
