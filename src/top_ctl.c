/* top_ctl.c - the "top" control command: per-port rates (frames, bits and drops per second),
 * sampled on the switch's own clock every interval and streamed to the client, one screen per
 * interval, until it hangs up or has had the --count it asked for.
 *
 * A text screen starts with a form feed (ASCII 12), so a client can tell screens apart: on a
 * terminal squibnetctl turns it into "clear and go home" (ANSI), elsewhere it drops it and the
 * screens follow each other, separated by a blank line. In JSON mode each screen is one JSON
 * document on a line of its own. Rates are differences of the counters between two samples,
 * over the time between them; a port that was not in the last sample counts from zero (its
 * counters started at zero when it was made), and so does one whose counters went back (a new
 * port under an old name). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "hooks.h"
#include "json.h"
#include "spec.h"
#include "util.h"

#define INTERVAL_DEFAULT 1.0
#define INTERVAL_MIN 0.1
#define INTERVAL_MAX 3600.0

struct sample {
	char name[SN_PORT_NAME_MAX];
	const char *kind;  /* the port kind's static string */
	enum sn_port_state state;
	uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes, drops;
};

struct samples {
	struct sample *v;
	size_t n, cap;
	bool failed;
};

struct top {
	struct sn_switch *sw;
	struct sn_ctl_client *client;
	ev_timer timer;
	double interval;
	unsigned left;       /* screens still to send; 0: until the client hangs up */
	bool json;
	struct samples prev; /* sorted by name, for lookups */
	double prev_at;
	struct sn_switch_stats prev_sw;
};

static int sample_visit(const struct sn_port_info *p, void *ctx)
{
	struct samples *s = ctx;
	struct sample *x;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 32;
		struct sample *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			s->failed = true;
			return 1;
		}
		s->v = v;
		s->cap = cap;
	}
	x = &s->v[s->n++];
	sn_strlcpy(x->name, p->name, sizeof(x->name));
	x->kind = p->kind;
	x->state = p->state;
	x->rx_frames = p->stats.rx_frames;
	x->rx_bytes = p->stats.rx_bytes;
	x->tx_frames = p->stats.tx_frames;
	x->tx_bytes = p->stats.tx_bytes;
	x->drops = p->stats.drop_txq_full + p->stats.drop_runt + p->stats.drop_oversize + p->stats.drop_bad_framing +
		   p->stats.drop_no_buffer + p->stats.drop_bad_offload;
	return 0;
}

static int sample_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sample *)a)->name, ((const struct sample *)b)->name);
}

static void samples_take(struct sn_switch *sw, struct samples *s)
{
	s->n = 0;
	s->failed = false;
	sn_switch_foreach_port(sw, sample_visit, s);
}

/* The per-second rate of a counter that went from @before to @now over @dt seconds. */
static double rate(uint64_t now, uint64_t before, double dt)
{
	return (now >= before ? (double)(now - before) : (double)now) / dt;
}

