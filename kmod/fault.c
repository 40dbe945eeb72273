// SPDX-License-Identifier: GPL-2.0
/*
 * The write-fault hook: an ftrace callback on the entry of handle_mm_fault(vma, address,
 * flags, regs), which sees CPU faults and the faults get_user_pages() takes for the kernel's
 * own writes (read(2) into tracked memory, process_vm_writev, O_DIRECT).
 *
 * The page is logged when the fault *starts*. That alone would race with COLLECT (COLLECT
 * takes the bit while the PTE is still read-only, then the fault makes the PTE writable and
 * every later write of the page goes unseen), so COLLECT and REGISTER take the mmap lock for
 * writing and write-lock each VMA whose pages they protect (ckpt_vma_start_write, pgtable.c):
 * a fault runs handle_mm_fault() under the mmap lock held for reading or, with per-VMA locks
 * (6.4+; Debian's 6.12), under its VMA's lock alone, so it is either entirely before the
 * protection (the bit is set and the PTE writable: COLLECT takes and protects it) or entirely
 * after (its bit is for the next COLLECT). A fault that drops the lock to wait
 * (VM_FAULT_RETRY, or a VMA-locked fault falling back to the mmap lock) re-enters
 * handle_mm_fault() and is logged again.
 *
 * A plain ftrace callback (arguments from the saved registers through ckpt_fregs_arg(), no
 * full pt_regs, no return hook) is the cheapest hook 6.1 offers a module: a kretprobe cost three times as much per
 * fault under TCG. The callback filters in a few loads: a write fault, of an mm that has
 * regions (RCU hash), at an address inside one. The ftrace ops is registered only while a
 * region exists somewhere (and hook_linger_ms after, see below), so processes pay nothing
 * when nobody tracks.
 *
 * THP: a write fault on an empty PMD of an anonymous mapping may map 2 MiB writable at once,
 * and a write to an exclusive read-only huge PMD may make all of it writable: then the whole
 * 2 MiB extent is logged (the next COLLECT splits it and protects 4 KiB pages again).
 *
 * A callback that could not run (ftrace recursion protection) is counted; COLLECT turns a
 * changed count into "every page dirty", see ckpt_fault_missed().
 */
#include <linux/mm.h>
#include <linux/huge_mm.h>
#include <linux/ftrace.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/workqueue.h>
#include <linux/pgtable.h>
#include <linux/trace_recursion.h>
#include "ckpt.h"

static atomic_t fault_missed = ATOMIC_INIT(0);

/* May this fault map (or make writable) a whole PMD? Caller holds the mmap or VMA lock. */
static bool fault_maybe_huge(struct vm_area_struct *vma, unsigned long addr)
{
	unsigned long haddr = addr & HPAGE_PMD_MASK;
	pmd_t *pmdp, pmd;

	if (!vma_is_anonymous(vma) || (vma->vm_flags & VM_NOHUGEPAGE) ||
	    haddr < vma->vm_start || haddr + HPAGE_PMD_SIZE > vma->vm_end)
		return false;
	pmdp = ckpt_pmd_lookup(vma->vm_mm, addr);
	if (!pmdp)
		return true;	/* no PMD table yet: a huge fault can fill it */
	pmd = READ_ONCE(*pmdp);
	return pmd_none(pmd) || pmd_trans_huge(pmd);
}

static void notrace fault_hook(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
			       struct ftrace_regs *fregs)
{
	struct vm_area_struct *vma = (struct vm_area_struct *)ckpt_fregs_arg(fregs, 0);
	unsigned long addr = ckpt_fregs_arg(fregs, 1), start, end;
	unsigned int flags = ckpt_fregs_arg(fregs, 2);
	struct ckpt_mm *cm;
	int bit;

	if (!(flags & FAULT_FLAG_WRITE))
		return;
	bit = ftrace_test_recursion_trylock(ip, parent_ip);
	if (bit < 0) {
		atomic_inc(&fault_missed);
		return;
	}
	rcu_read_lock();
	cm = ckpt_mm_lookup(vma->vm_mm);
	if (cm && ckpt_mm_tracks(cm, addr)) {
		start = addr & PAGE_MASK;
		end = start + PAGE_SIZE;
		if (fault_maybe_huge(vma, addr)) {
			start = addr & HPAGE_PMD_MASK;
			end = start + HPAGE_PMD_SIZE;
		}
		ckpt_mm_log(cm, start, end, vma);
		ckpt_watch_fault(cm, addr);	/* a watched thread's write (watch.c) */
	}
	rcu_read_unlock();
	ftrace_test_recursion_unlock(bit);
}

