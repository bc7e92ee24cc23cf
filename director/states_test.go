package director

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fakeAnnouncer is an announcer that records the set it holds, with the
// holder's rule: only what it set or was told to claim may be removed.
type fakeAnnouncer struct {
	mu      sync.Mutex
	held    map[netip.Addr]bool
	claimed map[netip.Addr]bool
}

func newFakeAnnouncer() *fakeAnnouncer {
	return &fakeAnnouncer{held: map[netip.Addr]bool{}, claimed: map[netip.Addr]bool{}}
}

func (f *fakeAnnouncer) Claim(addrs []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		f.claimed[a] = true
	}
}

func (f *fakeAnnouncer) Set(_ context.Context, want []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = map[netip.Addr]bool{}
	for _, a := range want {
		f.held[a] = true
	}
	clear(f.claimed)
	return nil
}

func (f *fakeAnnouncer) addrs() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for a := range f.held {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// stateTopologies are the files the state test cycles through: services
// come and go, change key, scheduler, weights and backends.
func stateTopologies(dir string) []string {
	head := fmt.Sprintf("[director]\ninterface = \"eth0\"\nresync_interval = \"1h\"\ncontrol_socket = %q\nstate_file = %q\n",
		filepath.Join(dir, "ctl", "d.sock"), filepath.Join(dir, "state", "d.state"))
	svc := func(name, addr string, port int, sched string, backends ...string) string {
		s := fmt.Sprintf("\n[[service]]\nname = %q\naddress = %q\nport = %d\nscheduler = %q\nforwarding = \"dr\"\n", name, addr, port, sched)
		for _, b := range backends {
			a, w, _ := strings.Cut(b, "*")
			s += fmt.Sprintf("\n[[service.backend]]\naddress = %q\nweight = %s\n", a, w)
		}
		return s
	}
	return []string{
		head + svc("web", "192.0.2.10", 80, "wrr", "10.0.1.1*1", "10.0.1.2*2"),
		head + svc("web", "192.0.2.10", 80, "wrr", "10.0.1.1*1", "10.0.1.2*5", "10.0.1.3*1") +
			svc("api", "192.0.2.11", 8080, "rr", "10.0.1.1*1"),
		head + svc("api", "192.0.2.11", 8080, "lc", "10.0.1.4*3"),
		head + svc("web", "192.0.2.12", 80, "sh", "10.0.1.1*1") + svc("dns", "192.0.2.11", 53, "rr", "10.0.1.5*1", "10.0.1.6*1"),
		head,
	}
}

// TestStates applies a set of topologies in random order, by SIGHUP reload
// and by restart, to a running director over the fake kernel: after every
// step the kernel must equal what a fresh full pass makes of the same
// file, a foreign service must be untouched, and the announcer must hold
// exactly what the decision says.
func TestStates(t *testing.T) {
	dir := t.TempDir()
	files := stateTopologies(dir)
	path := filepath.Join(dir, "topology.toml")
	ctx := context.Background()
	fake := ipvsfake.New()
	foreignSvc := ipvs.Service{ServiceKey: foreign, Scheduler: "lc", Netmask: ipvs.NetmaskAll4}
	if err := fake.AddService(ctx, foreignSvc); err != nil {
		t.Fatal(err)
	}
	ann := newFakeAnnouncer()

	// expected is what a fresh director makes of a file from an empty
	// kernel (plus the foreign service).
	expected := func(src string) ([]ipvs.Entry, []netip.Addr) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "t.toml")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		topo, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		k := ipvsfake.New()
		if err := k.AddService(ctx, foreignSvc); err != nil {
			t.Fatal(err)
		}
		r := NewReconciler(Options{Kernel: k, StateFile: filepath.Join(t.TempDir(), "s")}, topo)
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		es, _ := k.Dump(ctx)
		return es, Announce(Situation{Topo: topo, Mode: Static}).Hold
	}

	type running struct {
		rt   *Runtime
		hup  chan os.Signal
		stop func()
	}
	start := func() running {
		t.Helper()
		topo, err := config.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		rt := &Runtime{Path: path, Kernel: fake, ProcSys: t.TempDir(), Announcer: ann,
			Log: slog.New(slog.DiscardHandler), Ready: func() { close(ready) }}
		rctx, cancel := context.WithCancel(ctx)
		hup := make(chan os.Signal, 1)
		done := make(chan error, 1)
		go func() { done <- rt.Run(rctx, topo, hup) }()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("director did not start: %v", err)
		}
		return running{rt, hup, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}}
	}

	rnd := rand.New(rand.NewPCG(7, 11))
	writeAtomic(t, path, files[0])
	cur := start()
	defer func() { cur.stop() }()
	for step := range 40 {
		i := rnd.IntN(len(files))
		writeAtomic(t, path, files[i])
		how := "reload"
		if rnd.IntN(3) == 0 {
			how = "restart"
			cur.stop()
			cur = start()
		} else {
			cur.hup <- os.Interrupt
		}
		wantTable, wantAddrs := expected(files[i])
		// The director converges on its own goroutines: wait for the
		// condition, bounded.
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, _ := fake.Dump(ctx)
			tableDiff := cmp.Diff(wantTable, got, cmpopts.EquateEmpty(),
				cmpopts.IgnoreFields(ipvs.Destination{}, "ActiveConns", "InactiveConns"))
			addrDiff := cmp.Diff(wantAddrs, ann.addrs(), cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }))
			if tableDiff == "" && addrDiff == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d (%s to file %d): kernel (-want +got):\n%s\naddresses (-want +got):\n%s", step, how, i, tableDiff, addrDiff)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// TestReloadStates is TestStates one level down, with nothing to repair
