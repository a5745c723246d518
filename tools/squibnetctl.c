/* squibnetctl - inspects and changes a running switch through its control socket.
 *
 * The switch knows the commands and renders every reply (tables and JSON alike; see the
 * protocol in src/control.c), so this program stays thin: it sends its arguments, copies the
 * reply body to stdout unchanged (it may be binary and long) and turns an ERR status line into
 * a message on stderr and exit status 1. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <squibnet/squibnet.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define MAGIC "SQUIBNET-CONTROL 1"
#define STATUS_MAX 4096

static bool json;

#define WIDTH 80   /* columns of --help */
#define DESC_COL 30 /* where a command's description starts */

/* Prints @text from column @col, wrapped at blanks to WIDTH with continuation lines at @indent,
 * and ends the line. */
static void wrap(FILE *f, const char *text, int col, int indent)
{
	bool first = true;

	while (*text) {
		int n = (int)strcspn(text, " ");

		if (!first && col + 1 + n > WIDTH) {
			col = fprintf(f, "\n%*s", indent, "") - 1;
			first = true;
		}
		col += fprintf(f, "%s%.*s", first ? "" : " ", n, text);
		first = false;
		text += n;
		text += strspn(text, " ");
	}
	fputc('\n', f);
}

/* One line (or two) per command: its usage, its description from DESC_COL. */
static int print_command(const struct sn_control_command_info *c, void *ctx)
{
	FILE *f = ctx;
	char usage[256];
	int n = snprintf(usage, sizeof(usage), "%s%s%s", c->name, *c->args ? " " : "", c->args);

	if (2 + n + 2 <= DESC_COL) {
		fprintf(f, "  %-*s", DESC_COL - 2, usage);
	} else {
		fputs("  ", f);
		wrap(f, usage, 2, 6);
		fprintf(f, "%*s", DESC_COL, "");
	}
	wrap(f, c->help, DESC_COL, DESC_COL);
	return 0;
}

/* The commands come from the library's own tables, the ones the switch serves, so this list
 * cannot fall behind them; a switch of another version may have others ('squibnetctl help'). */
static void usage(FILE *f)
{
	fprintf(f,
		"usage: squibnetctl [--control PATH] [--json] COMMAND [ARG]...\n"
		"\n"
		"Inspects and changes a running squibnet switch.\n"
		"\n"
		"commands (SPECs as in squibnet --help; 'squibnetctl help' asks the switch):\n");
	sn_control_foreach_command(print_command, f);
	fprintf(f,
		"\n"
		"options, before or after the command ('--' ends them):\n"
		"  -c, --control PATH  the switch's control socket (default:\n"
		"                      $XDG_RUNTIME_DIR/squibnet/control.sock, else\n"
		"                      ./squibnet-control.sock)\n"
		"  -j, --json          JSON output, for scripts\n"
		"  -h, --help          this text\n"
		"  -V, --version       the version\n");
}

/* The daemon's default: $XDG_RUNTIME_DIR/squibnet when that directory exists, else here. */
static void default_control(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (xdg && *xdg && snprintf(buf, len, "%s/squibnet", xdg) < (int)len && stat(buf, &st) == 0 &&
	    S_ISDIR(st.st_mode) && snprintf(buf, len, "%s/squibnet/control.sock", xdg) < (int)len)
		return;
	snprintf(buf, len, "./squibnet-control.sock");
}

/* Only the few errors this side can meet on its own; the switch names its own. */
static const char *errno_name(int e)
{
	switch (e) {
	case ENOENT:
		return "ENOENT";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case EACCES:
		return "EACCES";
	case ENAMETOOLONG:
		return "ENAMETOOLONG";
	case EINVAL:
		return "EINVAL";
	case ENOMEM:
		return "ENOMEM";
	case EPROTO:
		return "EPROTO";
	default:
		return "EIO";
	}
}

static void json_quote(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* A failure found on this side of the socket: the same shape the switch gives its own. */
static int fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int err, const char *fmt, ...)
{
	char msg[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "squibnetctl: %s\n", msg);
	if (json) {
		printf("{\"version\":1,\"error\":{\"code\":\"%s\",\"message\":", errno_name(err));
		json_quote(msg);
		printf("}}\n");
		fflush(stdout);
	}
	return 1;
}

/* `top` screens start with a form feed: on a terminal it clears the screen, elsewhere the screens
 * follow each other (the switch ends each with a blank line). 0: copy the body as it is. */
static enum { FF_KEEP, FF_CLEAR, FF_DROP } form_feed = FF_KEEP;

static int write_all(int fd, const char *p, size_t len, bool sock);

static int write_body(const char *p, size_t len)
{
	static const char clear[] = "\033[H\033[J"; /* cursor home, erase to the end of the screen */
	const char *ff;
	int r;

	while (form_feed != FF_KEEP && (ff = memchr(p, '\f', len))) {
		r = write_all(STDOUT_FILENO, p, (size_t)(ff - p), false);
		if (r == 0 && form_feed == FF_CLEAR)
			r = write_all(STDOUT_FILENO, clear, sizeof(clear) - 1, false);
		if (r < 0)
			return r;
		len -= (size_t)(ff + 1 - p);
		p = ff + 1;
	}
	return write_all(STDOUT_FILENO, p, len, false);
}

