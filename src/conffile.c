/* conffile.c - configuration files (<squibnet/conffile.h>): reading and checking one, applying
 * it to a running switch as a difference, writing what runs back in the same format; and the
 * control commands "reload" and "save". The switch keeps the configuration it applied last as
 * an extension of its own, so that the next apply knows which ports, captures and static
 * entries were the file's. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <squibnet/capture.h>
#include <squibnet/conffile.h>

#include "control.h"
#include "hooks.h"
#include "json.h"
#include "logging.h"
#include "spec.h"
#include "util.h"

#define LINE_MAX_LEN 4096
#define FILE_MAX_LEN (4u << 20)

/* ---- what a file says ---- */

struct cf_port {
	unsigned line;
	char *spec;
	char name[SN_PORT_NAME_MAX];
};

struct cf_fdb {
	unsigned line;
	uint8_t mac[6];
	uint16_t vlan;
	char port[SN_PORT_NAME_MAX];
	char dst[64];                /* behind a tunnel port: the remote VTEP; "" without dst= */
};

struct cf_capture {
	unsigned line;
	char *spec;
	unsigned id; /* once started by an apply; 0: not running */
};

enum setting_id { S_FDB_MAX, S_FDB_PORT_MAX, S_FDB_AGING, S_FDB_EVICT, S_POOL_FRAMES, S_TXQ_LEN, S_STALL, S_SOCK_BUF, S_COUNT };

static const struct setting {
	const char *key;
	unsigned min, max; /* 0, 0: on or off */
	bool at_creation;  /* takes effect only when the switch is created */
} settings[S_COUNT] = {
	[S_FDB_MAX] = {"fdb-max", 1, 1u << 24, false},
	[S_FDB_PORT_MAX] = {"fdb-port-max", 1, 1u << 24, false},
	[S_FDB_AGING] = {"fdb-aging", 1, 1000000, false},
	[S_FDB_EVICT] = {"fdb-evict", 0, 0, false},
	[S_POOL_FRAMES] = {"pool-frames", 64, 1u << 22, true},
	[S_TXQ_LEN] = {"txq-len", 8, 1u << 20, true},
	[S_STALL] = {"stall-timeout", 1, 3600000, false},
	[S_SOCK_BUF] = {"sock-buf", 0, 256u << 20, false},
};

struct sn_conffile {
	char *path;
	struct sn_switch_config cfg; /* the defaults with the file's settings over them */
	unsigned set_line[S_COUNT];  /* where each setting was given; 0: not given */
	struct cf_port *ports;
	size_t nports, cap_ports;
	struct cf_fdb *fdb;
	size_t nfdb, cap_fdb;
	struct cf_capture *caps;
	size_t ncaps, cap_caps;
};

/* A setting's value as the file writes it: whole seconds for the aging time, milliseconds for
 * the stall timeout. */
static unsigned setting_get(const struct sn_switch_config *cfg, enum setting_id s)
{
	switch (s) {
	case S_FDB_MAX:
		return cfg->fdb_max;
	case S_FDB_PORT_MAX:
		return cfg->fdb_port_max;
	case S_FDB_AGING:
		return (unsigned)(cfg->fdb_aging + 0.5);
	case S_FDB_EVICT:
		return cfg->fdb_evict;
	case S_POOL_FRAMES:
		return cfg->pool_frames;
	case S_TXQ_LEN:
		return cfg->txq_len;
	case S_STALL:
		return (unsigned)(cfg->stall_timeout * 1000 + 0.5);
	case S_SOCK_BUF:
		return (unsigned)cfg->sock_buf;
	case S_COUNT:
		break;
	}
	return 0;
}

static void setting_put(struct sn_switch_config *cfg, enum setting_id s, unsigned v)
{
	switch (s) {
	case S_FDB_MAX:
		cfg->fdb_max = v;
		break;
	case S_FDB_PORT_MAX:
		cfg->fdb_port_max = v;
		break;
	case S_FDB_AGING:
		cfg->fdb_aging = v;
		break;
	case S_FDB_EVICT:
		cfg->fdb_evict = v != 0;
		break;
	case S_POOL_FRAMES:
		cfg->pool_frames = v;
		break;
	case S_TXQ_LEN:
		cfg->txq_len = v;
		break;
	case S_STALL:
		cfg->stall_timeout = v / 1000.0;
		break;
	case S_SOCK_BUF:
		cfg->sock_buf = v;
		break;
	case S_COUNT:
		break;
	}
}

static unsigned round_pow2(unsigned v)
{
	unsigned q = 1;

	while (q < v)
		q <<= 1;
	return q;
}

/* Whether two configurations say the same for @s, as the switch would run it. */
static bool setting_same(const struct sn_switch_config *a, const struct sn_switch_config *b, enum setting_id s)
{
	if (s == S_TXQ_LEN)
		return round_pow2(a->txq_len) == round_pow2(b->txq_len);
	if (s == S_FDB_PORT_MAX) /* 0 and anything at or over the cap mean the cap */
		return (a->fdb_port_max && a->fdb_port_max < a->fdb_max ? a->fdb_port_max : a->fdb_max) ==
		       (b->fdb_port_max && b->fdb_port_max < b->fdb_max ? b->fdb_port_max : b->fdb_max);
	if (s == S_FDB_AGING)
		return a->fdb_aging == b->fdb_aging;
	if (s == S_STALL)
		return a->stall_timeout == b->stall_timeout;
	return setting_get(a, s) == setting_get(b, s);
}

