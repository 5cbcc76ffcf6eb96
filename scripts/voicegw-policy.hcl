# Least-privilege Vault policy for voicegw, for kv_mount "secret" and prefix
# "voicegw" (adjust both path parts if yours differ). The test suite runs the
# gateway with a token of exactly this policy (gateway/vault/policy_test.go).
#
#   vault policy write voicegw scripts/voicegw-policy.hcl

# Service secrets (API keys, OAuth client secrets): written by ops, read here.
path "secret/data/voicegw/services/*" {
  capabilities = ["read"]
}

# Users' linked tokens: read for every call, written by the /link flow and
# by token refresh (always with check-and-set), deleted with every version
# when the user disables the skill (AlexaSkillEvent.SkillDisabled).
path "secret/data/voicegw/users/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/voicegw/users/*" {
  capabilities = ["delete"]
}

# One-time link codes: created when an unlinked user asks, burnt when used.
path "secret/data/voicegw/link-codes/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/voicegw/link-codes/*" {
  capabilities = ["delete"]
}

# The gateway's own state (the key that signs OAuth state parameters).
path "secret/data/voicegw/gateway/*" {
  capabilities = ["create", "read", "update"]
}

# Token renewal and lookup are in Vault's default policy, which tokens and
# AppRole logins get unless created with no_default_policy.

# MCP (SPEC 13). Dynamically registered clients: created, then read. The
# static clients' secrets are services/mcp-clients/<id> (read above).
path "secret/data/voicegw/mcp-clients/*" {
  capabilities = ["create", "read"]
}

# Authorization codes (under their SHA-256) and authorizations in
# progress: created, burnt when used, deleted when done.
path "secret/data/voicegw/mcp-codes/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/voicegw/mcp-codes/*" {
  capabilities = ["delete"]
}

# voicegw's own access and refresh tokens, only as SHA-256 hashes, and
# each subject's grant (mcp-tokens/grants/<subject>), deleted to revoke
# every token of the subject (a reused code or refresh token does that).
path "secret/data/voicegw/mcp-tokens/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/voicegw/mcp-tokens/*" {
  capabilities = ["delete"]
}
