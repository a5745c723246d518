/* Logging: the library says nothing unless the embedder installs a handler. */
#ifndef SQUIBNET_LOG_H
#define SQUIBNET_LOG_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sn_log_level {
	SN_LOG_ERROR = 0,
	SN_LOG_WARN = 1,
	SN_LOG_INFO = 2,
	SN_LOG_DEBUG = 3,
};

/** Called for each message at or below the level set with sn_log_set_level(). */
typedef void (*sn_log_handler)(enum sn_log_level level, const char *fmt, va_list ap, void *userdata);

/** Installs @handler (NULL: silence, the default). Process-wide; not thread-safe. */
void sn_log_set_handler(sn_log_handler handler, void *userdata);

/** Messages above @level are not formatted at all. Default: SN_LOG_INFO. */
void sn_log_set_level(enum sn_log_level level);

/** A ready handler that writes "squibnet: LEVEL: message" lines to stderr. */
void sn_log_stderr(enum sn_log_level level, const char *fmt, va_list ap, void *userdata);

#ifdef __cplusplus
}
#endif

#endif