/* ---- reading a file ---- */

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	void *nv;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	nv = realloc(*v, ncap * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

SN_EXPORT void sn_conffile_free(struct sn_conffile *cf)
{
	if (!cf)
		return;
	for (size_t i = 0; i < cf->nports; i++)
		free(cf->ports[i].spec);
	for (size_t i = 0; i < cf->ncaps; i++)
		free(cf->caps[i].spec);
	free(cf->ports);
	free(cf->fdb);
	free(cf->caps);
	free(cf->path);
	free(cf);
}

static bool name_ok(const char *name)
{
	return *name && strlen(name) < SN_PORT_NAME_MAX && !strpbrk(name, " \t\n/");
}

static int parse_port(struct sn_conffile *cf, const char *text, unsigned line, struct sn_error *err)
{
	struct sn_spec spec;
	const char *name;
	struct cf_port *p;
	int r;

	r = sn_port_spec_check(text, err);
	if (r < 0)
		return r;
	sn_spec_parse(&spec, text, err); /* it parsed just now */
	name = sn_spec_get(&spec, "name");
	if (!name)
		return sn_error_set(err, -EINVAL, "port needs name=NAME here: a reload tells ports apart by name");
	if (!name_ok(name))
		return sn_error_set(err, -EINVAL, "bad value '%s' for key 'name': 1 to %d characters, no blanks or '/'",
				    name, SN_PORT_NAME_MAX - 1);
	for (size_t i = 0; i < cf->nports; i++)
		if (!strcmp(cf->ports[i].name, name))
			return sn_error_set(err, -EEXIST, "port '%s' is defined at line %u already", name, cf->ports[i].line);
	if (grow((void **)&cf->ports, &cf->cap_ports, cf->nports, sizeof(*cf->ports)) < 0)
		return sn_error_set(err, -ENOMEM, "out of memory");
	p = &cf->ports[cf->nports];
	*p = (struct cf_port){.line = line, .spec = strdup(text)};
	if (!p->spec)
		return sn_error_set(err, -ENOMEM, "out of memory");
	sn_strlcpy(p->name, name, sizeof(p->name));
	cf->nports++;
	return 0;
}

static int parse_capture(struct sn_conffile *cf, const char *text, unsigned line, struct sn_error *err)
{
	struct sn_spec spec;
	struct cf_capture *c;
	int r;

	/* the grammar now; the keys, the filter and the file when it starts */
	r = sn_spec_parse(&spec, text, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < cf->ncaps; i++)
		if (!strcmp(cf->caps[i].spec, text))
			return sn_error_set(err, -EEXIST, "the same capture is at line %u already", cf->caps[i].line);
	if (grow((void **)&cf->caps, &cf->cap_caps, cf->ncaps, sizeof(*cf->caps)) < 0)
		return sn_error_set(err, -ENOMEM, "out of memory");
	c = &cf->caps[cf->ncaps];
	*c = (struct cf_capture){.line = line, .spec = strdup(text)};
	if (!c->spec)
		return sn_error_set(err, -ENOMEM, "out of memory");
	cf->ncaps++;
	return 0;
}

/* Splits @s at blanks into at most @max words; returns how many, or -1 for more. */
static int split_words(char *s, char **words, int max)
{
	int n = 0;

	for (;;) {
		s += strspn(s, " \t");
		if (!*s)
			return n;
		if (n == max)
			return -1;
		words[n++] = s;
		s += strcspn(s, " \t");
		if (*s)
			*s++ = '\0';
	}
}

static int parse_fdb(struct sn_conffile *cf, char *text, unsigned line, struct sn_error *err)
{
	char *w[4];
	int n = split_words(text, w, 4);
	struct cf_fdb e = {.line = line};
	unsigned vlan = 0;

	if (n < 2)
		return sn_error_set(err, -EINVAL, "usage: fdb MAC PORT [vlan=N] [dst=IP]");
	if (n < 0)
		return sn_error_set(err, -EINVAL, "too many words (usage: fdb MAC PORT [vlan=N] [dst=IP])");
	if (sn_mac_parse(w[0], e.mac) < 0)
		return sn_error_set(err, -EINVAL, "'%s' is not a MAC address (want xx:xx:xx:xx:xx:xx)", w[0]);
	if (e.mac[0] & 1)
		return sn_error_set(err, -EINVAL, "%s is a multicast address: static entries are for unicast", w[0]);
	if (!name_ok(w[1]))
		return sn_error_set(err, -EINVAL, "'%s' is not a port name", w[1]);
	for (int i = 2; i < n; i++) {
		/* dst=: the remote VTEP behind a tunnel port, checked by the port when applied */
		if (!strncmp(w[i], "dst=", 4) && w[i][4] && !e.dst[0]) {
			if (sn_strlcpy(e.dst, w[i] + 4, sizeof(e.dst)) < 0)
				return sn_error_set(err, -EINVAL, "'%s': too long for an address", w[i]);
			continue;
		}
		if (strncmp(w[i], "vlan=", 5) || sn_parse_uint(w[i] + 5, 0, 4095, &vlan) < 0)
			return sn_error_set(err, -EINVAL, "'%s': want vlan=N, N from 0 to 4095, or dst=IP", w[i]);
	}
	e.vlan = (uint16_t)vlan;
	sn_strlcpy(e.port, w[1], sizeof(e.port));
	for (size_t i = 0; i < cf->nfdb; i++)
		if (!memcmp(cf->fdb[i].mac, e.mac, 6) && cf->fdb[i].vlan == e.vlan)
			return sn_error_set(err, -EEXIST, "an entry for %s on VLAN %u is at line %u already", w[0], vlan,
					    cf->fdb[i].line);
	if (grow((void **)&cf->fdb, &cf->cap_fdb, cf->nfdb, sizeof(*cf->fdb)) < 0)
		return sn_error_set(err, -ENOMEM, "out of memory");
	cf->fdb[cf->nfdb++] = e;
	return 0;
}

static int parse_set(struct sn_conffile *cf, char *text, unsigned line, struct sn_error *err)
{
	char *w[S_COUNT];
	int n = split_words(text, w, S_COUNT);

	if (n == 0)
		return sn_error_set(err, -EINVAL, "usage: set KEY=VALUE...");
	if (n < 0)
		return sn_error_set(err, -EINVAL, "too many settings on one line");
	for (int i = 0; i < n; i++) {
		char *eq = strchr(w[i], '=');
		const struct setting *s = NULL;
		enum setting_id id = S_COUNT;
		unsigned v;

		if (!eq || eq == w[i])
			return sn_error_set(err, -EINVAL, "'%s' is not KEY=VALUE", w[i]);
		*eq = '\0';
		for (unsigned k = 0; k < S_COUNT; k++)
			if (!strcmp(settings[k].key, w[i]))
				s = &settings[id = (enum setting_id)k];
		if (!s)
			return sn_error_set(err, -EINVAL, "unknown setting '%s' (there are fdb-max, fdb-port-max, fdb-aging, "
					    "fdb-evict, pool-frames, txq-len, stall-timeout, sock-buf)", w[i]);
		if (cf->set_line[id])
			return sn_error_set(err, -EEXIST, "setting '%s' is given at line %u already", s->key, cf->set_line[id]);
		if (s->max == 0) {
			if (!strcmp(eq + 1, "on"))
				v = 1;
			else if (!strcmp(eq + 1, "off"))
				v = 0;
			else
				return sn_error_set(err, -EINVAL, "bad value '%s' for setting '%s': want on or off", eq + 1,
						    s->key);
		} else if (sn_parse_uint(eq + 1, s->min, s->max, &v) < 0) {
			return sn_error_set(err, -EINVAL, "bad value '%s' for setting '%s': want a number from %u to %u",
					    eq + 1, s->key, s->min, s->max);
		}
		setting_put(&cf->cfg, id, v);
		cf->set_line[id] = line;
	}
	return 0;
}

/* Cuts the comment off @line: from a '#' that starts a word (at the start of the line or after a
 * blank) and is not inside "...", as a SPEC quotes values. */
static void strip_comment(char *line)
{
	bool quoted = false;

	for (char *p = line; *p; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '#' && !quoted && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
	}
}

/* One line, without its newline. */
static int parse_line(struct sn_conffile *cf, char *line, unsigned no, struct sn_error *err)
{
	char *word, *rest, *end;
	size_t n;

	strip_comment(line);
	line += strspn(line, " \t");
	end = line + strlen(line);
	while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	if (!*line)
		return 0;
	word = line;
	n = strcspn(line, " \t");
	rest = line + n;
	if (*rest)
		*rest++ = '\0';
	rest += strspn(rest, " \t");
	if (!strcmp(word, "port") || !strcmp(word, "capture")) {
		if (!*rest)
			return sn_error_set(err, -EINVAL, "usage: %s SPEC", word);
		return word[0] == 'p' ? parse_port(cf, rest, no, err) : parse_capture(cf, rest, no, err);
	}
	if (!strcmp(word, "fdb"))
		return parse_fdb(cf, rest, no, err);
	if (!strcmp(word, "set"))
		return parse_set(cf, rest, no, err);
	return sn_error_set(err, -EINVAL, "unknown directive '%.64s' (a line is 'port SPEC', 'capture SPEC', "
			    "'fdb MAC PORT [vlan=N]' or 'set KEY=VALUE')", word);
}

SN_EXPORT int sn_conffile_load(const char *path, struct sn_conffile **ret_cf, struct sn_error *err)
{
	struct sn_conffile *cf;
	struct sn_error e;
	char *line = NULL;
	size_t cap = 0, total = 0;
	unsigned no = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	if (err)
		err->msg[0] = '\0';
	if (!path || !ret_cf)
		return sn_error_set(err, -EINVAL, "no path");
	f = fopen(path, "re");
	if (!f)
		return sn_error_set(err, -errno, "%s: %s", path, strerror(errno));
	cf = calloc(1, sizeof(*cf));
	if (!cf || !(cf->path = strdup(path))) {
		free(cf);
		fclose(f);
		return sn_error_set(err, -ENOMEM, "out of memory");
	}
	sn_switch_config_init(&cf->cfg);
	while ((n = getline(&line, &cap, f)) >= 0) {
		no++;
		total += (size_t)n;
		if (total > FILE_MAX_LEN) {
			r = sn_error_set(&e, -EFBIG, "the file is longer than %u bytes", FILE_MAX_LEN);
			break;
		}
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > LINE_MAX_LEN) {
			r = sn_error_set(&e, -EINVAL, "line longer than %d bytes", LINE_MAX_LEN);
			break;
		}
		if (strlen(line) != (size_t)n) {
			r = sn_error_set(&e, -EINVAL, "the line holds a NUL byte");
			break;
		}
		r = parse_line(cf, line, no, &e);
		if (r < 0)
			break;
	}
	if (r == 0 && ferror(f))
		r = sn_error_set(err, -EIO, "%s: read error", path);
	else if (r < 0)
		sn_error_set(err, r == -EEXIST ? -EINVAL : r, "%s:%u: %s", path, no, e.msg);
	if (r == -EEXIST)
		r = -EINVAL;
	free(line);
	fclose(f);
	if (r < 0) {
		sn_conffile_free(cf);
		return r;
	}
	*ret_cf = cf;
	return 0;
}

