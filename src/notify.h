/* notify.h - the systemd readiness protocol (sd_notify) without libsystemd:
 * one datagram per state change on the AF_UNIX socket named by
 * $NOTIFY_SOCKET. Every call is a no-op when the variable is not set, so
 * the daemon behaves the same under systemd, another supervisor or a shell. */
#ifndef RF_NOTIFY_H
#define RF_NOTIFY_H

/* Read $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace) and
 * connect a datagram socket to it. Call it before dropping privileges: the
 * permission to write to the socket is checked when connecting. The
 * variable is then removed from the environment so that child processes
 * cannot speak for us. Returns 0 (also when the variable is unset) or
 * -errno (-EINVAL for a malformed address); notify_send() then does nothing. */
int notify_init(void);

/* Send <state>, newline-separated "KEY=VALUE" assignments such as
 * "READY=1\nSTATUS=serving". Returns 1 when sent, 0 when there is no
 * notification socket, or -errno. */
int notify_send(const char *state);

/* RELOADING=1 with MONOTONIC_USEC=<now>, as systemd wants it for reloads. */
int notify_reloading(void);

/* Close the socket (tests, or after the last message). */
void notify_close(void);

#endif
