// SPDX-License-Identifier: GPL-2.0
/* The alternate signal stack survives and an SA_ONSTACK handler runs on it after restore. */
#include <signal.h>
#include "zdtm.h"

static char altstack[64 * 1024] __attribute__((aligned(16)));
static volatile int on_alt = -1;

static void handler(int sig)
{
	char here;

	(void)sig;
	on_alt = &here >= altstack && &here < altstack + sizeof(altstack);
}

int main(int argc, char **argv)
{
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0 }, got;
	struct sigaction sa = { 0 };

	zdtm_init(argc, argv);
	if (sigaltstack(&ss, NULL))
		return zdtm_fail("sigaltstack");
	sa.sa_handler = handler;
	sa.sa_flags = SA_ONSTACK;
	sigaction(SIGUSR1, &sa, NULL);
	zdtm_ready();
	zdtm_wait_go();
	if (sigaltstack(NULL, &got) || got.ss_sp != altstack || got.ss_size != sizeof(altstack) ||
	    (got.ss_flags & SS_DISABLE))
		return zdtm_fail("sigaltstack differs: sp %p size %zu flags %d", got.ss_sp,
				 got.ss_size, got.ss_flags);
	raise(SIGUSR1);
	if (on_alt != 1)
		return zdtm_fail("the handler did not run on the alternate stack (%d)", on_alt);
	return zdtm_pass();
}
