package cache

import (
	"hash/maphash"
	"sync"
)

// flightMap holds the flights running in this process by stored key. Every
// GetOrSet looks its key up and every miss adds and removes one, each key
// new: a plain map per shard behind a short lock does that without the
// allocations and interface hashing of a sync.Map.
type flightMap struct {
	seed   maphash.Seed
	shards [flightShards]flightShard
}

const flightShards = 32

type flightShard struct {
	mu sync.Mutex
	m  map[string]*flight
	_  [48]byte // one cache line per shard: shards are locked from every core
}

func (fm *flightMap) init() {
	fm.seed = maphash.MakeSeed()
	for i := range fm.shards {
		fm.shards[i].m = make(map[string]*flight)
	}
}

func (fm *flightMap) shard(rk string) *flightShard {
	return &fm.shards[maphash.String(fm.seed, rk)%flightShards]
}

// load returns the flight of rk, if one runs.
func (fm *flightMap) load(rk string) (*flight, bool) {
	s := fm.shard(rk)
	s.mu.Lock()
	f, ok := s.m[rk]
	s.mu.Unlock()
	return f, ok
}

// loadOrStore returns the flight of f.rk and true if one runs; otherwise it
// stores f and returns f, false.
func (fm *flightMap) loadOrStore(f *flight) (*flight, bool) {
	s := fm.shard(f.rk)
	s.mu.Lock()
	defer s.mu.Unlock()
	if running, ok := s.m[f.rk]; ok {
		return running, true
	}
	s.m[f.rk] = f
	return f, false
}

// remove removes f if it is still the flight of its key.
func (fm *flightMap) remove(f *flight) {
	s := fm.shard(f.rk)
	s.mu.Lock()
	if s.m[f.rk] == f {
		delete(s.m, f.rk)
	}
	s.mu.Unlock()
}
