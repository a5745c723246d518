/* capture.c - pcap captures of the frames the switch carries, and the "capture" control commands.
 *
 * libpcap does everything pcap: the file format (dumpers on a dead DLT_EN10MB handle), the
 * filters (pcap_compile on that handle, pcap_offline_filter per frame) and appending to an
 * existing file. This file decides which frames go to which file (ports=, dir=, "%p" per-port
 * files), and looks after the files' lives: big stdio buffers flushed by one 1 s timer for the
 * whole switch, rotation, reopening after log rotation, and stopping a capture whose file fails
 * while the switch goes on switching. A live capture ("-") writes through a dumper on an
 * open_memstream() FILE, so libpcap still makes every byte, and each record is moved onto the
 * control connection that asked for it. The frame path allocates nothing: a port's entry in a
 * capture's routing cache (and its per-port file) is made on that port's first frame only. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <squibnet/config.h>

#include "capture_impl.h"
#include "control.h"
#include "logging.h"
#include "spec.h"
#include "core.h"
#include "util.h"

#if SN_HAS_PCAP
#include <pcap/pcap.h>
#endif

#define SNAPLEN_DEFAULT 262144u
#define SNAPLEN_MIN 64u
#define FLUSH_INTERVAL 1.0
#define FILE_BUF (256u * 1024u)      /* stdio buffer of each capture file */
#define PCAP_FILE_HLEN 24u           /* sizes libpcap writes, for the rotation arithmetic */
#define PCAP_REC_HLEN 16u
#define ROTATE_UNIT 1000000ull       /* rotate=MB counts millions of bytes, as tcpdump -C does */

/* ---- names: pure, unit-tested ---- */

int sn_capture_expand(char *out, size_t size, const char *pattern, const char *port)
{
	size_t n = 0;

	for (const char *p = pattern; *p; p++) {
		const char *add = p;
		size_t len = 1;

		if (p[0] == '%' && p[1] == 'p') {
			add = port;
			len = strlen(port);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			p++;
		}
		if (n + len >= size)
			return -ENAMETOOLONG;
		memcpy(out + n, add, len);
		n += len;
	}
	if (n >= size)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return 0;
}

