# policy build fragment: libsluice-policy, pure logic (no I/O besides reading
# the configuration files, no logging). Programs link it together with
# common/libsluice-common.la, whose headers it uses (durations, parse_u64).
noinst_LTLIBRARIES += policy/libsluice-policy.la
policy_libsluice_policy_la_SOURCES = \
	policy/policy.h policy/policy.c \
	policy/diag.h policy/diag.c \
	policy/files.h policy/files.c \
	policy/ini.h policy/ini.c \
	policy/value.h policy/value.c \
	policy/ident.h policy/ident.c \
	policy/principal.h policy/principal.c \
	policy/classes.h policy/classes.c \
	policy/sqljson.h policy/sqljson.c \
	policy/classify.h policy/classify.c \
	policy/classify_walk.h policy/classify_walk.c policy/classify_nodes.c \
	policy/decide.h policy/decide.c \
	policy/loader.h policy/loader.c \
	policy/conf_agent.c \
	policy/conf_identity.c \
	policy/conf_connection.c \
	policy/conf_rules.c
policy_libsluice_policy_la_CFLAGS = $(AM_CFLAGS)
# classify.c parses SQL with libpg_query.
policy_libsluice_policy_la_LIBADD = $(PG_QUERY_LIBS)
