#!/usr/bin/env bash
# ensure-services.sh makes sure the two services dirsync needs everywhere (its
# tests included) are up: PostgreSQL on 127.0.0.1:5432 (user postgres, trust
# auth) and Redis on 127.0.0.1:6379. It is idempotent and silent when both are
# already fine, so `make run`, `make test` and .ci/run can call it every time.
#
# On a fresh Debian machine, as root, it installs what is missing; as another
# user it says what to install and fails.
set -euo pipefail

# The ports and cluster can be changed only to exercise this script against
# scratch servers; the application and tests expect the defaults.
PG_HOST=127.0.0.1
PG_PORT=${ENSURE_PG_PORT:-5432}
PG_CLUSTER=${ENSURE_PG_CLUSTER:-main}
REDIS_HOST=127.0.0.1
REDIS_PORT=${ENSURE_REDIS_PORT:-6379}
WAIT_SECONDS=${ENSURE_SERVICES_WAIT:-30}

log() { echo "ensure-services: $*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_updated=0
apt_install() {
	is_root || die "missing $*; install it first, e.g.: sudo apt-get install -y $*"
	command -v apt-get >/dev/null || die "missing $* and no apt-get on this machine; install $* yourself"
	export DEBIAN_FRONTEND=noninteractive
	if [ "$apt_updated" -eq 0 ]; then
		log "apt-get update"
		apt-get update -qq >/dev/null
		apt_updated=1
	fi
	log "apt-get install $*"
	apt-get install -y -qq "$@" >/dev/null
}

# wait_for runs "$@" until it succeeds or WAIT_SECONDS pass.
wait_for() {
	local deadline=$((SECONDS + WAIT_SECONDS))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

# --- PostgreSQL ----------------------------------------------------------

pg_up() { pg_isready -q -t 3 -h "$PG_HOST" -p "$PG_PORT"; }

# pg_login checks what the tests actually need, not just that the port answers:
# a password-less login as postgres over TCP.
pg_login() {
	psql "postgres://postgres@$PG_HOST:$PG_PORT/postgres?sslmode=disable&connect_timeout=3" -w -Atqc 'select 1' >/dev/null 2>&1
}

# pg_version finds the major version of our cluster. Debian can hold several
# versions side by side; prefer the one configured for our port.
pg_version() {
	command -v pg_lsclusters >/dev/null || return 0
	local v
	v=$(pg_lsclusters -h 2>/dev/null | awk -v c="$PG_CLUSTER" -v p="$PG_PORT" '$2 == c && $3 == p { print $1 }' | sort -V | tail -n1)
	[ -n "$v" ] || v=$(pg_lsclusters -h 2>/dev/null | awk -v c="$PG_CLUSTER" '$2 == c { print $1 }' | sort -V | tail -n1)
	echo "$v"
}

# The client tools (pg_isready, psql) come without a server, so the server is
# judged by whether this machine has a cluster to start.
pg_installed() { command -v pg_ctlcluster >/dev/null && [ -n "$(pg_version)" ]; }

pg_start() {
	local v
	v=$(pg_version)
	log "starting PostgreSQL $v/$PG_CLUSTER"
	local out
	if ! out=$(pg_ctlcluster --skip-systemctl-redirect "$v" "$PG_CLUSTER" start 2>&1); then
		# "already running" also exits non-zero; only a real failure matters.
		pg_up || pg_ctlcluster --skip-systemctl-redirect "$v" "$PG_CLUSTER" status >/dev/null 2>&1 ||
			die "could not start PostgreSQL: ${out:-no output}
  as root (or postgres) run: pg_ctlcluster --skip-systemctl-redirect $v $PG_CLUSTER start
  server log: /var/log/postgresql/postgresql-$v-$PG_CLUSTER.log"
	fi
}

# pg_configure turns a stock Debian cluster (peer/scram auth) into what the
# tests expect: trust for postgres over the loopback addresses and the socket.
# The lines go first in pg_hba.conf because the first matching line wins.
pg_configure() {
	local v dir hba conf
	v=$(pg_version)
	dir=/etc/postgresql/$v/$PG_CLUSTER
	hba=$dir/pg_hba.conf
	conf=$dir/postgresql.conf
	[ -w "$hba" ] || die "PostgreSQL refuses password-less login as postgres on $PG_HOST:$PG_PORT and $hba is not writable; as root add 'host all postgres 127.0.0.1/32 trust' at its top and reload"
	if ! grep -q '^# dirsync: trust' "$hba"; then
		log "allowing trust auth for postgres on localhost in $hba"
		local tmp
		tmp=$(mktemp)
		{
			echo '# dirsync: trust for local development and tests (scripts/ensure-services.sh)'
			echo 'local   all   postgres                 trust'
			echo 'host    all   postgres   127.0.0.1/32  trust'
			echo 'host    all   postgres   ::1/128       trust'
			cat "$hba"
		} >"$tmp"
		cat "$tmp" >"$hba" # keeps the file's owner and mode
		rm -f "$tmp"
	fi
	if ! grep -Eq "^[[:space:]]*listen_addresses[[:space:]]*=[[:space:]]*'[^']*(localhost|127\.0\.0\.1|\*)" "$conf" &&
		grep -Eq '^[[:space:]]*listen_addresses' "$conf"; then
		log "setting listen_addresses = 'localhost' in $conf"
		sed -i -E "s/^[[:space:]]*listen_addresses[[:space:]]*=.*/listen_addresses = 'localhost'/" "$conf"
		pg_ctlcluster --skip-systemctl-redirect "$v" "$PG_CLUSTER" restart >/dev/null
	else
		pg_ctlcluster --skip-systemctl-redirect "$v" "$PG_CLUSTER" reload >/dev/null
	fi
}

ensure_postgres() {
	if pg_up && pg_login; then
		return 0
	fi
	if ! pg_up; then
		if ! pg_installed; then
			apt_install postgresql
			pg_installed || die "postgresql is installed but has no cluster '$PG_CLUSTER'; run: pg_createcluster <version> $PG_CLUSTER --port $PG_PORT --start"
		fi
		# The package's own init may already have started it.
		pg_up || pg_start
		wait_for pg_up || die "PostgreSQL is not accepting connections on $PG_HOST:$PG_PORT after ${WAIT_SECONDS}s; see /var/log/postgresql/"
	fi
	pg_login && return 0
	# Only a cluster of this machine's own is reconfigured; a server from
	# elsewhere (a container, say) is its owner's to change.
	pg_installed || die "the PostgreSQL on $PG_HOST:$PG_PORT refuses password-less login as postgres and is not a Debian cluster of this machine; allow trust auth for postgres from 127.0.0.1 there"
	pg_configure
	wait_for pg_login || die "PostgreSQL is up but 'psql -h $PG_HOST -U postgres' still needs a password; check pg_hba.conf"
}

# --- Redis ---------------------------------------------------------------

# Bounded: redis-cli waits forever on a port whose listener never answers.
redis_up() { [ "$(timeout 3 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
	if command -v redis-cli >/dev/null && redis_up; then
		return 0
	fi
	if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		apt_install redis-server
	fi
	# The package's own init may already have started it.
	if ! redis_up; then
		log "starting Redis on $REDIS_HOST:$REDIS_PORT"
		local logfile=/dev/null
		if [ -d /var/log/redis ] && [ -w /var/log/redis ]; then
			logfile=/var/log/redis/dirsync.log
		fi
		# Nothing is persisted: the data is test and dev scratch.
		redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
			--save "" --appendonly no --dir /tmp --logfile "$logfile" >/dev/null ||
			die "redis-server failed to start; is port $REDIS_PORT taken by something else?"
	fi
	wait_for redis_up || die "Redis does not answer PING on $REDIS_HOST:$REDIS_PORT after ${WAIT_SECONDS}s; is the port taken by something else? (ss -ltnp)"
}

ensure_postgres
ensure_redis
