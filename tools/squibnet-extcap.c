/* squibnet-extcap - every port of a running squibnet switch as a capture interface of Wireshark
 * and tshark, through Wireshark's extcap protocol (extcap(4)).
 *
 * Wireshark runs the programs in its extcap folder with:
 *   --extcap-interfaces                  which interfaces there are: one per port of the switch
 *                                        ("squibnet-PORT"), and "squibnet" for every port at once
 *   --extcap-dlts --extcap-interface IF  their link type: Ethernet
 *   --extcap-config --extcap-interface IF  the options of its capture dialog
 *   --extcap-interface IF --extcap-capture-filter EXPR
 *                                        is EXPR a good capture filter? (silence and 0: yes)
 *   --capture --extcap-interface IF --fifo PATH [--extcap-capture-filter EXPR] [options]
 *                                        capture: pcap into the fifo until Wireshark stops it
 * The capture is the switch's live capture on the control socket, what `squibnetctl capture -w -`
 * asks for; the filter runs in the switch, so frames the filter refuses never leave it. The
 * control socket is --control PATH, else $SQUIBNET_CONTROL, else squibnetctl's default. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include <squibnet/squibnet.h>

#if SN_HAS_PCAP
#include <pcap/pcap.h>
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

#define MAGIC "SQUIBNET-CONTROL 1"
#define PREFIX "squibnet-"
#define ALL "squibnet"

/* The daemon's default, as squibnetctl finds it. */
static void default_control(char *buf, size_t len)
{
	const char *env = getenv("SQUIBNET_CONTROL"), *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (env && *env && snprintf(buf, len, "%s", env) < (int)len)
		return;
	if (xdg && *xdg && snprintf(buf, len, "%s/squibnet", xdg) < (int)len && stat(buf, &st) == 0 &&
	    S_ISDIR(st.st_mode) && snprintf(buf, len, "%s/squibnet/control.sock", xdg) < (int)len)
		return;
	snprintf(buf, len, "./squibnet-control.sock");
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

/* Sends one request (its arguments one per line) and reads the status line. Returns the
 * connected socket with the body to follow, or -1 with the switch's message (or ours) in @why. */
static int request(const char *control, const char *const *args, char *why, size_t why_len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char req[8192], status[4096];
	size_t len = 0, have = 0;
	int fd, r;

	if (strlen(control) >= sizeof(sa.sun_path)) {
		snprintf(why, why_len, "control socket path too long: %s", control);
		return -1;
	}
	len = (size_t)snprintf(req, sizeof(req), "%s\n", MAGIC);
	for (; *args; args++) {
		if (!**args || strchr(*args, '\n') || len + strlen(*args) + 2 >= sizeof(req)) {
			snprintf(why, why_len, "an argument is empty, too long or holds a newline");
			return -1;
		}
		len += (size_t)snprintf(req + len, sizeof(req) - len, "%s\n", *args);
	}
	req[len++] = '\n';
	memcpy(sa.sun_path, control, strlen(control) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, why_len, "cannot reach the squibnet switch at %s: %s", control, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	r = write_all(fd, req, len, true);
	/* the status line, a byte at a time: what follows it is the body, for the caller */
	while (r == 0 && have + 1 < sizeof(status)) {
		ssize_t n = read(fd, status + have, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = -1;
			break;
		}
		if (status[have] == '\n')
			break;
		have++;
	}
	status[have] = '\0';
	if (r == 0 && !strcmp(status, "OK"))
		return fd;
	if (r == 0 && !strncmp(status, "ERR ", 4) && strchr(status + 4, ' '))
		snprintf(why, why_len, "squibnet: %s", strchr(status + 4, ' ') + 1);
	else
		snprintf(why, why_len, "no answer from the squibnet switch at %s", control);
	close(fd);
	return -1;
}

/* The whole body of a request that is not a stream, NUL-terminated; NULL with @why set. */
static char *request_text(const char *control, const char *const *args, char *why, size_t why_len)
{
	int fd = request(control, args, why, why_len);
	size_t len = 0, cap = 65536;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	while (buf) {
		ssize_t n;

		if (len + 1 == cap) {
			char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (!buf)
		snprintf(why, why_len, "out of memory");
	else
		buf[len] = '\0';
	return buf;
}

/* One line per interface. `ports` in text: a heading, then NAME KIND STATE ... per port; names
 * hold no blanks. */
static int list_interfaces(const char *control)
{
	const char *args[] = {"ports", NULL};
	char why[512], *text = request_text(control, args, why, sizeof(why)), *line, *save = NULL;
	bool head = true;

	printf("extcap {version=%s}{display=squibnet switch ports}\n", sn_version());
	if (!text) {
		/* no switch: no interfaces, and Wireshark goes on without them */
		fprintf(stderr, "squibnet-extcap: %s\n", why);
		return 0;
	}
	printf("interface {value=" ALL "}{display=squibnet: every port}\n");
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[SN_PORT_NAME_MAX], kind[32], state[32];

		if (head) {
			head = false;
			continue;
		}
		if (sscanf(line, "%63s %31s %31s", name, kind, state) != 3)
			continue;
		/* extcap's grammar has no escapes: a name with braces cannot be written */
		if (strpbrk(name, "{}"))
			continue;
		printf("interface {value=" PREFIX "%s}{display=squibnet port %s (%s, %s)}\n", name, name, kind, state);
	}
	free(text);
	return 0;
}

/* NULL: every port; else the port's name. -1: not one of ours. */
static int port_of(const char *iface, const char **ret_port)
{
	if (!iface)
		return -1;
	if (!strcmp(iface, ALL)) {
		*ret_port = NULL;
		return 0;
	}
	if (strncmp(iface, PREFIX, strlen(PREFIX)) || !iface[strlen(PREFIX)])
		return -1;
	*ret_port = iface + strlen(PREFIX);
	return 0;
}

static void print_config(const char *control, const char *port)
{
	printf("arg {number=0}{call=--control}{display=Control socket}{type=fileselect}{mustexist=true}"
	       "{default=%s}{tooltip=The squibnet switch's control socket}\n", control);
	printf("arg {number=1}{call=--direction}{display=Direction}{type=selector}"
	       "{tooltip=Frames the port received, sent, or both}\n");
	printf("value {arg=1}{value=in}{display=Received by the port}%s\n", port ? "" : "{default=true}");
	printf("value {arg=1}{value=out}{display=Sent by the port}\n");
	printf("value {arg=1}{value=both}{display=Both}%s\n", port ? "{default=true}" : "");
	printf("arg {number=2}{call=--snaplen}{display=Snapshot length}{type=unsigned}{range=64,262144}"
	       "{default=262144}{tooltip=Bytes kept of each frame}\n");
}

/* Whether libpcap compiles @expr for Ethernet; the switch compiles it the same way. */
static int check_filter(const char *expr)
{
#if SN_HAS_PCAP
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 262144);
	struct bpf_program prog;
	int r;

	if (!p)
		return 0;
	r = pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN);
	if (r < 0)
		printf("%s\n", pcap_geterr(p));
	else
		pcap_freecode(&prog);
	pcap_close(p);
	return r < 0 ? 1 : 0;
#else
	(void)expr;
	return 0; /* the switch says, when the capture starts */
#endif
}

static int capture(const char *control, const char *port, const char *fifo, const char *filter, const char *dir,
		   const char *snaplen)
{
	char ports_arg[SN_PORT_NAME_MAX + 8], filter_arg[4200], dir_arg[16], snap_arg[32], why[512], buf[65536];
	const char *args[8] = {"capture", "-w", "-"};
	int n = 3, fd, out;

	if (port) {
		snprintf(ports_arg, sizeof(ports_arg), "ports=%s", port);
		args[n++] = ports_arg;
	}
	if (filter && *filter) {
		if (snprintf(filter_arg, sizeof(filter_arg), "filter=%s", filter) >= (int)sizeof(filter_arg)) {
			fprintf(stderr, "squibnet-extcap: the capture filter is too long\n");
			return 1;
		}
		args[n++] = filter_arg;
	}
	if (dir && *dir) {
		snprintf(dir_arg, sizeof(dir_arg), "dir=%s", dir);
		args[n++] = dir_arg;
	}
	if (snaplen && *snaplen) {
		snprintf(snap_arg, sizeof(snap_arg), "snaplen=%s", snaplen);
		args[n++] = snap_arg;
	}
	args[n] = NULL;
	/* the fifo first: Wireshark waits for it to open, and reads the error on stderr */
	out = open(fifo, O_WRONLY | O_CLOEXEC);
	if (out < 0) {
		fprintf(stderr, "squibnet-extcap: %s: %s\n", fifo, strerror(errno));
		return 1;
	}
	fd = request(control, args, why, sizeof(why));
	if (fd < 0) {
		fprintf(stderr, "squibnet-extcap: %s\n", why);
		close(out);
		return 1;
	}
	/* until the switch ends the capture, or Wireshark closes the fifo (its write end shows
	 * POLLERR, even while no frame comes) or stops us (SIGTERM) */
	for (;;) {
		struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = out}};
		ssize_t got;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents & (POLLERR | POLLHUP | POLLNVAL))
			break;
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		got = read(fd, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || write_all(out, buf, (size_t)got, false) < 0)
			break;
	}
	close(fd);
	close(out);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: squibnet-extcap --extcap-interfaces | --extcap-dlts --extcap-interface IF |\n"
		   "       --extcap-config --extcap-interface IF | --extcap-interface IF --extcap-capture-filter EXPR |\n"
		   "       --capture --extcap-interface IF --fifo PATH [--extcap-capture-filter EXPR]\n"
		   "       [--control PATH] [--direction in|out|both] [--snaplen N]\n"
		   "\n"
		   "Wireshark's extcap program for squibnet: each port of the switch at the control socket\n"
		   "(--control, $SQUIBNET_CONTROL, or squibnetctl's default) is an interface squibnet-PORT,\n"
		   "and 'squibnet' captures every port. Wireshark and tshark run it from their extcap folder.\n");
}

