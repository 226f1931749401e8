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
	dir := t.TempDir()
	ca, _, args := serverTLS(t, dir)
	srv, err := redisproc.Start(redisproc.Config{Bin: bin, Dir: dir, TLS: ClientConfig(ca), Args: args})
	if err != nil {
		t.Fatalf("security: TLS redis-server did not start: %v", err)
	}
	t.Cleanup(srv.Stop)
	return &TLSServer{Addr: srv.Addr, CA: ca}
}

// serverTLS makes a test CA, writes its certificate and a server
// certificate and key into dir, and returns the redis-server arguments that
// use them (TLS only for clients, which need not present a certificate).
func serverTLS(t testing.TB, dir string) (*CA, TLSFiles, []string) {
	t.Helper()
	ca, err := NewCA("rediskit test CA")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ca.WriteServerFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ca, f, []string{"--tls-cert-file", f.Cert, "--tls-key-file", f.Key, "--tls-ca-cert-file", f.CA, "--tls-auth-clients", "no"}
}

// TLSCluster is a redistest cluster whose nodes listen only on TLS, for
// clients, the cluster bus and replication, with certificates signed by CA.
type TLSCluster struct {
	*redistest.Cluster
	CA *CA
}

// StartTLSCluster starts a 3-master cluster (with opts, e.g.
// redistest.WithReplicas) on TLS only, and stops it when the test ends.
func StartTLSCluster(t testing.TB, opts ...redistest.ClusterOption) *TLSCluster {
	t.Helper()
	redistest.Binary(t)
	ca, f, args := serverTLS(t, t.TempDir())
	opts = append(opts, redistest.WithTLS(ClientConfig(ca), args, []string{"--tls", "--cacert", f.CA}))
	return &TLSCluster{Cluster: redistest.StartCluster(t, opts...), CA: ca}
}

// TLSSentinel is a redistest master, replica and sentinel that listen only
// on TLS and replicate and monitor over TLS, with certificates signed by CA.
type TLSSentinel struct {
	*redistest.Sentinel
	CA *CA
}

// StartTLSSentinel starts a TLS-only sentinel setup and stops it when the
// test ends.
func StartTLSSentinel(t testing.TB) *TLSSentinel {
	t.Helper()
	redistest.Binary(t)
	ca, _, args := serverTLS(t, t.TempDir())
	return &TLSSentinel{Sentinel: redistest.StartSentinel(t, redistest.WithSentinelTLS(ClientConfig(ca), args)), CA: ca}
}
