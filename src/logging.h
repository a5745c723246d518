/* logging.h - internal logging macros over the embedder's handler. */
#ifndef SN_LOG_PRIV_H
#define SN_LOG_PRIV_H

#include <stdbool.h>

#include <squibnet/log.h>

extern enum sn_log_level sn_log_level_cur;

void sn_logf(enum sn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define sn_log(level, ...)                                                                         \
	do {                                                                                       \
		if ((level) <= sn_log_level_cur)                                                   \
			sn_logf((level), __VA_ARGS__);                                             \
	} while (0)
#define sn_err(...) sn_log(SN_LOG_ERROR, __VA_ARGS__)
#define sn_warn(...) sn_log(SN_LOG_WARN, __VA_ARGS__)
#define sn_info(...) sn_log(SN_LOG_INFO, __VA_ARGS__)
#define sn_debug(...) sn_log(SN_LOG_DEBUG, __VA_ARGS__)

/* A message that something hostile could repeat at will goes out at most once per @interval
 * seconds; the ones held back in between are counted and reported with the next. */
struct sn_ratelimit {
	double interval;
	double last;               /* when the last message went out; negative: never */
	unsigned long suppressed;  /* held back since then */
};

#define SN_RATELIMIT_INIT(seconds) ((struct sn_ratelimit){.interval = (seconds), .last = -1})

/* True when a message may go out at @now (a loop time); *ret_suppressed then holds how many were
 * held back before it, and the count starts again. False: count this one and stay quiet. */
bool sn_ratelimit_ok(struct sn_ratelimit *rl, double now, unsigned long *ret_suppressed);

#endif
