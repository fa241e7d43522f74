/* Host name resolution off the event loop: glibc's getaddrinfo_a() runs the
 * lookup in its own thread and the answer comes back through a pipe the
 * loop watches. Numeric addresses are answered at once, without DNS. */
#pragma once
#include <netdb.h>
#include "agent/loop.h"
#include "common/util.h"

struct resolver;
struct resolve_req;

/* err: 0 or an EAI_* code; res is the caller's to freeaddrinfo(). */
typedef void (*resolve_cb)(int err, struct addrinfo *res, void *ud);

int resolver_new(struct loop *l, struct resolver **out) WUR;
struct resolver *resolver_free(struct resolver *r);
/* Start resolving host:port for a TCP connection. The callback runs later
 * from the loop (also for numeric hosts), unless resolve_cancel() came
 * first. */
int resolve_start(struct resolver *r, const char *host, uint16_t port, resolve_cb cb, void *ud,
		  struct resolve_req **out) WUR;
/* The callback will not run; NULL-safe; returns NULL. */
struct resolve_req *resolve_cancel(struct resolve_req *q);
