package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/voicegw/voicegw/gateway"
	"github.com/voicegw/voicegw/gateway/config"
	"github.com/voicegw/voicegw/gateway/inmem"
	"github.com/voicegw/voicegw/gateway/mcp"
)

// loadSecrets reads a --secrets file (SPEC 11): YAML mapping each secret
// path of SPEC 4 (users/<userId>/<service>, services/<service>,
// link-codes/<code>) to its fields, the same shape as a scenario's
// secrets:. It returns the in-memory store holding them, or nil and the
// problems, each at FILE:LINE:COL.
func loadSecrets(file string) (*inmem.Store, config.Problems) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, config.Problems{{File: file, Line: 1, Col: 1, Msg: err.Error()}}
	}
	var secrets map[string]map[string]string
	if ps := config.DecodeStrict(file, data, &secrets); len(ps) > 0 {
		return nil, ps
	}
	var root yaml.Node
	_ = yaml.NewDecoder(bytes.NewReader(data)).Decode(&root)
	keys := map[string]*yaml.Node{}
	if len(root.Content) > 0 && root.Content[0].Kind == yaml.MappingNode {
		m := root.Content[0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			keys[m.Content[i].Value] = m.Content[i]
		}
	}
	var problems config.Problems
	paths := make([]string, 0, len(secrets))
	for p := range secrets {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if msg := checkSecretPath(p); msg != "" {
			line, col := 1, 1
			if n := keys[p]; n != nil {
				line, col = n.Line, n.Column
			}
			problems = append(problems, &config.Problem{File: file, Line: line, Col: col, Path: p, Msg: msg})
		}
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, problems
	}
	return inmem.New(secrets), nil
}

// checkSecretPath returns "" for a path of SPEC 4, else how to write one.
func checkSecretPath(p string) string {
	parts := strings.Split(p, "/")
	const shapes = "a secret path is users/<userId>/<service>, services/<service>, services/mcp-clients/<id> or link-codes/<code>, relative to the Vault prefix"
	for _, part := range parts {
		if part == "" || part == "." || part == ".." {
			return "empty or relative path segment: " + shapes
		}
	}
	switch {
	case parts[0] == "users" && len(parts) == 3:
		if !gateway.ValidUser(parts[1]) {
			return fmt.Sprintf("%q is not an Alexa userId (amzn1.ask.account.…) or an MCP subject (mcp.…)", parts[1])
		}
		return ""
	case parts[0] == "services" && len(parts) == 2, parts[0] == "link-codes" && len(parts) == 2,
		strings.HasPrefix(p, mcp.StaticClientSecretPath) && len(parts) == 3:
		return ""
	}
	return shapes
}
