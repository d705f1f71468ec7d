// Command hydra is Ory Hydra, built from the Go module proxy at the version go.mod pins, for
// `make interop-hydra` (interop/hydra_interop.py). Hydra's own main package only adds profiling.
package main

import "github.com/ory/hydra/v2/cmd"

func main() { cmd.Execute() }
