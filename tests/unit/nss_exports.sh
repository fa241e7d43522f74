#!/bin/sh
# libnss_sluice.so.2 is loaded into every program that resolves a user: it
# must export the _nss_sluice_* entry points and nothing else, start no
# threads, link libc only, carry its soname, and stay loaded (-z nodelete).
set -u
so=${NSS_SLUICE_SO:-nss/.libs/libnss_sluice.so.2}
fail=0
if [ ! -f "$so" ]; then
	echo "FAIL: $so not built" >&2
	exit 1
fi
command -v nm >/dev/null 2>&1 || { echo "SKIP: nm not found"; exit 77; }
command -v readelf >/dev/null 2>&1 || { echo "SKIP: readelf not found"; exit 77; }

exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' | sort | tr '\n' ' ')
want=""
for f in endgrent endpwent getgrent_r getgrgid_r getgrnam_r getpwent_r getpwnam_r getpwuid_r \
	initgroups_dyn setgrent setpwent; do
	want="${want}_nss_sluice_$f "
done
want=$(echo "$want" | tr ' ' '\n' | sed '/^$/d' | sort | tr '\n' ' ')
if [ "$exported" != "$want" ]; then
	echo "FAIL: $so exports: $exported (want: $want)" >&2
	fail=1
fi

threads=$(nm -D --undefined-only "$so" | awk '{print $2}' |
	grep -E '^(pthread_create|thrd_create|clone|clone3|fork|socket|connect|dlopen)(@|$)' || true)
if [ -n "$threads" ]; then
	echo "FAIL: $so imports what an NSS module must not call: $threads" >&2
	fail=1
fi

needed=$(LC_ALL=C readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
for lib in $needed; do
	case "$lib" in
	libc.so.*|libasan.so.*|libubsan.so.*|ld-linux*) ;;
	*) echo "FAIL: $so links $lib (only libc is wanted)" >&2; fail=1 ;;
	esac
done
soname=$(LC_ALL=C readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" != "libnss_sluice.so.2" ]; then
	echo "FAIL: $so has soname '$soname' (want libnss_sluice.so.2)" >&2
	fail=1
fi
if ! LC_ALL=C readelf -d "$so" | grep -q 'FLAGS_1.*NODELETE'; then
	echo "FAIL: $so is not linked with -z nodelete" >&2
	fail=1
fi
[ "$fail" = 0 ] && echo "ok: exports [$exported], links [$needed], soname $soname"
exit $fail
