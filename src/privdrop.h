/* privdrop.h - switch from root to the configured user and group once the
 * listening sockets are bound ([server] user, group). */
#ifndef RF_PRIVDROP_H
#define RF_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

struct privdrop {
	int change;             /* 1: privdrop_apply() has work to do */
	int with_user;          /* user given: setuid too, supplementary groups from it */
	uid_t uid;
	gid_t gid;
	char user[64];          /* name for initgroups(); empty for a bare number */
};

/* Resolve <user> and <group> (names, or numbers without an entry; either
 * may be NULL) into <pd> and decide whether anything must change. Started
 * as root, any identity is allowed. Started as another user, asking for a
 * different identity is an error, asking for the current one is not (so a
 * config shared with a systemd unit's User= works both ways).
 * Returns 0, or -ENOENT (unknown name), -EINVAL (bare user number with no
 * group), -EPERM (not root); a message goes into <err> (size <errlen>). */
int privdrop_prepare(const char *user, const char *group, struct privdrop *pd,
		     char *err, size_t errlen);

/* Switch: supplementary groups, then gid, then uid - in that order, because
 * after setuid() the process may no longer change its groups. Checks that
 * root cannot be regained. Returns 0 or -errno with a message in <err>. */
int privdrop_apply(const struct privdrop *pd, char *err, size_t errlen);

#endif
