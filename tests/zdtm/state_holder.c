// SPDX-License-Identifier: GPL-2.0
/*
 * A process holding one piece of state that ckpt-tool dump does not save, for
 * tests/e2e/vm-tool-refusals.sh (Python cannot stand in: every python3 maps
 * gconv-modules.cache shared, which dump refuses before it looks further).
 *     state_holder READY MODE
 * MODE: plain (nothing), child (a child process that sleeps), msg (a System V message queue
 * it sent to), sem (a System V semaphore set it operated on). For msg and sem the object's id
 * is written to READY.id. Then READY is created and the process sleeps until killed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <unistd.h>

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f)) {
		perror(path);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	char path[4096], id[32] = "";

	if (argc != 3) {
		fprintf(stderr, "usage: %s READY plain|child|msg|sem|subreaper\n", argv[0]);
		return 2;
	}
	if (!strcmp(argv[2], "child")) {
		pid_t c = fork();

		if (c < 0)
			return 2;
		if (c == 0) {
			for (;;)
				pause();
		}
	} else if (!strcmp(argv[2], "msg")) {
		struct {
			long type;
			char text[2];
		} m = { 1, "hi" };
		int q = msgget(IPC_PRIVATE, IPC_CREAT | 0600);

		if (q < 0 || msgsnd(q, &m, sizeof(m.text), 0)) {
			perror("msg");
			return 2;
		}
		snprintf(id, sizeof(id), "%d", q);
	} else if (!strcmp(argv[2], "sem")) {
		struct sembuf op = { 0, 1, 0 };
		int s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);

		if (s < 0 || semop(s, &op, 1)) {
			perror("sem");
			return 2;
		}
		snprintf(id, sizeof(id), "%d", s);
	} else if (!strcmp(argv[2], "subreaper")) {
		if (prctl(PR_SET_CHILD_SUBREAPER, 1)) {
			perror("PR_SET_CHILD_SUBREAPER");
			return 2;
		}
	} else if (strcmp(argv[2], "plain")) {
		fprintf(stderr, "unknown mode %s\n", argv[2]);
		return 2;
	}
	if (*id) {
		snprintf(path, sizeof(path), "%s.id", argv[1]);
		write_file(path, id);
	}
	write_file(argv[1], "");
	for (;;)
		pause();
}
