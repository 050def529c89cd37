package rules

import (
	"embed"
	"io/fs"
)

//go:embed packs
var packs embed.FS

// Packs returns the standard rule packs shipped in the binary (finance,
// healthcare), rooted so that paths read "finance/threats.yaml". Load them
// with [Load]: vigil dev uses them when no --rules directory is given.
func Packs() fs.FS {
	sub, err := fs.Sub(packs, "packs")
	if err != nil {
		panic("rules: embedded packs missing: " + err.Error())
	}
	return sub
}
