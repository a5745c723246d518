/* metrics.c - the switch's counters in the Prometheus text exposition format (version 0.0.4):
 * for `squibnetctl stats --prometheus`, and so for node_exporter's textfile collector. Each
 * metric family is one "# HELP" line, one "# TYPE" line and its samples, together; ports are
 * told apart by the labels port= and kind=. Counters end in _total and count from the port's
 * (or switch's) creation; the gauges are what is there now. */
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

struct port_row {
	char *name;
	const char *kind; /* the ops' static string */
	enum sn_port_state state;
	struct sn_port_stats s;
};

struct rows {
	struct port_row *v;
	size_t n, cap;
	bool failed;
};

static int collect(const struct sn_port_info *p, void *ctx)
{
	struct rows *r = ctx;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		struct port_row *v = realloc(r->v, cap * sizeof(*v));

		if (!v) {
			r->failed = true;
			return 1;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n] = (struct port_row){.name = strdup(p->name), .kind = p->kind, .state = p->state, .s = p->stats};
	if (!r->v[r->n].name) {
		r->failed = true;
		return 1;
	}
	r->n++;
	return 0;
}

/* A label value: backslash, double quote and newline escaped, as the format wants. */
static void label_value(struct sn_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			sn_buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			sn_buf_puts(b, "\\n");
		else
			sn_buf_add(b, v, 1);
	}
}