int main(int argc, char **argv)
{
	enum { O_INTERFACES = 256, O_DLTS, O_CONFIG, O_IFACE, O_FILTER, O_CAPTURE, O_FIFO, O_VERSION, O_CONTROL,
	       O_DIRECTION, O_SNAPLEN, O_IGNORED, O_HELP };
	static const struct option opts[] = {
		{"extcap-interfaces", no_argument, NULL, O_INTERFACES},
		{"extcap-dlts", no_argument, NULL, O_DLTS},
		{"extcap-config", no_argument, NULL, O_CONFIG},
		{"extcap-interface", required_argument, NULL, O_IFACE},
		{"extcap-capture-filter", required_argument, NULL, O_FILTER},
		{"capture", no_argument, NULL, O_CAPTURE},
		{"fifo", required_argument, NULL, O_FIFO},
		{"extcap-version", optional_argument, NULL, O_VERSION},
		{"control", required_argument, NULL, O_CONTROL},
		{"direction", required_argument, NULL, O_DIRECTION},
		{"snaplen", required_argument, NULL, O_SNAPLEN},
		/* what newer Wireshark versions may pass and this program does without */
		{"extcap-control-in", required_argument, NULL, O_IGNORED},
		{"extcap-control-out", required_argument, NULL, O_IGNORED},
		{"extcap-reload-option", required_argument, NULL, O_IGNORED},
		{"debug", optional_argument, NULL, O_IGNORED},
		{"help", no_argument, NULL, O_HELP},
		{0},
	};
	bool interfaces = false, dlts = false, config = false, do_capture = false;
	const char *iface = NULL, *filter = NULL, *fifo = NULL, *control = NULL, *dir = NULL, *snaplen = NULL;
	const char *port;
	char defctl[PATH_MAX];
	int c;

	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_INTERFACES:
			interfaces = true;
			break;
		case O_DLTS:
			dlts = true;
			break;
		case O_CONFIG:
			config = true;
			break;
		case O_IFACE:
			iface = optarg;
			break;
		case O_FILTER:
			filter = optarg;
			break;
		case O_CAPTURE:
			do_capture = true;
			break;
		case O_FIFO:
			fifo = optarg;
			break;
		case O_CONTROL:
			control = optarg;
			break;
		case O_DIRECTION:
			dir = optarg;
			break;
		case O_SNAPLEN:
			snaplen = optarg;
			break;
		case O_VERSION:
		case O_IGNORED:
			break;
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!control || !*control) {
		default_control(defctl, sizeof(defctl));
		control = defctl;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (interfaces)
		return list_interfaces(control);
	if ((dlts || config || do_capture || filter) && port_of(iface, &port) < 0) {
		fprintf(stderr, "squibnet-extcap: '%s' is not a squibnet interface (squibnet or squibnet-PORT)\n",
			iface ? iface : "");
		return 2;
	}
	if (dlts) {
		printf("dlt {number=1}{name=EN10MB}{display=Ethernet}\n");
		return 0;
	}
	if (config) {
		print_config(control, port);
		return 0;
	}
	if (do_capture) {
		if (!fifo) {
			fprintf(stderr, "squibnet-extcap: --capture needs --fifo PATH\n");
			return 2;
		}
		return capture(control, port, fifo, filter, dir, snaplen);
	}
	if (filter)
		return check_filter(filter);
	usage(stderr);
	return 2;
}
