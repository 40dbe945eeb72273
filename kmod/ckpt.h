/* SPDX-License-Identifier: GPL-2.0 */
/* Internal declarations shared by the files of ckpt.ko. Only non-static symbols carry ckpt_. */
#ifndef CKPT_INTERNAL_H
#define CKPT_INTERNAL_H

#include <linux/mutex.h>
#include <linux/types.h>
#include <linux/ckpt.h>

/* One open file of /dev/ckpt. */
struct ckpt_session {
	struct mutex lock;	/* serialises ioctls of this session; protects the fields below */
	bool api_done;		/* CKPT_IOC_API succeeded; other commands refused before */
};

int ckpt_dev_init(void);
void ckpt_dev_exit(void);

#endif
