package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/auth"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/mcp"
)

// cmdLink is operator access to linked tokens in Vault:
// voicegw link put|show|rm --user U --service S [--token T | --token-file F]
// [--refresh-token R] [--expires-in 1h]. show never prints a token in full.
func cmdLink(args []string, stdout, stderr io.Writer) int {
	op := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		op, args = args[0], args[1:]
	}
	name := "link"
	if op != "" {
		name += " " + op
	}
	fs, path := newFlags(name, stderr)
	user := fs.String("user", "", "Alexa `userId` (amzn1.…), or an MCP subject (mcp.…)")
	service := fs.String("service", "", "linked `service` name (auth type linked)")
	token := fs.String("token", "", "access `token` to store (put)")
	tokenFile := fs.String("token-file", "", "read the access token from `file` (put)")
	refresh := fs.String("refresh-token", "", "refresh `token` to store (put)")
	expiresIn := fs.Duration("expires-in", 0, "token lifetime, e.g. 1h (put)")
	if code, ok := parse(fs, args, stdout); !ok {
		return code
	}
	if op == "" {
		fmt.Fprintln(stderr, "link: want put, show or rm (run 'voicegw link -h' for its flags)")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "link: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if !gateway.ValidUser(*user) {
		fmt.Fprintln(stderr, "link: --user must be an Alexa userId (amzn1.…) or an MCP subject (mcp.…)")
		return 2
	}
	cfg := loadConfig(*path, stderr, false)
	if cfg == nil {
		return 1
	}
	if op == "rm" && gateway.ValidMCPSubject(*user) && *service == "" {
		return revokeMCP(cfg, *user, stdout, stderr)
	}
	svc, ok := cfg.Services[*service]
	if !ok {
		fmt.Fprintf(stderr, "link: no service %q in %s\n", *service, *path)
		return 1
	}
	if svc.Auth.Type != config.AuthLinked {
		fmt.Fprintf(stderr, "link: service %q has auth type %s, not linked\n", *service, svc.Auth.Type)
		return 1
	}
	d := newDeps(newLogger(stderr, 100))
	store, err := d.store(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "link: %v\n", err)
		return 1
	}
	// The token this command logged in with (AppRole) dies with it.
	defer d.closeVault()
	if store == nil {
		fmt.Fprintf(stderr, "link: %s has no vault configured (is VAULT_ADDR set?)\n", *path)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	key := gateway.UserPath(*user, *service)
	switch op {
	case "put":
		tok := *token
		if *tokenFile != "" {
			if tok != "" {
				fmt.Fprintln(stderr, "link put: use --token or --token-file, not both")
				return 2
			}
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				fmt.Fprintf(stderr, "link put: %v\n", err)
				return 1
			}
			tok = strings.TrimSpace(string(b))
		}
		if tok == "" {
			fmt.Fprintln(stderr, "link put: need --token or --token-file")
			return 2
		}
		data := gateway.SecretData{auth.FieldAccessToken: gateway.Secret(tok), auth.FieldTokenType: "Bearer"}
		if *refresh != "" {
			data[auth.FieldRefreshToken] = gateway.Secret(*refresh)
		}
		if *expiresIn > 0 {
			data[auth.FieldExpiresAt] = gateway.Secret(time.Now().Add(*expiresIn).UTC().Format(time.RFC3339))
		}
		v, err := store.Write(ctx, key, data, -1)
		if err != nil {
			fmt.Fprintf(stderr, "link put: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "stored %s (version %d)\n", key, v)
	case "show":
		e, err := store.Read(ctx, key)
		if errors.Is(err, gateway.ErrNotFound) {
			fmt.Fprintf(stderr, "link show: %s is not linked\n", key)
			return 1
		}
		if err != nil {
			fmt.Fprintf(stderr, "link show: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s (version %d)\n", key, e.Version)
		keys := make([]string, 0, len(e.Data))
		for k := range e.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := e.Data[k].Reveal()
			if k == auth.FieldAccessToken || k == auth.FieldRefreshToken {
				v = mask(v)
			}
			fmt.Fprintf(stdout, "  %s: %s\n", k, v)
		}
	case "rm":
		if err := store.Delete(ctx, key); err != nil {
			fmt.Fprintf(stderr, "link rm: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "removed %s\n", key)
		if gateway.ValidMCPSubject(*user) {
			// The subject's voicegw tokens go with any of its links.
			if err := store.Delete(ctx, mcp.GrantPath(*user)); err != nil {
				fmt.Fprintf(stderr, "link rm: %v\n", err)
				return 1
			}
			fmt.Fprintf(stdout, "revoked the MCP tokens of %s\n", *user)
		}
	default:
		fmt.Fprintf(stderr, "link: unknown operation %q (want put, show or rm)\n", op)
		return 2
	}
	return 0
}

// revokeMCP is `link rm --user mcp.…` without --service: it deletes the
// subject's grant, which revokes every access and refresh token voicegw
// issued to it, and the subject's tokens of every linked service.
func revokeMCP(cfg *config.Config, subject string, stdout, stderr io.Writer) int {
	d := newDeps(newLogger(stderr, 100))
	store, err := d.store(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "link: %v\n", err)
		return 1
	}
	// The token this command logged in with (AppRole) dies with it.
	defer d.closeVault()
	if store == nil {
		fmt.Fprintln(stderr, "link: the configuration has no vault configured (is VAULT_ADDR set?)")
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := store.Delete(ctx, mcp.GrantPath(subject)); err != nil {
		fmt.Fprintf(stderr, "link rm: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "revoked the MCP tokens of %s\n", subject)
	for _, name := range sortedServices(cfg) {
		key := gateway.UserPath(subject, name)
		if err := store.Delete(ctx, key); err != nil {
			fmt.Fprintf(stderr, "link rm: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "removed %s\n", key)
	}
	return 0
}

// sortedServices are the names of cfg's linked services.
func sortedServices(cfg *config.Config) []string {
	var out []string
	for name, svc := range cfg.Services {
		if svc.Auth.Type == config.AuthLinked {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// mask shows at most the first four characters of a token and its length.
func mask(tok string) string {
	n := len(tok)
	keep := 4
	if n < 12 {
		keep = 0
	}
	return fmt.Sprintf("%s… (%d characters)", tok[:keep], n)
}
