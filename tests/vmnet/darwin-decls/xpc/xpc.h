/* xpc/xpc.h - compile-check declarations of the XPC dictionary calls the vmnet backend makes,
 * in their plain-C form, after Apple's documentation. */
#ifndef SN_DECLS_XPC_H
#define SN_DECLS_XPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void *xpc_object_t;
typedef unsigned char uuid_t[16];

xpc_object_t xpc_dictionary_create(const char *const *keys, const xpc_object_t *values, size_t count);
void xpc_dictionary_set_uint64(xpc_object_t xdict, const char *key, uint64_t value);
void xpc_dictionary_set_string(xpc_object_t xdict, const char *key, const char *string);
void xpc_dictionary_set_bool(xpc_object_t xdict, const char *key, bool value);
void xpc_dictionary_set_uuid(xpc_object_t xdict, const char *key, const uuid_t uuid);
uint64_t xpc_dictionary_get_uint64(xpc_object_t xdict, const char *key);
const char *xpc_dictionary_get_string(xpc_object_t xdict, const char *key);
void xpc_release(xpc_object_t object);

#endif