static void family(struct sn_buf *b, const char *name, const char *type, const char *help)
{
	sn_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void port_sample(struct sn_buf *b, const char *name, const struct port_row *p, const char *extra_label,
			const char *extra_value, uint64_t v)
{
	sn_buf_printf(b, "%s{port=\"", name);
	label_value(b, p->name);
	sn_buf_printf(b, "\",kind=\"%s\"", p->kind);
	if (extra_label)
		sn_buf_printf(b, ",%s=\"%s\"", extra_label, extra_value);
	sn_buf_printf(b, "} %llu\n", (unsigned long long)v);
}

/* One family of per-port samples, of the field @field of struct sn_port_stats. */
#define PORT_FAMILY(b, rows, name, type, help, field)                                                  \
	do {                                                                                           \
		family((b), (name), (type), (help));                                                   \
		for (size_t i_ = 0; i_ < (rows)->n; i_++)                                              \
			port_sample((b), (name), &(rows)->v[i_], NULL, NULL, (rows)->v[i_].s.field);   \
	} while (0)

void sn_metrics_prometheus(struct sn_switch *sw, struct sn_buf *b)
{
	static const struct {
		const char *reason;
		size_t off;
	} drops[] = {
		{"txq_full", offsetof(struct sn_port_stats, drop_txq_full)},
		{"runt", offsetof(struct sn_port_stats, drop_runt)},
		{"oversize", offsetof(struct sn_port_stats, drop_oversize)},
		{"bad_framing", offsetof(struct sn_port_stats, drop_bad_framing)},
		{"no_buffer", offsetof(struct sn_port_stats, drop_no_buffer)},
		{"bad_offload", offsetof(struct sn_port_stats, drop_bad_offload)},
	};
	struct rows rows = {0};
	struct sn_switch_stats st;

	sn_switch_get_stats(sw, &st);
	sn_switch_foreach_port(sw, collect, &rows);
	if (rows.failed) {
		b->failed = true;
		goto out;
	}
	family(b, "squibnet_forwarded_frames_total", "counter",
	       "Frames the switch forwarded, by decision: to one known port, flooded, or filtered (the destination is behind the ingress port).");
	sn_buf_printf(b, "squibnet_forwarded_frames_total{decision=\"unicast\"} %llu\n", (unsigned long long)st.unicast);
	sn_buf_printf(b, "squibnet_forwarded_frames_total{decision=\"flooded\"} %llu\n", (unsigned long long)st.flooded);
	sn_buf_printf(b, "squibnet_forwarded_frames_total{decision=\"filtered\"} %llu\n", (unsigned long long)st.filtered);
	family(b, "squibnet_fdb_refused_total", "counter",
	       "Source MAC addresses not learned, by reason: the table was full, or the port had its cap.");
	sn_buf_printf(b, "squibnet_fdb_refused_total{reason=\"table\"} %llu\n", (unsigned long long)st.fdb_refused_table);
	sn_buf_printf(b, "squibnet_fdb_refused_total{reason=\"port\"} %llu\n", (unsigned long long)st.fdb_refused_port);
	family(b, "squibnet_fdb_moves_total", "counter", "MAC addresses that moved to another port.");
	sn_buf_printf(b, "squibnet_fdb_moves_total %llu\n", (unsigned long long)st.fdb_moves);
	family(b, "squibnet_fdb_evicted_total", "counter", "Forwarding entries evicted to make room (fdb-evict).");
	sn_buf_printf(b, "squibnet_fdb_evicted_total %llu\n", (unsigned long long)st.fdb_evicted);
	family(b, "squibnet_fdb_entries", "gauge", "Entries in the forwarding database.");
	sn_buf_printf(b, "squibnet_fdb_entries %u\n", st.fdb_entries);
	family(b, "squibnet_fdb_max_entries", "gauge", "Entries the forwarding database may hold.");
	sn_buf_printf(b, "squibnet_fdb_max_entries %u\n", st.fdb_max);
	family(b, "squibnet_pool_free_buffers", "gauge", "Frame buffers of the pool free now.");
	sn_buf_printf(b, "squibnet_pool_free_buffers %u\n", st.pool_free);
	family(b, "squibnet_pool_buffers", "gauge", "Frame buffers of the pool in all.");
	sn_buf_printf(b, "squibnet_pool_buffers %u\n", st.pool_total);
	family(b, "squibnet_ports", "gauge", "Ports and listeners of the switch.");
	sn_buf_printf(b, "squibnet_ports %u\n", st.ports);

	family(b, "squibnet_port_up", "gauge", "1 while the port carries frames, 0 while it waits for its peer; listeners are 1.");
	for (size_t i = 0; i < rows.n; i++)
		port_sample(b, "squibnet_port_up", &rows.v[i], NULL, NULL,
			    rows.v[i].state == SN_PORT_UP || rows.v[i].state == SN_PORT_LISTENING);
	PORT_FAMILY(b, &rows, "squibnet_port_rx_frames_total", "counter", "Frames the port received from its peer.", rx_frames);
	PORT_FAMILY(b, &rows, "squibnet_port_rx_bytes_total", "counter", "Bytes of the frames the port received from its peer.", rx_bytes);
	PORT_FAMILY(b, &rows, "squibnet_port_tx_frames_total", "counter", "Frames the port sent to its peer.", tx_frames);
	PORT_FAMILY(b, &rows, "squibnet_port_tx_bytes_total", "counter", "Bytes of the frames the port sent to its peer.", tx_bytes);
	family(b, "squibnet_port_dropped_frames_total", "counter",
	       "Frames dropped at the port, by reason: its egress queue was full, under 14 bytes, over the MTU, malformed framing, no buffer free, a malformed or unnegotiated offload header.");
	for (size_t i = 0; i < rows.n; i++)
		for (size_t k = 0; k < SN_ARRAY_SIZE(drops); k++)
			port_sample(b, "squibnet_port_dropped_frames_total", &rows.v[i], "reason", drops[k].reason,
				    *(const uint64_t *)((const char *)&rows.v[i].s + drops[k].off));
	PORT_FAMILY(b, &rows, "squibnet_port_fdb_refused_total", "counter", "Source MAC addresses of the port not learned: a cap was reached.", fdb_refused);
	PORT_FAMILY(b, &rows, "squibnet_port_rx_pauses_total", "counter", "Times the port stopped reading its peer for a destination's full queue.", rx_pauses);
	PORT_FAMILY(b, &rows, "squibnet_port_stalls_total", "counter", "Times the port's peer stopped taking frames.", stalls);
	PORT_FAMILY(b, &rows, "squibnet_port_fdb_entries", "gauge", "Forwarding entries that point at the port.", fdb_entries);
	PORT_FAMILY(b, &rows, "squibnet_port_txq_frames", "gauge", "Frames waiting in the port's egress queue.", txq_depth);
out:
	for (size_t i = 0; i < rows.n; i++)
		free(rows.v[i].name);
	free(rows.v);
}
