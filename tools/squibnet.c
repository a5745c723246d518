/* squibnet - the switch daemon: ports and captures from the command line or a configuration
 * file, a control socket, on SIGHUP the configuration file applied again and capture files
 * reopened, clean exit (captures flushed) on SIGINT/SIGTERM. Under systemd (built with
 * libsystemd) it takes the sockets a socket unit passes by name and tells the service manager
 * when it is ready, reloading and stopping. */
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <squibnet/squibnet.h>

#if SN_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#define MAX_PORTS 256
#define MAX_CAPTURES 64

/* A kind's usage, each of its lines indented. */
static int print_kind(const struct sn_port_kind_info *k, void *ctx)
{
	FILE *f = ctx;

	for (const char *p = k->usage; p && *p;) {
		size_t n = strcspn(p, "\n");

		fprintf(f, "  %.*s\n", (int)n, p);
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

static void usage(FILE *f)
{
	struct sn_switch_config def;

	sn_switch_config_init(&def);
	fprintf(f,
		"usage: squibnet [--config FILE | --port SPEC...] [--control PATH] [--fdb-max N]\n"
		"                [--fdb-port-max N] [--fdb-aging SECONDS] [--fdb-evict]\n"
		"                [--pool-frames N] [--txq-len N]\n"
		"                [--stall-timeout MS] [--sock-buf BYTES]\n"
		"                [--capture FILE[,KEY=VALUE]...]... [-v|-q]\n"
		"                [--help] [--version]\n"
		"\n"
		"An L2 switch for virtual machines. Each --port SPEC adds a port, KIND,key=value,...\n"
		"of the kinds this build has:\n");
	sn_port_kinds_foreach(print_kind, f);
	fprintf(f,
		"  every kind: name=NAME, mtu=N;  socket files (listen=, local=): mode=0600, group=GROUP\n"
		"  every kind: vlan=N | trunk=LIST[,native=N][,native-tagged=on] [,tpid=0x88a8]\n"
		"              isolated=on, flood=off, mcast-flood=off, max-macs=N\n"
		"\n"
		"With no --port: a stream listener at $XDG_RUNTIME_DIR/squibnet/switch.sock.\n"
		"  --config FILE       ports, captures, static FDB entries and settings from FILE,\n"
		"                      one per line: 'port SPEC', 'capture SPEC',\n"
		"                      'fdb MAC PORT [vlan=N]', 'set KEY=VALUE' (squibnet.conf(5));\n"
		"                      SIGHUP or 'squibnetctl reload' applies it again. Not with\n"
		"                      --port, --capture or the settings below\n"
		"  --control PATH      control socket for squibnetctl (default: beside the default listener)\n"
		"  --fdb-max N         forwarding database entries (default 8192)\n"
		"  --fdb-port-max N    entries one port may own (default: --fdb-max)\n"
		"  --fdb-aging SECONDS how long an unrefreshed entry lives (default 300)\n"
		"  --fdb-evict         a full forwarding database evicts an entry of the port that\n"
		"                      owns the most, instead of refusing the new source\n"
		"  --pool-frames N     2 KiB frame buffers shared by all ports (default %u)\n"
		"  --txq-len N         egress queue of each port, in frames (default %u)\n"
		"  --stall-timeout MS  a queue congested this long means its peer is stalled: the\n"
		"                      ports it holds back go on, it gets few frames (default %u)\n"
		"  --sock-buf BYTES    send buffer asked for on each stream and seqpacket\n"
		"                      connection (default %u; 0: the kernel's default)\n"
		"  --capture FILE[,filter=EXPR][,ports=NAME+NAME...][,dir=in|out|both][,snaplen=N]\n"
		"            [,tstamp=us|ns][,rotate=MB][,count=N]\n"
		"                      write a pcap file of the frames on the chosen ports (default all);\n"
		"                      %%p in FILE: one file per port; SIGHUP reopens the files\n"
		"  -v, --verbose       debug messages;  -q, --quiet: warnings and errors only\n"
		"fdname=NAME in a SPEC: the socket systemd passed by that name (LISTEN_FDNAMES).\n",
		def.pool_frames, def.txq_len, (unsigned)(def.stall_timeout * 1000), (unsigned)def.sock_buf);
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *ret)
{
	char *end;
	unsigned long v;

	/* digits only, as the library's SPEC numbers: strtoul alone takes blanks and signs */
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v < min || v > max) {
		fprintf(stderr, "squibnet: %s: '%s' is not a number from %u to %u\n", opt, s, min, max);
		return -1;
	}
	*ret = (unsigned)v;
	return 0;
}

/* The default home of the sockets: $XDG_RUNTIME_DIR/squibnet, else the working directory. */
static void default_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (xdg && *xdg && snprintf(buf, len, "%s/squibnet", xdg) < (int)len &&
	    (mkdir(buf, 0700) == 0 || errno == EEXIST))
		return;
	snprintf(buf, len, ".");
}