SN_EXPORT void sn_conffile_switch_config(const struct sn_conffile *cf, struct sn_switch_config *ret_cfg)
{
	*ret_cfg = cf->cfg;
}

/* ---- applying one ---- */

struct conf_state {
	struct sn_switch_ext ext;
	struct sn_conffile *cf; /* the configuration applied last */
};

static const char module_key = 0;

static void state_destroy(struct sn_switch_ext *ext)
{
	struct conf_state *st = sn_container_of(ext, struct conf_state, ext);

	sn_conffile_free(st->cf);
	free(st);
}

static struct conf_state *state_get(struct sn_switch *sw, bool create)
{
	struct sn_switch_ext *e = sn_switch_ext_find(sw, &module_key);
	struct conf_state *st;

	if (e || !create)
		return e ? sn_container_of(e, struct conf_state, ext) : NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->ext = (struct sn_switch_ext){.key = &module_key, .destroy = state_destroy};
	sn_switch_ext_add(sw, &st->ext);
	return st;
}

/* Whether two SPECs say the same: the same kind and the same keys with the same values, in any
 * order. */
static bool spec_same(const char *a, const char *b)
{
	struct sn_spec x, y;

	if (sn_spec_parse(&x, a, NULL) < 0 || sn_spec_parse(&y, b, NULL) < 0)
		return !strcmp(a, b);
	if (strcmp(x.kind, y.kind) || x.n != y.n)
		return false;
	for (unsigned i = 0; i < x.n; i++) {
		const char *v = sn_spec_get(&y, x.kv[i].key);

		if (!v || strcmp(v, x.kv[i].value))
			return false;
	}
	return true;
}

