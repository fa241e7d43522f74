# unit tests: policy/maskplan.c (which result columns may carry a masked value)
check_PROGRAMS += tests/unit/test_maskplan
TESTS += tests/unit/test_maskplan
tests_unit_test_maskplan_SOURCES = tests/unit/test_maskplan.c
tests_unit_test_maskplan_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_maskplan_LDADD = policy/libsluice-policy.la common/libsluice-common.la $(PG_QUERY_LIBS) \
	$(UNIT_LIBS)
