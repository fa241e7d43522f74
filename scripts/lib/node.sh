# shellcheck shell=bash
# Node.js for the tests and the demo: tests/node holds one npm project (the
# OIDC provider the identity tests run, the MCP SDK and PostgreSQL MCP
# server), installed from its committed lockfile. Source after common.sh.

SLUICE_NODE_DIR=$SLUICE_SRCDIR/tests/node
# oidc-provider 8.x and the MCP SDK run on Node 18, Debian 12's nodejs.
SLUICE_NODE_MIN=18

# node_major: the major version of `node` on PATH, or 0 when there is none.
node_major() {
	local v
	v=$(node --version 2>/dev/null) || { echo 0; return 0; }
	v=${v#v}
	echo "${v%%.*}"
}

# node_ready: node (new enough) and npm are on PATH.
node_ready() {
	command -v npm >/dev/null 2>&1 && [[ $(node_major) -ge $SLUICE_NODE_MIN ]]
}

# install_node_deps: Debian's nodejs and npm when node or npm is missing or
# node is older than $SLUICE_NODE_MIN, then `npm ci` in tests/node when
# node_modules is missing or older than package-lock.json. Says one line
# when there is nothing to do.
install_node_deps() {
	local -a pkgs=()
	if ! node_ready; then
		# Only what is missing: a nodejs from elsewhere (nodesource) bundles
		# its own npm, and Debian's npm package would conflict with it.
		[[ $(node_major) -ge $SLUICE_NODE_MIN ]] || pkgs+=(nodejs)
		command -v npm >/dev/null 2>&1 || pkgs+=(npm)
		info "installing: ${pkgs[*]}"
		as_root_env DEBIAN_FRONTEND=noninteractive -- apt-get update -q
		as_root_env DEBIAN_FRONTEND=noninteractive -- \
			apt-get install -y -q --no-install-recommends "${pkgs[@]}"
		hash -r
		node_ready || die "still no node >= $SLUICE_NODE_MIN and npm after apt-get (node: $(node --version 2>/dev/null || echo none))"
	fi
	# npm ci leaves node_modules/.package-lock.json behind: when it is newer
	# than the lockfile, the tree matches it.
	local stamp=$SLUICE_NODE_DIR/node_modules/.package-lock.json
	if [[ -f $stamp && ! $SLUICE_NODE_DIR/package-lock.json -nt $stamp ]]; then
		ok "node $(node --version), tests/node/node_modules up to date"
		return 0
	fi
	info "npm ci in tests/node (node $(node --version), npm $(npm --version 2>/dev/null))"
	(cd "$SLUICE_NODE_DIR" && npm_config_update_notifier=false \
		npm ci --no-audit --no-fund --loglevel=error) ||
		die "npm ci failed in $SLUICE_NODE_DIR"
	[[ -x $SLUICE_NODE_DIR/node_modules/.bin/mcp-server-postgres ]] ||
		die "npm ci did not install mcp-server-postgres"
	ok "installed tests/node/node_modules"
}
