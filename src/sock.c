/* sock.c - address parsing and the listen/connect steps shared by socket ports. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

/* Decides what to do with an existing file at a unix socket path before binding it. */
static int clear_stale(const struct sn_sockaddr *a, int type, struct sn_error *err)
{
	const char *path = a->u.un.sun_path;
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : sn_error_set(err, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return sn_error_set(err, -EEXIST, "%s exists and is not a socket", path);
	fd = socket(AF_UNIX, type, 0);
	if (fd < 0)
		return sn_error_set(err, -errno, "socket: %s", strerror(errno));
	r = connect(fd, &a->u.sa, a->len);
	if (r == 0 || (r < 0 && errno != ECONNREFUSED && errno != ENOENT && errno != EPROTOTYPE)) {
		close(fd);
		return sn_error_set(err, -EADDRINUSE, "%s is in use by a live process", path);
	}
	close(fd);
	if (unlink(path) < 0 && errno != ENOENT)
		return sn_error_set(err, -errno, "cannot remove stale %s: %s", path, strerror(errno));
	return 0;
}

int sn_sock_listen(const struct sn_sockaddr *a, int type, struct sn_error *err)
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
	if (bind(fd, &a->u.sa, a->len) < 0) {
		r = -errno;
		close(fd);
		return sn_error_set(err, r, "cannot bind %s: %s", where, strerror(-r));
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
