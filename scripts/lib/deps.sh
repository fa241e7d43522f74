# shellcheck shell=bash
# The Debian packages sluice needs to build, test, demo and benchmark, and
# the one function that installs whichever are missing. Source after common.sh.

SLUICE_DEB_PACKAGES=(
	# build
	build-essential autoconf automake libtool pkg-config make
	libdbus-1-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev
	libjansson-dev libpg-query-dev libcmocka-dev
	# PostgreSQL 15 node definitions: the classifier reads the parse tree
	postgresql-server-dev-15
	libpam0g-dev libpamtest0-dev
	# PostgreSQL 15 server, client, pgbench; pgbouncer for the benchmark
	postgresql postgresql-15 postgresql-client-15 postgresql-contrib pgbouncer
	# a private system bus
	dbus dbus-daemon dbus-bin
	# integration tests
	python3 python3-pytest python3-pytest-timeout python3-psycopg
	python3-psycopg2 python3-dbus python3-gi python3-cryptography
	libpam-wrapper libnss-wrapper libuid-wrapper pamtester
	# tools the tests and scripts call
	sqlite3 openssl procps util-linux passwd ca-certificates shellcheck
)

# deps_missing: print the packages of SLUICE_DEB_PACKAGES not installed.
deps_missing() {
	local pkg status
	for pkg in "${SLUICE_DEB_PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
		# "ii " = installed; anything else (absent, half-configured) needs apt.
		[[ $status == ii* ]] || printf '%s\n' "$pkg"
	done
}

# install_deps: apt-get install whatever is missing; quiet when nothing is.
install_deps() {
	local -a missing
	mapfile -t missing < <(deps_missing)
	if [[ ${#missing[@]} -eq 0 ]]; then
		ok "all ${#SLUICE_DEB_PACKAGES[@]} Debian packages present"
		return 0
	fi
	info "installing: ${missing[*]}"
	as_root_env DEBIAN_FRONTEND=noninteractive -- apt-get update -q
	as_root_env DEBIAN_FRONTEND=noninteractive -- \
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	mapfile -t missing < <(deps_missing)
	[[ ${#missing[@]} -eq 0 ]] || die "still missing after apt-get: ${missing[*]}"
	ok "installed the missing packages"
}
