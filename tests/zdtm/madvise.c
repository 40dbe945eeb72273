// SPDX-License-Identifier: GPL-2.0
/* The madvise state the kernel keeps as mapping flags comes back with the memory: a
 * MADV_HUGEPAGE mapping (THP-backed before the dump, so after it too), a MADV_NOHUGEPAGE one
 * (no huge page after it, whatever the system's THP default), MADV_DONTDUMP + MADV_DONTFORK,
 * MADV_WIPEONFORK (a forked child sees zeros there), MADV_SEQUENTIAL, MADV_RANDOM,
 * MADV_MERGEABLE and a MAP_NORESERVE mapping (these four were lost before image format 2.6).
 * Checked in /proc/self/smaps (VmFlags, AnonHugePages) and by the bytes. */
#include <sys/mman.h>
#include <sys/wait.h>
#include "zdtm.h"

#define HUGE (2UL << 20)

struct area {
	const char *name;
	size_t len;
	int advice[2];           /* 0 = none */
	const char *want[2];     /* VmFlags that must be there */
	const char *unwanted;    /* one that must not */
	uint64_t *p;
	int mflags;              /* more mmap flags */
};

static struct area areas[] = {
	{ "hugepage", 4 * HUGE, { MADV_HUGEPAGE, 0 }, { "hg", NULL }, "nh", NULL, 0 },
	{ "nohugepage", 4 * HUGE, { MADV_NOHUGEPAGE, 0 }, { "nh", NULL }, "hg", NULL, 0 },
	{ "dontdump+dontfork", 1 << 20, { MADV_DONTDUMP, MADV_DONTFORK }, { "dd", "dc" }, "wf", NULL, 0 },
	{ "wipeonfork", 1 << 20, { MADV_WIPEONFORK, 0 }, { "wf", NULL }, "dc", NULL, 0 },
	{ "sequential", 1 << 20, { MADV_SEQUENTIAL, 0 }, { "sr", NULL }, "rr", NULL, 0 },
	{ "random", 1 << 20, { MADV_RANDOM, 0 }, { "rr", NULL }, "sr", NULL, 0 },
	{ "mergeable", 1 << 20, { MADV_MERGEABLE, 0 }, { "mg", NULL }, "sr", NULL, 0 },
	{ "noreserve", 1 << 20, { 0, 0 }, { "nr", NULL }, "ac", NULL, MAP_NORESERVE },
};
#define NAREAS (sizeof(areas) / sizeof(areas[0]))

/* The VmFlags line and AnonHugePages (kB) of the mapping that starts at p. */
static int smaps_of(const void *p, char *flags, size_t n, long *huge_kb)
{
	char line[512], start[32];
	int in = 0, found = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	snprintf(start, sizeof(start), "%lx-", (unsigned long)p);
	while (fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ') &&
		    strncmp(line, "VmFlags", 7))
			in = !strncmp(line, start, strlen(start));
		if (!in)
			continue;
		if (!strncmp(line, "AnonHugePages:", 14))
			*huge_kb = strtol(line + 14, NULL, 10);
		if (!strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, n, " %s", line + 8);
			found = 1;
		}
	}
	fclose(f);
	return found ? 0 : -1;
}

static int has_flag(const char *flags, const char *f)
{
	char tok[8];

	snprintf(tok, sizeof(tok), " %s", f);
	for (const char *s = flags; (s = strstr(s, tok)); s++)
		if (s[strlen(tok)] == ' ' || s[strlen(tok)] == '\n' || !s[strlen(tok)])
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	long huge_before[NAREAS] = { 0 };
	char flags[512];
	pid_t pid;
	int st;

	zdtm_init(argc, argv);
	for (size_t a = 0; a < NAREAS; a++) {
		struct area *ar = &areas[a];
		/* Aligned to 2 MiB, so that huge pages can back the mapping. */
		uint8_t *m = mmap(NULL, ar->len + HUGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | ar->mflags, -1, 0);

		if (m == MAP_FAILED)
			return zdtm_fail("mmap");
		ar->p = (uint64_t *)(((uintptr_t)m + HUGE - 1) & ~(HUGE - 1));
		if ((uint8_t *)ar->p > m)
			munmap(m, (uint8_t *)ar->p - m);
		munmap((uint8_t *)ar->p + ar->len, m + ar->len + HUGE - ((uint8_t *)ar->p + ar->len));
		for (int k = 0; k < 2; k++)
			if (ar->advice[k] && madvise(ar->p, ar->len, ar->advice[k]))
				return zdtm_fail("madvise %s: %s", ar->name, strerror(errno));
		for (size_t i = 0; i < ar->len / 8; i++)
			ar->p[i] = zdtm_mix(i * 7 + a);
	}
	for (size_t a = 0; a < NAREAS; a++) {
		long kb = 0;

		if (smaps_of(areas[a].p, flags, sizeof(flags), &kb))
			return zdtm_fail("%s: not in smaps before the dump", areas[a].name);
		huge_before[a] = kb;
	}
	zdtm_ready();
	zdtm_wait_go();

	for (size_t a = 0; a < NAREAS; a++) {
		struct area *ar = &areas[a];
		long kb = 0;

		for (size_t i = 0; i < ar->len / 8; i++)
			if (ar->p[i] != zdtm_mix(i * 7 + a))
				return zdtm_fail("%s: word %zu differs", ar->name, i);
		if (smaps_of(ar->p, flags, sizeof(flags), &kb))
			return zdtm_fail("%s: no mapping at %p after restore", ar->name, (void *)ar->p);
		for (int k = 0; k < 2; k++)
			if (ar->want[k] && !has_flag(flags, ar->want[k]))
				return zdtm_fail("%s: VmFlags lost '%s' (now:%s)", ar->name, ar->want[k],
						 flags);
		if (has_flag(flags, ar->unwanted))
			return zdtm_fail("%s: VmFlags gained '%s' (now:%s)", ar->name, ar->unwanted,
					 flags);
		/* Huge pages before the dump: huge pages after it (the bytes were read in as such). */
		if (ar->advice[0] == MADV_HUGEPAGE && huge_before[a] > 0 && kb == 0)
			return zdtm_fail("%s: %ld kB of THP before the dump, none after", ar->name,
					 huge_before[a]);
		if (ar->advice[0] == MADV_NOHUGEPAGE && kb > 0)
			return zdtm_fail("%s: %ld kB of THP after the restore", ar->name, kb);
	}
	/* The flags act, not only show: a child sees zeros in the wipe-on-fork area. */
	pid = fork();
	if (pid == 0)
		_exit(areas[3].p[1] == 0 && areas[3].p[100] == 0 ? 0 : 1);
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return zdtm_fail("fork");
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return zdtm_fail("wipeonfork: the child saw the parent's bytes");
	return zdtm_pass();
}
