// Package eviction holds the tests that show what Redis eviction does to
// sessions and cache entries sharing an instance under memory pressure, one
// test per maxmemory-policy, and the layouts that keep sessions safe. See
// docs/EVICTION.md.
package eviction
