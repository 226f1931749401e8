package security

import (
	"testing"

	"github.com/rediskit/rediskit/internal/redisproc"
	"github.com/rediskit/rediskit/internal/redistest"
)

// TLSServer is a redis-server that listens only on a TLS port (--port 0),
// with a certificate for 127.0.0.1 and localhost signed by CA.
type TLSServer struct {
	// Addr is "127.0.0.1:port" of the TLS listener.
	Addr string
	// CA signed the server's certificate; trust it to connect.
	CA *CA
}

// StartTLS starts a TLS-only redis-server on a free loopback port and stops
// it when the test ends. Clients need not present a certificate
// (--tls-auth-clients no). It skips like redistest when redis-server is
// missing.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	bin := redistest.Binary(t)
	ca, err := NewCA("rediskit test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := ca.WriteServerFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := redisproc.Start(redisproc.Config{Bin: bin, Dir: dir, TLS: ClientConfig(ca), Args: []string{
		"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-cert-file", files.CA,
		"--tls-auth-clients", "no",
	}})
	if err != nil {
		t.Fatalf("security: TLS redis-server did not start: %v", err)
	}
	t.Cleanup(srv.Stop)
	return &TLSServer{Addr: srv.Addr, CA: ca}
}
