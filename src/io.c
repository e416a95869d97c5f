/* io.c - which event backend the workers use ([server] io), decided once
 * in the main thread before they start, in this one place. */
#include <errno.h>
#include <unistd.h>
#include "config.h"
#include "io.h"
#include "log.h"
#include "uring_probe.h"

uint32_t rf_io_backend = RF_IO_URING;

const char *io_backend_name(uint32_t io)
{
	return io == RF_IO_EPOLL ? "epoll" : io == RF_IO_URING ? "uring" : "auto";
}

int io_choose(uint32_t want, int dropped)
{
	const char *hint;
	int ret;

	if (want == RF_IO_EPOLL) {
		rf_io_backend = RF_IO_EPOLL;
		return 0;
	}
	ret = uring_probe_usable();
	if (ret == 0) {
		rf_io_backend = RF_IO_URING;
		return 0;
	}
	hint = dropped ? "see sysctl kernel.io_uring_disabled and kernel.io_uring_group" :
		ret == -ENOMEM ? "raise RLIMIT_MEMLOCK (ulimit -l)" :
		"io_uring is disabled, blocked or missing here (kernel.io_uring_disabled, seccomp)";
	if (want == RF_IO_AUTO && (ret == -EPERM || ret == -EACCES || ret == -ENOSYS)) {
		log_warn("msg=\"io_uring is not usable, falling back to epoll\" uid=%u error=\"%s\" "
			 "hint=\"%s; set [server] io = epoll to silence this\"",
			 (unsigned)getuid(), strerror(-ret), hint);
		rf_io_backend = RF_IO_EPOLL;
		return 0;
	}
	log_error("msg=\"io_uring is not usable\" io=%s uid=%u error=\"%s\" hint=\"%s; "
		  "[server] io = epoll runs without it\"", io_backend_name(want),
		  (unsigned)getuid(), strerror(-ret), hint);
	return ret;
}
