package otel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rediskit/rediskit/internal/redistest"
	rkotel "github.com/rediskit/rediskit/otel"
	"github.com/rediskit/rediskit/session"
)

func newStore(t *testing.T, r *rig, prefix string) *session.Store {
	t.Helper()
	st, err := session.New(r.rdb, session.Options{Prefix: prefix, Tracer: r.tr})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestSessionSpans: each Store operation is one span named after it, with
// the key prefix, a child of the caller's span, and its Redis commands
// (redisotel) are the operation span's children. "Not found" is an
// attribute, not an error; a failure sets the span's status to Error.
func TestSessionSpans(t *testing.T) {
	r := newRig(t, redistest.Start(t))
	const prefix = "otelsess:"
	st := newStore(t, r, prefix)

	var id string
	check := func(name string, fn func(ctx context.Context), cmds ...string) tracetest.SpanStub {
		t.Helper()
		tr := r.under(t, name, fn)
		s := tr.one(t, tr.root, name)
		if got := attr(s, rkotel.AttrNamespace); got != prefix {
			t.Errorf("%s: namespace %q, want %q", name, got, prefix)
		}
		if got := tr.commands(s.SpanContext.SpanID()); !slices.Equal(got, cmds) {
			t.Errorf("%s: commands %v, want %v\n%s", name, got, cmds, tr)
		}
		if got := tr.names(tr.root); len(got) != 1 {
			t.Errorf("%s: the caller's span has children %v, want only the operation", name, got)
		}
		return s
	}
	s := check("session.Create", func(ctx context.Context) {
		sess, err := st.Create(ctx, "user-1", map[string]any{"a": 1}, session.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		id = sess.ID()
	}, "evalsha")
	if s.Status.Code != codes.Unset {
		t.Errorf("Create status %v", s.Status)
	}
	s = check("session.Get", func(ctx context.Context) {
		if _, err := st.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}, "get")
	if attr(s, rkotel.AttrNotFound) != "" {
		t.Errorf("Get of a live session marked not found")
	}
	check("session.Update", func(ctx context.Context) {
		if _, err := st.Update(ctx, id, session.Changes{Set: map[string]any{"b": 2}}); err != nil {
			t.Fatal(err)
		}
	}, "evalsha")
	check("session.Rotate", func(ctx context.Context) {
		nid, err := st.Rotate(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		id = nid
	}, "evalsha")
	check("session.Extend", func(ctx context.Context) {
		if _, _, err := st.Extend(ctx, id, time.Hour); err != nil {
			t.Fatal(err)
		}
	}, "evalsha")
	s = check("session.Delete", func(ctx context.Context) {
		if ok, err := st.Delete(ctx, id); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}, "evalsha")
	if got := attr(s, session.AttrFound); got != "true" {
		t.Errorf("Delete: %s = %q, want true", session.AttrFound, got)
	}
	s = check("session.Get", func(ctx context.Context) {
		if _, err := st.Get(ctx, id); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
	}, "get")
	if attr(s, rkotel.AttrNotFound) != "true" || s.Status.Code != codes.Unset {
		t.Errorf("Get of a deleted session: not_found %q, status %v; want true, unset", attr(s, rkotel.AttrNotFound), s.Status)
	}
	for range 2 {
		if _, err := st.Create(context.Background(), "user-2", nil, session.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s = check("session.DeleteByUser", func(ctx context.Context) {
		if n, err := st.DeleteByUser(ctx, "user-2"); n != 2 || err != nil {
			t.Fatal(n, err)
		}
	}, "evalsha")
	if got := attr(s, session.AttrDeleted); got != "2" {
		t.Errorf("DeleteByUser: %s = %q, want 2", session.AttrDeleted, got)
	}
	_ = st.Close()
	s = check("session.Get", func(ctx context.Context) {
		if _, err := st.Get(ctx, id); !errors.Is(err, session.ErrClosed) {
			t.Fatalf("Get after Close: %v", err)
		}
	})
	if s.Status.Code != codes.Error || len(s.Events) != 1 || s.Events[0].Name != "exception" {
		t.Errorf("failed Get: status %v, events %v; want Error and one exception", s.Status, s.Events)
	}
}

// TestManagerSpans: one Manager request is one session.Manager span whose
// children are the operations it runs (the Get of the cookie's session, the
// Create or Update that saves it), each with its commands below it, and
// the handler's own spans.
func TestManagerSpans(t *testing.T) {
	r := newRig(t, redistest.Start(t))
	st := newStore(t, r, "otelmgr:")
	m := session.NewManager(st, session.ManagerOptions{})
	h := m.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, span := r.root.Start(req.Context(), "handler") // the handler's own work
		span.End()
		m.Put(req.Context(), "n", m.GetInt(req.Context(), "n")+1)
	}))

	request := func(cookie *http.Cookie) (tree, tracetest.SpanStub, *http.Cookie) {
		t.Helper()
		var c *http.Cookie
		tr := r.under(t, "request", func(ctx context.Context) {
			req := httptest.NewRequestWithContext(ctx, "GET", "https://example.test/", nil)
			if cookie != nil {
				req.AddCookie(cookie)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			for _, ck := range rec.Result().Cookies() {
				c = ck
			}
		})
		return tr, tr.one(t, tr.root, "session.Manager"), c
	}

	tr, s, cookie := request(nil)
	if got := tr.names(s.SpanContext.SpanID()); !slices.Equal(got, []string{"handler", "session.Create"}) {
		t.Fatalf("first request: children %v, want [handler session.Create]\n%s", got, tr)
	}
	if attr(s, session.AttrFound) != "" || cookie == nil {
		t.Fatalf("first request: found %q, cookie %v", attr(s, session.AttrFound), cookie)
	}
	create := tr.one(t, s.SpanContext.SpanID(), "session.Create")
	if got := tr.commands(create.SpanContext.SpanID()); !slices.Equal(got, []string{"evalsha"}) {
		t.Errorf("Create under the request: commands %v", got)
	}

	tr, s, _ = request(cookie)
	if got := tr.names(s.SpanContext.SpanID()); !slices.Equal(got, []string{"handler", "session.Get", "session.Update"}) {
		t.Fatalf("second request: children %v, want [handler session.Get session.Update]\n%s", got, tr)
	}
	if got := attr(s, session.AttrFound); got != "true" {
		t.Errorf("second request: %s = %q, want true", session.AttrFound, got)
	}
	for _, op := range []string{"session.Get", "session.Update"} {
		c := tr.one(t, s.SpanContext.SpanID(), op)
		if len(tr.commands(c.SpanContext.SpanID())) == 0 {
			t.Errorf("%s under the request has no command spans\n%s", op, tr)
		}
	}
	if got := tr.commands(s.SpanContext.SpanID()); len(got) != 0 {
		t.Errorf("commands directly under the request span: %v", got)
	}
}
