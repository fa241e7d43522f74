# shellcheck shell=bash
# A local OIDC provider for scripts/demo (and any script that needs tokens):
# the test IdP (oidc-provider from npm, tests/node/idp.mjs) over HTTPS on
# 127.0.0.1 with a throwaway CA, run by scripts/lib/idp_run.py as a
# coprocess. Source after common.sh; needs tests/node's node_modules
# (install_node_deps in node.sh).
#
#   idp_start DIR --client NAME[:GROUP,...]... [--ttl SECONDS]
#   idp_token CLIENT PATH [ACCOUNT]    a fresh token into PATH (0600, ACCOUNT's)
#   idp_stop                           safe to call twice, or without a start
#
# The provider stops when idp_stop closes the pipe to the helper, and also
# when the calling script dies any other way (the pipe closes with it).

# idp_start DIR ARGS...: start the provider; sets IDP_ISSUER IDP_PORT IDP_PID
# (the provider's process) IDP_CA_FILE IDP_AUDIENCE IDP_GROUPS_CLAIM IDP_LOG,
# and IDP_HELPER_PID. The helper's own messages go to DIR/helper.log.
idp_start() {
	local dir=$1 line name value
	shift
	install -d -m 0755 "$dir"
	IDP_HELPER_LOG=$dir/helper.log
	coproc _IDP_HELPER {
		exec "$SLUICE_PYTHON" -B "$SLUICE_SRCDIR/scripts/lib/idp_run.py" "$dir" "$@" 2>>"$IDP_HELPER_LOG"
	}
	# shellcheck disable=SC2153 # set by coproc
	IDP_HELPER_PID=$_IDP_HELPER_PID
	IDP_READY=
	# Assignments, one a line, until IDP_READY=1. Only IDP_* names are
	# taken, and values are shell-quoted by the helper: eval one at a time.
	while IFS= read -r -t 60 -u "${_IDP_HELPER[0]}" line; do
		name=${line%%=*}
		value=${line#*=}
		[[ $name =~ ^IDP_[A-Z_]+$ && $line == *=* ]] || die "idp_run.py said: $line"
		eval "$name=$value"
		[[ $IDP_READY == 1 ]] && return 0
	done
	idp_stop
	die "the OIDC provider did not start:"$'\n'"$(tail -n 20 "$IDP_HELPER_LOG" 2>/dev/null)"
}

# idp_token CLIENT PATH [ACCOUNT]: ask the running provider for a token for
# CLIENT (client credentials, over HTTPS) and write it to PATH, mode 0600,
# owned by ACCOUNT when given. The token is never on a command line.
idp_token() {
	local client=$1 path=$2 account=${3:-} reply
	[[ -n ${_IDP_HELPER[1]:-} ]] || die "idp_token: the OIDC provider is not running"
	if [[ -n $account ]]; then
		printf 'token\t%s\t%s\t%s\n' "$client" "$path" "$account" >&"${_IDP_HELPER[1]}"
	else
		printf 'token\t%s\t%s\n' "$client" "$path" >&"${_IDP_HELPER[1]}"
	fi
	IFS= read -r -t 30 -u "${_IDP_HELPER[0]}" reply || reply="error: no answer from idp_run.py"
	[[ $reply == ok ]] || die "no token for $client: ${reply#error: }"
}

# idp_stop: close the helper's input (it stops the provider and exits), wait
# up to 15 s, then SIGTERM it (the helper stops the provider on SIGTERM too).
idp_stop() {
	local i fd
	[[ -n ${IDP_HELPER_PID:-} ]] || return 0
	fd=${_IDP_HELPER[1]:-}
	if [[ -n $fd ]]; then
		eval "exec $fd>&-"
	fi
	for ((i = 0; i < 150; i++)); do
		kill -0 "$IDP_HELPER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM "$IDP_HELPER_PID" 2>/dev/null || true
	wait "$IDP_HELPER_PID" 2>/dev/null || true
	# The provider is the helper's child: gone with it unless something went
	# badly wrong; then end it too (it is this script's, by its pid).
	if [[ -n ${IDP_PID:-} ]] && grep -qs idp.mjs "/proc/$IDP_PID/cmdline"; then
		kill -TERM "$IDP_PID" 2>/dev/null || true
	fi
	IDP_HELPER_PID='' IDP_PID=''
}
