/* uring_probe.h - what this kernel's io_uring offers, found at run time
 * (ringfront is built against liburing 2.3 and may run on newer kernels).
 * Used by `ringfront -v`; each probe sets up and tears down a small ring. */
#ifndef RF_URING_PROBE_H
#define RF_URING_PROBE_H

#include <stdio.h>

/* Print the kernel release and one line per io_uring capability ringfront
 * cares about to <out>. Returns 0, or -errno when io_uring itself cannot
 * be set up (the reason is printed too). */
int uring_probe_print(FILE *out);

/* Set up and tear down a minimal ring: 0 when io_uring is usable by this
 * process (after a privilege drop, kernel.io_uring_disabled = 1 limits it
 * to io_uring_group), or -errno. */
int uring_probe_usable(void);

#endif
