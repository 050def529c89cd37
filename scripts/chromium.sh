#!/usr/bin/env bash
# Install Debian's Chromium for the review console's browser tests
# (go test ./review/...), if it is not already there.
# Idempotent: does nothing when chromium is on PATH or CHROMIUM_PATH is set.
set -euo pipefail

if [[ -n "${CHROMIUM_PATH:-}" && -x "${CHROMIUM_PATH}" ]]; then
	exit 0
fi
for b in chromium chromium-browser google-chrome; do
	if command -v "$b" >/dev/null 2>&1; then
		exit 0
	fi
done

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "chromium.sh: chromium is missing and this user cannot install it." >&2
		echo "Try: apt-get update && apt-get install -y chromium (as root)" >&2
		exit 1
	fi
fi
echo "chromium.sh: installing Debian chromium for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null
echo "chromium.sh: $(chromium --version 2>/dev/null || echo installed)" >&2
