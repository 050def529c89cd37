package vigil_test

import (
	"os/exec"
	"path"
	"strings"
	"testing"
)

const module = "github.com/vigilhq/vigil"

// allowedImports is STYLE.md §1: which Vigil packages each package may
// import. Sub-packages inherit their parent's row (review/console is
// review), and a package may always import its own sub-packages. Test-only
// helpers (…test) are imported only from _test.go files and are not listed.
var allowedImports = map[string][]string{
	"":                  {},
	"bus":               {""},
	"pii":               {""},
	"rules":             {""},
	"warehouse/chlocal": {},
	"warehouse":         {"", "bus"},
	"ingest":            {"", "pii", "bus"},
	"evaluator":         {"", "rules", "bus"},
	"retention":         {"", "pii", "bus", "warehouse"},
	"review":            {"", "pii", "bus", "warehouse"},
	"bench":             {"", "bus", "pii", "rules", "warehouse", "warehouse/chlocal", "ingest", "evaluator", "retention", "review"},
	"deploy":            {},  // deploy_test only: checks the deployment files against the binary
	"cmd/vigil":         nil, // everything
}

// owner maps a package to the row of allowedImports that governs it.
func owner(rel string) (string, bool) {
	for p := rel; ; p = path.Dir(p) {
		if _, ok := allowedImports[p]; ok {
			return p, true
		}
		if p == "." || p == "" || !strings.Contains(p, "/") {
			if _, ok := allowedImports[p]; ok {
				return p, true
			}
			return "", false
		}
	}
}

func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		if strings.HasSuffix(pkg, "test") && pkg != "" {
			continue // test helpers: bustest, warehousetest
		}
		row, ok := owner(pkg)
		if !ok {
			t.Errorf("package %q has no row in STYLE.md §1 (add one to allowedImports)", pkg)
			continue
		}
		allowed := allowedImports[row]
		if allowed == nil {
			continue
		}
		for _, imp := range fields[1:] {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if depRow, _ := owner(dep); depRow == row || strings.HasPrefix(dep, pkg+"/") {
				continue
			}
			okEdge := false
			for _, a := range allowed {
				if dep == a || (a != "" && strings.HasPrefix(dep, a+"/") && !strings.HasSuffix(dep, "test")) {
					okEdge = true
				}
			}
			if !okEdge {
				t.Errorf("%s imports %s: not allowed by STYLE.md §1", fields[0], imp)
			}
		}
	}
}
