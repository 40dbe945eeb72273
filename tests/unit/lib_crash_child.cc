// SPDX-License-Identifier: MIT
// Child of lib_crash_test: restores whatever the store holds, then checkpoints a deterministic
// function of the iteration number in a loop until it is killed (kill -9 at a random instant).
//   lib_crash_child STORE [READY_FD]   (tracker from CKPT_TRACKER)
// With READY_FD, one byte is written there after the first checkpoint that follows the restore,
// so the parent can place most kills in the checkpoint loop however slow the machine is.
// Exit: never on its own; 2 if the store cannot be opened or restored, 3 if the restored
// state is not the oracle's (the parent checks again independently).
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include "lib_crash_model.hpp"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) return 2;
  int ready_fd = argc == 3 ? atoi(argv[2]) : -1;
  crash_model::State st;
  int r = st.open(argv[1]);
  if (r) {
    fprintf(stderr, "child: open: %s\n", strerror(-r));
    return 2;
  }
  r = ckpt_restore(st.c);
  if (r && r != -ENOENT) {
    fprintf(stderr, "child: restore: %s: %s\n", strerror(-r), ckpt_last_error(st.c));
    return 2;
  }
  std::string why;
  if (!st.verify(&why)) {
    fprintf(stderr, "child: restored state is wrong: %s\n", why.c_str());
    return 3;
  }
  for (;;) {
    if ((r = st.step())) {
      fprintf(stderr, "child: heap allocation failed: %s\n", strerror(-r));
      return 2;
    }
    r = ckpt_checkpoint(st.c);
    if (r) {
      fprintf(stderr, "child: checkpoint: %s: %s\n", strerror(-r), ckpt_last_error(st.c));
      return 2;
    }
    if (ready_fd >= 0) {
      (void)!write(ready_fd, "r", 1);
      close(ready_fd);
      ready_fd = -1;
    }
  }
}
