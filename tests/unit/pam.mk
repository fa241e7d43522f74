# unit tests: pam_module/ (option parsing, token files, error mapping) and a
# check of what pam_sluice.so exports, imports and links.
check_PROGRAMS += tests/unit/test_pam
TESTS += tests/unit/test_pam tests/unit/pam_exports.sh
tests_unit_test_pam_SOURCES = tests/unit/test_pam.c $(PAM_SLUICE_HELPER_SOURCES) \
	pam_module/agent_call.c pam_module/agent_call.h
tests_unit_test_pam_CFLAGS = $(UNIT_CFLAGS) $(DBUS_CFLAGS) $(PAM_CFLAGS)
tests_unit_test_pam_LDADD = common/libsluice-common.la $(DBUS_LIBS) $(UNIT_LIBS)
EXTRA_DIST += tests/unit/pam_exports.sh
