/* privdrop.c - give up root after binding: ports below 1024 need it (or
 * CAP_NET_BIND_SERVICE), nothing after that does. setuid() from root also
 * clears every capability, so the workers run with none. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "privdrop.h"

/* A plain decimal id ("1000"), for users and groups with no entry. */
static int parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (*end || errno || *out >= (unsigned long)(uid_t)-1)
		return -EINVAL;
	return 0;
}

static int lookup_user(const char *name, struct privdrop *pd, int *have_gid)
{
	struct passwd pw, *res = NULL;
	unsigned long id;
	char buf[4096];

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) == 0 && res) {
		pd->uid = res->pw_uid;
		pd->gid = res->pw_gid;
		snprintf(pd->user, sizeof(pd->user), "%s", res->pw_name);
		*have_gid = 1;
		return 0;
	}
	if (parse_id(name, &id) < 0)
		return -ENOENT;
	if (getpwuid_r((uid_t)id, &pw, buf, sizeof(buf), &res) == 0 && res) {
		pd->gid = res->pw_gid;
		snprintf(pd->user, sizeof(pd->user), "%s", res->pw_name);
		*have_gid = 1;
	}
	pd->uid = (uid_t)id;
	return 0;
}

static int lookup_group(const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	unsigned long id;
	char buf[4096];

	if (getgrnam_r(name, &gr, buf, sizeof(buf), &res) == 0 && res) {
		*gid = res->gr_gid;
		return 0;
	}
	if (parse_id(name, &id) < 0)
		return -ENOENT;
	*gid = (gid_t)id;
	return 0;
}

int privdrop_prepare(const char *user, const char *group, struct privdrop *pd,
		     char *err, size_t errlen)
{
	int have_gid = 0;

	memset(pd, 0, sizeof(*pd));
	pd->uid = geteuid();
	pd->gid = getegid();
	if (user && *user) {
		if (lookup_user(user, pd, &have_gid) < 0) {
			snprintf(err, errlen, "unknown user '%s' (no passwd entry)", user);
			return -ENOENT;
		}
		pd->with_user = 1;
	}
	if (group && *group) {
		if (lookup_group(group, &pd->gid) < 0) {
			snprintf(err, errlen, "unknown group '%s' (no group entry)", group);
			return -ENOENT;
		}
		have_gid = 1;
	}
	if (pd->with_user && !have_gid) {
		snprintf(err, errlen, "user '%s' has no passwd entry: set group too", user);
		return -EINVAL;
	}
	if (!pd->with_user && !(group && *group))
		return 0;
	if (geteuid() == 0) {
		pd->change = 1;
		return 0;
	}
	if (pd->uid != geteuid() || pd->gid != getegid()) {
		snprintf(err, errlen,
			 "cannot switch to user '%s' group '%s' (uid %u gid %u): "
			 "started as uid %u, not root",
			 user && *user ? user : "-", group && *group ? group : "-",
			 (unsigned)pd->uid, (unsigned)pd->gid, (unsigned)geteuid());
		return -EPERM;
	}
	return 0;               /* already that identity */
}

int privdrop_apply(const struct privdrop *pd, char *err, size_t errlen)
{
	int ret;

	if (!pd->change)
		return 0;
	/* Supplementary groups first: root's own (0 among them) must not
	 * survive, and only root may set them. */
	if (pd->with_user && pd->user[0])
		ret = initgroups(pd->user, pd->gid);
	else
		ret = setgroups(1, &pd->gid);
	if (ret < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot set supplementary groups: %s", strerror(-ret));
		return ret;
	}
	if (setgid(pd->gid) < 0) {
		ret = -errno;
		snprintf(err, errlen, "setgid(%u): %s", (unsigned)pd->gid, strerror(-ret));
		return ret;
	}
	if (pd->with_user && setuid(pd->uid) < 0) {
		ret = -errno;
		snprintf(err, errlen, "setuid(%u): %s", (unsigned)pd->uid, strerror(-ret));
		return ret;
	}
	/* A partial switch is worse than none: make sure root is gone. */
	if (pd->with_user && pd->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen, "root privileges could be regained after setuid(%u)",
			 (unsigned)pd->uid);
		return -EPERM;
	}
	return 0;
}
