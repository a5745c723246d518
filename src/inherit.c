/* inherit.c - listening sockets the process inherited (systemd socket activation), kept by
 * name for the SPECs that say fdname=NAME. The switch holds the originals for its lifetime and
 * each port gets a duplicate, so a port that is removed and added again (a reload) takes the
 * same socket again, and the socket outlives the port: the clients waiting in its backlog stay
 * there. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooks.h"
#include "port.h"
#include "spec.h"
#include "util.h"

struct named_fd {
	struct named_fd *next;
	int fd;
	char name[]; /* as LISTEN_FDNAMES gave it */
};

struct inherited {
	struct sn_switch_ext ext;
	struct named_fd *list; /* in the order they were added */
};

static const char module_key = 0;

static void inherited_destroy(struct sn_switch_ext *ext)
{
	struct inherited *m = sn_container_of(ext, struct inherited, ext);

	while (m->list) {
		struct named_fd *n = m->list;

		m->list = n->next;
		close(n->fd);
		free(n);
	}
	free(m);
}

static struct inherited *module_get(struct sn_switch *sw)
{
	struct sn_switch_ext *e = sn_switch_ext_find(sw, &module_key);

	return e ? sn_container_of(e, struct inherited, ext) : NULL;
}

SN_EXPORT int sn_switch_add_inherited_fd(struct sn_switch *sw, const char *name, int fd)
{
	struct inherited *m;
	struct named_fd *n, **tail;
	size_t len;

	if (!sw || !name || fd < 0)
		return -EINVAL;
	len = strlen(name);
	/* the names systemd allows (FileDescriptorName=): printable, no colon, at most 255 */
	if (len == 0 || len > 255 || strpbrk(name, ":,\"\n\t "))
		return -EINVAL;
	if (fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	if (sn_switch_inherited_fd(sw, name) >= 0)
		return -EEXIST;
	m = module_get(sw);
	if (!m) {
		m = calloc(1, sizeof(*m));
		if (!m)
			return -ENOMEM;
		m->ext = (struct sn_switch_ext){.key = &module_key, .destroy = inherited_destroy};
		sn_switch_ext_add(sw, &m->ext);
	}
	n = malloc(sizeof(*n) + len + 1);
	if (!n)
		return -ENOMEM;
	memcpy(n->name, name, len + 1);
	n->fd = fd;
	n->next = NULL;
	/* nobody the switch starts (gvproxy) inherits it */
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	for (tail = &m->list; *tail; tail = &(*tail)->next)
		;
	*tail = n;
	return 0;
}

int sn_switch_inherited_fd(struct sn_switch *sw, const char *name)
{
	struct inherited *m = module_get(sw);

	for (struct named_fd *n = m ? m->list : NULL; n; n = n->next)
		if (!strcmp(n->name, name))
			return n->fd;
	return -1;
}

void sn_switch_inherited_names(struct sn_switch *sw, char *buf, size_t len)
{
	struct inherited *m = module_get(sw);
	size_t used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (struct named_fd *n = m ? m->list : NULL; n && used < len; n = n->next) {
		int k = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", n->name);

		if (k < 0)
			break;
		used += (size_t)k;
	}
}
