#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the browser test of
# account linking (cmd/voicegw/linking_browser_test.go), which drives
# /usr/bin/chromium with chromedp. Does nothing when /usr/bin/chromium is
# already there, so it is safe to run on every CI start.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "install-chromium: /usr/bin/chromium is present ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown')); nothing to do"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-chromium: need root or sudo to run apt-get" >&2
    exit 1
  fi
  sudo="sudo"
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: apt-get not found; install Chromium so that /usr/bin/chromium exists" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-chromium: apt-get update"
$sudo apt-get update -q
echo "install-chromium: apt-get install chromium chromium-driver fonts-liberation"
# fonts-liberation is only a recommendation of chromium, but without a
# font the screenshots under docs/ show boxes.
$sudo apt-get install -y -q chromium chromium-driver fonts-liberation

if [ ! -x /usr/bin/chromium ]; then
  echo "install-chromium: installed, but /usr/bin/chromium is still missing" >&2
  exit 1
fi
echo "install-chromium: done: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
