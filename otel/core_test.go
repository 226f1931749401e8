package otel_test

import (
	"os"
	"strings"
	"testing"
)

// TestCoreHasNoOTel: the core module requires neither OpenTelemetry nor
// redisotel, so a user who does not trace pulls in neither; they live in
// this module alone. (go.mod lists every module the core's build needs.)
func TestCoreHasNoOTel(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"opentelemetry", "redisotel"} {
		if strings.Contains(string(b), m) {
			t.Errorf("core go.mod mentions %s", m)
		}
	}
}
