package security

import (
	"os"
	"strings"
	"testing"
)

// TestDocsHoldTheRule: docs/ACL.md shows the rule the ACL tests apply, for
// the default prefixes, so the two cannot drift apart.
func TestDocsHoldTheRule(t *testing.T) {
	b, err := os.ReadFile("../../docs/ACL.md")
	if err != nil {
		t.Fatal(err)
	}
	rule := Render("rediskit", DefaultScope)
	if !strings.Contains(strings.Join(strings.Fields(string(b)), " "), rule) {
		t.Fatalf("docs/ACL.md does not hold the rule:\n%s", rule)
	}
	for _, g := range Commands {
		for _, c := range g.Commands {
			if !strings.Contains(string(b), "+"+c) {
				t.Errorf("docs/ACL.md does not mention +%s", c)
			}
		}
	}
}
