/* log.h - internal logging macros over the embedder's handler. */
#ifndef SN_LOG_PRIV_H
#define SN_LOG_PRIV_H

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

#endif
