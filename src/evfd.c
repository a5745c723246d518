/* evfd.c - is this descriptor an eventfd, and reading one without trusting it (see evfd.h).
 * A kick descriptor that is a regular file is always readable and a socket may be the
 * front-end's own connection: watched, either spins the loop or keeps a dead peer alive, so
 * they are refused where they come in. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evfd.h"

static const char *file_type(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "a regular file";
	case S_IFSOCK:
		return "a socket";
	case S_IFIFO:
		return "a pipe";
	case S_IFDIR:
		return "a directory";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case 0:
		return "an anonymous inode";
	default:
		return "not a file of a known type";
	}
}

int sn_evfd_check(int fd, char *what, size_t len)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(what, len, "not an open descriptor");
		return -EBADF;
	}
#ifdef __linux__
	{
		char path[40], link[64];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		if (n >= 0) {
			link[n] = '\0';
			if (!strcmp(link, "anon_inode:[eventfd]"))
				return 0;
			/* another anonymous inode is best named by its kind; files by their type */
			snprintf(what, len, "%s", (st.st_mode & S_IFMT) == 0 ? link : file_type(st.st_mode));
			return -EINVAL;
		}
	}
	/* no /proc (a minimal container): eventfds are anonymous inodes without a file type */
	if ((st.st_mode & S_IFMT) == 0)
		return 0;
#else
	if (S_ISFIFO(st.st_mode))
		return 0;
#endif
	snprintf(what, len, "%s", file_type(st.st_mode));
	return -EINVAL;
}

int sn_evfd_drain(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));

	if (n > 0)
		return 1; /* a pipe (no eventfds here) may give less than 8 bytes */
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
	return -EPIPE;
}
