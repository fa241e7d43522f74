# common/dbusc.c: D-Bus client helpers (sluicectl, later pam_sluice)
