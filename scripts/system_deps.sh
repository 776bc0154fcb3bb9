#!/usr/bin/env bash
# System packages the tests use beyond Python: Chromium (the HTML report in a real browser),
# valgrind (instruction counts) and PostgreSQL (the shared history: the tests start a server
# of their own with initdb + pg_ctl). Installs what is missing with apt-get when it can (root on
# Debian/Ubuntu); otherwise says what to install and leaves the tests to report it.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
# Debian puts initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, off PATH.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    need+=(postgresql)
fi
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
    echo "missing system packages: ${need[*]} (install them, e.g. sudo apt-get install ${need[*]})" >&2
fi