int sn_capture_rotated_name(char *out, size_t size, const char *base, unsigned seq)
{
	int n = seq ? snprintf(out, size, "%s.%u", base, seq) : snprintf(out, size, "%s", base);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static const char *dir_name(unsigned dir)
{
	return dir == SN_CAPTURE_IN ? "in" : dir == SN_CAPTURE_OUT ? "out" : "both";
}

static const char *state_name(enum sn_capture_state s)
{
	return s == SN_CAPTURE_RUNNING ? "running" : s == SN_CAPTURE_DONE ? "done" : "failed";
}

#if SN_HAS_PCAP
/* Whether @pattern names one file per port: a "%p" that is not the tail of a "%%". */
static bool has_port_token(const char *pattern)
{
	for (const char *p = pattern; *p; p++) {
		if (p[0] != '%')
			continue;
		if (p[1] == 'p')
			return true;
		if (p[1] == '%')
			p++;
	}
	return false;
}

/* One file being written: a capture's only one, one port's, or a live stream's memstream. */
struct cap_out {
	struct cap_out *next;
	pcap_dumper_t *d;            /* NULL while closed */
	FILE *f;
	char *buf;                   /* stdio buffer we gave f */
	uint64_t size;               /* bytes in the current file */
	unsigned seq;                /* rotation number of the current file */
	dev_t dev;                   /* the open file's identity, for reopen */
	ino_t ino;
	char base[PATH_MAX];         /* expanded name, before any rotation suffix */
	char path[PATH_MAX];         /* the current file's name */
};

/* Where a port's frames go in one capture: decided on the port's first frame. */
struct cap_port {
	struct sn_port *port;
	struct cap_out *out;         /* NULL: this capture does not take the port */
};

struct capture {
	struct capture *next;
	struct sn_capture *mod;
	unsigned id;
	enum sn_capture_state state;
	char *file, *filter, *ports; /* as given; filter and ports may be NULL */
	unsigned dir, snaplen, rotate_mb;
	uint64_t rotate_bytes, count;
	bool per_port, nano;
	pcap_t *dead;
	struct bpf_program prog;
	bool has_prog;
	struct cap_out *outs;        /* every output, closed ones too (a port may come back) */
	struct cap_out *main;        /* the one output of a capture that is not per port */
	struct cap_port *seen;
	unsigned nseen, seen_cap, hint;
	/* a live stream: the memstream the dumper writes into, and the client it goes to */
	struct sn_ctl_client *client;
	char *mem;
	size_t mem_len;
	char error[256];
	uint64_t frames, bytes, filtered, dropped, errors;
	unsigned files_open, rotations;
};

/* capture.c's state for one switch, at sw->captures. */
struct sn_capture {
	struct sn_switch *sw;
	struct capture *list;
	unsigned next_id;
	ev_timer flush;
	struct timespec now;         /* the timestamp of frames captured in loop iteration @now_iter */
	unsigned now_iter;
	bool now_valid;
};

static struct sn_capture *module(struct sn_switch *sw)
{
	struct sn_capture *m = sw->captures;

	if (m)
		return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->sw = sw;
	m->next_id = 1;
	ev_init(&m->flush, NULL);
	sw->captures = m;
	return m;
}

/* ---- outputs ---- */

static void set_error(struct capture *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Long paths are cut: the message is for people, the path is in the capture's FILE too. */
static void set_error(struct capture *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->error, sizeof(c->error), fmt, ap);
	va_end(ap);
}

/* Writes out what @o buffered. 0, or -errno of the first failure since it was opened. */
static int out_flush(struct cap_out *o)
{
	errno = 0;
	if (pcap_dump_flush(o->d) < 0 || ferror(o->f))
		return errno ? -errno : -EIO;
	return 0;
}

/* Flushes and closes @o; returns what out_flush() found. */
static int out_close(struct capture *c, struct cap_out *o)
{
	int r;

	if (!o->d)
		return 0;
	r = out_flush(o);
	pcap_dump_close(o->d); /* closes o->f too */
	free(o->buf);
	o->d = NULL;
	o->f = NULL;
	o->buf = NULL;
	c->files_open--;
	return r;
}

/* Opens o->path: a new file, or when @append and a pcap file is there, libpcap appends to it
 * (a port that came back, a reopen onto a file someone else created). */
static int out_open(struct capture *c, struct cap_out *o, bool append)
{
	struct stat st;
	pcap_dumper_t *d;
	FILE *f;
	int fd, r;

	if (append && stat(o->path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		/* libpcap checks the header matches ours; its stdio buffer stays the default size */
		d = pcap_dump_open_append(c->dead, o->path);
		if (!d) {
			set_error(c, "%s: %s", o->path, pcap_geterr(c->dead));
			return -EIO;
		}
		o->f = pcap_dump_file(d);
		o->size = (uint64_t)st.st_size;
	} else {
		fd = open(o->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
		if (fd < 0 || !(f = fdopen(fd, "wb"))) {
			r = -errno;
			if (fd >= 0)
				close(fd);
			set_error(c, "%s: %s", o->path, strerror(-r));
			return r;
		}
		o->buf = malloc(FILE_BUF);
		if (o->buf)
			setvbuf(f, o->buf, _IOFBF, FILE_BUF);
		d = pcap_dump_fopen(c->dead, f);
		if (!d) {
			set_error(c, "%s: %s", o->path, pcap_geterr(c->dead));
			fclose(f);
			free(o->buf);
			o->buf = NULL;
			return -EIO;
		}
		o->f = f;
		o->size = PCAP_FILE_HLEN;
	}
	o->d = d;
	if (fstat(fileno(o->f), &st) == 0) {
		o->dev = st.st_dev;
		o->ino = st.st_ino;
	}
	c->files_open++;
	return 0;
}

static struct cap_out *out_new(struct capture *c, const char *base)
{
	struct cap_out *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	if (sn_strlcpy(o->base, base, sizeof(o->base)) < 0) {
		free(o);
		return NULL;
	}
	memcpy(o->path, o->base, sizeof(o->path));
	o->next = c->outs;
	c->outs = o;
	return o;
}

/* ---- a capture's life ---- */

static void flush_timer_update(struct sn_capture *m);
static void capture_free(struct capture *c);

static void stream_end_cb(struct sn_ctl_client *client, void *data)
{
	struct capture *c = data;

	/* the reader went away: its capture only ends */
	sn_debug("capture %u: live reader left after %llu frames", c->id, (unsigned long long)c->frames);
	c->client = NULL;
	capture_free(c);
}

/* Takes @c out of the data path: flushes and closes its files, ends a live stream. A live
 * capture is forgotten at once; a file capture stays listed with its state and counters. */
static void capture_end(struct capture *c, enum sn_capture_state state)
{
	struct sn_capture *m = c->mod;

	if (c->state != SN_CAPTURE_RUNNING)
		return;
	c->state = state;
	m->sw->ncaptures--;
	for (struct cap_out *o = c->outs; o; o = o->next)
		out_close(c, o);
	c->nseen = 0;
	if (c->client) {
		sn_ctl_stream_close(c->client);
		c->client = NULL;
		capture_free(c);
		return;
	}
	flush_timer_update(m);
}

static void capture_fail(struct capture *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void capture_fail(struct capture *c, int code, const char *fmt, ...)
{
	char msg[sizeof(c->error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->errors++;
	memcpy(c->error, msg, sizeof(c->error));
	sn_err("capture %u (%s): %s; capture stopped after %llu frames", c->id, c->file, msg,
	       (unsigned long long)c->frames);
	capture_end(c, SN_CAPTURE_FAILED);
}

/* Unlinks and frees @c; its files must be closed already (capture_end) unless it never ran. */
static void capture_free(struct capture *c)
{
	struct sn_capture *m = c->mod;
	struct capture **pp;

	for (pp = &m->list; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->state == SN_CAPTURE_RUNNING) {
		m->sw->ncaptures--;
		c->state = SN_CAPTURE_DONE;
	}
	if (c->client)
		sn_ctl_stream_close(c->client);
	while (c->outs) {
		struct cap_out *o = c->outs;

		c->outs = o->next;
		out_close(c, o);
		free(o);
	}
	free(c->mem); /* the memstream itself was closed with its dumper */
	if (c->has_prog)
		pcap_freecode(&c->prog);
	if (c->dead)
		pcap_close(c->dead);
	free(c->seen);
	free(c->file);
	free(c->filter);
	free(c->ports);
	free(c);
	flush_timer_update(m);
}

/* ---- the flush timer: one for every capture of the switch ---- */

static void flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sn_capture *m = w->data;

	sn_capture_flush_all(m->sw);
}

/* Runs the timer while some capture is running; like the switch's own watchers it does not keep
 * the loop alive by itself. */
static void flush_timer_update(struct sn_capture *m)
{
	struct ev_loop *loop = m->sw->loop;
	bool want = m->sw->ncaptures > 0;

	if (want && !ev_is_active(&m->flush)) {
		ev_timer_init(&m->flush, flush_cb, FLUSH_INTERVAL, FLUSH_INTERVAL);
		m->flush.data = m;
		ev_timer_start(loop, &m->flush);
		ev_unref(loop);
	} else if (!want && ev_is_active(&m->flush)) {
		ev_ref(loop);
		ev_timer_stop(loop, &m->flush);
	}
}

/* ---- the frame path ---- */

static bool port_wanted(const struct capture *c, const struct sn_port *port)
{
	const char *p = c->ports;

	if (!p)
		return true;
	while (*p) {
		size_t n = strcspn(p, "+");

		if ((strlen(port->name) == n && !memcmp(port->name, p, n)) ||
		    (port->parent && strlen(port->parent->name) == n && !memcmp(port->parent->name, p, n)))
			return true;
		p += n;
		p += *p == '+';
	}
	return false;
}

/* A port's first frame in @c: decides (and opens) where its frames go from now on. NULL when
 * the capture does not take this port or just failed. */
static struct cap_out *route_new(struct capture *c, struct sn_port *port)
{
	struct cap_out *out = NULL;
	struct cap_port *e;

	if (c->nseen == c->seen_cap) {
		unsigned cap = c->seen_cap ? c->seen_cap * 2 : 8;
		struct cap_port *n = realloc(c->seen, cap * sizeof(*n));

		if (!n) {
			capture_fail(c, -ENOMEM, "out of memory");
			return NULL;
		}
		c->seen = n;
		c->seen_cap = cap;
	}
	if (port_wanted(c, port)) {
		if (!c->per_port) {
			out = c->main;
		} else {
			char base[PATH_MAX];
			int r;

			if (sn_capture_expand(base, sizeof(base), c->file, port->name) < 0) {
				capture_fail(c, -ENAMETOOLONG, "file name for port %s too long", port->name);
				return NULL;
			}
			for (out = c->outs; out && strcmp(out->base, base); out = out->next)
				;
			if (!out && !(out = out_new(c, base))) {
				capture_fail(c, -ENOMEM, "out of memory");
				return NULL;
			}
			/* a port of the same name seen before: carry on in its file */
			if (!out->d && (r = out_open(c, out, out->size > 0)) < 0) {
				c->errors++;
				sn_err("capture %u: %s; capture stopped", c->id, c->error);
				capture_end(c, SN_CAPTURE_FAILED);
				return NULL;
			}
		}
	}
	e = &c->seen[c->nseen];
	e->port = port;
	e->out = out;
	c->hint = c->nseen++;
	return out;
}

static inline struct cap_out *route(struct capture *c, struct sn_port *port)
{
	if (!c->per_port && !c->ports)
		return c->main;
	if (sn_likely(c->hint < c->nseen && c->seen[c->hint].port == port))
		return c->seen[c->hint].out;
	for (unsigned i = 0; i < c->nseen; i++) {
		if (c->seen[i].port == port) {
			c->hint = i;
			return c->seen[i].out;
		}
	}
	return route_new(c, port);
}

/* Rolls @o over to its next file. */
static int rotate(struct capture *c, struct cap_out *o)
{
	int r = out_close(c, o);

	if (r < 0) {
		capture_fail(c, r, "%s: %s", o->path, strerror(-r));
		return r;
	}
	if (sn_capture_rotated_name(o->path, sizeof(o->path), o->base, ++o->seq) < 0) {
		capture_fail(c, -ENAMETOOLONG, "%s: rotated name too long", o->base);
		return -ENAMETOOLONG;
	}
	r = out_open(c, o, false);
	if (r < 0) {
		c->errors++;
		sn_err("capture %u: %s; capture stopped", c->id, c->error);
		capture_end(c, SN_CAPTURE_FAILED);
		return r;
	}
	c->rotations++;
	return 0;
}

/* Moves the record the dumper just wrote into the memstream onto the live connection. */
static bool stream_push(struct capture *c, struct cap_out *o)
{
	int r;

	fflush(o->f);
	r = sn_ctl_send(c->client, c->mem, c->mem_len);
	fseek(o->f, 0, SEEK_SET);
	if (r == -ENOBUFS) {
		/* the reader is behind by megabytes: whole records are dropped, the stream stays valid */
		c->dropped++;
		return false;
	}
	if (r < 0) {
		capture_fail(c, r, "live stream: %s", strerror(-r));
		return false;
	}
	return true;
}

void sn_capture_frame(struct sn_switch *sw, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_capture_dir dir)
{
	struct sn_capture *m = sw->captures;
	struct capture *c, *next;

	for (c = m->list; c; c = next) {
		struct pcap_pkthdr h;
		struct cap_out *o;

		next = c->next;
		if (c->state != SN_CAPTURE_RUNNING || !(c->dir & dir))
			continue;
		o = route(c, port);
		if (!o || !o->d)
			continue;
		h.caplen = len;
		h.len = len;
		if (c->has_prog && !pcap_offline_filter(&c->prog, &h, data)) {
			c->filtered++;
			continue;
		}
		/* One clock read per loop iteration: the frames of one batch share the time it was
		 * read. Reading the clock for every frame was a third of what capturing cost. */
		if (!m->now_valid || m->now_iter != ev_iteration(sw->loop)) {
			clock_gettime(CLOCK_REALTIME, &m->now);
			m->now_iter = ev_iteration(sw->loop);
			m->now_valid = true;
		}
		h.ts.tv_sec = m->now.tv_sec;
		h.ts.tv_usec = c->nano ? m->now.tv_nsec : m->now.tv_nsec / 1000;
		h.caplen = SN_MIN(len, c->snaplen);
		if (c->rotate_bytes && o->size > PCAP_FILE_HLEN &&
		    o->size + PCAP_REC_HLEN + h.caplen > c->rotate_bytes && rotate(c, o) < 0)
			continue;
		errno = 0;
		pcap_dump((u_char *)o->d, &h, data);
		o->size += PCAP_REC_HLEN + h.caplen;
		if (c->client) {
			if (!stream_push(c, o))
				continue;
		} else if (sn_unlikely(ferror(o->f))) {
			int e = errno ? errno : EIO;

			c->dropped++;
			capture_fail(c, -e, "writing %s: %s", o->path, strerror(e));
			continue;
		}
		c->frames++;
		c->bytes += len;
		if (c->count && c->frames >= c->count) {
			sn_info("capture %u (%s): %llu frames written, done", c->id, c->file,
				(unsigned long long)c->frames);
			capture_end(c, SN_CAPTURE_DONE);
		}
	}
}

void sn_capture_port_gone(struct sn_switch *sw, struct sn_port *port)
{
	struct sn_capture *m = sw->captures;
	struct capture *c, *next;

	if (!m)
		return;
	for (c = m->list; c; c = next) {
		next = c->next;
		for (unsigned i = 0; i < c->nseen; i++) {
			struct cap_out *o = c->seen[i].out;
			int r;

			if (c->seen[i].port != port)
				continue;
			c->seen[i] = c->seen[--c->nseen];
			if (c->per_port && o && (r = out_close(c, o)) < 0)
				capture_fail(c, r, "writing %s: %s", o->path, strerror(-r));
			break;
		}
	}
}

void sn_capture_destroy_all(struct sn_switch *sw)
{
	struct sn_capture *m = sw->captures;

	if (!m)
		return;
	while (m->list)
		capture_free(m->list);
	flush_timer_update(m);
	free(m);
	sw->captures = NULL;
}

/* ---- starting ---- */

/* Fills @c from the keys of @spec (FILE is spec->kind). */
static int capture_configure(struct capture *c, struct sn_spec *spec, struct sn_error *err)
{
	const char *dir = sn_spec_get(spec, "dir"), *ts = sn_spec_get(spec, "tstamp");
	const char *filter = sn_spec_get(spec, "filter"), *ports = sn_spec_get(spec, "ports");
	unsigned count = 0;
	int r;

	c->snaplen = SNAPLEN_DEFAULT;
	if ((r = sn_spec_get_uint(spec, "snaplen", SNAPLEN_MIN, SNAPLEN_DEFAULT, &c->snaplen, err)) < 0 ||
	    (r = sn_spec_get_uint(spec, "rotate", 1, 1000000, &c->rotate_mb, err)) < 0 ||
	    (r = sn_spec_get_uint(spec, "count", 1, UINT_MAX, &count, err)) < 0)
		return r;
	c->count = count;
	c->rotate_bytes = c->rotate_mb * ROTATE_UNIT;
	for (unsigned i = 0; i < spec->n; i++)
		if (!spec->kv[i].used)
			return sn_error_set(err, -EINVAL,
					    "unknown capture key '%s' (keys: filter, ports, dir, snaplen, tstamp, rotate, count)",
					    spec->kv[i].key);
	if (ts && !strcmp(ts, "ns"))
		c->nano = true;
	else if (ts && strcmp(ts, "us"))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'tstamp': want us or ns", ts);
	if (ports) {
		const char *p = ports;

		if (!*p)
			return sn_error_set(err, -EINVAL, "empty value for key 'ports'");
		for (; *p; p += strcspn(p, "+"), p += *p == '+')
			if (*p == '+' || strcspn(p, "+") >= SN_PORT_NAME_MAX)
				return sn_error_set(err, -EINVAL, "bad value '%s' for key 'ports': want NAME+NAME...",
						    ports);
		if (ports[strlen(ports) - 1] == '+')
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'ports': want NAME+NAME...", ports);
	}
	c->file = strdup(spec->kind);
	c->filter = filter && *filter ? strdup(filter) : NULL;
	c->ports = ports ? strdup(ports) : NULL;
	if (!c->file || (filter && *filter && !c->filter) || (ports && !c->ports))
		return sn_error_set(err, -ENOMEM, "out of memory");
	c->per_port = has_port_token(c->file);
	/* One file of every port with both directions would hold each switched frame twice (in on
	 * one port, out on another): by default such a file takes each frame once, as it entered. */
	c->dir = !c->per_port && !c->ports ? SN_CAPTURE_IN : SN_CAPTURE_BOTH;
	if (dir) {
		if (!strcmp(dir, "in"))
			c->dir = SN_CAPTURE_IN;
		else if (!strcmp(dir, "out"))
			c->dir = SN_CAPTURE_OUT;
		else if (!strcmp(dir, "both"))
			c->dir = SN_CAPTURE_BOTH;
		else
			return sn_error_set(err, -EINVAL, "bad value '%s' for key 'dir': want in, out or both", dir);
	}
	c->dead = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, (int)c->snaplen,
						       c->nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO);
	if (!c->dead)
		return sn_error_set(err, -ENOMEM, "out of memory");
	if (c->filter) {
		if (pcap_compile(c->dead, &c->prog, c->filter, 1, PCAP_NETMASK_UNKNOWN) < 0)
			return sn_error_set(err, -EINVAL, "bad filter '%s': %s", c->filter, pcap_geterr(c->dead));
		c->has_prog = true;
	}
	return 0;
}

/* Starts a capture from a parsed SPEC; @client is the control connection of a live one. */
static int capture_start(struct sn_switch *sw, struct sn_spec *spec, struct sn_ctl_client *client,
			 struct capture **ret, struct sn_error *err)
{
	struct sn_capture *m = module(sw);
	struct capture *c, **tail;
	int r;

	if (!m)
		return sn_error_set(err, -ENOMEM, "out of memory");
	if (!strcmp(spec->kind, "-") && !client)
		return sn_error_set(err, -EINVAL, "'-' is a live capture: only the control socket streams one");
	c = calloc(1, sizeof(*c));
	if (!c)
		return sn_error_set(err, -ENOMEM, "out of memory");
	c->mod = m;
	c->state = SN_CAPTURE_DONE; /* not counted in ncaptures until it runs */
	r = capture_configure(c, spec, err);
	if (r < 0)
		goto fail;
	if (client) {
		FILE *f;

		if (c->per_port || c->rotate_mb) {
			r = sn_error_set(err, -EINVAL, "a live capture is one stream: no %%p, no rotate=");
			goto fail;
		}
		c->main = out_new(c, "-");
		f = c->main ? open_memstream(&c->mem, &c->mem_len) : NULL;
		if (!f) {
			r = sn_error_set(err, -ENOMEM, "out of memory");
			goto fail;
		}
		c->main->d = pcap_dump_fopen(c->dead, f);
		if (!c->main->d) {
			fclose(f);
			r = sn_error_set(err, -ENOMEM, "%s", pcap_geterr(c->dead));
			goto fail;
		}
		c->main->f = f;
		c->files_open++;
		fflush(f); /* the file header: the caller sends it first */
	} else if (!c->per_port) {
		c->main = out_new(c, c->file);
		if (!c->main) {
			r = sn_error_set(err, -ENAMETOOLONG, "file name too long");
			goto fail;
		}
		r = out_open(c, c->main, false);
		if (r < 0) {
			sn_error_set(err, r, "%s", c->error);
			c->error[0] = '\0';
			goto fail;
		}
	} else {
		char probe[PATH_MAX];

		if (sn_capture_expand(probe, sizeof(probe), c->file, "") < 0) {
			r = sn_error_set(err, -ENAMETOOLONG, "file name too long");
			goto fail;
		}
	}
	c->id = m->next_id++;
	c->client = client;
	c->state = SN_CAPTURE_RUNNING;
	for (tail = &m->list; *tail; tail = &(*tail)->next)
		;
	*tail = c;
	sw->ncaptures++;
	flush_timer_update(m);
	sn_info("capture %u: %s%s%s%s%s, dir=%s", c->id, client ? "live stream" : c->file,
		c->filter ? ", filter " : "", c->filter ? c->filter : "", c->ports ? ", ports=" : "",
		c->ports ? c->ports : "", dir_name(c->dir));
	*ret = c;
	return 0;
fail:
	capture_free(c);
	return r;
}

SN_EXPORT int sn_capture_start(struct sn_switch *sw, const char *text, unsigned *ret_id, struct sn_error *err)
{
	struct sn_spec spec;
	struct capture *c;
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!sw || !text)
		return sn_error_set(err, -EINVAL, "no switch or no capture SPEC");
	r = sn_spec_parse(&spec, text, err);
	if (r < 0)
		return r;
	r = capture_start(sw, &spec, NULL, &c, err);
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = c->id;
	return 0;
}

static struct capture *capture_find(struct sn_switch *sw, unsigned id)
{
	struct sn_capture *m = sw->captures;

	for (struct capture *c = m ? m->list : NULL; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

SN_EXPORT int sn_capture_stop(struct sn_switch *sw, unsigned id)
{
	struct capture *c = capture_find(sw, id);
	int r = 0;

	if (!c)
		return -ENOENT;
	for (struct cap_out *o = c->outs; o; o = o->next) {
		int e = out_close(c, o);

		if (e < 0 && !r) {
			r = e;
			sn_err("capture %u: writing %s: %s", c->id, o->path, strerror(-e));
		}
	}
	sn_info("capture %u (%s): stopped after %llu frames", c->id, c->file, (unsigned long long)c->frames);
	capture_free(c);
	return 0;
}

SN_EXPORT int sn_capture_foreach(struct sn_switch *sw, int (*visit)(const struct sn_capture_info *, void *),
				 void *ctx)
{
	struct sn_capture *m = sw->captures;

	for (struct capture *c = m ? m->list : NULL; c; c = c->next) {
		struct sn_capture_info info = {
			.id = c->id,
			.file = c->client ? "-" : c->file,
			.filter = c->filter,
			.ports = c->ports,
			.dir = c->dir,
			.snaplen = c->snaplen,
			.nanosecond = c->nano,
			.rotate_mb = c->rotate_mb,
			.count = c->count,
			.state = c->state,
			.error = c->error[0] ? c->error : NULL,
			.frames = c->frames,
			.bytes = c->bytes,
			.filtered = c->filtered,
			.dropped = c->dropped,
			.errors = c->errors,
			.files_open = c->files_open,
			.rotations = c->rotations,
		};
		int r = visit(&info, ctx);

		if (r)
			return r;
	}
	return 0;
}

SN_EXPORT int sn_capture_reopen_all(struct sn_switch *sw)
{
	struct sn_capture *m = sw->captures;
	struct capture *c, *next;
	int n = 0;

	for (c = m ? m->list : NULL; c; c = next) {
		next = c->next;
		if (c->state != SN_CAPTURE_RUNNING || c->client)
			continue;
		for (struct cap_out *o = c->outs; o && c->state == SN_CAPTURE_RUNNING; o = o->next) {
			struct stat st;
			int r;

			if (!o->d)
				continue;
			if (stat(o->path, &st) == 0 && st.st_dev == o->dev && st.st_ino == o->ino) {
				r = out_flush(o);
				if (r < 0)
					capture_fail(c, r, "writing %s: %s", o->path, strerror(-r));
				continue;
			}
			r = out_close(c, o);
			if (r < 0) {
				capture_fail(c, r, "writing %s: %s", o->path, strerror(-r));
				break;
			}
			r = out_open(c, o, true);
			if (r < 0) {
				c->errors++;
				sn_err("capture %u: reopening: %s; capture stopped", c->id, c->error);
				capture_end(c, SN_CAPTURE_FAILED);
				break;
			}
			sn_info("capture %u: reopened %s", c->id, o->path);
			n++;
		}
	}
	return n;
}

SN_EXPORT void sn_capture_flush_all(struct sn_switch *sw)
{
	struct sn_capture *m = sw->captures;
	struct capture *c, *next;

	for (c = m ? m->list : NULL; c; c = next) {
		next = c->next;
		if (c->state != SN_CAPTURE_RUNNING || c->client)
			continue;
		for (struct cap_out *o = c->outs; o; o = o->next) {
			int r;

			if (!o->d)
				continue;
			r = out_flush(o);
			if (r < 0) {
				capture_fail(c, r, "writing %s: %s", o->path, strerror(-r));
				break;
			}
		}
	}
}

#else /* !SN_HAS_PCAP */

struct capture;

void sn_capture_frame(struct sn_switch *sw, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_capture_dir dir)
{
}

void sn_capture_port_gone(struct sn_switch *sw, struct sn_port *port)
{
}

void sn_capture_destroy_all(struct sn_switch *sw)
{
}

static int capture_start(struct sn_switch *sw, struct sn_spec *spec, struct sn_ctl_client *client,
			 struct capture **ret, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "this build has no libpcap: no captures");
}

SN_EXPORT int sn_capture_start(struct sn_switch *sw, const char *text, unsigned *ret_id, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "this build has no libpcap: no captures");
}

SN_EXPORT int sn_capture_stop(struct sn_switch *sw, unsigned id)
{
	return -ENOENT;
}

SN_EXPORT int sn_capture_foreach(struct sn_switch *sw, int (*visit)(const struct sn_capture_info *, void *),
				 void *ctx)
{
	return 0;
}

SN_EXPORT int sn_capture_reopen_all(struct sn_switch *sw)
{
	return 0;
}

SN_EXPORT void sn_capture_flush_all(struct sn_switch *sw)
{
}

#endif /* SN_HAS_PCAP */

/* ---- control commands ---- */

/* "FILE key=value..." from the command line, as a SPEC whose kind is FILE. */
static int spec_from_args(struct sn_spec *spec, int argc, char **argv, struct sn_error *err)
{
	char *out = spec->buf, *end = spec->buf + sizeof(spec->buf);

	memset(spec, 0, sizeof(*spec));
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]) + 1;
		char *eq;

		if (len > (size_t)(end - out))
			return sn_error_set(err, -E2BIG, "capture arguments longer than %zu bytes", sizeof(spec->buf));
		memcpy(out, argv[i], len);
		if (i == 0) {
			spec->kind = out;
		} else {
			eq = strchr(out, '=');
			if (!eq || eq == out)
				return sn_error_set(err, -EINVAL, "'%s' is not key=value", argv[i]);
			*eq = '\0';
			for (unsigned k = 0; k < spec->n; k++)
				if (!strcmp(spec->kv[k].key, out))
					return sn_error_set(err, -EINVAL, "key '%s' given twice", out);
			if (spec->n == SN_SPEC_MAX_KEYS)
				return sn_error_set(err, -EINVAL, "too many keys");
			spec->kv[spec->n].key = out;
			spec->kv[spec->n].value = eq + 1;
			spec->n++;
		}
		out += len;
	}
	return 0;
}