static int print_attach(const struct sn_port_info *info, void *ctx)
{
	const char *path;

	if (info->state != SN_PORT_LISTENING || strcmp(info->kind, "stream") ||
	    strncmp(info->peer, "listen unix:", 12))
		return 0;
	path = info->peer + 12;
	printf("squibnet: port %s listening on %.*s\n", info->name, (int)strcspn(path, " "), path);
	/* QEMU 9.2 renamed reconnect= (seconds) to reconnect-ms=, and 10.2 drops the old name */
	printf("  attach QEMU (>= 7.2) guests with (a distinct mac= for each):\n"
	       "    -netdev stream,id=net0,server=off,addr.type=unix,addr.path=%.*s \\\n"
	       "    -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:01\n"
	       "  to redial a restarted switch, add to -netdev: reconnect-ms=1000 (QEMU >= 9.2)\n"
	       "  or reconnect=1 (QEMU 8.0 to 10.1)\n",
	       (int)strcspn(path, " "), path);
	return 0;
}

/* ---- systemd: inherited sockets and readiness ---- */

/* The sockets a socket unit passed, by their names (FileDescriptorName=), for fdname= SPECs. */
static void inherit_sockets(struct sn_switch *sw)
{
#if SN_HAVE_LIBSYSTEMD
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);

	if (n < 0)
		fprintf(stderr, "squibnet: LISTEN_FDS: %s\n", strerror(-n));
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i, r;
		const char *name = names && names[i] ? names[i] : "unknown";

		r = sn_switch_add_inherited_fd(sw, name, fd);
		if (r == -EEXIST)
			fprintf(stderr, "squibnet: inherited socket %d has the name '%s' of another; give each socket "
				"unit a FileDescriptorName= of its own (left unused)\n", fd, name);
		else if (r < 0)
			fprintf(stderr, "squibnet: inherited socket %d ('%s'): %s (left unused)\n", fd, name, strerror(-r));
		if (r < 0)
			close(fd);
	}
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
#else
	(void)sw;
	if (getenv("LISTEN_FDS"))
		fprintf(stderr, "squibnet: built without libsystemd: the sockets in LISTEN_FDS are not used\n");
#endif
}

/* A state for the service manager (READY=1, RELOADING=1, STOPPING=1, STATUS=...); nothing
 * without NOTIFY_SOCKET or libsystemd. */
static void notify(const char *state)
{
#if SN_HAVE_LIBSYSTEMD
	int r = sd_notify(0, state);

	if (r < 0)
		fprintf(stderr, "squibnet: sd_notify: %s\n", strerror(-r));
#else
	(void)state;
#endif
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ev_break(loop, EVBREAK_ALL);
}

struct hup {
	ev_signal sig;
	struct sn_switch *sw;
	bool config;
};

/* The configuration file again, then the capture files log rotation moved away: new ones under
 * the old names. */