struct find_port {
	const char *name;
	bool found;
	char *spec; /* a copy, or NULL when the port has none */
};

static int find_port_visit(const struct sn_port_info *p, void *ctx)
{
	struct find_port *f = ctx;

	if (strcmp(p->name, f->name))
		return 0;
	f->found = true;
	f->spec = p->spec ? strdup(p->spec) : NULL;
	return 1;
}

struct statics {
	struct sn_fdb_info *v; /* port names copied into @names, remote VTEPs into @dsts */
	char (*names)[SN_PORT_NAME_MAX];
	char (*dsts)[64];
	size_t n, cap;
	bool failed;
};

static int statics_visit(const struct sn_fdb_info *e, void *ctx)
{
	struct statics *s = ctx;

	if (!e->is_static)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct sn_fdb_info *v = realloc(s->v, cap * sizeof(*v));
		char(*names)[SN_PORT_NAME_MAX];

		char(*dsts)[64];

		if (v)
			s->v = v;
		names = v ? realloc(s->names, cap * sizeof(*names)) : NULL;
		if (names)
			s->names = names;
		dsts = names ? realloc(s->dsts, cap * sizeof(*dsts)) : NULL;
		if (!dsts) {
			s->failed = true;
			return 1;
		}
		s->dsts = dsts;
		s->cap = cap;
	}
	s->v[s->n] = *e;
	sn_strlcpy(s->names[s->n], e->port, sizeof(s->names[s->n]));
	s->v[s->n].port = s->names[s->n];
	/* e->dst lives as long as this call: keep a copy */
	sn_strlcpy(s->dsts[s->n], e->dst ? e->dst : "", sizeof(s->dsts[s->n]));
	s->v[s->n].dst = e->dst ? s->dsts[s->n] : NULL;
	s->n++;
	return 0;
}

static const struct sn_fdb_info *statics_find(const struct statics *s, const uint8_t mac[6], uint16_t vlan)
{
	for (size_t i = 0; i < s->n; i++)
		if (!memcmp(s->v[i].mac, mac, 6) && s->v[i].vlan == vlan)
			return &s->v[i];
	return NULL;
}

static int capture_running_visit(const struct sn_capture_info *i, void *ctx)
{
	return i->id == *(unsigned *)ctx;
}

static bool capture_exists(struct sn_switch *sw, unsigned id)
{
	return id && sn_capture_foreach(sw, capture_running_visit, &id) == 1;
}