static int cmd_capture_start_args(struct sn_ctl_ctx *ctx, int argc, char **argv)
{
	struct sn_spec spec;
	struct capture *c;
	bool live;
	int r;

	if (argc > 0 && !strcmp(argv[0], "-w")) {
		argc--;
		argv++;
	}
	if (argc < 1)
		return sn_error_set(&ctx->err, -EINVAL, "usage: capture start FILE|- [KEY=VALUE]...");
	r = spec_from_args(&spec, argc, argv, &ctx->err);
	if (r < 0)
		return r;
	live = !strcmp(spec.kind, "-");
	r = capture_start(ctx->sw, &spec, live ? ctx->client : NULL, &c, &ctx->err);
	if (r < 0)
		return r;
#if SN_HAS_PCAP
	if (live) {
		/* the body is the pcap stream from its first byte: no JSON envelope, no text */
		ctx->body->len = 0;
		sn_buf_add(ctx->body, c->mem, c->mem_len);
		fseek(c->main->f, 0, SEEK_SET);
		sn_ctl_set_stream_end(ctx->client, stream_end_cb, c);
		return SN_CTL_STREAM;
	}
	if (ctx->json)
		sn_json_uint(ctx->j, "id", c->id);
	else
		sn_buf_printf(ctx->body, "%u\n", c->id);
#endif
	return 0;
}

