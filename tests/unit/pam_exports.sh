#!/bin/sh
# pam_sluice.so is loaded into login programs, sshd, systemd: it must export
# the six pam_sm_* functions and nothing else, start no threads, and link
# libpam and libdbus only (not sqlite, curl or OpenSSL via libsluice-common).
set -u
so=${PAM_SLUICE_SO:-pam_module/.libs/pam_sluice.so}
fail=0
if [ ! -f "$so" ]; then
	echo "FAIL: $so not built" >&2
	exit 1
fi
command -v nm >/dev/null 2>&1 || { echo "SKIP: nm not found"; exit 77; }

exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' | sort | tr '\n' ' ')
want="pam_sm_acct_mgmt pam_sm_authenticate pam_sm_chauthtok pam_sm_close_session pam_sm_open_session pam_sm_setcred "
if [ "$exported" != "$want" ]; then
	echo "FAIL: $so exports: $exported (want: $want)" >&2
	fail=1
fi

threads=$(nm -D --undefined-only "$so" | awk '{print $2}' | grep -E '^(pthread_create|thrd_create|clone)(@|$)' || true)
if [ -n "$threads" ]; then
	echo "FAIL: $so imports thread creation: $threads" >&2
	fail=1
fi

needed=$(LC_ALL=C readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for lib in $needed; do
	case "$lib" in
	libc.so.*|libpam.so.*|libdbus-1.so.*|libasan.so.*|libubsan.so.*|ld-linux*) ;;
	*) echo "FAIL: $so links $lib (only libpam and libdbus are wanted)" >&2; fail=1 ;;
	esac
done
for lib in libpam.so libdbus-1.so; do
	case "$needed" in
	*"$lib"*) ;;
	*) echo "FAIL: $so does not link $lib: $needed" >&2; fail=1 ;;
	esac
done
# Never unloaded (-z nodelete): unloading would take libdbus with it and
# lose its global state on every pam_end of a long-running program.
if ! LC_ALL=C readelf -d "$so" | grep -q 'FLAGS_1.*NODELETE'; then
	echo "FAIL: $so is not linked with -z nodelete" >&2
	fail=1
fi
[ "$fail" = 0 ] && echo "ok: exports [$exported], links [$needed]"
exit $fail
