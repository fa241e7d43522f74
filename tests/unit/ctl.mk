# unit tests: ctl/ (pure helpers) and common/dbusc.c (dictionaries, errors)
check_PROGRAMS += tests/unit/test_ctl tests/unit/test_ctl_dbusc
TESTS += tests/unit/test_ctl tests/unit/test_ctl_dbusc
tests_unit_test_ctl_SOURCES = tests/unit/test_ctl.c $(CTL_HELPER_SOURCES)
tests_unit_test_ctl_CFLAGS = $(UNIT_CFLAGS) $(DBUS_CFLAGS) $(JANSSON_CFLAGS)
tests_unit_test_ctl_LDADD = common/libsluice-common.la $(DBUS_LIBS) $(JANSSON_LIBS) $(UNIT_LIBS)
tests_unit_test_ctl_dbusc_SOURCES = tests/unit/test_ctl_dbusc.c
tests_unit_test_ctl_dbusc_CFLAGS = $(UNIT_CFLAGS) $(DBUS_CFLAGS)
tests_unit_test_ctl_dbusc_LDADD = common/libsluice-common.la $(DBUS_LIBS) $(UNIT_LIBS)