static int cmd_capture_start(struct sn_ctl_ctx *ctx)
{
	return cmd_capture_start_args(ctx, ctx->argc, ctx->argv);
}

static int cmd_capture_w(struct sn_ctl_ctx *ctx)
{
	if (strcmp(ctx->argv[0], "-w"))
		return sn_error_set(&ctx->err, -EINVAL,
				    "unknown capture command '%s' (capture start, list, stop, or capture -w FILE|-)",
				    ctx->argv[0]);
	return cmd_capture_start_args(ctx, ctx->argc, ctx->argv);
}

struct list_walk {
	struct sn_ctl_ctx *ctx;
	struct sn_table *t;
};

static int list_visit(const struct sn_capture_info *i, void *arg)
{
	struct list_walk *w = arg;
	struct sn_json *j = w->ctx->j;

	if (w->ctx->json) {
		sn_json_begin_object(j, NULL);
		sn_json_uint(j, "id", i->id);
		sn_json_string(j, "file", i->file);
		sn_json_string(j, "filter", i->filter);
		sn_json_string(j, "ports", i->ports);
		sn_json_string(j, "dir", dir_name(i->dir));
		sn_json_uint(j, "snaplen", i->snaplen);
		sn_json_string(j, "tstamp", i->nanosecond ? "ns" : "us");
		sn_json_uint(j, "rotate_mb", i->rotate_mb);
		sn_json_uint(j, "count", i->count);
		sn_json_string(j, "state", state_name(i->state));
		sn_json_string(j, "error", i->error);
		sn_json_uint(j, "frames", i->frames);
		sn_json_uint(j, "bytes", i->bytes);
		sn_json_uint(j, "filtered", i->filtered);
		sn_json_uint(j, "dropped", i->dropped);
		sn_json_uint(j, "errors", i->errors);
		sn_json_uint(j, "files_open", i->files_open);
		sn_json_uint(j, "rotations", i->rotations);
		sn_json_end_object(j);
		return 0;
	}
	sn_table_cell(w->t, "%u", i->id);
	sn_table_cell(w->t, "%s", state_name(i->state));
	sn_table_cell(w->t, "%s", dir_name(i->dir));
	sn_table_cell(w->t, "%llu", (unsigned long long)i->frames);
	sn_table_cell(w->t, "%llu", (unsigned long long)i->bytes);
	sn_table_cell(w->t, "%llu", (unsigned long long)i->dropped);
	sn_table_cell(w->t, "%u", i->files_open);
	sn_table_cell(w->t, "%s", i->ports ? i->ports : "*");
	sn_table_cell(w->t, "%s", i->filter ? i->filter : "-");
	sn_table_cell(w->t, "%s%s%s", i->file, i->error ? "  # " : "", i->error ? i->error : "");
	return 0;
}

