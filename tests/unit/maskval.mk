# unit tests: policy/maskval.c (masking one value, detecting sensitive text)
check_PROGRAMS += tests/unit/test_maskval
TESTS += tests/unit/test_maskval
tests_unit_test_maskval_SOURCES = tests/unit/test_maskval.c
# OpenSSL: the test computes HMAC-SHA256 on its own to check the pseudonyms.
tests_unit_test_maskval_CFLAGS = $(UNIT_CFLAGS) $(OPENSSL_CFLAGS) -pthread
tests_unit_test_maskval_LDADD = policy/libsluice-policy.la common/libsluice-common.la $(PG_QUERY_LIBS) \
	$(OPENSSL_LIBS) $(UNIT_LIBS) -lpthread
