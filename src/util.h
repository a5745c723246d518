/* util.h - small helpers shared by every file of the library. */
#ifndef SN_UTIL_H
#define SN_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SN_EXPORT __attribute__((visibility("default")))

#define SN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define sn_likely(x) __builtin_expect(!!(x), 1)
#define sn_unlikely(x) __builtin_expect(!!(x), 0)
#define sn_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define SN_ETH_HLEN 14
#define SN_VLAN_HLEN 4
#define SN_ETH_P_8021Q 0x8100

static inline uint16_t sn_get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t sn_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void sn_put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static inline void sn_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24; p[1] = (v >> 16) & 0xff; p[2] = (v >> 8) & 0xff; p[3] = v & 0xff;
}

/** Copies @src into @dst of @size bytes, always NUL-terminated. Returns -ENAMETOOLONG when cut. */
int sn_strlcpy(char *dst, const char *src, size_t size);

/** Makes @fd non-blocking and close-on-exec. Returns 0 or -errno. */
int sn_fd_nonblock(int fd);

#endif
