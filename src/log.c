/* log.c - routes library messages to the handler the embedder installed, if any. */
#include <stdio.h>

#include "logging.h"
#include "util.h"

static sn_log_handler handler;
static void *handler_data;
enum sn_log_level sn_log_level_cur = SN_LOG_INFO;

SN_EXPORT void sn_log_set_handler(sn_log_handler h, void *userdata)
{
	handler = h;
	handler_data = userdata;
}

SN_EXPORT void sn_log_set_level(enum sn_log_level level)
{
	sn_log_level_cur = level;
}

SN_EXPORT void sn_log_stderr(enum sn_log_level level, const char *fmt, va_list ap, void *userdata)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};

	fprintf(stderr, "squibnet: %s: ", names[level <= SN_LOG_DEBUG ? level : SN_LOG_DEBUG]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

bool sn_ratelimit_ok(struct sn_ratelimit *rl, double now, unsigned long *ret_suppressed)
{
	if (rl->last >= 0 && now - rl->last < rl->interval) {
		rl->suppressed++;
		return false;
	}
	rl->last = now;
	*ret_suppressed = rl->suppressed;
	rl->suppressed = 0;
	return true;
}

void sn_logf(enum sn_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!handler)
		return;
	va_start(ap, fmt);
	handler(level, fmt, ap, handler_data);
	va_end(ap);
}
