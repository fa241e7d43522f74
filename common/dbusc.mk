# common/dbusc.c: D-Bus client helpers (sluicectl, later pam_sluice)
common_libsluice_common_la_SOURCES += common/dbusc.c common/dbusc.h