/* The first failure is what the caller hears of; every one goes to the log. */
struct outcome {
	struct sn_conffile_changes ch;
	struct sn_buf *notes; /* a line for each change, for the control reply; may be NULL */
	int first;
	struct sn_error *err;
	const char *path;
};

static void failed(struct outcome *o, unsigned line, int r, const char *what, const char *msg)
{
	sn_warn("config: %s:%u: %s: %s", o->path, line, what, msg);
	o->ch.failed++;
	if (!o->first) {
		o->first = r < 0 ? r : -EINVAL;
		sn_error_set(o->err, o->first, "%s:%u: %s: %s", o->path, line, what, msg);
	}
}

static void note(struct outcome *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(struct outcome *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	sn_info("config: %s", line);
	if (o->notes)
		sn_buf_printf(o->notes, "%s\n", line);
}

static void apply_settings(struct sn_switch *sw, const struct sn_conffile *cf, struct outcome *o)
{
	struct sn_switch_config run, want;
	unsigned line = 0;
	bool change = false;
	struct sn_error e;
	int r;

	sn_switch_get_config(sw, &run);
	want = cf->cfg;
	for (unsigned s = 0; s < S_COUNT; s++) {
		if (setting_same(&run, &cf->cfg, s))
			continue;
		if (settings[s].at_creation) {
			o->ch.settings_at_restart++;
			note(o, "setting %s=%u takes effect when squibnet starts again (it runs with %u)", settings[s].key,
			     setting_get(&cf->cfg, s), setting_get(&run, s));
			continue;
		}
		change = true;
		if (!line || (cf->set_line[s] && cf->set_line[s] < line))
			line = cf->set_line[s];
		o->ch.settings_changed++;
		note(o, "setting %s=%u (was %u)", settings[s].key, setting_get(&cf->cfg, s), setting_get(&run, s));
	}
	if (!change)
		return;
	want.pool_frames = run.pool_frames;
	want.jumbo_frames = run.jumbo_frames;
	want.txq_len = run.txq_len;
	r = sn_switch_reconfigure(sw, &want, &e);
	if (r < 0)
		failed(o, line, r, "settings", e.msg);
}

static bool cf_has_port(const struct sn_conffile *cf, const char *name)
{
	for (size_t i = 0; cf && i < cf->nports; i++)
		if (!strcmp(cf->ports[i].name, name))
			return true;
	return false;
}

static void apply_ports(struct sn_switch *sw, const struct sn_conffile *old, const struct sn_conffile *cf,
			struct outcome *o)
{
	bool *add = calloc(cf->nports + 1, sizeof(*add)), *changed = calloc(cf->nports + 1, sizeof(*changed));
	struct sn_error e;

	if (!add || !changed) {
		failed(o, 0, -ENOMEM, "ports", "out of memory");
		goto out;
	}
	/* removals first: a new port may want an old one's address */
	for (size_t i = 0; old && i < old->nports; i++) {
		if (cf_has_port(cf, old->ports[i].name))
			continue;
		if (sn_switch_del_port(sw, old->ports[i].name) == 0) {
			o->ch.ports_removed++;
			note(o, "port %s removed", old->ports[i].name);
		}
	}
	for (size_t i = 0; i < cf->nports; i++) {
		struct find_port f = {.name = cf->ports[i].name};

		sn_switch_foreach_port(sw, find_port_visit, &f);
		if (!f.found) {
			add[i] = true;
		} else if (f.spec && spec_same(f.spec, cf->ports[i].spec)) {
			o->ch.ports_kept++;
		} else {
			/* another SPEC, or a port made otherwise under this name (a listener's client) */
			sn_switch_del_port(sw, cf->ports[i].name);
			add[i] = changed[i] = true;
		}
		free(f.spec);
	}
	for (size_t i = 0; i < cf->nports; i++) {
		int r;

		if (!add[i])
			continue;
		r = sn_switch_add_port(sw, cf->ports[i].spec, NULL, 0, &e);
		if (r < 0) {
			failed(o, cf->ports[i].line, r, cf->ports[i].name, e.msg);
			continue;
		}
		if (changed[i])
			o->ch.ports_changed++;
		else
			o->ch.ports_added++;
		note(o, "port %s %s", cf->ports[i].name, changed[i] ? "changed (removed and added again)" : "added");
	}
out:
	free(add);
	free(changed);
}

static void apply_fdb(struct sn_switch *sw, const struct sn_conffile *old, const struct sn_conffile *cf,
		      struct outcome *o)
{
	struct statics cur = {0};
	char mac[18];

	sn_switch_foreach_fdb(sw, statics_visit, &cur);
	if (cur.failed) {
		failed(o, 0, -ENOMEM, "fdb", "out of memory");
		goto out;
	}
	for (size_t i = 0; old && i < old->nfdb; i++) {
		const struct cf_fdb *x = &old->fdb[i];
		const struct sn_fdb_info *now;
		bool listed = false;

		for (size_t k = 0; k < cf->nfdb && !listed; k++)
			listed = !memcmp(cf->fdb[k].mac, x->mac, 6) && cf->fdb[k].vlan == x->vlan;
		now = statics_find(&cur, x->mac, x->vlan);
		/* only what the file pinned: an entry someone pinned elsewhere since stays */
		if (listed || !now || strcmp(now->port, x->port))
			continue;
		if (sn_switch_fdb_del(sw, x->mac, x->vlan) == 0) {
			o->ch.fdb_removed++;
			snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", x->mac[0], x->mac[1], x->mac[2],
				 x->mac[3], x->mac[4], x->mac[5]);
			note(o, "fdb %s vlan %u removed", mac, x->vlan);
		}
	}
	for (size_t i = 0; i < cf->nfdb; i++) {
		const struct cf_fdb *x = &cf->fdb[i];
		const struct sn_fdb_info *now = statics_find(&cur, x->mac, x->vlan);
		int r;

		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", x->mac[0], x->mac[1], x->mac[2], x->mac[3],
			 x->mac[4], x->mac[5]);
		if (now && !strcmp(now->port, x->port) && !strcmp(now->dst ? now->dst : "", x->dst))
			continue;
		if (x->dst[0]) {
			struct sn_error e = {{0}};

			r = sn_switch_fdb_add_dst(sw, x->mac, x->vlan, x->port, x->dst, &e);
			if (r < 0) {
				failed(o, x->line, r, "fdb", e.msg[0] ? e.msg : strerror(-r));
				continue;
			}
			o->ch.fdb_set++;
			note(o, "fdb %s vlan %u on %s dst %s", mac, x->vlan, x->port, x->dst);
			continue;
		}
		r = sn_switch_fdb_add_static(sw, x->mac, x->vlan, x->port);
		if (r == -ENOENT)
			failed(o, x->line, r, "fdb", "no data port of that name (a listener's clients are ports of their own)");
		else if (r == -ENOSPC)
			failed(o, x->line, r, "fdb", "the forwarding database is full");
		else if (r < 0)
			failed(o, x->line, r, "fdb", strerror(-r));
		if (r < 0)
			continue;
		o->ch.fdb_set++;
		note(o, "fdb %s vlan %u on %s", mac, x->vlan, x->port);
	}
