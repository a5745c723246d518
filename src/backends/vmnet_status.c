/* vmnet_status.c - vmnet_return_t codes for people and for errno, shared by both vmnet
 * backends (the Darwin one and the Linux stand-in); values a newer framework adds are kept as
 * numbers, never lost. */
#include <errno.h>
#include <stdio.h>

#include "../util.h"
#include "vmnet.h"

static const struct {
	uint32_t code;
	const char *name, *what;
} statuses[] = {
	{SN_VMNET_SUCCESS, "VMNET_SUCCESS", "success"},
	{SN_VMNET_FAILURE, "VMNET_FAILURE", "general failure"},
	{SN_VMNET_MEM_FAILURE, "VMNET_MEM_FAILURE", "out of memory"},
	{SN_VMNET_INVALID_ARGUMENT, "VMNET_INVALID_ARGUMENT", "invalid argument"},
	{SN_VMNET_SETUP_INCOMPLETE, "VMNET_SETUP_INCOMPLETE", "interface setup not complete"},
	{SN_VMNET_INVALID_ACCESS, "VMNET_INVALID_ACCESS", "permission denied"},
	{SN_VMNET_PACKET_TOO_BIG, "VMNET_PACKET_TOO_BIG", "packet larger than the interface allows"},
	{SN_VMNET_BUFFER_EXHAUSTED, "VMNET_BUFFER_EXHAUSTED", "kernel buffers exhausted"},
	{SN_VMNET_TOO_MANY_PACKETS, "VMNET_TOO_MANY_PACKETS", "more packets than one call allows"},
	{SN_VMNET_SHARING_SERVICE_BUSY, "VMNET_SHARING_SERVICE_BUSY", "another sharing service is in use"},
	{SN_VMNET_NOT_AUTHORIZED, "VMNET_NOT_AUTHORIZED", "not authorized"},
};

const char *sn_vmnet_status_name(uint32_t status)
{
	for (size_t i = 0; i < SN_ARRAY_SIZE(statuses); i++)
		if (statuses[i].code == status)
			return statuses[i].name;
	return NULL;
}

const char *sn_vmnet_strstatus(uint32_t status, char *buf, size_t len)
{
	for (size_t i = 0; i < SN_ARRAY_SIZE(statuses); i++) {
		if (statuses[i].code == status) {
			snprintf(buf, len, "%s (%s)", statuses[i].name, statuses[i].what);
			return buf;
		}
	}
	snprintf(buf, len, "unknown vmnet_return_t %u", status);
	return buf;
}

int sn_vmnet_errno(uint32_t status)
{
	switch (status) {
	case SN_VMNET_SUCCESS:
		return 0;
	case SN_VMNET_MEM_FAILURE:
		return -ENOMEM;
	case SN_VMNET_INVALID_ARGUMENT:
		return -EINVAL;
	case SN_VMNET_SETUP_INCOMPLETE:
		return -EAGAIN;
	case SN_VMNET_INVALID_ACCESS:
		return -EACCES;
	case SN_VMNET_PACKET_TOO_BIG:
		return -EMSGSIZE;
	case SN_VMNET_BUFFER_EXHAUSTED:
		return -ENOBUFS;
	case SN_VMNET_TOO_MANY_PACKETS:
		return -E2BIG;
	case SN_VMNET_SHARING_SERVICE_BUSY:
		return -EBUSY;
	case SN_VMNET_NOT_AUTHORIZED:
		return -EPERM;
	case SN_VMNET_FAILURE:
		return -EIO;
	default:
		return -EPROTO;
	}
}
