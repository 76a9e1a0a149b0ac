#!/usr/bin/env bash
# Proxy benchmark (not a test): see proxy_bench.py --help.
exec python3 "$(dirname "$0")/proxy_bench.py" "$@"
