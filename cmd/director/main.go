// Command director programs kernel IPVS from a topology file, checks the
// backends, holds the VIPs and answers on a control socket.
//
//	director run     [-config FILE] [--priority N] [--log-format text|json] [--log-level L] [--cleanup-on-exit]
//	director check   [-config FILE] [--exec-condition]
//	director plan    [-config FILE]
//	director status  [--socket PATH | -config FILE] [--json]
//	director drain   [--socket PATH | -config FILE] SERVICE BACKEND
//	director undrain [--socket PATH | -config FILE] SERVICE BACKEND
//	director drain-self   [--socket PATH | -config FILE]
//	director undrain-self [--socket PATH | -config FILE]
//	director import  [-o FILE] keepalived.conf
//	director reload  [--pid PID] [--record FILE] [--timeout D]
//	director version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/health"
	"github.com/golvs/golvs/internal/version"
)

const usage = `usage: director COMMAND [flags]

commands:
  run      program IPVS and hold the VIPs until SIGTERM (SIGHUP reloads)
  check    validate the topology file
  plan     print the changes run would make to the kernel now
  status   show services, backends, health, weights and connections
  drain    SERVICE BACKEND: give a backend weight 0, keeping its connections
  undrain  SERVICE BACKEND: end an operator drain
  drain-self    [bgp]: withdraw this director's routes; it keeps running and forwarding
  undrain-self  [bgp]: announce this director's routes again
  import   [-o FILE] keepalived.conf: write the equivalent topology file
  reload   SIGHUP the running director and wait until the file is applied (ExecReload)
  version  print the version and commit
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "plan":
		return cmdPlan(args, stdout, stderr)
	case "status":
		return cmdStatus(args, stdout, stderr)
	case "drain":
		return cmdDrain(args, stdout, stderr, true)
	case "undrain":
		return cmdDrain(args, stdout, stderr, false)
	case "drain-self":
		return cmdDrainSelf(args, stdout, stderr, true)
	case "undrain-self":
		return cmdDrainSelf(args, stdout, stderr, false)
	case "import":
		return cmdImport(args, stdout, stderr)
	case "reload":
		return cmdReload(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "director", version.Get())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "director: unknown command %q\n%s", cmd, usage)
	return 2
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("director "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// loadConfig loads the topology and prints every error in it.
func loadConfig(path string, stderr io.Writer) (*config.Topology, bool) {
	topo, err := config.Load(path)
	if err == nil {
		return topo, true
	}
	printConfigError(stderr, err)
	return nil, false
}

func printConfigError(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintf(w, "director: %v\n", err)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", stderr)
	path := fs.String("config", config.DefaultPath, "topology file")
	cond := fs.Bool("exec-condition", false, "exit as systemd's ExecCondition= wants: 1 (skip the unit) when the file has no service, 255 (fail it) when it is invalid")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "director check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	topo, ok := loadConfig(*path, stderr)
	if *cond {
		return execCondition(*path, topo, ok, stdout, stderr)
	}
	if !ok {
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

// startView is health as run sees it at start: no verdict on any backend
// yet (health.Initial decides what that means for each).
type startView struct{}

func (startView) Backend(string, netip.AddrPort) health.Status {
	return health.Status{WeightPercent: health.WeightNotReported}
}

func cmdPlan(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("plan", stderr)
	path := fs.String("config", config.DefaultPath, "topology file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	topo, ok := loadConfig(*path, stderr)
	if !ok {
		return 1
	}
	k := ipvs.NewKernel()
	defer k.Close()
	r := director.NewReconciler(director.Options{Kernel: k, Health: startView{}}, topo)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ops, err := r.Pending(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "director plan: %v\n", err)
		return 1
	}
	var daemons []director.DaemonChange
	if want := director.WantDaemons(topo.Failover); len(want) > 0 {
		have, err := k.Daemons(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "director plan: sync daemons: %v\n", err)
			return 1
		}
		daemons = director.PlanDaemons(have, want)
	}
	if len(ops) == 0 && len(daemons) == 0 {
		fmt.Fprintln(stdout, "no changes")
	}
	for _, op := range ops {
		fmt.Fprintln(stdout, op.String())
	}
	for _, d := range daemons {
		fmt.Fprintln(stdout, d.String())
	}
	if topo.BGP != nil {
		planRoutes(stdout, topo, r.SelfDrained())
	}
	return 0
}

// socketFlags adds --socket and -config; socketPath picks the socket: the
// explicit one, else the file's control_socket, else the default.
func socketFlags(fs *flag.FlagSet) (socket, cfg *string) {
	socket = fs.String("socket", "", "control socket (default: the topology's control_socket)")
	cfg = fs.String("config", "", "topology file to read control_socket from")
	return
}

func socketPath(socket, cfg string, stderr io.Writer) (string, bool) {
	if socket != "" {
		return socket, true
	}
	if cfg != "" {
		topo, ok := loadConfig(cfg, stderr)
		if !ok {
			return "", false
		}
		return topo.Director.ControlSocket, true
	}
	// Only the socket path is wanted: not the checks of the files the
	// topology names, which a user that may not read them would fail.
	if topo, err := (config.Options{SkipFiles: true}).Load(config.DefaultPath); err == nil && topo.Director.ControlSocket != "" {
		return topo.Director.ControlSocket, true
	}
	return config.DefaultControlSocket, true
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", stderr)
	socket, cfg := socketFlags(fs)
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path, ok := socketPath(*socket, *cfg, stderr)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := director.ControlClient{Path: path}.Status(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "director status: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return 0
	}
	st.WriteText(stdout)
	return 0
}

func cmdDrain(args []string, stdout, stderr io.Writer, on bool) int {
	name := "undrain"
	if on {
		name = "drain"
	}
	fs := newFlags(name, stderr)
	socket, cfg := socketFlags(fs)
	// Flags may come before or after the two arguments.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 2 {
		fmt.Fprintf(stderr, "usage: director %s [--socket PATH | -config FILE] SERVICE BACKEND\n", name)
		return 2
	}
	backend, err := netip.ParseAddrPort(pos[1])
	if err != nil {
		fmt.Fprintf(stderr, "director %s: backend %q: want ADDR:PORT ([v6]:port)\n", name, pos[1])
		return 2
	}
	path, ok := socketPath(*socket, *cfg, stderr)
	if !ok {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := director.ControlClient{Path: path}
	if on {
		err = c.Drain(ctx, pos[0], backend)
	} else {
		err = c.Undrain(ctx, pos[0], backend)
	}
	if err != nil {
		fmt.Fprintf(stderr, "director %s: %v\n", name, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s %s: %sed\n", pos[0], backend, name)
	return 0
}
