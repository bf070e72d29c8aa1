//go:build tools

// The command this module builds, imported so that `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