static int cmd_capture_list(struct sn_ctl_ctx *ctx)
{
	static const char *const head[] = {">ID", "STATE", "DIR", ">FRAMES", ">BYTES", ">DROPPED", ">FILES",
					   "PORTS", "FILTER", "FILE"};
	struct sn_table t = {.head = head, .ncol = SN_ARRAY_SIZE(head)};
	struct list_walk w = {ctx, &t};

	if (ctx->json) {
		sn_json_begin_array(ctx->j, "captures");
		sn_capture_foreach(ctx->sw, list_visit, &w);
		sn_json_end_array(ctx->j);
		return 0;
	}
	sn_capture_foreach(ctx->sw, list_visit, &w);
	sn_table_render(&t, ctx->body);
	sn_table_free(&t);
	return 0;
}

static int cmd_capture_stop(struct sn_ctl_ctx *ctx)
{
	const char *arg = ctx->argv[0];
	char *end;
	unsigned long id;
	int r;

	errno = 0;
	id = strtoul(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end || errno || id > UINT_MAX)
		return sn_error_set(&ctx->err, -EINVAL, "'%s' is not a capture ID ('capture list' shows them)", arg);
	r = sn_capture_stop(ctx->sw, (unsigned)id);
	if (r == -ENOENT)
		return sn_error_set(&ctx->err, r, "no capture %lu", id);
	if (r < 0)
		return r;
	if (ctx->json)
		sn_json_uint(ctx->j, "stopped", id);
	return 0;
}

static const struct sn_ctl_cmd capture_cmds[] = {
	{"capture start", "FILE|- [filter=EXPR] [ports=A+B] [dir=in|out|both] [KEY=VALUE]...",
	 "write a pcap file (%p: one per port), or stream one ('-'); prints its ID", 1, 1 + SN_SPEC_MAX_KEYS,
	 cmd_capture_start},
	{"capture list", "", "list captures with their state and counters", 0, 0, cmd_capture_list},
	{"capture stop", "ID", "stop a capture, closing its files", 1, 1, cmd_capture_stop},
	/* last: the two words above must win over this one */
	{"capture", "-w FILE|- [KEY=VALUE]...", "tcpdump spelling of 'capture start' ('-w -': live pcap on stdout)",
	 2, 2 + SN_SPEC_MAX_KEYS, cmd_capture_w},
};

const struct sn_ctl_cmds sn_capture_ctl_cmds = {capture_cmds, SN_ARRAY_SIZE(capture_cmds)};
