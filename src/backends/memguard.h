/* memguard.h - surviving SIGBUS in memory mapped from a file that someone else may shrink.
 *
 * A vhost-user front-end shares its guest memory as a file and can ftruncate() it while the
 * back-end has it mapped; the next access past the new end raises SIGBUS, which would kill the
 * whole switch. Mappings registered here are guarded: a SIGBUS (BUS_ADRERR) inside one maps
 * anonymous zero pages over it, from the faulting page to its end, so the faulting access is
 * simply retried and completes, and sets the mapping's flag. The owner checks the flag after
 * touching the memory and stops using it; nothing jumps out of the middle of its code, so no
 * state is left half-updated. Any other SIGBUS goes to the handler that was installed before
 * (or gets the default action, as if this module did not exist).
 *
 * The handler is installed the first time a mapping is registered and stays for the life of
 * the process (later registrations reuse it; an embedder that installs its own SIGBUS handler
 * afterwards must chain to the previous one for the guard to keep working). The registry is a
 * fixed array so that the handler needs no allocation and no lock. Linux only. */
#ifndef SN_BACKENDS_MEMGUARD_H
#define SN_BACKENDS_MEMGUARD_H

#include <stdatomic.h>
#include <stddef.h>

/* Guarded mappings one process may have at a time: 128 vhost-user front-ends with the full 8
 * regions each, or more with fewer. */
#define SN_MEMGUARD_SLOTS 1024

/**
 * Guards [@start, @start + @len), a shared file mapping the caller made; @page is its page size
 * (the huge page size for hugetlbfs; @start and @len are multiples of it). On a fault inside it
 * *@flag is set to 1 (the caller keeps @flag alive until sn_memguard_remove()). Returns a slot
 * number >= 0 for sn_memguard_remove(), -ENOSPC when all SN_MEMGUARD_SLOTS are in use, -EINVAL
 * for an empty range or a @page that is not a power of two, or -errno from sigaction().
 */
int sn_memguard_add(void *start, size_t len, size_t page, atomic_uint *flag);

/** Stops guarding slot @slot (a value sn_memguard_add() returned; negative values are ignored).
 * Call it before munmap(), so the range cannot match a later mapping at the same address. */
void sn_memguard_remove(int slot);

/** How many faults the guard has absorbed in this process so far. */
unsigned long sn_memguard_faults(void);

#endif
