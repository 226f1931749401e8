package cache

import (
	"context"
	"strconv"
	"testing"
	"time"
)

func TestStatsCountersAndMemory(t *testing.T) {
	forEachTopology(t, func(t *testing.T, tp topo) {
		ctx := ctxT(t)
		c := newCache(t, tp.rdb, Options{MemorySample: 10})
		for i := range 30 {
			if err := c.Set(ctx, "k"+strconv.Itoa(i), make([]byte, 500), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		_, _, _ = c.Get(ctx, "k1")
		_, _, _ = c.Get(ctx, "nope")
		_, _ = c.GetOrSet(ctx, "loaded", time.Minute, func(context.Context) ([]byte, error) {
			time.Sleep(2 * time.Millisecond)
			return []byte("x"), nil
		})
		st, err := c.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Hits != 1 || st.Misses != 2 || st.Loads != 1 || st.LoaderTime < 2*time.Millisecond {
			t.Fatalf("counters %+v", st)
		}
		if st.HitRatio < 0.33 || st.HitRatio > 0.34 {
			t.Fatalf("HitRatio %v", st.HitRatio)
		}
		if st.UsedMemory <= 0 {
			t.Fatalf("UsedMemory %d", st.UsedMemory)
		}
		if st.SampledKeys == 0 || st.SampledBytes/int64(st.SampledKeys) < 500 {
			t.Fatalf("memory sample: %d keys, %d bytes", st.SampledKeys, st.SampledBytes)
		}
		if max := 10 * tp.masters; st.SampledKeys > max {
			t.Fatalf("sampled %d keys, more than %d", st.SampledKeys, max)
		}
	})
}
