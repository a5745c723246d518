/* sock.c - address parsing and the listen/connect steps shared by socket ports. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sock.h"
#include "spec.h"
#include "util.h"

int sn_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size == 0)
		return -ENAMETOOLONG;
	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

int sn_fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
#ifdef SO_NOSIGPIPE
	{
		int one = 1;

		setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)); /* fails harmlessly on non-sockets */
	}
#endif
	return 0;
}

int sn_sockaddr_unix(const char *path, struct sn_sockaddr *ret)
{
	struct sn_sockaddr a = {0};

	if (!*path)
		return -EINVAL;
	a.u.un.sun_family = AF_UNIX;
	if (sn_strlcpy(a.u.un.sun_path, path, sizeof(a.u.un.sun_path)) < 0)
		return -ENAMETOOLONG;
	a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
	*ret = a;
	return 0;
}

/* -ERANGE for a port that is not 1 to 65535 in plain decimal digits, -EADDRNOTAVAIL for a host
 * that does not resolve, -EINVAL for anything else wrong. */
static int parse_tcp(const char *hostport, struct sn_sockaddr *ret)
{
	char host[256], service[8];
	const char *port;
	unsigned num;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
	int r;

	if (hostport[0] == '[') {
		const char *end = strchr(hostport, ']');

		if (!end || end[1] != ':' || (size_t)(end - hostport - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, hostport + 1, (size_t)(end - hostport - 1));
		host[end - hostport - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(hostport, ':');

		if (!colon || (size_t)(colon - hostport) >= sizeof(host))
			return -EINVAL;
		memcpy(host, hostport, (size_t)(colon - hostport));
		host[colon - hostport] = '\0';
		port = colon + 1;
	}
	/* getaddrinfo() would take "+80" or " 80", and wrap 4294967297 to 1 */
	if (sn_parse_uint(port, 1, 65535, &num) < 0)
		return -ERANGE;
	snprintf(service, sizeof(service), "%u", num);
	r = getaddrinfo(*host ? host : NULL, service, &hints, &res);
	if (r != 0)
		return -EADDRNOTAVAIL;
	memcpy(&ret->u.ss, res->ai_addr, res->ai_addrlen);
	ret->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int sn_sockaddr_parse(const char *text, const char *key, bool bare_path, struct sn_sockaddr *ret,
		      struct sn_error *err)
{
	int r;

	memset(ret, 0, sizeof(*ret));
	if (!strncmp(text, "unix:", 5))
		r = sn_sockaddr_unix(text + 5, ret);
	else if (!strncmp(text, "tcp:", 4))
		r = parse_tcp(text + 4, ret);
	else if (bare_path)
		r = sn_sockaddr_unix(text, ret);
	else
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want unix:PATH or tcp:HOST:PORT",
				    text, key);
	if (r == -ENAMETOOLONG)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': path longer than %zu bytes", text,
				    key, sizeof(ret->u.un.sun_path) - 1);
	if (r == -ERANGE)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': port must be 1 to 65535", text, key);
	if (r == -EADDRNOTAVAIL)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': host not found", text, key);
	if (r < 0)
		return sn_error_set(err, -EINVAL, "bad value '%s' for key '%s': want %s", text, key,
				    bare_path ? "a socket path" : "unix:PATH or tcp:HOST:PORT");
	return 0;
}

void sn_sockaddr_format(const struct sn_sockaddr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	switch (a->u.sa.sa_family) {
	case AF_UNIX:
		snprintf(buf, len, "unix:%s", a->len > offsetof(struct sockaddr_un, sun_path) && a->u.un.sun_path[0]
						      ? a->u.un.sun_path : "(unnamed)");
		break;
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->u.ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "tcp:%s:%u", host, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->u.ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "tcp:[%s]:%u", host, ntohs(in6->sin6_port));
		break;
	}
	default:
		snprintf(buf, len, "?");
	}
}