static int write_all(int fd, const char *p, size_t len, bool sock)
{
	while (len > 0) {
		ssize_t n = sock ? send(fd, p, len, MSG_NOSIGNAL) : write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"control", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	char defpath[PATH_MAX], status[STATUS_MAX + 1], *req, *nl, *p;
	const char *control = NULL;
	size_t reqlen = sizeof(MAGIC " json\n\n"), have = 0;
	int c, fd, r, nargs;

	/* '+': stop at the command; its arguments are sorted out below */
	while ((c = getopt_long(argc, argv, "+c:jhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			control = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("squibnetctl %s\n", sn_version());
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	/* After the command, the global options are taken out wherever they are (people type
	 * "stats --json"); anything else, '-w' or '--port' included, is the command's, and so is
	 * everything after a '--'. What stays is packed at argv[optind...]. */
	nargs = 0;
	for (int i = optind, opts_end = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!opts_end && !strcmp(a, "--")) {
			opts_end = 1;
		} else if (opts_end || i == optind) {
			argv[optind + nargs++] = argv[i];
		} else if (!strcmp(a, "-j") || !strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "-c") || !strcmp(a, "--control")) {
			if (i + 1 == argc) {
				fprintf(stderr, "squibnetctl: %s needs a PATH\n", a);
				return 2;
			}
			control = argv[++i];
		} else if (!strncmp(a, "--control=", 10)) {
			control = a + 10;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			argv[optind + nargs++] = argv[i];
		}
	}
	argc = optind + nargs;
	if (!control) {
		default_control(defpath, sizeof(defpath));
		control = defpath;
	}
	for (int i = optind; i < argc; i++) {
		if (!*argv[i] || strchr(argv[i], '\n'))
			return fail(EINVAL, "argument %d is empty or has a newline; the control protocol "
				    "cannot carry that", i - optind + 1);
		reqlen += strlen(argv[i]) + 1;
	}

	req = malloc(reqlen);
	if (!req)
		return fail(ENOMEM, "out of memory");
	p = req + sprintf(req, "%s%s\n", MAGIC, json ? " json" : "");
	for (int i = optind; i < argc; i++)
		p += sprintf(p, "%s\n", argv[i]);
	*p++ = '\n';

	if (!json && !strcmp(argv[optind], "top"))
		form_feed = isatty(STDOUT_FILENO) ? FF_CLEAR : FF_DROP;
	fd = connect_to(control);
	if (fd < 0) {
		free(req);
		return fail(-fd, "cannot reach the switch at %s: %s", control, strerror(-fd));
	}
	r = write_all(fd, req, (size_t)(p - req), true);
	free(req);
	if (r < 0)
		return fail(-r, "sending to the switch at %s: %s", control, strerror(-r));

	/* the status line, then the body to end of stream */
	for (;;) {
		ssize_t n = read(fd, status + have, STATUS_MAX - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(errno, "reading from the switch: %s", strerror(errno));
		have += (size_t)n;
		status[have] = '\0';
		nl = memchr(status, '\n', have);
		if (nl || n == 0 || have == STATUS_MAX)
			break;
	}
	if (nl)
		*nl = '\0';
	if (!nl || (strcmp(status, "OK") && strncmp(status, "ERR ", 4)))
		return fail(EPROTO, "the switch at %s gave %s", control,
			    have ? "an answer this program does not understand" : "no answer");
	/* the body: what came with the status line, then the rest as it arrives */
	r = write_body(nl + 1, have - (size_t)(nl + 1 - status));
	/* a pipe whose reader left (| head, a closed Wireshark) shows POLLERR: end now rather than
	 * at the next write, so the switch ends a quiet live capture too */
	struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = STDOUT_FILENO}};

	for (char buf[65536]; r == 0;) {
		ssize_t n;

		pf[0].revents = pf[1].revents = 0;
		if (poll(pf, 2, -1) < 0 && errno != EINTR) {
			r = fail(errno, "poll: %s", strerror(errno));
			break;
		}
		if (pf[1].revents & POLLERR) {
			r = -EPIPE;
			break;
		}
		if (pf[1].revents & POLLNVAL)
			pf[1].fd = -1; /* no stdout to watch: poll would return at once forever */
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				r = fail(errno, "reading from the switch: %s", strerror(errno));
			break;
		}
		r = write_body(buf, (size_t)n);
	}
	close(fd);
	if (r == -EPIPE)
		return 0; /* the reader has what it wanted: not an error worth a word */
	if (r < 0) {
		fprintf(stderr, "squibnetctl: writing the output: %s\n", strerror(-r));
		return 1;
	}
	if (r > 0)
		return 1;
	if (!strncmp(status, "ERR ", 4)) {
		const char *msg = strchr(status + 4, ' ');

		/* the JSON error, if asked for, was in the body */
		fprintf(stderr, "squibnetctl: %s\n", msg ? msg + 1 : status + 4);
		return 1;
	}
	return 0;
}
