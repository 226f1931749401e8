package otel_test

import (
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rediskit/rediskit/internal/redistest"
	"github.com/rediskit/rediskit/session"
)

// TestNoSecretsInSpans: on a password-protected server, after every traced
// session and cache operation (and a Manager request), no span name,
// attribute, event or status of any recorded span (rediskit's and
// redisotel's) holds a session token or ID, a stored session or cache
// value, or the password; and command spans carry no db.statement.
func TestNoSecretsInSpans(t *testing.T) {
	const password = "pw-Tr4ce-must-not-see"
	r := newRig(t, redistest.Start(t, redistest.WithPassword(password)))
	st := newStore(t, r, "otelsecret:")
	c := newCache(t, r, "otelsecret")
	m := session.NewManager(st, session.ManagerOptions{})

	secrets := []string{password, "session-value-9f3a", "cache-value-77c1", "loaded-value-5e2d", "manager-value-c0de"}
	r.exp.Reset()
	ctx := context.Background()
	sess, err := st.Create(ctx, "user-s", map[string]any{"card": "session-value-9f3a"}, session.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := sess.ID()
	secrets = append(secrets, id)
	if _, err := st.Get(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, id, session.Changes{Set: map[string]any{"card2": "session-value-9f3a"}}); err != nil {
		t.Fatal(err)
	}
	nid, err := st.Rotate(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, nid)
	if _, err := st.Get(ctx, id); err == nil { // the old ID, now dead: a not-found span
		t.Fatal("old ID still live after Rotate")
	}
	if _, _, err := st.Extend(ctx, nid, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Delete(ctx, nid); err != nil {
		t.Fatal(err)
	}

	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m.Put(req.Context(), "v", "manager-value-c0de")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "https://example.test/", nil))
	for _, ck := range rec.Result().Cookies() {
		secrets = append(secrets, ck.Value)
		rec2 := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "https://example.test/", nil)
		req.AddCookie(ck)
		h.ServeHTTP(rec2, req)
	}

	if err := c.Set(ctx, "k1", []byte("cache-value-77c1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.MGet(ctx, []string{"k1", "k2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrSet(ctx, "k2", time.Minute, func(context.Context) ([]byte, error) {
		return []byte("loaded-value-5e2d"), nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetOrSet(ctx, "k3", time.Minute, func(context.Context) ([]byte, error) {
		return nil, os.ErrPermission // a failing loader: an error recorded on the spans
	}); err == nil {
		t.Fatal("failing loader: no error")
	}

	for _, sec := range secrets { // a []byte argument is shown in hex
		secrets = append(secrets, hex.EncodeToString([]byte(sec)))
	}
	spans := r.exp.GetSpans()
	if len(spans) < 20 {
		t.Fatalf("only %d spans recorded", len(spans))
	}
	var errorsSeen int
	for _, s := range spans {
		texts := []string{s.Name, s.Status.Description}
		for _, a := range s.Attributes {
			if a.Key == "db.statement" {
				t.Errorf("span %s has db.statement %q", s.Name, a.Value.String())
			}
			texts = append(texts, string(a.Key), a.Value.String())
		}
		for _, e := range s.Events {
			errorsSeen++
			texts = append(texts, e.Name)
			for _, a := range e.Attributes {
				texts = append(texts, string(a.Key), a.Value.String())
			}
		}
		for _, txt := range texts {
			for _, sec := range secrets {
				if strings.Contains(txt, sec) {
					t.Errorf("span %s holds secret %q in %q", s.Name, sec, txt)
				}
			}
		}
	}
	if errorsSeen == 0 {
		t.Error("no error event was recorded: the scan did not cover events")
	}
	if len(secrets) < 16 {
		t.Errorf("secrets %d: the Manager set no cookie", len(secrets))
	}
}
