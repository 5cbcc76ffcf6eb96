#!/usr/bin/env bash
# Installs the official MCP TypeScript SDK (@modelcontextprotocol/sdk, the
# client that the end-to-end test of the MCP endpoint drives through
# scripts/mcp-client.mjs) into a cache outside the repository, like
# scripts/install-chromium.sh installs Chromium. Prints the cache
# directory; does nothing when the pinned version is already there, so it
# is safe to run on every CI start. Needs node (>= 18) and npm.
set -euo pipefail

version="${VOICEGW_MCP_SDK_VERSION:-1.32.2}"
dir="${VOICEGW_MCP_CLIENT_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voicegw/mcp-client}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-mcp-client: node and npm are needed (apt-get install nodejs npm)" >&2
  exit 1
fi

pkg="$dir/node_modules/@modelcontextprotocol/sdk/package.json"
if [ -f "$pkg" ] && [ "$(node -p "require('$pkg').version")" = "$version" ]; then
  echo "install-mcp-client: @modelcontextprotocol/sdk $version is in $dir; nothing to do" >&2
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
if [ ! -f "$dir/package.json" ]; then
  printf '{"name": "voicegw-mcp-client", "private": true, "type": "module"}\n' >"$dir/package.json"
fi
echo "install-mcp-client: npm install @modelcontextprotocol/sdk@$version into $dir" >&2
(cd "$dir" && npm install --no-audit --no-fund --silent --save-exact "@modelcontextprotocol/sdk@$version" >&2)
echo "install-mcp-client: done: $(node -p "require('$pkg').version")" >&2
echo "$dir"
