#!/usr/bin/env bash
# install-debian.sh NAME BINARY [apt-get install options and packages...]
# Installs Debian packages that the tests need when BINARY is missing, so
# it is safe to run on every CI start: install-chromium.sh and
# install-haproxy.sh call it. Needs root, or sudo without a password.
set -euo pipefail
name="$1" bin="$2"
shift 2
version() { ("$bin" --version 2>/dev/null || "$bin" -v 2>/dev/null || echo "version unknown") | head -n1; }

if [ -x "$bin" ]; then
  echo "$name: $bin is present ($(version)); nothing to do"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "$name: need root or sudo to run apt-get" >&2
    exit 1
  fi
  sudo="sudo"
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$name: apt-get not found; install $* so that $bin exists" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "$name: apt-get update"
$sudo apt-get update -q
echo "$name: apt-get install $*"
$sudo apt-get install -y -q "$@"
if [ ! -x "$bin" ]; then
  echo "$name: installed, but $bin is still missing" >&2
  exit 1
fi
echo "$name: done: $(version)"
