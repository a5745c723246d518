/* capture.c - pcap captures of the frames the switch carries.
 *
 * libpcap does everything pcap: the file format (dumpers on a dead DLT_EN10MB handle), the
 * filters (pcap_compile on that handle, pcap_offline_filter per frame) and appending to an
 * existing file. This file decides which frames go to which file (ports=, dir=, "%p" per-port
 * files), and looks after the files' lives: big stdio buffers flushed by one 1 s timer for the
 * whole switch, rotation, reopening after log rotation, and stopping a capture whose file fails
 * while the switch goes on switching. A live capture ("-") writes through a dumper on an
 * open_memstream() FILE, so libpcap still makes every byte, and each record is moved to the
 * capture's sink (capture_ctl.c's is the control connection that asked for it). Captures see
 * frames through one frame tap per switch, on while any capture runs. The frame path allocates
 * nothing: a port's entry in a capture's routing cache (and its per-port file) is made on that
 * port's first frame only. */
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
#include "hooks.h"
#include "logging.h"
#include "port.h"
#include "spec.h"
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

const char *sn_capture_dir_name(unsigned dir)
{
	return dir == SN_CAPTURE_IN ? "in" : dir == SN_CAPTURE_OUT ? "out" : "both";
}

const char *sn_capture_state_name(enum sn_capture_state s)
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
	/* a live stream: the memstream the dumper writes into, and the sink it goes to */
	struct sn_capture_sink *sink;
	char *mem;
	size_t mem_len;
	char error[256];
	uint64_t frames, bytes, filtered, dropped, errors;
	unsigned files_open, rotations;
};

/* capture.c's state for one switch: an extension of it, and its frame tap while any capture
 * runs. */
struct sn_capture {
	struct sn_switch_ext ext;
	struct sn_frame_tap tap;
	struct sn_switch *sw;
	struct capture *list;
	unsigned running;            /* captures RUNNING: the tap is on while there are some */
	unsigned next_id;
	ev_timer flush;
	struct timespec now;         /* the timestamp of frames captured in loop iteration @now_iter */
	unsigned now_iter;
	bool now_valid;
};

static const char module_key = 0; /* the address the switch knows capture.c's state by */

static struct sn_capture *module_of(struct sn_switch *sw)
{
	struct sn_switch_ext *e = sn_switch_ext_find(sw, &module_key);

	return e ? sn_container_of(e, struct sn_capture, ext) : NULL;
}

static void tap_frame(struct sn_frame_tap *tap, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_tap_dir dir);
static void tap_port_gone(struct sn_frame_tap *tap, struct sn_port *port);
static void module_destroy(struct sn_switch_ext *ext);

/* The module's state, made on the first capture. */
static struct sn_capture *module(struct sn_switch *sw)
{
	struct sn_capture *m = module_of(sw);

	if (m)
		return m;
	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->sw = sw;
	m->next_id = 1;
	m->ext = (struct sn_switch_ext){.key = &module_key, .destroy = module_destroy};
	m->tap = (struct sn_frame_tap){.frame = tap_frame, .port_gone = tap_port_gone};
	ev_init(&m->flush, NULL);
	sn_switch_ext_add(sw, &m->ext);
	return m;
}

