noinst_LTLIBRARIES += common/libsluice-common.la
common_libsluice_common_la_SOURCES = \
	common/util.c common/util.h \
	common/log.c common/log.h \
	common/duration.c common/duration.h \
	common/buf.c common/buf.h \
	common/pgenc.c common/pgenc.h \
	common/list.h
common_libsluice_common_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(DBUS_CFLAGS)
common_libsluice_common_la_LIBADD = $(OPENSSL_LIBS) $(DBUS_LIBS)
# Fragments owned by the parts that add to the common library.
include common/auditdb.mk
include common/dbusc.mk
include common/oidc.mk
