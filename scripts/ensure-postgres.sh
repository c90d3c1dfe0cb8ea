#!/usr/bin/env bash
# Make sure the PostgreSQL server the tests use is up at 127.0.0.1:5432; start the local cluster if not.
set -euo pipefail
host=${PGHOST_TEST:-127.0.0.1}
port=${PGPORT_TEST:-5432}
if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then
  exit 0
fi
echo "PostgreSQL is not accepting connections at $host:$port; starting the local cluster" >&2
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
for _ in $(seq 1 30); do
  pg_isready -q -h "$host" -p "$port" 2>/dev/null && exit 0
  sleep 1
done
echo "PostgreSQL did not come up at $host:$port" >&2
exit 1
