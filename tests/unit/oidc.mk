# unit tests: common/jose.c, common/oidc.c (with a test signer)
check_PROGRAMS += tests/unit/test_jose tests/unit/test_oidc
TESTS += tests/unit/test_jose tests/unit/test_oidc
tests_unit_test_jose_SOURCES = tests/unit/test_jose.c tests/unit/jwt_testsign.c tests/unit/jwt_testsign.h
tests_unit_test_jose_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
tests_unit_test_jose_LDADD = common/libsluice-common.la $(UNIT_LIBS)
tests_unit_test_oidc_SOURCES = tests/unit/test_oidc.c tests/unit/jwt_testsign.c tests/unit/jwt_testsign.h
tests_unit_test_oidc_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS)
tests_unit_test_oidc_LDADD = common/libsluice-common.la $(UNIT_LIBS)
