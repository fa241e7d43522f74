# unit tests: policy/classify.c (SQL classification) and policy/sqljson.c
check_PROGRAMS += tests/unit/test_classify
TESTS += tests/unit/test_classify
tests_unit_test_classify_SOURCES = tests/unit/test_classify.c
tests_unit_test_classify_CFLAGS = $(UNIT_CFLAGS) \
	-DSLUICE_REGRESS_DEFAULT='"$(abs_top_srcdir)/../shared/corpus/pg15-regress"'
tests_unit_test_classify_LDADD = policy/libsluice-policy.la common/libsluice-common.la $(UNIT_LIBS)
