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
	policy/conf_rules.c \
	policy/host.h policy/host.c \
	policy/maskval.h policy/maskval.c \
	policy/maskplan.h policy/maskplan_int.h policy/maskplan.c policy/maskplan_taint.c \
	policy/maskplan_walk.c policy/maskplan_query.c
policy_libsluice_policy_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
# classify.c parses SQL with libpg_query; maskval.c keys HMAC-SHA256 with OpenSSL.
policy_libsluice_policy_la_LIBADD = policy/libsluice-pgraw.la $(PG_QUERY_LIBS) $(OPENSSL_LIBS)

# The classifier's fast path reads the parse tree through PostgreSQL's own
# headers; they stay out of every other file's include path.
noinst_LTLIBRARIES += policy/libsluice-pgraw.la
policy_libsluice_pgraw_la_SOURCES = policy/classify_raw.c
policy_libsluice_pgraw_la_CPPFLAGS = $(PG_SERVER_CPPFLAGS) $(AM_CPPFLAGS)
policy_libsluice_pgraw_la_CFLAGS = $(AM_CFLAGS)
