package rediskit

// FromLookup is FromEnv reading variables through lookup, which has the
// shape of os.LookupEnv: a program that keeps its settings elsewhere (a
// secrets file, a test's map) passes its own.
func FromLookup(lookup func(key string) (value string, ok bool)) (Config, error) {
	return fromEnv(lookup)
}