// behind the pass: topologies in random order through the reload pass
// alone (config.Reload, config.Diff, ReloadServices) or a restart (a new
// Reconciler's first full pass), each checked at once against a fresh
// full pass.
func TestReloadStates(t *testing.T) {
	dir := t.TempDir()
	files := stateTopologies(dir)
	path := filepath.Join(dir, "topology.toml")
	state := filepath.Join(dir, "state", "d.state")
	ctx := context.Background()
	fake := ipvsfake.New()
	foreignSvc := ipvs.Service{ServiceKey: foreign, Scheduler: "lc", Netmask: ipvs.NetmaskAll4}
	if err := fake.AddService(ctx, foreignSvc); err != nil {
		t.Fatal(err)
	}
	want := func(topo *config.Topology) []ipvs.Entry {
		k := ipvsfake.New()
		if err := k.AddService(ctx, foreignSvc); err != nil {
			t.Fatal(err)
		}
		if err := NewReconciler(Options{Kernel: k, StateFile: filepath.Join(t.TempDir(), "s")}, topo).Sync(ctx); err != nil {
			t.Fatal(err)
		}
		es, _ := k.Dump(ctx)
		return es
	}
	writeAtomic(t, path, files[0])
	topo, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(Options{Kernel: fake, StateFile: state}, topo)
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(3, 5))
	for step := range 60 {
		i := rnd.IntN(len(files))
		writeAtomic(t, path, files[i])
		next, err := config.Reload(path, topo)
		if err != nil {
			t.Fatal(err)
		}
		how := "reload"
		if rnd.IntN(4) == 0 {
			how = "restart"
			r = NewReconciler(Options{Kernel: fake, StateFile: state}, next)
			err = r.Sync(ctx)
		} else if changed, gone, ok := config.Diff(topo, next); ok {
			keys := make([]ipvs.ServiceKey, len(gone))
			for j, g := range gone {
				keys[j] = Key(&topo.Services[g])
			}
			err = r.ReloadServices(ctx, next, changed, keys)
		} else {
			how = "full"
			r.SetConfig(next)
			err = r.Sync(ctx)
		}
		if err != nil {
			t.Fatalf("step %d (%s): %v", step, how, err)
		}
		topo = next
		got, _ := fake.Dump(ctx)
		if diff := cmp.Diff(want(next), got, cmpopts.EquateEmpty(),
			cmpopts.IgnoreFields(ipvs.Destination{}, "ActiveConns", "InactiveConns")); diff != "" {
			t.Fatalf("step %d (%s to file %d): kernel (-want +got):\n%s", step, how, i, diff)
		}
	}
}
