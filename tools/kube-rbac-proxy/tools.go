//go:build tools

// The command this module builds, imported so that `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/brancz/kube-rbac-proxy/cmd/kube-rbac-proxy"
