#!/usr/bin/env bash
# Installs Debian's haproxy for the replica test (cmd/voicegw/replicas_test.go),
# which puts three `voicegw serve` processes behind /usr/sbin/haproxy. Does
# nothing when /usr/sbin/haproxy is already there, so it is safe to run on
# every CI start.
set -euo pipefail

if [ -x /usr/sbin/haproxy ]; then
  echo "install-haproxy: /usr/sbin/haproxy is present ($(/usr/sbin/haproxy -v 2>/dev/null | head -n1 || echo 'version unknown')); nothing to do"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-haproxy: need root or sudo to run apt-get" >&2
    exit 1
  fi
  sudo="sudo"
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-haproxy: apt-get not found; install HAProxy so that /usr/sbin/haproxy exists" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-haproxy: apt-get update"
$sudo apt-get update -q
echo "install-haproxy: apt-get install haproxy"
# The package's service is not wanted: the test runs its own haproxy with
# its own config on loopback ports.
$sudo apt-get install -y -q --no-install-recommends haproxy

if [ ! -x /usr/sbin/haproxy ]; then
  echo "install-haproxy: installed, but /usr/sbin/haproxy is still missing" >&2
  exit 1
fi
echo "install-haproxy: done: $(/usr/sbin/haproxy -v 2>/dev/null | head -n1 || echo /usr/sbin/haproxy)"
