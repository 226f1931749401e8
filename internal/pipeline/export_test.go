package pipeline

// ChooseAP and EWMA expose the lone path's arithmetic to the tests.
var (
	ChooseAP = chooseAP
	EWMA     = ewma
)

// LoneMeans returns e's mean lone-command latency on each path, in ns.
func LoneMeans(e *Exec) (pooled, ap int64) { return e.loneNs[0].Load(), e.loneNs[1].Load() }
