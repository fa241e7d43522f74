# shellcheck shell=bash
# Shared helpers for scripts/check, scripts/demo and bench/run: messages,
# running things as root, and where the source and build trees are.
# Source it; it defines functions and variables and runs nothing.

# The source tree: the directory above scripts/.
SLUICE_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Where the out-of-tree builds go (one subdirectory per flavour).
SLUICE_BUILD_ROOT=${SLUICE_BUILD_ROOT:-$SLUICE_SRCDIR/_build}
# Debian's python3: the one that sees python3-pytest, python3-psycopg, ...
SLUICE_PYTHON=/usr/bin/python3
# PostgreSQL 15 server binaries (initdb, pg_ctl, postgres, pgbench).
SLUICE_PG_BIN=${SLUICE_PG_BIN:-/usr/lib/postgresql/15/bin}

if [[ -t 1 ]]; then
	_c_bold=$'\e[1m' _c_red=$'\e[31m' _c_green=$'\e[32m' _c_dim=$'\e[2m' _c_off=$'\e[0m'
else
	_c_bold='' _c_red='' _c_green='' _c_dim='' _c_off=''
fi

# step "Building": a visible heading for each stage.
step() { printf '\n%s==> %s%s\n' "$_c_bold" "$*" "$_c_off"; }
# info "text": an ordinary progress line.
info() { printf '    %s\n' "$*"; }
# ok / bad: outcome lines.
ok() { printf '    %sok%s  %s\n' "$_c_green" "$_c_off" "$*"; }
bad() { printf '    %sFAIL%s %s\n' "$_c_red" "$_c_off" "$*"; }
# warn "text" to stderr.
warn() { printf '%swarning:%s %s\n' "$_c_bold" "$_c_off" "$*" >&2; }
# die "text": stop with a message on stderr.
die() { printf '%serror:%s %s\n' "$_c_red" "$_c_off" "$*" >&2; exit 1; }
# show CMD...: print a command the way a person would type it, then run it.
show() { printf '%s$ %s%s\n' "$_c_dim" "$*" "$_c_off"; "$@"; }

is_root() { [[ $(id -u) -eq 0 ]]; }

# as_root CMD...: run CMD as root, through sudo when we are not root.
as_root() {
	if is_root; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -- "$@"
	else
		die "this step needs root and sudo is not installed: run as root ($*)"
	fi
}

# as_root_env VAR=VAL... -- CMD...: as as_root, passing those variables
# through (sudo resets the environment).
as_root_env() {
	local -a vars=()
	while [[ $# -gt 0 && $1 != -- ]]; do vars+=("$1"); shift; done
	[[ ${1:-} == -- ]] && shift
	if is_root; then
		env "${vars[@]}" "$@"
	else
		as_root env "${vars[@]}" "$@"
	fi
}

# ncpu: how many parallel make jobs to run.
ncpu() { nproc 2>/dev/null || echo 2; }

# ensure_account NAME: create a system account (and its group) if missing.
# No home, no login shell: these accounts only run one program each.
ensure_account() {
	local name=$1
	if getent passwd "$name" >/dev/null; then
		return 0
	fi
	as_root useradd --system --user-group --no-create-home \
		--home-dir /nonexistent --shell /usr/sbin/nologin "$name"
	info "created system account $name"
}

# free_port: a TCP port on 127.0.0.1 nobody listens on right now.
free_port() {
	"$SLUICE_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
