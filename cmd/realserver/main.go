// Command realserver prepares an LVS real server (dr or tun) and serves the
// agent endpoint the director's "agent" check reads.
//
//	realserver run   [-config FILE] [--vip ADDR --mode dr|tun] [--state-file PATH] [--cleanup]
//	                 [--agent-address A] [--drain-grace D] [--log-format text|json] [--log-level L]
//	realserver check [-config FILE] [--vip ADDR --mode dr|tun]
//	realserver drain | undrain [--drain-file PATH]
//	realserver reload  --pid PID [--record FILE] [--timeout D]
//	realserver version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/internal/logflag"
	"github.com/golvs/golvs/internal/sdnotify"
	"github.com/golvs/golvs/internal/version"
	"github.com/golvs/golvs/realserver"
)

const usage = `usage:
  realserver run   [-config FILE] [--vip ADDR --mode dr|tun] [--state-file PATH] [--cleanup]
                   [--agent-address A] [--drain-grace D] [--log-format text|json] [--log-level L]
  realserver check [-config FILE] [--vip ADDR --mode dr|tun]
  realserver drain   [--drain-file PATH]
  realserver undrain [--drain-file PATH]
  realserver reload  --pid PID [--record FILE] [--timeout D]
  realserver version
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		err = cmdRun(args)
	case "check":
		err = cmdCheck(args, os.Stdout)
	case "drain", "undrain":
		err = cmdDrain(os.Args[1], args)
	case "reload":
		err = cmdReload(args)
	case "version":
		fmt.Println("realserver", version.Get())
		return
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "realserver: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "realserver %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// target is what both run and check need: the file or the --vip.
type target struct {
	config    string
	vip       string
	mode      string
	tunnelDev string
}

func (t *target) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.config, "config", config.DefaultPath, "topology file")
	fs.StringVar(&t.vip, "vip", "", "serve this VIP without a file (needs --mode)")
	fs.StringVar(&t.mode, "mode", "", "dr or tun, with --vip")
	fs.StringVar(&t.tunnelDev, "tunnel-interface", config.DefaultTunnelInterface, "tunnel device for --mode tun")
}

// loader returns the Loader, and the topology when a file is used.
func (t *target) loader(fs *flag.FlagSet, log *slog.Logger) (realserver.Loader, *config.Topology, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if t.vip == "" {
		if set["mode"] {
			return nil, nil, errors.New("--mode needs --vip")
		}
		// The director's files (keys, scripts) are not on a real server.
		topo, err := config.Options{SkipFiles: true}.Load(t.config)
		if err != nil {
			return nil, nil, err
		}
		return realserver.FromFile(t.config, log), topo, nil
	}
	if set["config"] {
		return nil, nil, errors.New("use either -config or --vip, not both")
	}
	vip, err := netip.ParseAddr(t.vip)
	if err != nil {
		return nil, nil, fmt.Errorf("--vip: %w", err)
	}
	mode, err := realserver.ParseMode(t.mode)
	if err != nil {
		return nil, nil, err
	}
	return realserver.FromVIP(vip, mode, t.tunnelDev), nil, nil
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var t target
	t.flags(fs)
	stateFile := fs.String("state-file", realserver.DefaultStateFile, "journal of changes, for restore after a crash")
	cleanup := fs.Bool("cleanup", false, "restore what the state file records, then exit")
	agentAddr := fs.String("agent-address", "", `agent endpoint (default: [realserver] agent_address, or `+config.DefaultAgentAddress+`); "" disables it`)
	drainGrace := fs.Duration("drain-grace", 10*time.Second, "on SIGTERM, report drain this long before restoring the host")
	drainFile := fs.String("drain-file", realserver.DefaultDrainFile, "while this file exists the agent reports drain")
	weightFile := fs.String("weight-file", realserver.DefaultWeightFile, "optional file holding a weight percentage the agent reports")
	resync := fs.Duration("check-interval", 5*time.Second, "periodic check of the host, besides address events")
	nlTimeout := fs.Duration("netlink-timeout", realserver.DefaultNetlinkTimeout, "deadline of each netlink request")
	logFormat := fs.String("log-format", "text", "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log, err := logflag.New(os.Stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root (it changes addresses and sysctls)")
	}
	if err := realserver.CheckPath(*stateFile); err != nil {
		return err
	}
	j, err := realserver.OpenJournal(*stateFile)
	if err != nil {
		return err
	}
	k, err := realserver.OpenKernel(*nlTimeout)
	if err != nil {
		return err
	}
	defer k.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if *cleanup {
		n := len(j.Changes())
		if err := realserver.Restore(ctx, k, j); err != nil {
			return err
		}
		log.Info("restored from the state file", "changes", n, "file", *stateFile)
		return nil
	}

	load, topo, err := t.loader(fs, log)
	if err != nil {
		return err
	}
	addr := config.DefaultAgentAddress
	if topo != nil {
		addr = topo.RealServer.AgentAddress
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "agent-address" {
			addr = *agentAddr
		}
	})
	agent := &realserver.Agent{DrainFile: *drainFile, WeightFile: *weightFile, Log: log}
	var ln net.Listener
	if addr != "" {
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("agent endpoint: %w", err)
		}
		defer ln.Close()
		log.Info("agent endpoint listening", "address", ln.Addr().String())
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()

	// systemd: readiness, reload results, and a watchdog that needs the
	// loop to keep turning (all no-ops outside a unit).
	notify := sdnotify.New("realserver")
	wd := sdnotify.NewWatchdog(notify, log)
	beat := wd.Register("realserver")
	wdCtx, stopWD := context.WithCancel(ctx)
	defer stopWD()
	go wd.Run(wdCtx)

	return realserver.Run(ctx, realserver.Options{
		Log:           log,
		Kernel:        k,
		Journal:       j,
		Load:          load,
		Reload:        reload,
		Resync:        *resync,
		Agent:         agent,
		AgentListener: ln,
		DrainGrace:    *drainGrace,
		Notify:        notify,
		Beat:          beat,
		BeatEvery:     wd.BeatEvery(),
	})
}

func cmdCheck(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var t target
	t.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	load, _, err := t.loader(fs, log)
	if err != nil {
		return err
	}
	k, err := realserver.OpenKernel(realserver.DefaultNetlinkTimeout)
	if err != nil {
		return err
	}
	defer k.Close()
	ops, err := realserver.Check(context.Background(), k, load)
	if err != nil {
		return err
	}
	if len(ops) == 0 {
		fmt.Fprintln(out, "no changes")
		return nil
	}
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintln(&b, op)
	}
	_, err = io.WriteString(out, b.String())
	return err
}

func cmdDrain(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	file := fs.String("drain-file", realserver.DefaultDrainFile, "the agent reports drain while this file exists")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cmd == "drain" {
		return realserver.Drain(*file)
	}
	return realserver.Undrain(*file)
}
