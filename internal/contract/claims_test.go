package contract_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

// TestClaimsNameRealEvidence: every test, benchmark or fuzz target that the
// README, docs/*.md, the package READMEs or a doc.go names as the evidence
// of a claim exists in the tree, so a renamed or deleted test cannot leave a
// claim pointing at nothing. docs/CLAIMS.md lists the claims; this test
// keeps their evidence honest.
func TestClaimsNameRealEvidence(t *testing.T) {
	defined := map[string]bool{}
	funcDef := regexp.MustCompile(`(?m)^func ((?:Test|Benchmark|Fuzz|Example)\w*)\(`)
	named := regexp.MustCompile(`\b((?:Test|Benchmark|Fuzz)[A-Z]\w*)`)
	type mention struct{ file, name string }
	var mentions []mention
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && path != repoRoot {
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		isDoc := name == "doc.go" || strings.HasSuffix(name, ".md")
		if !strings.HasSuffix(name, "_test.go") && !isDoc {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(name, "_test.go") {
			for _, m := range funcDef.FindAllSubmatch(b, -1) {
				defined[string(m[1])] = true
			}
			return nil
		}
		for _, m := range named.FindAllSubmatch(b, -1) {
			mentions = append(mentions, mention{path, string(m[1])})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(mentions) < 20 {
		t.Fatalf("found only %d named tests in the docs: is the walk looking in the right place?", len(mentions))
	}
	var missing []string
	for _, m := range mentions {
		// A name may carry a subtest or sub-benchmark: BenchmarkOps/get.
		base := strings.SplitN(m.name, "/", 2)[0]
		if !defined[base] && !definedPrefix(defined, base) {
			missing = append(missing, m.file+": "+m.name)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("the docs name %s, which no _test.go file defines", m)
	}
}

// definedPrefix accepts a name the docs give as a family, like
// "TestNear*" written as TestNear: some defined name starts with it.
func definedPrefix(defined map[string]bool, name string) bool {
	for d := range defined {
		if strings.HasPrefix(d, name) {
			return true
		}
	}
	return false
}