out:
	free(cur.v);
	free(cur.names);
	free(cur.dsts);
}

static void apply_captures(struct sn_switch *sw, struct sn_conffile *old, struct sn_conffile *cf,
			   struct outcome *o)
{
	struct sn_error e;

	/* the same SPEC as before, and still there: it keeps running, file and counters alike */
	for (size_t i = 0; i < cf->ncaps; i++)
		for (size_t k = 0; old && k < old->ncaps && !cf->caps[i].id; k++)
			if (old->caps[k].id && !strcmp(old->caps[k].spec, cf->caps[i].spec) &&
			    capture_exists(sw, old->caps[k].id)) {
				cf->caps[i].id = old->caps[k].id;
				old->caps[k].id = 0;
			}
	for (size_t k = 0; old && k < old->ncaps; k++) {
		if (old->caps[k].id && sn_capture_stop(sw, old->caps[k].id) == 0) {
			o->ch.captures_stopped++;
			note(o, "capture %u stopped (%s)", old->caps[k].id, old->caps[k].spec);
		}
		old->caps[k].id = 0;
	}
	for (size_t i = 0; i < cf->ncaps; i++) {
		int r;

		if (cf->caps[i].id)
			continue;
		r = sn_capture_start(sw, cf->caps[i].spec, &cf->caps[i].id, &e);
		if (r < 0) {
			cf->caps[i].id = 0;
			failed(o, cf->caps[i].line, r, "capture", e.msg);
			continue;
		}
		o->ch.captures_started++;
		note(o, "capture %u started (%s)", cf->caps[i].id, cf->caps[i].spec);
	}
}

static int apply(struct sn_switch *sw, struct sn_conffile *cf, struct sn_conffile_changes *ret_changes,
		 struct sn_buf *notes, struct sn_error *err)
{
	struct outcome o = {.notes = notes, .err = err, .path = cf ? cf->path : ""};
	struct conf_state *st;
	struct sn_conffile *old;

	if (err)
		err->msg[0] = '\0';
	if (!sw || !cf) {
		sn_conffile_free(cf);
		return sn_error_set(err, -EINVAL, "no switch or no configuration");
	}
	st = state_get(sw, true);
	if (!st) {
		sn_conffile_free(cf);
		return sn_error_set(err, -ENOMEM, "out of memory");
	}
	old = st->cf;
	apply_settings(sw, cf, &o);
	apply_ports(sw, old, cf, &o);
	apply_fdb(sw, old, cf, &o);
	apply_captures(sw, old, cf, &o);
	st->cf = cf;
	sn_conffile_free(old);
	sn_info("config: %s: ports %u added, %u removed, %u changed, %u unchanged%s", cf->path, o.ch.ports_added,
		o.ch.ports_removed, o.ch.ports_changed, o.ch.ports_kept, o.ch.failed ? "; some lines failed" : "");
	if (ret_changes)
		*ret_changes = o.ch;
	return o.first;
}

SN_EXPORT int sn_conffile_apply(struct sn_switch *sw, struct sn_conffile *cf, struct sn_conffile_changes *ret_changes,
				struct sn_error *err)
{
	return apply(sw, cf, ret_changes, NULL, err);
}

static int reload(struct sn_switch *sw, struct sn_conffile_changes *ret_changes, struct sn_buf *notes,
		  struct sn_error *err)
{
	struct conf_state *st = sw ? state_get(sw, false) : NULL;
	struct sn_conffile *cf;
	int r;

