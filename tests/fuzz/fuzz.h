/* fuzz.h - what every fuzz target shares: the libFuzzer entry points, a reader that takes
 * numbers and bytes off the front of an input, and the set-up that keeps a target's side
 * effects inside a private directory and off the network.
 *
 * Each tests/fuzz/fuzz-NAME.c defines LLVMFuzzerTestOneInput() and LLVMFuzzerInitialize(). The
 * same file links either with libFuzzer (-Dfuzz=enabled, clang) or with replay.c, a plain
 * main() that runs every file of a corpus once (the `fuzz` test suite) and passes NULL argc
 * and argv to LLVMFuzzerInitialize(). */
#ifndef SN_FUZZ_H
#define SN_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Failing an oracle: prints @what and aborts, which libFuzzer and the replay both report. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* What every target's LLVMFuzzerInitialize() does first. Routes the library's log (every level)
 * into a buffer that is formatted and thrown away, so the log calls run with fuzzed arguments
 * but print nothing (SN_FUZZ_LOG=1: to stderr). Makes SIGPIPE an oracle failure: the library
 * must never raise it in its embedder (sock.h), and by default it would end the process without
 * a word. */
void fuzz_init(void);

/* Makes a private directory under $TMPDIR (or /tmp), removed at exit, for what a target
 * creates by relative path (sockets, capture files), and points $SQUIBNET_GVPROXY at a name
 * that does not exist, so a gvproxy port never finds a program to start. Under libFuzzer
 * (@argc and @argv from LLVMFuzzerInitialize; NULL from the replay) it also adds
 * -artifact_prefix=CWD/ unless given, so crash files land where the fuzzer was started. */
void fuzz_sandbox(int *argc, char ***argv);

/* Changes into the private directory for one input, and back out (emptying it): libFuzzer's
 * own relative paths (corpus, artifacts) stay valid in between. */
void fuzz_enter(void);
void fuzz_leave(void);

/* Whether handing @text to sn_switch_add_port() or sn_capture_start() stays inside the private
 * directory: no '/' in it, no port kind that opens a host interface (pcap, tap, vmnet) and
 * no fd= key (it would take over one of the harness's own
 * descriptors). Name lookups are numeric and loopback-only in every target (fuzz-common.c), so
 * tcp: addresses never leave the machine. */
bool fuzz_spec_safe(const char *text);


/* A cursor over the input. Reads past the end give zeros and set @eof. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
	bool eof;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (in->n == 0) {
		in->eof = true;
		return 0;
	}
	in->n--;
	return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t lo = fuzz_u8(in);

	return (uint16_t)(lo | fuzz_u8(in) << 8);
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t lo = fuzz_u16(in);

	return lo | (uint32_t)fuzz_u16(in) << 16;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t lo = fuzz_u32(in);

	return lo | (uint64_t)fuzz_u32(in) << 32;
}

/* Up to @want bytes: sets *@ret to them and returns how many there were. */
static inline size_t fuzz_bytes(struct fuzz_in *in, size_t want, const uint8_t **ret)
{
	size_t n = want < in->n ? want : in->n;

	if (n < want)
		in->eof = true;
	*ret = in->p;
	in->p += n;
	in->n -= n;
	return n;
}

/* A harness's own port: the common part of struct sn_port, named @name with @mtu. */
struct sn_port;
struct sn_port_ops;
struct sn_switch;
int fuzz_port_init(struct sn_port *port, struct sn_switch *sw, const struct sn_port_ops *ops, const char *name,
		   unsigned mtu);

#endif
