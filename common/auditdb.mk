# common/auditdb.c: the session database schema, chain and queries
common_libsluice_common_la_SOURCES += common/auditdb.c common/auditdb.h
common_libsluice_common_la_CFLAGS += $(SQLITE_CFLAGS)
common_libsluice_common_la_LIBADD += $(SQLITE_LIBS)
