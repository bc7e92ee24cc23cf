package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
)

// planRoutes prints what a director with [bgp] starting now would
// announce: the address decision with health as at a start, where a
// backend counts as serving until its first check says otherwise (so a
// restart does not withdraw everything), and drain-self as recorded.
func planRoutes(w io.Writer, topo *config.Topology, drained bool) {
	d := director.Announce(director.Situation{Topo: topo, Health: startView{}, Mode: director.Routed, SelfDrained: drained})
	for _, v := range director.PlannedRoutes(director.VIPs(topo), d, drained) {
		if v.Announced {
			fmt.Fprintf(w, "bgp: announce %s\n", v.Address)
		} else {
			fmt.Fprintf(w, "bgp: not announced %s: %s\n", v.Address, v.Reason)
		}
	}
	note := "bgp: health as at a start: a backend not checked yet counts as serving; `director status` shows the running director's view"
	if drained {
		note += "; drain-self is recorded: `director undrain-self` announces again"
	}
	fmt.Fprintln(w, note)
}

// cmdDrainSelf is drain-self (on) and undrain-self.
func cmdDrainSelf(args []string, stdout, stderr io.Writer, on bool) int {
	name := "undrain-self"
	if on {
		name = "drain-self"
	}
	fs := newFlags(name, stderr)
	socket, cfg := socketFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "director %s: unexpected argument %q\n", name, fs.Arg(0))
		return 2
	}
	path, ok := socketPath(*socket, *cfg, stderr)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := director.ControlClient{Path: path}
	var err error
	if on {
		err = c.DrainSelf(ctx)
	} else {
		err = c.UndrainSelf(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "director %s: %v\n", name, err)
		return 1
	}
	if on {
		fmt.Fprintln(stdout, "routes withdrawn; the director keeps forwarding until undrain-self")
	} else {
		fmt.Fprintln(stdout, "routes announced again")
	}
	return 0
}
