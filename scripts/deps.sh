#!/usr/bin/env bash
# Fetches everything the build and tests need that is not a Go module:
#   - libchdb.so (embedded ClickHouse) from the npm registry, pinned and
#     integrity-checked, unpacked into a cache directory outside the repo;
#   - staticcheck (through the Go module proxy).
# Idempotent: a verified cache is reused without touching the network.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/chdb.env

CACHE="${VIGIL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}"
DEST="$CACHE/chdb/$CHDB_VERSION"
LIB="$DEST/libchdb.so"

if [[ -f "$LIB" && -f "$DEST/.verified" && "$(cat "$DEST/.verified")" == "$CHDB_INTEGRITY" ]]; then
	echo "deps: libchdb.so $CHDB_VERSION cached at $LIB"
else
	command -v npm >/dev/null || { echo "deps: npm is required to fetch libchdb.so (apt-get install npm)" >&2; exit 1; }
	mkdir -p "$DEST"
	tmp="$(mktemp -d "$CACHE/chdb/.fetch.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	echo "deps: fetching $CHDB_NPM_PACKAGE@$CHDB_VERSION (about 180 MB) with npm pack"
	(cd "$tmp" && npm pack --silent "$CHDB_NPM_PACKAGE@$CHDB_VERSION" >/dev/null)
	tgz="$(ls "$tmp"/*.tgz)"
	got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
	if [[ "$got" != "$CHDB_INTEGRITY" ]]; then
		echo "deps: integrity mismatch for $CHDB_NPM_PACKAGE@$CHDB_VERSION" >&2
		echo "  want $CHDB_INTEGRITY" >&2
		echo "  got  $got" >&2
		exit 1
	fi
	tar -xzf "$tgz" -C "$tmp" package/libchdb.so
	mv "$tmp/package/libchdb.so" "$LIB.tmp" && mv "$LIB.tmp" "$LIB"
	echo "$CHDB_INTEGRITY" >"$DEST/.verified"
	echo "deps: libchdb.so $CHDB_VERSION verified and cached at $LIB"
fi

if ! command -v staticcheck >/dev/null && [[ ! -x "$(go env GOPATH)/bin/staticcheck" ]]; then
	echo "deps: installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
