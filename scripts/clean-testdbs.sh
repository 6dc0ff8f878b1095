#!/usr/bin/env bash
# clean-testdbs.sh drops the databases internal/testdb creates: test databases
# kept because their test failed (dirsync_t_*) and templates (dirsync_tpl_*),
# one per migrations hash, which pile up as the schema changes. Running tests
# would lose their databases, so run it only when no test is running.
set -euo pipefail

url=${DIRSYNC_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}

psql "$url" -v ON_ERROR_STOP=1 -Atqc \
	"SELECT datname FROM pg_database WHERE datname LIKE 'dirsync\_t\_%' OR datname LIKE 'dirsync\_tpl\_%'" |
	while read -r db; do
		# A template cannot be dropped until it is unmarked.
		psql "$url" -v ON_ERROR_STOP=1 -qc "ALTER DATABASE \"$db\" IS_TEMPLATE false" -c "DROP DATABASE \"$db\" WITH (FORCE)"
		echo "dropped $db"
	done
