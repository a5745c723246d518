/* evfd.h - the notification descriptors a VMM hands a virtio device (kick, call, err): checked
 * to be eventfds before the loop watches or writes them, and read so that a descriptor that
 * misbehaves anyway is noticed instead of spinning the loop. */
#ifndef SN_EVFD_H
#define SN_EVFD_H

#include <stddef.h>

/* Consecutive wake-ups of a kick watcher without a successful read before it is given up: an
 * eventfd is readable only while its counter is non-zero, so this never happens to a working
 * one (a front-end that reads its own kick eventfd could make it happen now and then). */
#define SN_EVFD_IDLE_WAKEUPS_MAX 64

/**
 * Whether @fd is an eventfd. Returns 0 when it is; -EBADF when @fd is not open; -EINVAL when
 * it is something else, with what it is written into @what ("a regular file", "a socket",
 * "anon_inode:[timerfd]"...). On Linux /proc/self/fd tells (anon_inode:[eventfd]); without
 * /proc any anonymous inode passes and files, sockets, pipes and devices are refused. Where
 * there are no eventfds (not Linux) a pipe is what a VMM has, and a pipe passes.
 */
int sn_evfd_check(int fd, char *what, size_t len);

/**
 * Reads kick descriptor @fd once (an eventfd read takes the whole counter). Returns 1 after a
 * read, 0 when there was nothing to read (EAGAIN, EINTR), -errno on an error and -EPIPE at end
 * of file, which an eventfd never gives.
 */
int sn_evfd_drain(int fd);

#endif
