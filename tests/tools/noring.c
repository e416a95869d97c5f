/* noring.c - run a command the way many container runtimes run it: with a
 * seccomp filter that makes io_uring_setup(2) fail (EPERM by default, as
 * Docker's and Podman's default profiles do; ENOSYS with -e ENOSYS, as a
 * kernel without io_uring would). Everything else is allowed. It needs no
 * privilege (PR_SET_NO_NEW_PRIVS first).
 *
 *   noring [-e EPERM|ENOSYS|EACCES] COMMAND [ARG...]
 *
 * Built by tests/integration/test_io.py on first use
 * (cc -O2 -o build/noring tests/tools/noring.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int err = EPERM, argi = 1;

	if (argc > 2 && strcmp(argv[1], "-e") == 0) {
		if (strcmp(argv[2], "ENOSYS") == 0)
			err = ENOSYS;
		else if (strcmp(argv[2], "EACCES") == 0)
			err = EACCES;
		else if (strcmp(argv[2], "EPERM") != 0) {
			fprintf(stderr, "noring: unknown errno %s\n", argv[2]);
			return 2;
		}
		argi = 3;
	}
	if (argi >= argc) {
		fprintf(stderr, "usage: noring [-e EPERM|ENOSYS|EACCES] COMMAND [ARG...]\n");
		return 2;
	}
	/* the native system call number only: enough for a test */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("noring: seccomp");
		return 77;
	}
	execvp(argv[argi], argv + argi);
	perror("noring: exec");
	return 127;
}