/* A rate for people: 3 significant digits at most, with k, M, G (powers of 1000). */
static void human(char *buf, size_t len, double v)
{
	static const char units[] = " kMGT";
	unsigned u = 0;

	while (v >= 999.5 && u + 1 < sizeof(units) - 1) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, v < 9.995 ? "%.2f%c" : v < 99.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

static void screen(struct top *t, struct sn_buf *b, const struct samples *cur, const struct sn_switch_stats *st,
		   double dt)
{
	static const char *const head[] = {"PORT", "KIND", "STATE", ">RX-FRAMES/S", ">TX-FRAMES/S", ">RX-BITS/S",
					   ">TX-BITS/S", ">DROPS/S"};
	struct sn_table tab = {.head = head, .ncol = SN_ARRAY_SIZE(head)};
	struct sn_json j;
	char clock[16] = "", h[5][16];
	time_t now = time(NULL);
	struct tm tm;

	if (localtime_r(&now, &tm))
		strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	if (t->json) {
		sn_json_init(&j, b);
		sn_json_begin_object(&j, NULL);
		sn_json_uint(&j, "version", 1);
		sn_json_decimal(&j, "interval", dt, 6);
		sn_json_begin_object(&j, "switch");
		sn_json_decimal(&j, "unicast_per_s", rate(st->unicast, t->prev_sw.unicast, dt), 1);
		sn_json_decimal(&j, "flooded_per_s", rate(st->flooded, t->prev_sw.flooded, dt), 1);
		sn_json_uint(&j, "fdb_entries", st->fdb_entries);
		sn_json_uint(&j, "pool_free", st->pool_free);
		sn_json_uint(&j, "pool_total", st->pool_total);
		sn_json_end_object(&j);
		sn_json_begin_array(&j, "ports");
	} else {
		sn_buf_printf(b, "\fsquibnet top - %s - %u ports - every %.1f s\n", clock, st->ports, t->interval);
		human(h[0], sizeof(h[0]), rate(st->unicast, t->prev_sw.unicast, dt));
		human(h[1], sizeof(h[1]), rate(st->flooded, t->prev_sw.flooded, dt));
		sn_buf_printf(b, "frames/s: %s unicast, %s flooded; fdb %u entries; pool %u of %u buffers free\n\n", h[0],
			      h[1], st->fdb_entries, st->pool_free, st->pool_total);
	}
	for (size_t i = 0; i < cur->n; i++) {
		const struct sample *c = &cur->v[i];
		const struct sample zero = {{0}}, *p = bsearch(c, t->prev.v, t->prev.n, sizeof(*c), sample_cmp);
		double r[5];

		if (!p)
			p = &zero;
		r[0] = rate(c->rx_frames, p->rx_frames, dt);
		r[1] = rate(c->tx_frames, p->tx_frames, dt);
		r[2] = 8 * rate(c->rx_bytes, p->rx_bytes, dt);
		r[3] = 8 * rate(c->tx_bytes, p->tx_bytes, dt);
		r[4] = rate(c->drops, p->drops, dt);
		if (t->json) {
			sn_json_begin_object(&j, NULL);
			sn_json_string(&j, "name", c->name);
			sn_json_string(&j, "kind", c->kind);
			sn_json_string(&j, "state", sn_port_state_name(c->state));
			sn_json_decimal(&j, "rx_frames_per_s", r[0], 1);
			sn_json_decimal(&j, "tx_frames_per_s", r[1], 1);
			sn_json_decimal(&j, "rx_bits_per_s", r[2], 1);
			sn_json_decimal(&j, "tx_bits_per_s", r[3], 1);
			sn_json_decimal(&j, "drops_per_s", r[4], 1);
			sn_json_end_object(&j);
			continue;
		}
		for (int k = 0; k < 5; k++)
			human(h[k], sizeof(h[k]), r[k]);
		sn_table_cell(&tab, "%s", c->name);
		sn_table_cell(&tab, "%s", c->kind);
		sn_table_cell(&tab, "%s", sn_port_state_name(c->state));
		for (int k = 0; k < 5; k++)
			sn_table_cell(&tab, "%s", h[k]);
	}
	if (t->json) {
		sn_json_end_array(&j);
		sn_json_end_object(&j);
		sn_buf_puts(b, "\n");
	} else {
		sn_table_render(&tab, b);
		sn_table_free(&tab);
		sn_buf_puts(b, "\n");
	}
}

static void top_free(struct top *t)
{
	struct ev_loop *loop = sn_switch_loop(t->sw);

	if (ev_is_active(&t->timer)) {
		ev_ref(loop);
		ev_timer_stop(loop, &t->timer);
	}
	free(t->prev.v);
	free(t);
}

/* The client hung up, or the control server is going away. */
static void top_gone(struct sn_ctl_client *c, void *data)
{
	top_free(data);
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct top *t = w->data;
	struct samples cur = {0};
	struct sn_switch_stats st;
	struct sn_buf b;
	double now = ev_now(loop), dt = now - t->prev_at;
	int r;

	if (dt <= 0)
		dt = t->interval;
	samples_take(t->sw, &cur);
	sn_switch_get_stats(t->sw, &st);
	sn_buf_init(&b);
	if (!cur.failed)
		screen(t, &b, &cur, &st, dt);
	r = cur.failed || b.failed ? -ENOMEM : sn_ctl_send(t->client, b.data, b.len);
	sn_buf_finish(&b);
	if (r == 0 && cur.n)
		qsort(cur.v, cur.n, sizeof(*cur.v), sample_cmp);
	free(t->prev.v);
	t->prev = cur;
	t->prev_at = now;
	t->prev_sw = st;
	/* done, or a client that does not read (its 4 MiB are queued) or no memory: the end */
	if (r < 0 || (t->left && --t->left == 0)) {
		struct sn_ctl_client *c = t->client;

		top_free(t);
		sn_ctl_stream_close(c);
	}
}

static int parse_seconds(const char *s, double *ret)
{
	char *end;
	double v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	v = strtod(s, &end);
	if (*end || !(v >= INTERVAL_MIN && v <= INTERVAL_MAX))
		return -EINVAL;
	*ret = v;
	return 0;
}

static int cmd_top(struct sn_ctl_ctx *ctx)
{
	double interval = INTERVAL_DEFAULT;
	unsigned count = 0;
	struct top *t;

	for (int i = 0; i < ctx->argc; i++) {
		const char *a = ctx->argv[i];

		if (!strcmp(a, "--once")) {
			count = 1;
		} else if ((!strcmp(a, "--interval") || !strcmp(a, "-d")) && i + 1 < ctx->argc) {
			if (parse_seconds(ctx->argv[++i], &interval) < 0)
				return sn_error_set(&ctx->err, -EINVAL, "bad interval '%s': want seconds from %.1f to %.0f",
						    ctx->argv[i], INTERVAL_MIN, INTERVAL_MAX);
		} else if (!strcmp(a, "--count") && i + 1 < ctx->argc) {
			if (sn_parse_uint(ctx->argv[++i], 1, 1000000, &count) < 0)
				return sn_error_set(&ctx->err, -EINVAL, "bad count '%s': want 1 to 1000000", ctx->argv[i]);
		} else {
			return sn_error_set(&ctx->err, -EINVAL, "top: unexpected argument '%s' (usage: top [--once] "
					    "[--interval SECONDS] [--count N])", a);
		}
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->sw = ctx->sw;
	t->client = ctx->client;
	t->interval = interval;
	t->left = count;
	t->json = ctx->json;
	samples_take(t->sw, &t->prev);
	if (t->prev.failed) {
		free(t->prev.v);
		free(t);
		return -ENOMEM;
	}
	if (t->prev.n)
		qsort(t->prev.v, t->prev.n, sizeof(*t->prev.v), sample_cmp);
	sn_switch_get_stats(t->sw, &t->prev_sw);
	t->prev_at = ev_now(sn_switch_loop(t->sw));
	ev_timer_init(&t->timer, tick_cb, interval, interval);
	t->timer.data = t;
	ev_timer_start(sn_switch_loop(t->sw), &t->timer);
	ev_unref(sn_switch_loop(t->sw)); /* like the control socket: no reason to keep a loop running */
	/* the body is the screens from the first byte: no envelope */
	ctx->body->len = 0;
	sn_ctl_set_stream_end(ctx->client, top_gone, t);
	return SN_CTL_STREAM;
}

static const struct sn_ctl_cmd top_cmds[] = {
	{"top", "[--once] [--interval SECONDS] [--count N]",
	 "per-port frames, bits and drops per second, every interval (default 1 s)", 0, 5, cmd_top},
};

const struct sn_ctl_cmds sn_top_ctl_cmds = {top_cmds, SN_ARRAY_SIZE(top_cmds)};