/* One more or one fewer capture runs: the tap is on while any does. */
static void running(struct sn_capture *m, int delta)
{
	if (delta > 0 && m->running++ == 0)
		sn_switch_tap_add(m->sw, &m->tap);
	else if (delta < 0 && --m->running == 0)
		sn_switch_tap_del(m->sw, &m->tap);
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

static struct capture *capture_find(struct sn_switch *sw, unsigned id);

void sn_capture_sink_gone(struct sn_switch *sw, unsigned id)
{
	struct capture *c = capture_find(sw, id);

	/* the reader went away: its capture only ends */
	if (!c)
		return;
	sn_debug("capture %u: live reader left after %llu frames", c->id, (unsigned long long)c->frames);
	c->sink = NULL;
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
	running(m, -1);
	for (struct cap_out *o = c->outs; o; o = o->next)
		out_close(c, o);
	c->nseen = 0;
	if (c->sink) {
		c->sink->end(c->sink);
		c->sink = NULL;
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
		running(m, -1);
		c->state = SN_CAPTURE_DONE;
	}
	if (c->sink)
		c->sink->end(c->sink);
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
	struct ev_loop *loop = sn_switch_loop(m->sw);
	bool want = m->running > 0;

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
	r = c->sink->write(c->sink, c->mem, c->mem_len);
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

static void tap_frame(struct sn_frame_tap *tap, struct sn_port *port, const uint8_t *data, uint32_t len,
		      enum sn_tap_dir dir)
{
	struct sn_capture *m = sn_container_of(tap, struct sn_capture, tap);
	struct ev_loop *loop = sn_switch_loop(m->sw);
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
		if (!m->now_valid || m->now_iter != ev_iteration(loop)) {
			clock_gettime(CLOCK_REALTIME, &m->now);
			m->now_iter = ev_iteration(loop);
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
		if (c->sink) {
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

static void tap_port_gone(struct sn_frame_tap *tap, struct sn_port *port)
{
	struct sn_capture *m = sn_container_of(tap, struct sn_capture, tap);
	struct capture *c, *next;

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

static void module_destroy(struct sn_switch_ext *ext)
{
	struct sn_capture *m = sn_container_of(ext, struct sn_capture, ext);

	while (m->list)
		capture_free(m->list);
	flush_timer_update(m);
	free(m);
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

/* Starts a capture from a parsed SPEC; @sink is where a live one goes. */
static int capture_start(struct sn_switch *sw, struct sn_spec *spec, struct sn_capture_sink *sink,
			 struct capture **ret, struct sn_error *err)
{
	struct sn_capture *m = module(sw);
	struct capture *c, **tail;
	int r;

	if (!m)
		return sn_error_set(err, -ENOMEM, "out of memory");
	if (!strcmp(spec->kind, "-") != (sink != NULL))
		return sn_error_set(err, -EINVAL, sink ? "a stream is the live capture '-', not a file"
						       : "'-' is a live capture: only the control socket streams one");
	c = calloc(1, sizeof(*c));
	if (!c)
		return sn_error_set(err, -ENOMEM, "out of memory");
	c->mod = m;
	c->state = SN_CAPTURE_DONE; /* not counted in ncaptures until it runs */
	r = capture_configure(c, spec, err);
	if (r < 0)
		goto fail;
	if (sink) {
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
		fflush(f); /* the file header goes first */
		r = sink->write(sink, c->mem, c->mem_len);
		fseek(f, 0, SEEK_SET);
		if (r < 0) {
			sn_error_set(err, r, "live stream: %s", strerror(-r));
			goto fail;
		}
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
	c->sink = sink;
	c->state = SN_CAPTURE_RUNNING;
	for (tail = &m->list; *tail; tail = &(*tail)->next)
		;
	*tail = c;
	running(m, +1);
	flush_timer_update(m);
	sn_info("capture %u: %s%s%s%s%s, dir=%s", c->id, sink ? "live stream" : c->file,
		c->filter ? ", filter " : "", c->filter ? c->filter : "", c->ports ? ", ports=" : "",
		c->ports ? c->ports : "", sn_capture_dir_name(c->dir));
	*ret = c;
	return 0;
fail:
	capture_free(c);
	return r;
}

int sn_capture_start_spec(struct sn_switch *sw, struct sn_spec *spec, struct sn_capture_sink *sink,
			  unsigned *ret_id, struct sn_error *err)
{
	struct capture *c;
	int r = capture_start(sw, spec, sink, &c, err);

	if (r >= 0 && ret_id)
		*ret_id = c->id;
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
	struct sn_capture *m = module_of(sw);

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
	struct sn_capture *m = module_of(sw);

	for (struct capture *c = m ? m->list : NULL; c; c = c->next) {
		struct sn_capture_info info = {
			.id = c->id,
			.file = c->sink ? "-" : c->file,
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
	struct sn_capture *m = module_of(sw);
	struct capture *c, *next;
	int n = 0;

	for (c = m ? m->list : NULL; c; c = next) {
		next = c->next;
		if (c->state != SN_CAPTURE_RUNNING || c->sink)
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
	struct sn_capture *m = module_of(sw);
	struct capture *c, *next;

	for (c = m ? m->list : NULL; c; c = next) {
		next = c->next;
		if (c->state != SN_CAPTURE_RUNNING || c->sink)
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

int sn_capture_start_spec(struct sn_switch *sw, struct sn_spec *spec, struct sn_capture_sink *sink,
			  unsigned *ret_id, struct sn_error *err)
{
	return sn_error_set(err, -ENOTSUP, "this build has no libpcap: no captures");
}

void sn_capture_sink_gone(struct sn_switch *sw, unsigned id)
{
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

