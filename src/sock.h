/* sock.h - socket addresses as SPECs write them, and listen/connect with the checks every
 * socket port needs (stale unix socket files, non-blocking descriptors). */
#ifndef SN_SOCK_H
#define SN_SOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <squibnet/switch.h>

/* Writes to a vanished peer must fail with EPIPE, never raise SIGPIPE in the embedder. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* Darwin: sockets get SO_NOSIGPIPE instead */
#endif

struct sn_sockaddr {
	union {
		struct sockaddr sa;
		struct sockaddr_un un;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
};

/* "unix:PATH" or "tcp:HOST:PORT" (HOST may be [v6]); with @bare_path a plain PATH is a unix
 * path too. -EINVAL with @err naming @key otherwise. */
int sn_sockaddr_parse(const char *text, const char *key, bool bare_path, struct sn_sockaddr *ret,
		      struct sn_error *err);

/* A unix address for @path; -ENAMETOOLONG when it does not fit sun_path. */
int sn_sockaddr_unix(const char *path, struct sn_sockaddr *ret);

static inline bool sn_sockaddr_is_unix(const struct sn_sockaddr *a)
{
	return a->u.sa.sa_family == AF_UNIX;
}

/* "unix:PATH", "tcp:1.2.3.4:5" or "tcp:[::1]:5". */
void sn_sockaddr_format(const struct sn_sockaddr *a, char *buf, size_t len);

/* Who may use a unix socket file the switch creates: connecting to it, or sending to it, takes
 * write permission on the file. */
struct sn_sock_perm {
	unsigned mode;      /* permission bits: 0600 unless a SPEC says mode= */
	gid_t gid;          /* group= */
	bool set_gid;       /* false: the group the file gets by default */
};

#define SN_SOCK_MODE_DEFAULT 0600

struct sn_spec;

/* Reads mode= (octal, at most 0777, read and write for the owner) and group= (a name or a
 * number) of @spec into @ret, the default 0600 and the process's group when absent. @bound is
 * the address the port will create and @bound_key the key that gave it; NULL when the port
 * creates no socket file. -EINVAL with @err naming the key for a bad value, or for either key
 * on a port that creates no unix socket file; @ret is untouched then. */
int sn_sock_perm_from_spec(struct sn_spec *spec, const struct sn_sockaddr *bound, const char *bound_key,
			   struct sn_sock_perm *ret, struct sn_error *err);

/* A bound (and, for stream and seqpacket, listening) non-blocking socket. A unix path left by
 * a dead process is replaced; one a live process listens on is -EADDRINUSE; a path that is
 * not a socket is -EEXIST. A unix socket file is born 0600, whatever the umask, and gets
 * @perm (NULL: 0600, the default group) before it listens. Returns the descriptor or -errno. */
int sn_sock_listen(const struct sn_sockaddr *a, int type, const struct sn_sock_perm *perm, struct sn_error *err);

/* A non-blocking socket with connect() started: returns the descriptor (the connection may
 * still be in progress) or -errno. */
int sn_sock_connect(const struct sn_sockaddr *a, int type);

/* The send buffer asked for on data connections (sn_switch_config.sock_buf): its default, the
 * cap of TCP's own autotuning, and what a setting may be (0: the kernel's default). */
#define SN_SOCK_BUF_DEFAULT (1u << 20)
#define SN_SOCK_BUF_MIN 4096u
#define SN_SOCK_BUF_MAX (256u << 20)

static inline bool sn_sock_buf_ok(uint64_t bytes)
{
	return bytes == 0 || (bytes >= SN_SOCK_BUF_MIN && bytes <= SN_SOCK_BUF_MAX);
}

/* Asks for a send buffer of @bytes on @fd: SO_SNDBUFFORCE where the process may go past
 * net.core.wmem_max, else SO_SNDBUF (which the kernel caps there); 0 does nothing. A refusal
 * leaves the kernel's default, which works, only slower. */
void sn_sock_set_sndbuf(int fd, uint64_t bytes);

/* After a non-blocking connect became writable: 0 or -errno (SO_ERROR). */
int sn_sock_connect_result(int fd);

#endif
