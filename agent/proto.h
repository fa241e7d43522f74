/* What a wire protocol (PostgreSQL now; Snowflake and BigQuery over HTTP
 * later) provides to grants. Grants, audit and policy do not care which
 * protocol they serve: a grant owns a listening socket named by the
 * protocol and hands every accepted connection to it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "common/list.h"
#include "policy/policy.h"

struct grant;

/* Embedded in every protocol connection object, linked into its grant. */
struct grant_conn {
	struct list_node node;
	struct grant *grant;
	bool counted; /* counts against max_connections_per_grant */
	/* The grant ended (reason: "expired", "revoked", ...): tell the client
	 * in its protocol and let go of upstream. The connection unlinks and
	 * frees itself, now or later. */
	void (*end)(struct grant_conn *c, const char *reason);
	/* Close now, without ceremony (the agent is exiting). */
	void (*close)(struct grant_conn *c);
};

struct proto_ops {
	const char *name;        /* "postgres": recorded with the grant */
	const char *socket_name; /* file in the grant directory: ".s.PGSQL.5432" */
	/* Per-grant set-up (credentials, TLS context) into g->proto_data; fills
	 * err on failure. */
	int (*grant_init)(struct grant *g, char *err, size_t errlen);
	void (*grant_fini)(struct grant *g);
	/* A client connected. fd is the accepted socket (non-blocking,
	 * close-on-exec), now the protocol's. When allowed is false (wrong uid,
	 * too many connections) the protocol refuses it in its own words,
	 * giving why; such connections are not counted. */
	void (*accept)(struct grant *g, int fd, const struct ucred *peer, bool allowed,
		       const char *why);
};

const struct proto_ops *proto_for(enum conn_type type);
extern const struct proto_ops pg_proto;
