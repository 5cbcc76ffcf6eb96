//go:build tools

// Package tools pins the HashiCorp Vault release that the test suite builds
// and runs as a dev server. It is a separate module so that Vault's large
// dependency graph never enters voicegw's own go.mod.
package tools

import _ "github.com/hashicorp/vault"