static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct hup *h = w->data;
	struct sn_error err;
	char state[96];
	struct timespec ts;

	if (h->config) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		/* MONOTONIC_USEC: what Type=notify-reload matches the reload by */
		snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
			 (unsigned long long)ts.tv_sec * 1000000 + (unsigned long long)ts.tv_nsec / 1000);
		notify(state);
		if (sn_conffile_reload(h->sw, NULL, &err) < 0)
			fprintf(stderr, "squibnet: reload: %s\n", err.msg);
		notify("READY=1");
	}
	sn_capture_reopen_all(h->sw);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"config", required_argument, NULL, 'f'},
		{"control", required_argument, NULL, 'c'},
		{"fdb-max", required_argument, NULL, 'M'},
		{"fdb-port-max", required_argument, NULL, 'P'},
		{"fdb-aging", required_argument, NULL, 'A'},
		{"fdb-evict", no_argument, NULL, 'E'},
		{"pool-frames", required_argument, NULL, 'F'},
		{"txq-len", required_argument, NULL, 'Q'},
		{"stall-timeout", required_argument, NULL, 'S'},
		{"sock-buf", required_argument, NULL, 'B'},
		{"capture", required_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	const char *specs[MAX_PORTS], *captures[MAX_CAPTURES];
	unsigned ncaptures = 0;
	unsigned nspecs = 0, aging = 0, stall_ms = 0, sock_buf;
	const char *control = NULL, *config = NULL, *cli_only = NULL;
	struct sn_conffile *cf = NULL;
	char dir[PATH_MAX], defspec[PATH_MAX + 64], defctl[PATH_MAX + 32];
	struct sn_switch_config cfg;
	struct sn_switch *sw = NULL;
	struct sn_control *ctl = NULL;
	struct sn_error err;
	struct ev_loop *loop;
	ev_signal sigint, sigterm;
	struct hup hup;
	enum sn_log_level level = SN_LOG_INFO;
	int c, r, status = 1;

	sn_switch_config_init(&cfg);
	while ((c = getopt_long(argc, argv, "p:c:vqhV", opts, NULL)) != -1) {
		/* what a configuration file says instead */
		for (const struct option *o = opts; o->name && !cli_only && strchr("pMPAEFQSBC", c); o++)
			if (o->val == c)
				cli_only = o->name;
		switch (c) {
		case 'f':
			config = optarg;
			break;
		case 'p':
			if (nspecs == MAX_PORTS) {
				fprintf(stderr, "squibnet: at most %d --port options\n", MAX_PORTS);
				return 2;
			}
			specs[nspecs++] = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		case 'M':
			if (parse_uint("--fdb-max", optarg, 1, 1u << 24, &cfg.fdb_max) < 0)
				return 2;
			break;
		case 'P':
			if (parse_uint("--fdb-port-max", optarg, 1, 1u << 24, &cfg.fdb_port_max) < 0)
				return 2;
			break;
		case 'A':
			if (parse_uint("--fdb-aging", optarg, 1, 1000000, &aging) < 0)
				return 2;
			cfg.fdb_aging = aging;
			break;
		case 'E':
			cfg.fdb_evict = true;
			break;
		case 'F':
			if (parse_uint("--pool-frames", optarg, 64, 1u << 22, &cfg.pool_frames) < 0)
				return 2;
			break;
		case 'Q':
			if (parse_uint("--txq-len", optarg, 8, 1u << 20, &cfg.txq_len) < 0)
				return 2;
			break;
		case 'S':
			if (parse_uint("--stall-timeout", optarg, 1, 3600000, &stall_ms) < 0)
				return 2;
			cfg.stall_timeout = stall_ms / 1000.0;
			break;
		case 'B':
			if (parse_uint("--sock-buf", optarg, 0, 256u << 20, &sock_buf) < 0)
				return 2;
			if (sock_buf && sock_buf < 4096) {
				fprintf(stderr, "squibnet: --sock-buf: %u bytes is less than a page; 0 leaves the kernel's default\n",
					sock_buf);
				return 2;
			}
			cfg.sock_buf = sock_buf;
			break;
		case 'C':
			if (ncaptures == MAX_CAPTURES) {
				fprintf(stderr, "squibnet: at most %d --capture options\n", MAX_CAPTURES);
				return 2;
			}
			captures[ncaptures++] = optarg;
			break;
		case 'v':
			level = SN_LOG_DEBUG;
			break;
		case 'q':
			level = SN_LOG_WARN;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("squibnet %s\n", sn_version());
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "squibnet: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config && cli_only) {
		fprintf(stderr, "squibnet: --%s and --config do not go together: put it in the file (squibnet.conf(5))\n",
			cli_only);
		return 2;
	}
	sn_log_set_level(level);
	sn_log_set_handler(sn_log_stderr, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (config) {
		r = sn_conffile_load(config, &cf, &err);
		if (r < 0) {
			fprintf(stderr, "squibnet: %s\n", err.msg);
			return 1;
		}
		sn_conffile_switch_config(cf, &cfg);
	}
	if ((nspecs == 0 && !config) || !control) {
		default_dir(dir, sizeof(dir));
		if (nspecs == 0 && !config) {
			snprintf(defspec, sizeof(defspec), "stream,name=switch,listen=unix:%s/%s", dir,
				 strcmp(dir, ".") ? "switch.sock" : "squibnet.sock");
			specs[nspecs++] = defspec;
		}
		if (!control) {
			snprintf(defctl, sizeof(defctl), "%s/%s", dir,
				 strcmp(dir, ".") ? "control.sock" : "squibnet-control.sock");
			control = defctl;
		}
	}

	loop = EV_DEFAULT;
	r = sn_switch_create(loop, &cfg, &sw);
	if (r < 0) {
		fprintf(stderr, "squibnet: cannot create the switch: %s\n", strerror(-r));
		sn_conffile_free(cf);
		return 1;
	}
	inherit_sockets(sw);
	if (cf) {
		r = sn_conffile_apply(sw, cf, NULL, &err);
		if (r < 0) {
			fprintf(stderr, "squibnet: %s\n", err.msg);
			goto out;
		}
	}
	for (unsigned i = 0; i < nspecs; i++) {
		r = sn_switch_add_port(sw, specs[i], NULL, 0, &err);
		if (r < 0) {
			fprintf(stderr, "squibnet: --port %s: %s\n", specs[i], err.msg);
			goto out;
		}
	}
	for (unsigned i = 0; i < ncaptures; i++) {
		r = sn_capture_start(sw, captures[i], NULL, &err);
		if (r < 0) {
			fprintf(stderr, "squibnet: --capture %s: %s\n", captures[i], err.msg);
			goto out;
		}
	}
	r = sn_control_create(sw, control, &ctl, &err);
	if (r < 0) {
		fprintf(stderr, "squibnet: --control %s: %s\n", control, err.msg);
		goto out;
	}
	sn_switch_foreach_port(sw, print_attach, NULL);
	printf("squibnet: control socket %s (squibnetctl --control %s ports)\n", control, control);

	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(loop, &sigint);
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_start(loop, &sigterm);
	hup = (struct hup){.sw = sw, .config = config != NULL};
	ev_signal_init(&hup.sig, hup_cb, SIGHUP);
	hup.sig.data = &hup;
	ev_signal_start(loop, &hup.sig);
	notify("READY=1");
	ev_run(loop, 0);
	notify("STOPPING=1");
	fprintf(stderr, "squibnet: shutting down\n");
	/* every frame switched before the signal is in the files before anything else can fail */
	sn_capture_flush_all(sw);
	status = 0;
out:
	sn_control_destroy(ctl);
	sn_switch_destroy(sw);
	return status;
}
