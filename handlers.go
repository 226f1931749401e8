package rediskit

import (
	"fmt"
	"net/http"
)

// LivenessHandler answers every request with 200 "ok": the process is
// alive and serving HTTP. It says nothing about Redis on purpose: a Redis
// outage should take instances out of rotation (ReadinessHandler), not get
// them restarted. Mount it at /healthz.
func LivenessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
}

// ReadinessHandler answers from c's cached health report, so a probe costs
// Redis nothing (TestReadinessHandler counts 0 commands for 100 probes):
// 200 and the status ("up", or "degraded" when some Cluster nodes did not
// answer) while Redis can serve, 503 with the last check error when it is
// down or c is closed. With the background checker off
// (Config.HealthCheckInterval -1) each probe runs a check. Mount it at
// /readyz.
func (c *Client) ReadinessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if c.closing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "down: client closed")
			return
		}
		h := c.Health(r.Context())
		if h.Status == StatusDown {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s: %s\n", h.Status, h.LastError)
			return
		}
		fmt.Fprintln(w, h.Status)
	})
}
