#!/usr/bin/env bash
# The whole test suite, on both stores: everything once on the embedded sled store, then the
# end-to-end suite again with every shared server on PostgreSQL (one database per server on a
# throwaway cluster this script starts and stops; tests/lib/postgres.sh installs Debian's
# PostgreSQL if it is missing). The replica tests start private clusters of their own.
# Extra arguments go to both nextest runs (e.g. a test filter).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib/postgres.sh
postgres_start

echo "== the suite on the embedded sled store"
cargo nextest run --workspace --locked "$@"
echo "== the end-to-end suite again, every shared server on PostgreSQL"
# Left out: the replica and PostgreSQL-store tests (they start clusters of their own), and the
# compose, blast-radius and one-worker-thread tests (no shared server on a store in them), and
# the trace tests (isolated instances, and a PostgreSQL test that names its own database).
STUDIO_MCP_TEST_STORE=postgres cargo nextest run -p tests --locked \
    -E 'not test(/^(replicas|store_postgres|compose|blast_radius|one_worker_thread|traces|backups)::/)' "$@"
