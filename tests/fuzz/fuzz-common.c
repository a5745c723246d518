/* fuzz-common.c - the pieces every fuzz target links: failing an oracle, a silent log, the
 * private directory, the SPEC safety check, and a getaddrinfo() that stays on this machine.
 *
 * getaddrinfo() is defined here so that it takes the place of the C library's in the target
 * executable (the library's parse_tcp() calls it): it asks for numeric hosts only (no DNS, no
 * files, the same answer on every run) and refuses every answer that is not a loopback
 * address, so no fuzzed SPEC can send a packet off the machine. */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <squibnet/log.h>

#include "spec.h"

#include "fuzz.h"
#include "port.h"

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("fuzz: oracle failed: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void __attribute__((format(printf, 2, 0)))
log_discard(enum sn_log_level level, const char *fmt, va_list ap, void *userdata)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
}

static void sigpipe(int sig)
{
	static const char msg[] = "fuzz: oracle failed: SIGPIPE: the library wrote to a vanished peer\n";

	if (write(2, msg, sizeof(msg) - 1) < 0)
		abort();
	abort();
}

void fuzz_init(void)
{
	if (getenv("SN_FUZZ_LOG"))
		sn_log_set_handler(sn_log_stderr, NULL);
	else
		sn_log_set_handler(log_discard, NULL);
	sn_log_set_level(SN_LOG_DEBUG);
	signal(SIGPIPE, sigpipe);
}

static char sandbox[4096];
static int home_fd = -1;

static void clean_dir(void)
{
	DIR *d = opendir(sandbox);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

static void sandbox_remove(void)
{
	clean_dir();
	rmdir(sandbox);
}

void fuzz_sandbox(int *argc, char ***argv)
{
	static char prefix[4096 + 32];
	static char *args[256];
	const char *tmp = getenv("TMPDIR");
	char cwd[4096];

	if (sandbox[0])
		return;
	snprintf(sandbox, sizeof(sandbox), "%s/squibnet-fuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	home_fd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!mkdtemp(sandbox) || home_fd < 0) {
		perror("fuzz: private directory");
		exit(1);
	}
	atexit(sandbox_remove);
	setenv("SQUIBNET_GVPROXY", "no-gvproxy-while-fuzzing", 1);
	if (!argc || !argv || *argc + 2 > (int)(sizeof(args) / sizeof(args[0])) || !getcwd(cwd, sizeof(cwd)))
		return;
	for (int i = 0; i < *argc; i++)
		if (!strncmp((*argv)[i], "-artifact_prefix=", 17) || !strncmp((*argv)[i], "-exact_artifact_path=", 21))
			return;
	snprintf(prefix, sizeof(prefix), "-artifact_prefix=%s/", cwd);
	for (int i = 0; i < *argc; i++)
		args[i] = (*argv)[i];
	args[(*argc)++] = prefix;
	args[*argc] = NULL;
	*argv = args;
}

void fuzz_enter(void)
{
	if (chdir(sandbox) < 0)
		abort();
}

void fuzz_leave(void)
{
	clean_dir();
	if (fchdir(home_fd) < 0)
		abort();
}

bool fuzz_spec_safe(const char *text)
{
	/* ports onto the host's own networks; tunnel ports would send to any address a SPEC names */
	static const char *const host_kinds[] = {"pcap", "tap", "vmnet", "vxlan", "geneve"};
	struct sn_spec spec;

	if (strchr(text, '/'))
		return false;
	if (sn_spec_parse(&spec, text, NULL) < 0)
		return true; /* the switch parses it the same way and refuses it as well */
	for (size_t i = 0; i < sizeof(host_kinds) / sizeof(host_kinds[0]); i++)
		if (!strcmp(spec.kind, host_kinds[i]))
			return false;
	for (unsigned i = 0; i < spec.n; i++)
		if (!strcmp(spec.kv[i].key, "fd"))
			return false;
	return true;
}

static bool loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

int getaddrinfo(const char *restrict node, const char *restrict service, const struct addrinfo *restrict hints,
		struct addrinfo **restrict res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
	struct addrinfo h = {0};
	int r;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	if (!real)
		return EAI_FAIL;
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	h.ai_flags &= ~AI_PASSIVE; /* a wildcard address would be reachable from other machines */
	r = real(node, service, &h, res);
	if (r != 0)
		return r;
	for (const struct addrinfo *a = *res; a; a = a->ai_next) {
		if (!loopback(a->ai_addr)) {
			freeaddrinfo(*res);
			*res = NULL;
			return EAI_NONAME;
		}
	}
	return 0;
}

int fuzz_port_init(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops, const char *name,
		   unsigned mtu)
{
	struct sn_port_conf conf = {.mtu = mtu};

	snprintf(conf.name, sizeof(conf.name), "%s", name);
	return sn_port_init(port, sw, ops, &conf);
}
