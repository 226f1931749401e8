package pipeline

// ChooseAP and EWMA expose the lone path's arithmetic to the tests.
var (
	ChooseAP = chooseAP
	EWMA     = ewma
)

// LoneMeans returns e's mean lone-command latency on each path, in ns.
func LoneMeans(e *Exec) (pooled, ap int64) { return e.loneNs[0].Load(), e.loneNs[1].Load() }

// ProbeEvery returns how often an Exec whose mean lone latencies are pooled
// and ap (ns), its lone commands on the AutoPipeliner if onAP, sends one
// down the other path.
func ProbeEvery(pooled, ap int64, onAP bool) uint32 {
	var e Exec
	e.loneNs[0].Store(pooled)
	e.loneNs[1].Store(ap)
	e.loneAP.Store(onAP)
	return e.probeEvery()
}