	if (err)
		err->msg[0] = '\0';
	if (!st || !st->cf)
		return sn_error_set(err, -ENOENT, "this switch runs without a configuration file");
	r = sn_conffile_load(st->cf->path, &cf, err);
	if (r < 0)
		return r;
	return apply(sw, cf, ret_changes, notes, err);
}

SN_EXPORT int sn_conffile_reload(struct sn_switch *sw, struct sn_conffile_changes *ret_changes, struct sn_error *err)
{
	return reload(sw, ret_changes, NULL, err);
}

/* ---- writing what runs ---- */

struct fmt {
	struct sn_buf *b;
	struct sn_switch *sw;
};

static int format_port(const struct sn_port_info *p, void *ctx)
{
	struct fmt *f = ctx;

	if (p->spec)
		sn_buf_printf(f->b, "port %s\n", p->spec);
	else if (!p->parent)
		sn_buf_printf(f->b, "# port %s (%s) was made through the API, not from a SPEC: not written\n", p->name,
			      p->kind);
	return 0;
}

struct spec_of {
	const char *name;
	bool has_spec;
};

static int spec_of_visit(const struct sn_port_info *p, void *ctx)
{
	struct spec_of *s = ctx;

	if (strcmp(p->name, s->name))
		return 0;
	s->has_spec = p->spec != NULL;
	return 1;
}

static int format_fdb(const struct sn_fdb_info *e, void *ctx)
{
	struct fmt *f = ctx;
	struct spec_of so = {.name = e->port};

	if (!e->is_static)
		return 0;
	sn_switch_foreach_port(f->sw, spec_of_visit, &so);
	sn_buf_printf(f->b, "%sfdb %02x:%02x:%02x:%02x:%02x:%02x %s", so.has_spec ? "" : "# ", e->mac[0], e->mac[1],
		      e->mac[2], e->mac[3], e->mac[4], e->mac[5], e->port);
	if (e->vlan)
		sn_buf_printf(f->b, " vlan=%u", e->vlan);
	if (e->dst && e->is_static)
		sn_buf_printf(f->b, " dst=%s", e->dst);
	sn_buf_puts(f->b, so.has_spec ? "\n" : "    (its port is not in this file)\n");
	return 0;
}

/* A SPEC value as the grammar reads it back: quoted when it holds a comma or starts with a
 * quote. False when it cannot be written (it holds a quote and needs quoting). */
static bool put_value(struct sn_buf *b, const char *key, const char *v)
{
	bool quote = strchr(v, ',') || v[0] == '"';

	if (quote && strchr(v, '"'))
		return false;
	sn_buf_printf(b, ",%s=%s%s%s", key, quote ? "\"" : "", v, quote ? "\"" : "");
	return true;
}

static int format_capture(const struct sn_capture_info *i, void *ctx)
{
	static const char *const dirs[] = {"", "in", "out", "both"};
	struct fmt *f = ctx;
	struct sn_buf line;
	bool ok = true;

	/* a live stream belongs to its reader; a finished capture would truncate its file again */
	if (!strcmp(i->file, "-") || i->state != SN_CAPTURE_RUNNING)
		return 0;
	sn_buf_init(&line);
	sn_buf_printf(&line, "capture %s", i->file);
	if (i->filter)
		ok = put_value(&line, "filter", i->filter);
	if (i->ports)
		ok = ok && put_value(&line, "ports", i->ports);
	sn_buf_printf(&line, ",dir=%s", dirs[i->dir & 3]);
	if (i->snaplen != 262144)
		sn_buf_printf(&line, ",snaplen=%u", i->snaplen);
	if (i->nanosecond)
		sn_buf_puts(&line, ",tstamp=ns");
	if (i->rotate_mb)
		sn_buf_printf(&line, ",rotate=%u", i->rotate_mb);
	if (i->count)
		sn_buf_printf(&line, ",count=%llu", (unsigned long long)i->count);
	if (ok) {
		sn_buf_add(&line, "\n", 1);
		sn_buf_add(f->b, line.data, line.len);
	} else {
		sn_buf_printf(f->b, "# capture %u (%s) not written: its filter holds both a comma and a quote\n", i->id,
			      i->file);
	}
	if (line.failed)
		f->b->failed = true;
	sn_buf_finish(&line);
	return 0;
}

static void format_into(struct sn_switch *sw, struct sn_buf *b)
{
	struct sn_switch_config run, def;
	struct fmt f = {b, sw};
	bool any = false;

	sn_switch_get_config(sw, &run);
	sn_switch_config_init(&def);
	sn_buf_puts(b, "# squibnet configuration (squibnet.conf(5)), written from the running switch.\n"
		       "# One directive per line: port SPEC, capture SPEC, fdb MAC PORT [vlan=N] [dst=IP],\n"
		       "# set KEY=VALUE.\n");
	for (unsigned s = 0; s < S_COUNT; s++) {
		if (setting_same(&run, &def, s))
			continue;
		if (s == S_FDB_EVICT)
			sn_buf_printf(b, "set %s=%s\n", settings[s].key, run.fdb_evict ? "on" : "off");
		else
			sn_buf_printf(b, "set %s=%u\n", settings[s].key, setting_get(&run, s));
		any = true;
	}
	if (any)
		sn_buf_puts(b, "\n");
	sn_switch_foreach_port(sw, format_port, &f);
	sn_switch_foreach_fdb(sw, format_fdb, &f);
	sn_capture_foreach(sw, format_capture, &f);
}

