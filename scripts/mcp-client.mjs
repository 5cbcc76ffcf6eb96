// A small MCP client on the official TypeScript SDK
// (@modelcontextprotocol/sdk, installed by scripts/install-mcp-client.sh),
// for the end-to-end test of voicegw's MCP endpoint and the README's
// transcript:
//
//   node scripts/mcp-client.mjs MCP_URL TOOL 'JSON_ARGUMENTS'
//
// It connects to MCP_URL, lets the SDK discover the authorization server
// from the 401, register itself dynamically and start the authorization
// code flow with PKCE; the "browser" is fetch with a cookie jar that
// follows redirects through voicegw and the OAuth provider (which must
// approve without a page, as the test's fake provider does) until it is
// sent to the client's redirect URI. Then it lists the tools and calls
// TOOL. It prints a transcript; the exit status is 0 when the call
// succeeded, 1 otherwise. VOICEGW_MCP_CLIENT_DIR names the SDK's install
// directory (default ~/.cache/voicegw/mcp-client).
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [mcpURL, toolName, rawArgs = '{}'] = process.argv.slice(2);
if (!mcpURL || !toolName) {
  console.error('usage: node scripts/mcp-client.mjs MCP_URL TOOL [JSON_ARGUMENTS]');
  process.exit(2);
}
const dir = process.env.VOICEGW_MCP_CLIENT_DIR || join(homedir(), '.cache', 'voicegw', 'mcp-client');
const sdk = (p) => import(pathToFileURL(join(dir, 'node_modules', '@modelcontextprotocol', 'sdk', 'dist', 'esm', p)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');
const { UnauthorizedError } = await sdk('client/auth.js');

// The redirect URI: nothing listens there; the browser stops at it.
const redirectUrl = 'http://127.0.0.1:1/callback';

// browser follows redirects like a user agent with cookies, allows the
// client on voicegw's consent page, and returns the URL it is finally
// sent to at the client's redirect URI.
async function browser(start) {
  const jar = new Map();
  let url = new URL(start);
  let form;
  for (let hop = 0; hop < 20; hop++) {
    if (url.href.startsWith(redirectUrl)) return url;
    const headers = {};
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (cookie) headers.cookie = cookie;
    const init = { redirect: 'manual', headers };
    if (form) {
      init.method = 'POST';
      init.body = new URLSearchParams(form);
      headers['content-type'] = 'application/x-www-form-urlencoded';
      form = undefined;
    }
    const res = await fetch(url, init);
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const gone = attrs.some((a) => /^\s*max-age=(-\d+|0)\s*$/i.test(a));
      if (gone) jar.delete(name);
      else jar.set(name, pair.slice(i + 1).trim());
    }
    const loc = res.headers.get('location');
    if (res.status >= 300 && res.status <= 399 && loc) {
      url = new URL(loc, url);
      continue;
    }
    const page = await res.text();
    const flow = res.status === 200 && page.match(/name="flow" value="([^"]+)"/);
    if (!flow) {
      throw new Error(`authorization stopped at ${url.pathname} with status ${res.status}: ${page.slice(0, 200)}`);
    }
    const title = page.match(/<h1[^>]*>([^<]*)<\/h1>/);
    console.log(`consent: "${title ? title[1] : 'consent'}" -> Allow`);
    form = { flow: flow[1], decision: 'allow' };
    url = new URL('/oauth/authorize/consent', url);
  }
  throw new Error('too many redirects');
}

let code;
const store = {};
const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return { client_name: 'voicegw e2e (TypeScript SDK)', redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  },
  clientInformation() { return store.client; },
  saveClientInformation(info) {
    store.client = info;
    console.log(`registered: client ${info.client_id} (dynamic registration)`);
  },
  tokens() { return store.tokens; },
  saveTokens(tokens) {
    store.tokens = tokens;
    console.log(`tokens: ${tokens.token_type} access token for ${tokens.expires_in} s, with a refresh token: ${Boolean(tokens.refresh_token)}`);
  },
  saveCodeVerifier(v) { store.verifier = v; },
  codeVerifier() { return store.verifier; },
  async redirectToAuthorization(authorizationUrl) {
    console.log(`authorize: ${authorizationUrl.origin}${authorizationUrl.pathname} (PKCE ${authorizationUrl.searchParams.get('code_challenge_method')})`);
    const back = await browser(authorizationUrl);
    if (back.searchParams.get('error')) throw new Error(`authorization refused: ${back.searchParams.get('error')}`);
    code = back.searchParams.get('code');
    console.log('authorize: accounts linked, code received');
  },
};

const connect = async () => {
  const client = new Client({ name: 'voicegw-e2e', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider }));
  return client;
};

let client;
try {
  client = await connect();
} catch (err) {
  if (!(err instanceof UnauthorizedError) || !code) throw err;
  // The first transport got the 401 and started the flow; finish it and
  // connect again with the tokens.
  const t = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
  await t.finishAuth(code);
  client = await connect();
}
const v = client.getServerVersion();
console.log(`connected: ${v.name} ${v.version}`);

const { tools } = await client.listTools();
for (const t of tools) {
  console.log(`tool: ${t.name} - ${t.description} (readOnlyHint ${t.annotations?.readOnlyHint})`);
}
const args = JSON.parse(rawArgs);
console.log(`call: ${toolName} ${JSON.stringify(args)}`);
const res = await client.callTool({ name: toolName, arguments: args });
for (const c of res.content) {
  if (c.type === 'text') console.log(`text: ${c.text}`);
}
if (res.structuredContent) console.log(`structuredContent: ${JSON.stringify(res.structuredContent)}`);
console.log(`isError: ${Boolean(res.isError)}`);
await client.close();
process.exit(res.isError ? 1 : 0);
