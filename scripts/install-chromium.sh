#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver for the browser tests of
# account linking and MCP authorization (cmd/voicegw/*browser_test.go),
# which drive /usr/bin/chromium with chromedp. fonts-liberation is only a
# recommendation of chromium, but without a font the screenshots under
# docs/ show boxes.
set -euo pipefail
exec "$(dirname "$0")/install-debian.sh" install-chromium /usr/bin/chromium chromium chromium-driver fonts-liberation
