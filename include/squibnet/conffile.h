/* Configuration files: a switch's ports, captures, static FDB entries and settings in one file
 * (squibnet.conf(5)), applied to a running switch, applied again when it changes, and written
 * back from what runs.
 *
 * One directive per line; blank lines and lines whose first non-blank character is '#' are
 * left out:
 *
 *     port SPEC                 a port, as sn_switch_add_port() takes it; SPEC must hold name=
 *     capture SPEC              a capture, as sn_capture_start() takes it
 *     fdb MAC PORT [vlan=N]     a static forwarding entry (sn_switch_fdb_add_static())
 *     set KEY=VALUE...          settings: fdb-max, fdb-port-max, fdb-aging (seconds),
 *                               fdb-evict (on|off), pool-frames, txq-len, stall-timeout (ms)
 *
 * Every port names itself, so that applying a changed file can tell the ports apart: a port
 * whose name is in both, with the same SPEC (keys in any order), is left alone, connections
 * and all. Every function here must be called from the loop's thread. */
#ifndef SQUIBNET_CONFFILE_H
#define SQUIBNET_CONFFILE_H

#include <squibnet/switch.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A configuration file, read and checked. */
struct sn_conffile;

/**
 * Reads the file at @path and checks every line: directives, SPEC grammar, port kinds and keys
 * (sn_port_spec_check()), names, MAC addresses and setting values. Nothing is opened yet. On
 * success sets *@ret_cf (free it with sn_conffile_free(), or hand it to sn_conffile_apply()).
 * -EINVAL with @err "PATH:LINE: what is wrong"; other -errno values from reading the file.
 */
int sn_conffile_load(const char *path, struct sn_conffile **ret_cf, struct sn_error *err);

/** Frees @cf. NULL is a no-op. */
void sn_conffile_free(struct sn_conffile *cf);

/** The settings @cf holds over the defaults (sn_switch_config_init()): what to create the
 * switch with, since some settings (pool-frames, txq-len) take effect only then. */
void sn_conffile_switch_config(const struct sn_conffile *cf, struct sn_switch_config *ret_cfg);

/** What an apply changed. */
struct sn_conffile_changes {
	unsigned ports_added, ports_removed, ports_changed, ports_kept;
	unsigned captures_started, captures_stopped;
	unsigned fdb_set, fdb_removed;
	unsigned settings_changed;
	unsigned settings_at_restart; /**< settings that differ but take effect only at creation */
	unsigned failed;              /**< directives that could not be applied (the first is in @err) */
};

/**
 * Makes @sw what @cf says, changing only what differs from what runs, and keeps @cf as the
 * switch's configuration (taken whatever the outcome):
 * - ports: a port @cf names that does not exist is added; one that exists with another SPEC
 *   is removed and added again; one with the same SPEC is left alone. A port of the
 *   configuration @sw had before that @cf no longer names is removed. Ports that no
 *   configuration named (added by hand or through the API) stay.
 * - captures: those of the previous configuration no longer listed stop, new ones start, the
 *   same SPEC is left running.
 * - static FDB entries: those no longer listed go, listed ones are pinned (again, after their
 *   port was added again).
 * - settings: a setting that is not in @cf has its default; settings that can change at run
 *   time (sn_switch_reconfigure()) change, the others are counted in settings_at_restart.
 * Removals come before additions, so a new port may take the address an old one had. A
 * directive that fails (an address in use, a capture file that cannot be opened) does not stop
 * the others. Returns 0, or the first failure's -errno with @err "PATH:LINE: ...". @ret_changes
 * may be NULL.
 */
int sn_conffile_apply(struct sn_switch *sw, struct sn_conffile *cf, struct sn_conffile_changes *ret_changes,
		      struct sn_error *err);

/**
 * Loads the file of the configuration @sw has (the path sn_conffile_apply() got) again and
 * applies it. A file that does not load changes nothing (-EINVAL with "PATH:LINE: ..."); -ENOENT
 * when @sw has no configuration. What the daemon does on SIGHUP and `squibnetctl reload`.
 */
int sn_conffile_reload(struct sn_switch *sw, struct sn_conffile_changes *ret_changes, struct sn_error *err);

/**
 * Writes what @sw runs as a configuration file: settings that differ from the defaults, every
 * port added by SPEC (a listener's clients are its own), static FDB entries and running file
 * captures. Loading it and applying it to a new switch gives the same switch. Into a malloc'ed
 * string in *@ret_text that the caller frees; -ENOMEM.
 */
int sn_conffile_format(struct sn_switch *sw, char **ret_text);

/**
 * Writes sn_conffile_format()'s text to @path (NULL: the file of @sw's configuration), whole:
 * into a new file beside it that is then renamed over it, keeping the old file's mode. Comments
 * of the old file are not kept. -ENOENT (@path NULL and no configuration), other -errno with
 * @err saying why.
 */
int sn_conffile_save(struct sn_switch *sw, const char *path, struct sn_error *err);

#ifdef __cplusplus
}
#endif

#endif