static int new_socket(int family, int type)
{
	int fd = socket(family, type, 0);

	if (fd < 0)
		return -errno;
	if (sn_fd_nonblock(fd) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

/* ---- socket file permissions ---- */

static int parse_mode(const char *v, unsigned *ret)
{
	size_t n = strlen(v);
	unsigned long m;

	if (n == 0 || n > 4 || strspn(v, "01234567") != n)
		return -EINVAL;
	m = strtoul(v, NULL, 8);
	if (m > 0777 || (m & 0600) != 0600)
		return -EINVAL;
	*ret = (unsigned)m;
	return 0;
}

/* -EINVAL for a malformed value, -ENOENT for a name no group has. */
static int parse_group(const char *v, gid_t *ret)
{
	struct group gr, *found = NULL;
	size_t size = 1024;
	unsigned n;
	int r;

	if (*v >= '0' && *v <= '9') {
		/* (gid_t)-1 tells chown() to leave the group alone */
		if (sn_parse_uint(v, 0, (unsigned)(gid_t)-1 - 1, &n) < 0)
			return -EINVAL;
		*ret = (gid_t)n;
		return 0;
	}
	if (!*v)
		return -EINVAL;
	for (;;) {
		char *buf = malloc(size);

		if (!buf)
			return -ENOMEM;
		r = getgrnam_r(v, &gr, buf, size, &found);
		if (r == 0 && found)
			*ret = gr.gr_gid;
		free(buf);
		if (r != ERANGE || size >= (1u << 20))
			break;
		size *= 4;
	}
	if (r == 0 && !found)
		return -ENOENT;
	return r ? -r : 0;
}

int sn_sock_perm_from_spec(struct sn_spec *spec, const struct sn_sockaddr *bound, const char *bound_key,
			   struct sn_sock_perm *ret, struct sn_error *err)
{
	const char *mode = sn_spec_get(spec, "mode");
	const char *group = sn_spec_get(spec, "group");
	const char *key = mode ? "mode" : "group";
	struct sn_sock_perm p = {.mode = SN_SOCK_MODE_DEFAULT};
	int r;

	if (!mode && !group) {
		*ret = p;
		return 0;
	}
	if (!bound)
		return sn_error_set(err, -EINVAL,
				    "key '%s' is for a unix socket file the port creates, and this one creates none", key);
	if (!sn_sockaddr_is_unix(bound))
		return sn_error_set(err, -EINVAL, "key '%s' is for unix socket files, and '%s' is a TCP address", key,
				    bound_key);
	if (mode && parse_mode(mode, &p.mode) < 0)
		return sn_error_set(err, -EINVAL,
				    "bad value '%s' for key 'mode': want octal permissions up to 0777 that keep read "
				    "and write for the owner, e.g. 0660", mode);
	if (group) {
		r = parse_group(group, &p.gid);
		if (r == -ENOENT)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'group': no such group", group);
		if (r < 0)
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'group': want a group name or number%s%s",
					    group, r == -EINVAL ? "" : ": ", r == -EINVAL ? "" : strerror(-r));
		p.set_gid = true;
	}
	*ret = p;
	return 0;
}

/* chmod() without following a symbolic link that someone put in the socket's place. */
static int chmod_nofollow(const char *path, mode_t mode)
{
	struct stat st;

	if (fchmodat(AT_FDCWD, path, mode, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != ENOTSUP && errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	/* glibc refuses symbolic links this way, and without /proc everything: look first */
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ELOOP;
	return chmod(path, mode) < 0 ? -errno : 0;
}

/* Gives the socket file at @path its group, then its mode: in this order, so the group it
 * had by default never gets the wider mode. */
static int set_perm(const char *path, const struct sn_sock_perm *perm, struct sn_error *err)
{
	mode_t mode = perm ? perm->mode : SN_SOCK_MODE_DEFAULT;
	int r;

	if (perm && perm->set_gid && fchownat(AT_FDCWD, path, (uid_t)-1, perm->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return sn_error_set(err, -errno, "cannot give %s to group %u: %s", path, (unsigned)perm->gid,
				    strerror(errno));
	r = chmod_nofollow(path, mode);
	if (r < 0)
		return sn_error_set(err, r, "cannot set mode %04o on %s: %s", (unsigned)mode, path, strerror(-r));
	return 0;
}

/* bind() for a unix socket: the file it creates is born at most 0600.
 *
 * bind() creates the file with 0777 minus the umask, and Linux has no way to set a socket
 * file's mode before that (fchmod() on the descriptor changes the socket's inode, not the
 * file). Binding in a private directory and renaming the file into place would be free of
 * the umask, but a bound unix socket keeps the name it was bound with: datagram peers would
 * see our frames come from a path that no longer exists and could not answer (gvproxy's
 * vfkit listener answers the address the hello came from). So the umask is made at least 0177
 * around bind() alone. The umask belongs to the process: a file another thread creates in that
 * moment gets a stricter mode than it asked for, never a wider one. The switch's own threads
 * (vmnet's callbacks) create no files; an embedder that creates files from other threads while
 * it adds ports should know. */
static int bind_private(int fd, const struct sn_sockaddr *a)
{
	mode_t old = umask(0177);
	int r;

	if ((old | 0177) != 0177)
		umask(old | 0177); /* keep whatever the old mask took away too */
	r = bind(fd, &a->u.sa, a->len) < 0 ? -errno : 0;
	umask(old);
	return r;
}

/* Decides what to do with an existing file at a unix socket path before binding it. */
/* Whether a @type socket reaches @a: 1 (someone is there, or something other than a dead
 * socket answered), 0 (nobody: the file is left over), -EPROTOTYPE (a socket of another type
 * is there), other -errno from socket(). */
static int probe_live(const struct sn_sockaddr *a, int type)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return -errno;
	r = connect(fd, &a->u.sa, a->len) == 0 ? 1 : errno == ECONNREFUSED || errno == ENOENT ? 0
					      : errno == EPROTOTYPE ? -EPROTOTYPE : 1;
	close(fd);
	return r;
}

static int clear_stale(const struct sn_sockaddr *a, int type, struct sn_error *err)
{
	const char *path = a->u.un.sun_path;
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : sn_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return sn_error_set(err, -EEXIST, "%s exists and is not a socket", path);
	r = probe_live(a, type);
	if (r == -EPROTOTYPE) {
		/* a socket of another type: live, if one of that type can reach it */
		static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};

		for (size_t i = 0; i < SN_ARRAY_SIZE(types) && r != 1; i++)
			if (types[i] != type && probe_live(a, types[i]) == 1)
				r = 1;
	}
	if (r == 1)
		return sn_error_set(err, -EADDRINUSE, "%s is in use by a live process", path);
	if (r < 0 && r != -EPROTOTYPE)
		return sn_error_set(err, r, "socket: %s", strerror(-r));
	if (unlink(path) < 0 && errno != ENOENT)
		return sn_error_set(err, -errno, "cannot remove stale %s: %s", path, strerror(errno));
	return 0;
}

int sn_sock_listen(const struct sn_sockaddr *a, int type, const struct sn_sock_perm *perm, struct sn_error *err)
{
	int fd, r, one = 1;
	char where[160];

	if (sn_sockaddr_is_unix(a)) {
		r = clear_stale(a, type, err);
		if (r < 0)
			return r;
	}
	fd = new_socket(a->u.sa.sa_family, type);
	if (fd < 0)
		return sn_error_set(err, fd, "socket: %s", strerror(-fd));
	if (!sn_sockaddr_is_unix(a))
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sn_sockaddr_format(a, where, sizeof(where));
	r = sn_sockaddr_is_unix(a) ? bind_private(fd, a) : bind(fd, &a->u.sa, a->len) < 0 ? -errno : 0;
	if (r < 0) {
		close(fd);
		return sn_error_set(err, r, "cannot bind %s: %s", where, strerror(-r));
	}
	if (sn_sockaddr_is_unix(a) && (r = set_perm(a->u.un.sun_path, perm, err)) < 0) {
		close(fd);
		unlink(a->u.un.sun_path);
		return r;
	}
	if (type != SOCK_DGRAM && listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		if (sn_sockaddr_is_unix(a))
			unlink(a->u.un.sun_path);
		return sn_error_set(err, r, "cannot listen on %s: %s", where, strerror(-r));
	}
	return fd;
}

int sn_sock_connect(const struct sn_sockaddr *a, int type)
{
	int fd = new_socket(a->u.sa.sa_family, type);

	if (fd < 0)
		return fd;
	if (connect(fd, &a->u.sa, a->len) < 0 && errno != EINPROGRESS) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int sn_sock_connect_result(int fd)
{
	int e = 0;
	socklen_t l = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l) < 0)
		return -errno;
	return -e;
}

void sn_sock_set_sndbuf(int fd, uint64_t bytes)
{
	int v = (int)(bytes > SN_SOCK_BUF_MAX ? SN_SOCK_BUF_MAX : bytes);

	if (v == 0)
		return;
#ifdef SO_SNDBUFFORCE
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) == 0)
		return;
#endif
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}
