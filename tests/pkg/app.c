/* SPDX-License-Identifier: MIT */
/*
 * A program built against the installed libckpt-dev with nothing but
 * `pkg-config --cflags --libs ckpt` (tests/pkg/deb_test.sh): run once with "save" it registers a
 * region, fills it and checkpoints; run again with "load" (a new process) it restores the region
 * and checks every byte.      app STORE save|load
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS */
#include <ckpt/ckpt.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define LEN (16 * 4096)

int main(int argc, char **argv)
{
	ckpt_t *c;
	struct ckpt_session_stats st;
	unsigned char *p;
	int rc, save;

	if (argc != 3)
		return 2;
	save = !strcmp(argv[2], "save");
	p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	rc = ckpt_open(argv[1], NULL, &c);
	if (rc < 0) {
		fprintf(stderr, "ckpt_open: %s (%s)\n", strerror(-rc), ckpt_open_error());
		return 1;
	}
	rc = ckpt_register(c, "app.data", p, LEN);
	if (rc < 0) {
		fprintf(stderr, "ckpt_register: %s (%s)\n", strerror(-rc), ckpt_last_error(c));
		return 1;
	}
	ckpt_get_stats(c, &st);
	if (save) {
		for (size_t i = 0; i < LEN; i++)
			p[i] = (unsigned char)(i * 7 + 3);
		rc = ckpt_checkpoint(c);
		printf("saved: epoch %llu, tracker %s, writer %s\n",
		       (unsigned long long)ckpt_epoch(c), st.tracker, st.writer);
	} else {
		rc = ckpt_restore(c);
		for (size_t i = 0; rc == 0 && i < LEN; i++)
			if (p[i] != (unsigned char)(i * 7 + 3))
				rc = -EBADMSG;
		printf("restored: epoch %llu, tracker %s: %s\n", (unsigned long long)ckpt_epoch(c),
		       st.tracker, rc ? strerror(-rc) : "every byte as saved");
	}
	ckpt_close(c);
	return rc ? 1 : 0;
}
