# shellcheck shell=bash
# Building sluice out of tree. Source after common.sh.

# bootstrap: generate ./configure (autoreconf -fi) in the source tree.
# SLUICE_SKIP_AUTORECONF=1 reuses an existing ./configure.
bootstrap() {
	if [[ ${SLUICE_SKIP_AUTORECONF:-0} == 1 && -x $SLUICE_SRCDIR/configure ]]; then
		info "reusing $SLUICE_SRCDIR/configure"
		return 0
	fi
	(cd "$SLUICE_SRCDIR" && autoreconf -fi)
}

# configure_build DIR [CONFIGURE-ARGS...]: configure in DIR (created if
# needed). Re-runs configure when the arguments changed or configure is
# newer than the last run, otherwise leaves the tree for make to update.
configure_build() {
	local dir=$1; shift
	local want="$*" stamp
	mkdir -p "$dir"
	stamp="$dir/.sluice-configure-args"
	if [[ -f $dir/config.status && -f $stamp && $(cat "$stamp") == "$want" &&
		! $SLUICE_SRCDIR/configure -nt $dir/config.status ]]; then
		return 0
	fi
	(cd "$dir" && "$SLUICE_SRCDIR/configure" "$@" >configure.out 2>&1) || {
		tail -n 30 "$dir/configure.out" >&2
		return 1
	}
	printf '%s' "$want" >"$stamp"
}

# build_tree DIR [CONFIGURE-ARGS...]: configure then make in DIR.
build_tree() {
	local dir=$1
	configure_build "$@" || return 1
	make -C "$dir" -j"$(ncpu)" --no-print-directory
}

# build_default: the normal build every script uses; prints nothing but
# make's output, returns make's status. Sets SLUICE_BUILDDIR.
build_default() {
	SLUICE_BUILDDIR=$SLUICE_BUILD_ROOT/default
	export SLUICE_BUILDDIR
	build_tree "$SLUICE_BUILDDIR" --enable-werror
}
