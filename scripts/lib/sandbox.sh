# shellcheck shell=bash
# A throwaway world for scripts/demo: a PostgreSQL cluster, a private system
# bus, and sluiced, all under one directory. Source after common.sh.
# (The pytest fixtures in tests/integration/sluice_fixtures.py do the same
# in Python, with more options.)
#
# Every *_start sets variables the caller uses; every *_stop is safe to call
# twice and when the start never happened, so one cleanup trap can call all.

# --- PostgreSQL ------------------------------------------------------------------

# pg_start DIR OWNER: initdb as OWNER (initdb refuses root) in DIR/pg, start
# it on 127.0.0.1:PG_PORT (SCRAM required) and a Unix socket in PG_SOCKET_DIR.
# The superuser is "postgres", reachable only by root and OWNER over the
# socket (peer authentication). Sets PG_DIR PG_DATA PG_SOCKET_DIR PG_LOG PG_PORT PG_OWNER.
pg_start() {
	PG_DIR=$1/pg PG_OWNER=$2
	PG_DATA=$PG_DIR/data PG_SOCKET_DIR=$PG_DIR/socket PG_LOG=$PG_DIR/postgresql.log
	PG_PORT=$(free_port)
	install -d -m 0755 -o "$PG_OWNER" "$PG_DIR" "$PG_SOCKET_DIR"
	install -d -m 0700 -o "$PG_OWNER" "$PG_DATA"
	(cd "$PG_DIR" && runuser -u "$PG_OWNER" -- "$SLUICE_PG_BIN/initdb" -D "$PG_DATA" -U postgres \
		--no-sync --no-instructions -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1) ||
		die "initdb failed: $(tail -n 5 "$PG_DIR/initdb.log")"
	cat >>"$PG_DATA/postgresql.conf" <<-CONF
		# sluice demo cluster
		listen_addresses = '127.0.0.1'
		port = $PG_PORT
		unix_socket_directories = '$PG_SOCKET_DIR'
		password_encryption = 'scram-sha-256'
		log_connections = on
	CONF
	cat >"$PG_DATA/pg_hba.conf" <<-HBA
		# TYPE  DATABASE USER     ADDRESS        METHOD
		local   all      postgres                peer map=superuser
		local   all      all                     scram-sha-256
		host    all      all      127.0.0.1/32   scram-sha-256
	HBA
	printf 'superuser root postgres\nsuperuser %s postgres\n' "$PG_OWNER" >"$PG_DATA/pg_ident.conf"
	(cd "$PG_DIR" && runuser -u "$PG_OWNER" -- "$SLUICE_PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" \
		-w -t 60 start >/dev/null) || die "PostgreSQL did not start: $(tail -n 5 "$PG_LOG")"
}

# pg_super DB: run the SQL on stdin as the superuser, quietly, stopping at
# the first error. (stdin, not -c, so a password in it never shows in ps.)
pg_super() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d "$1"
}

pg_stop() {
	if [[ -n ${PG_DATA:-} && -f $PG_DATA/postmaster.pid ]]; then
		(cd "$PG_DIR" && runuser -u "$PG_OWNER" -- "$SLUICE_PG_BIN/pg_ctl" -D "$PG_DATA" \
			-m fast -w stop >/dev/null 2>&1) || true
	fi
}

# --- the installed tree -----------------------------------------------------------

# install_into DIR: make install DESTDIR=DIR from SLUICE_BUILDDIR. Sets
# INSTALLED_SLUICED, INSTALLED_SLUICECTL and INSTALLED_DBUS_POLICY.
install_into() {
	local dest=$1
	install -d -m 0755 "$dest"
	make -C "$SLUICE_BUILDDIR" --no-print-directory install DESTDIR="$dest" >"$dest.log" 2>&1 ||
		die "make install failed: see $dest.log"
	INSTALLED_SLUICED=$(find "$dest" -path '*/sbin/sluiced' -type f | head -n 1)
	INSTALLED_SLUICECTL=$(find "$dest" -path '*/bin/sluicectl' -type f | head -n 1)
	INSTALLED_DBUS_POLICY=$(find "$dest" -path '*/dbus-1/system.d/org.sluice.Agent1.conf' -type f | head -n 1)
	[[ -n $INSTALLED_SLUICED ]] || die "make install did not install sluiced"
	[[ -n $INSTALLED_SLUICECTL ]] || die "make install did not install sluicectl"
	if [[ -z $INSTALLED_DBUS_POLICY ]]; then
		warn "make install did not install the D-Bus policy; using data/org.sluice.Agent1.conf"
		INSTALLED_DBUS_POLICY=$SLUICE_SRCDIR/data/org.sluice.Agent1.conf
	fi
}

# --- D-Bus ------------------------------------------------------------------------

# bus_start DIR POLICY: a private dbus-daemon configured like the system bus
# (only sluice's policy included). Sets BUS_ADDRESS and BUS_PID.
bus_start() {
	local dir=$1/bus policy=$2
	install -d -m 0755 "$dir"
	sed -e "s|@SOCKET@|$dir/system_bus_socket|" -e "s|@POLICY@|$policy|" \
		"$SLUICE_SRCDIR/tests/dbus-system-test.conf.in" >"$dir/bus.conf"
	dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile >"$dir/dbus-daemon.log" 2>&1 &
	BUS_PID=$!
	BUS_ADDRESS=unix:path=$dir/system_bus_socket
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -S $dir/system_bus_socket ]] && return 0
		sleep 0.1
	done
	die "dbus-daemon did not start: $(cat "$dir/dbus-daemon.log")"
}

bus_stop() {
	if [[ -n ${BUS_PID:-} ]]; then
		kill "$BUS_PID" 2>/dev/null || true
		wait "$BUS_PID" 2>/dev/null || true
		BUS_PID=
	fi
}

# bus_has_owner NAME: is NAME owned on the private bus now?
bus_has_owner() {
	dbus-send --bus="$BUS_ADDRESS" --print-reply --dest=org.freedesktop.DBus \
		/org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner "string:$1" 2>/dev/null |
		grep -q 'boolean true'
}

# --- sluiced ------------------------------------------------------------------------

# agent_start SLUICED CONFIG LOG: run sluiced as root in the background (it
# drops to "sluice" itself) on the private bus; wait until it owns
# org.sluice.Agent1. Sets AGENT_PID.
agent_start() {
	local sluiced=$1 config=$2 log=$3 i
	DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDRESS "$sluiced" --config "$config" >"$log" 2>&1 &
	AGENT_PID=$!
	for ((i = 0; i < 200; i++)); do
		bus_has_owner org.sluice.Agent1 && return 0
		if ! kill -0 "$AGENT_PID" 2>/dev/null; then
			wait "$AGENT_PID" 2>/dev/null || true
			AGENT_PID=
			die "sluiced exited at start:"$'\n'"$(cat "$log")"
		fi
		sleep 0.1
	done
	die "sluiced did not take org.sluice.Agent1 within 20 s:"$'\n'"$(cat "$log")"
}

# agent_stop: SIGTERM, then SIGKILL after 10 s.
agent_stop() {
	local i
	if [[ -n ${AGENT_PID:-} ]]; then
		kill -TERM "$AGENT_PID" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$AGENT_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
		AGENT_PID=
	fi
}