SN_EXPORT int sn_conffile_format(struct sn_switch *sw, char **ret_text)
{
	struct sn_buf b;

	sn_buf_init(&b);
	format_into(sw, &b);
	sn_buf_add(&b, "", 1);
	if (b.failed) {
		sn_buf_finish(&b);
		return -ENOMEM;
	}
	*ret_text = b.data;
	return 0;
}

SN_EXPORT int sn_conffile_save(struct sn_switch *sw, const char *path, struct sn_error *err)
{
	struct conf_state *st = sw ? state_get(sw, false) : NULL;
	char *text, tmp[4096 + 16];
	struct stat old;
	size_t len, off = 0;
	mode_t mode = 0644;
	int fd, r;

	if (err)
		err->msg[0] = '\0';
	if (!path && (!st || !st->cf))
		return sn_error_set(err, -ENOENT, "this switch runs without a configuration file: name one");
	if (!path)
		path = st->cf->path;
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return sn_error_set(err, -ENAMETOOLONG, "%s: path too long", path);
	r = sn_conffile_format(sw, &text);
	if (r < 0)
		return sn_error_set(err, r, "out of memory");
	if (stat(path, &old) == 0)
		mode = old.st_mode & 07777;
	fd = mkstemp(tmp);
	if (fd < 0) {
		r = -errno;
		free(text);
		return sn_error_set(err, r, "cannot create a file beside %s: %s", path, strerror(-r));
	}
	len = strlen(text);
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		off += (size_t)n;
	}
	free(text);
	if (r == 0 && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return sn_error_set(err, r, "cannot write %s: %s", path, strerror(-r));
	}
	return 0;
}

/* ---- control commands ---- */

static int cmd_reload(struct sn_ctl_ctx *ctx)
{
	struct sn_conffile_changes ch;
	struct sn_buf notes;
	int r;

	sn_buf_init(&notes);
	/* a file that does not load changes nothing, and the error says where; one that loaded is
	 * applied whole, and the first line that failed is the error (the log has every one) */
	r = reload(ctx->sw, &ch, &notes, &ctx->err);
	if (r < 0) {
		sn_buf_finish(&notes);
		return r;
	}
	if (ctx->json) {
		sn_json_string(ctx->j, "reloaded", state_get(ctx->sw, false)->cf->path);
		sn_json_uint(ctx->j, "ports_added", ch.ports_added);
		sn_json_uint(ctx->j, "ports_removed", ch.ports_removed);
		sn_json_uint(ctx->j, "ports_changed", ch.ports_changed);
		sn_json_uint(ctx->j, "ports_unchanged", ch.ports_kept);
		sn_json_uint(ctx->j, "captures_started", ch.captures_started);
		sn_json_uint(ctx->j, "captures_stopped", ch.captures_stopped);
		sn_json_uint(ctx->j, "fdb_set", ch.fdb_set);
		sn_json_uint(ctx->j, "fdb_removed", ch.fdb_removed);
		sn_json_uint(ctx->j, "settings_changed", ch.settings_changed);
		sn_json_uint(ctx->j, "settings_at_restart", ch.settings_at_restart);
	} else {
		sn_buf_add(ctx->body, notes.data, notes.len);
		sn_buf_printf(ctx->body, "reloaded %s: ports %u added, %u removed, %u changed, %u unchanged\n",
			      state_get(ctx->sw, false)->cf->path, ch.ports_added, ch.ports_removed, ch.ports_changed,
			      ch.ports_kept);
	}
	sn_buf_finish(&notes);
	return 0;
}

static int cmd_save(struct sn_ctl_ctx *ctx)
{
	struct conf_state *st = state_get(ctx->sw, false);
	char *text;
	int r;

	if (ctx->argc && strcmp(ctx->argv[0], "-"))
		return sn_error_set(&ctx->err, -EINVAL, "save writes the switch's configuration file, or '-' for the "
				    "text: '%s' is neither", ctx->argv[0]);
	if (ctx->argc) {
		r = sn_conffile_format(ctx->sw, &text);
		if (r < 0)
			return r;
		if (ctx->json)
			sn_json_string(ctx->j, "config", text);
		else
			sn_buf_puts(ctx->body, text);
		free(text);
		return 0;
	}
	r = sn_conffile_save(ctx->sw, NULL, &ctx->err);
	if (r < 0)
		return r;
	if (ctx->json)
		sn_json_string(ctx->j, "saved", st->cf->path);
	else
		sn_buf_printf(ctx->body, "saved %s\n", st->cf->path);
	return 0;
}

static const struct sn_ctl_cmd conffile_cmds[] = {
	{"reload", "", "read the configuration file again and apply what changed", 0, 0, cmd_reload},
	{"save", "[-]", "write the running state to the configuration file ('-': print it)", 0, 1, cmd_save},
};

const struct sn_ctl_cmds sn_conffile_ctl_cmds = {conffile_cmds, SN_ARRAY_SIZE(conffile_cmds)};
