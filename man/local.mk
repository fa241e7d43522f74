# Man pages: sluice.conf(5) (policy owner), sluicectl(1) and sluiced(8).
# dist_man_MANS: added as each page lands (see man/pages.mk)
include man/pages.mk
