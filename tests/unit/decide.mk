# unit tests: policy/decide.c (verdicts for one grant)
check_PROGRAMS += tests/unit/test_decide
TESTS += tests/unit/test_decide
tests_unit_test_decide_SOURCES = tests/unit/test_decide.c
tests_unit_test_decide_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_decide_LDADD = policy/libsluice-policy.la common/libsluice-common.la $(PG_QUERY_LIBS) \
	$(UNIT_LIBS)