/*
 * FTRACE_OPS_FL_PERMANENT: while the hook is armed, `sysctl kernel.ftrace_enabled=0` is refused
 * (-EBUSY) instead of silently stopping every callback, and arming with ftrace disabled fails
 * (-EBUSY) instead of succeeding with a callback that never runs. A failed arming fails
 * REGISTER (ckpt_fault_get()).
 */
static struct ftrace_ops fault_ops = {
	.func = fault_hook,
	.flags = FTRACE_OPS_FL_PERMANENT,
};

/*
 * Arming and disarming patch handle_mm_fault()'s first instruction (text_poke_bp: int3, then
 * the call) while every CPU may be faulting through it. That is correct on hardware, but it is
 * the expensive, rare path, and under QEMU's TCG a vCPU once kept executing the stale int3
 * after the patch completed (soft lockup in kprobe_int3_handler). So the last region's removal
 * does not disarm at once: the hook lingers for hook_linger_ms, and a program that registers
 * again (each checkpoint of `ckpt-tool run`, a test suite's many short sessions) finds it
 * armed. Until then untracked faults pay the filter's few loads; after it, nothing.
 */
static unsigned int hook_linger_ms = 2000;
module_param(hook_linger_ms, uint, 0644);
MODULE_PARM_DESC(hook_linger_ms,
		 "keep the fault hook armed this long after the last region is removed (ms)");

/*
 * The linger makes patches rare, not impossible: the bench's repeated `ckpt-tool run`s still
 * arm and disarm every few seconds, and a vCPU of QEMU's TCG was seen once more stuck on the
 * patched entry (soft lockup at handle_mm_fault+0x0, the sleeping bytes already back to the
 * nop). hook_stay_armed=1 arms the hook once, at load, and keeps it until unload: one patch
 * per boot, at a quiet moment, for the price of the filter's loads on every write fault of
 * every process. The VM harness sets it; on hardware the default (arm on demand) is right.
 */
static bool hook_stay_armed;
module_param(hook_stay_armed, bool, 0444);
MODULE_PARM_DESC(hook_stay_armed,
		 "arm the fault hook at load and keep it until unload (for emulators that mishandle kernel text patching)");

static DEFINE_MUTEX(hook_lock);	/* protects hook_users, hook_armed and the registration */
static unsigned long hook_users;	/* regions that exist, all sessions */
static bool hook_armed;		/* fault_ops is registered */

static void hook_disarm(struct work_struct *work)
{
	mutex_lock(&hook_lock);
	if (!hook_users && hook_armed) {
		unregister_ftrace_function(&fault_ops);
		hook_armed = false;
	}
	mutex_unlock(&hook_lock);
}
static DECLARE_DELAYED_WORK(hook_disarm_work, hook_disarm);

/* A region is about to exist: arm the hook if it is not. Returns 0 or -errno (not armed). */
int ckpt_fault_get(void)
{
	int ret = 0;

	mutex_lock(&hook_lock);
	if (!hook_armed) {
		ret = register_ftrace_function(&fault_ops);
		hook_armed = !ret;
	}
	if (!ret)
		hook_users++;
	mutex_unlock(&hook_lock);
	return ret;
}

void ckpt_fault_put(void)
{
	mutex_lock(&hook_lock);
	if (!--hook_users && !hook_stay_armed)
		mod_delayed_work(system_wq, &hook_disarm_work,
				 msecs_to_jiffies(READ_ONCE(hook_linger_ms)));
	mutex_unlock(&hook_lock);
}

int ckpt_fault_missed(void)
{
	return atomic_read(&fault_missed);
}

int ckpt_fault_init(void)
{
	static char name[] = "handle_mm_fault";
	int ret = ftrace_set_filter(&fault_ops, name, sizeof(name) - 1, 1);

	if (ret) {
		pr_err("ckpt: cannot hook handle_mm_fault: %d\n", ret);
		return ret;
	}
	if (hook_stay_armed) {
		ret = register_ftrace_function(&fault_ops);
		if (ret) {
			pr_err("ckpt: cannot arm the fault hook: %d\n", ret);
			ftrace_free_filter(&fault_ops);
			return ret;
		}
		hook_armed = true;
	}
	return 0;
}

void ckpt_fault_exit(void)
{
	/* No region exists any more (every session is closed); a lingering hook goes now. */
	cancel_delayed_work_sync(&hook_disarm_work);
	hook_disarm(NULL);
	ftrace_free_filter(&fault_ops);
}
