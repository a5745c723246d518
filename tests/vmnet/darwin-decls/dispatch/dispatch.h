/* dispatch/dispatch.h - compile-check declarations of the libdispatch calls the vmnet backend
 * makes, in their plain-C (non-Objective-C) form, after Apple's documentation. */
#ifndef SN_DECLS_DISPATCH_H
#define SN_DECLS_DISPATCH_H

#include <stdint.h>

typedef uint64_t dispatch_time_t;
#define DISPATCH_TIME_NOW (0ull)
#define DISPATCH_TIME_FOREVER (~0ull)
#define NSEC_PER_SEC 1000000000ull

typedef struct dispatch_queue_s *dispatch_queue_t;
typedef struct dispatch_queue_attr_s *dispatch_queue_attr_t;
typedef struct dispatch_semaphore_s *dispatch_semaphore_t;
#define DISPATCH_QUEUE_SERIAL NULL

/* in C every dispatch object converts to this for the generic calls */
typedef union {
	struct dispatch_object_s *_do;
	struct dispatch_queue_s *_dq;
	struct dispatch_semaphore_s *_dsema;
} dispatch_object_t __attribute__((__transparent_union__));

typedef void (*dispatch_function_t)(void *);

dispatch_queue_t dispatch_queue_create(const char *label, dispatch_queue_attr_t attr);
void dispatch_sync_f(dispatch_queue_t queue, void *context, dispatch_function_t work);
dispatch_semaphore_t dispatch_semaphore_create(intptr_t value);
intptr_t dispatch_semaphore_wait(dispatch_semaphore_t dsema, dispatch_time_t timeout);
intptr_t dispatch_semaphore_signal(dispatch_semaphore_t dsema);
dispatch_time_t dispatch_time(dispatch_time_t when, int64_t delta);
void dispatch_retain(dispatch_object_t object);
void dispatch_release(dispatch_object_t object);

#endif
