/* notify.c - sd_notify(3) in forty lines: systemd passes the address of a
 * datagram socket in $NOTIFY_SOCKET and reads "KEY=VALUE" lines from it
 * (READY=1, RELOADING=1, STOPPING=1, STATUS=...). The sender is identified
 * by the kernel (SO_PASSCRED on systemd's side), so nothing else is sent. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "notify.h"

static int notify_fd = -1;
static int notify_connected;
static struct sockaddr_un notify_addr;
static socklen_t notify_addrlen;

int notify_init(void)
{
	const char *name = getenv("NOTIFY_SOCKET");
	size_t n;
	int ret = 0;

	if (!name || !*name)
		return 0;
	n = strlen(name);
	if ((name[0] != '/' && name[0] != '@') || n < 2 ||
	    n >= sizeof(notify_addr.sun_path)) {
		unsetenv("NOTIFY_SOCKET");
		return -EINVAL;
	}
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, name, n);
	if (name[0] == '@')
		notify_addr.sun_path[0] = 0;        /* abstract namespace */
	notify_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	unsetenv("NOTIFY_SOCKET");
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0)
		return -errno;
	/* Connecting checks the write permission now, while we may still be
	 * root; an unprivileged user can then keep sending on this socket. */
	if (connect(notify_fd, (struct sockaddr *)&notify_addr, notify_addrlen) == 0)
		notify_connected = 1;
	else
		ret = -errno;
	return ret;
}

int notify_send(const char *state)
{
	size_t len = strlen(state);
	ssize_t n = -1;

	if (notify_fd < 0)
		return 0;
	if (notify_connected)
		n = send(notify_fd, state, len, MSG_NOSIGNAL);
	/* Not connected, or the receiver was re-created (systemd re-executed
	 * itself): address the socket by name again. */
	if (n < 0 && (!notify_connected || errno == ECONNREFUSED || errno == ENOTCONN))
		n = sendto(notify_fd, state, len, MSG_NOSIGNAL,
			   (struct sockaddr *)&notify_addr, notify_addrlen);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 1 : -EMSGSIZE;
}

int notify_reloading(void)
{
	struct timespec ts;
	char msg[64];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull +
		 (unsigned long long)ts.tv_nsec / 1000);
	return notify_send(msg);
}

void notify_close(void)
{
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
	notify_connected = 0;
}
