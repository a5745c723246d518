/* memguard.c - the SIGBUS guard over guest memory mapped from a front-end's file (memguard.h).
 *
 * Registry: a fixed array of slots, each FREE, BUSY (being filled) or LIVE, plus a high-water
 * mark so the handler scans only slots that were ever used. Writers fill a slot's fields
 * before publishing LIVE (release); the handler reads LIVE (acquire) before the fields. The
 * handler runs on the thread whose access faulted, which is the one that owns and touches
 * that mapping, so it never races with the removal of the slot it matches.
 *
 * Inside the handler only async-signal-safe work: atomic loads and stores, mmap() (a plain
 * system call; it takes no lock in user space), sigaction() and raise(). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>

#include "memguard.h"

enum { SLOT_FREE, SLOT_BUSY, SLOT_LIVE };

struct slot {
	atomic_int state;
	atomic_uintptr_t start, len, page;
	atomic_uintptr_t flag; /* atomic_uint * */
};

static struct slot slots[SN_MEMGUARD_SLOTS];
static atomic_uint high;          /* slots [0, high) may be LIVE */
static atomic_ulong faults;
static atomic_int installed;      /* 0 not yet, 1 being installed, 2 installed */
static struct sigaction prev;     /* what SIGBUS did before */

/* A fault in a guarded mapping: zero pages from the faulting page to the end, flag raised. */
static bool absorb(uintptr_t addr)
{
	unsigned n = atomic_load_explicit(&high, memory_order_acquire);

	for (unsigned i = 0; i < n && i < SN_MEMGUARD_SLOTS; i++) {
		struct slot *s = &slots[i];
		uintptr_t start, len, from;

		if (atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_LIVE)
			continue;
		start = atomic_load_explicit(&s->start, memory_order_relaxed);
		len = atomic_load_explicit(&s->len, memory_order_relaxed);
		if (addr - start >= len)
			continue;
		/* The file is gone from here on, most likely to the end (a shrink); pages before
		 * this one may still be there and keep their contents. */
		from = addr & ~(atomic_load_explicit(&s->page, memory_order_relaxed) - 1);
		if (mmap((void *)from, start + len - from, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
			return false;
		atomic_store((atomic_uint *)atomic_load_explicit(&s->flag, memory_order_relaxed), 1);
		atomic_fetch_add_explicit(&faults, 1, memory_order_relaxed);
		return true;
	}
	return false;
}

/* Not ours: whatever SIGBUS would have done without this module. */
static void pass_on(int sig, siginfo_t *si, void *uc)
{
	bool sent = !si || si->si_code <= 0; /* kill(), sigqueue(), tgkill(): not a fault */

	if (prev.sa_handler == SIG_IGN && sent)
		return;
	if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN) {
		struct sigaction dfl;

		/* a fault cannot be ignored: with the default action back, returning retries the
		 * access, which faults again and ends the process where it happened */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		sigaction(sig, &dfl, NULL);
		if (sent)
			raise(sig); /* blocked while we run, delivered when we return */
		return;
	}
	if (prev.sa_flags & SA_SIGINFO)
		prev.sa_sigaction(sig, si, uc);
	else
		prev.sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	if (!(si && si->si_code == BUS_ADRERR && absorb((uintptr_t)si->si_addr)))
		pass_on(sig, si, uc);
	errno = saved;
}

static int install(void)
{
	int expect = 0;

	if (atomic_load(&installed) == 2)
		return 0;
	if (atomic_compare_exchange_strong(&installed, &expect, 1)) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = on_sigbus;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &prev) < 0) {
			int e = errno;

			atomic_store(&installed, 0);
			return -e;
		}
		atomic_store(&installed, 2);
		return 0;
	}
	while (atomic_load(&installed) == 1) /* another thread is installing it right now */
		sched_yield();
	return atomic_load(&installed) == 2 ? 0 : -EAGAIN;
}

int sn_memguard_add(void *start, size_t len, size_t page, atomic_uint *flag)
{
	int r;

	if (!start || len == 0 || page == 0 || (page & (page - 1)) || !flag)
		return -EINVAL;
	r = install();
	if (r < 0)
		return r;
	for (unsigned i = 0; i < SN_MEMGUARD_SLOTS; i++) {
		struct slot *s = &slots[i];
		int free_state = SLOT_FREE;
		unsigned h;

		if (!atomic_compare_exchange_strong(&s->state, &free_state, SLOT_BUSY))
			continue;
		atomic_store_explicit(&s->start, (uintptr_t)start, memory_order_relaxed);
		atomic_store_explicit(&s->len, len, memory_order_relaxed);
		atomic_store_explicit(&s->page, page, memory_order_relaxed);
		atomic_store_explicit(&s->flag, (uintptr_t)flag, memory_order_relaxed);
		h = atomic_load(&high);
		while (h < i + 1 && !atomic_compare_exchange_weak(&high, &h, i + 1))
			;
		atomic_store_explicit(&s->state, SLOT_LIVE, memory_order_release);
		return (int)i;
	}
	return -ENOSPC;
}

void sn_memguard_remove(int slot)
{
	if (slot < 0 || slot >= SN_MEMGUARD_SLOTS)
		return;
	atomic_store_explicit(&slots[slot].state, SLOT_FREE, memory_order_release);
}

unsigned long sn_memguard_faults(void)
{
	return atomic_load(&faults);
}
