# unit tests: agent/pgauth.c, agent/tls.c
# The agent program does not exist as a library: each test compiles the
# module it tests directly.
check_PROGRAMS += tests/unit/test_pgauth
TESTS += tests/unit/test_pgauth

tests_unit_test_pgauth_SOURCES = tests/unit/test_pgauth.c agent/pgauth.c agent/pgauth.h
tests_unit_test_pgauth_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_pgauth_LDADD = common/libsluice-common.la $(OPENSSL_LIBS) $(UNIT_LIBS)

check_PROGRAMS += tests/unit/test_tls
TESTS += tests/unit/test_tls
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c agent/tls.c agent/tls.h
tests_unit_test_tls_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS)
tests_unit_test_tls_LDADD = common/libsluice-common.la $(OPENSSL_LIBS) $(UNIT_LIBS)
