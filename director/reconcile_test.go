package director

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/director/ipvs/ipvsfake"
	"github.com/golvs/golvs/health"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

var (
	api    = ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: vipA, Port: 8080}
	apiSvc = ipvs.Service{ServiceKey: api, Scheduler: "rr", Netmask: 0xffffffff}

	foreign      = ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, Address: vipA, Port: 9999}
	foreignEntry = ipvs.Entry{
		Service:      ipvs.Service{ServiceKey: foreign, Scheduler: "lc", Netmask: 0xffffffff},
		Destinations: []ipvs.Destination{{Address: be3, Port: 9999, Weight: 7, Forwarding: ipvs.Masq}},
	}
)

func apiService(backends ...config.Backend) config.Service {
	s := webService(backends...)
	s.Name, s.Port, s.Scheduler = "api", 8080, "rr"
	for i := range s.Backends {
		s.Backends[i].Port = 8080
	}
	return s
}

func apiDst(a netip.Addr, w int) ipvs.Destination {
	return ipvs.Destination{Address: a, Port: 8080, Weight: w, Forwarding: ipvs.Route}
}

// clock is an injected time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

type fixture struct {
	t     *testing.T
	fake  *ipvsfake.Fake
	clock *clock
	state string
}

func newFixture(t *testing.T) *fixture {
	return &fixture{
		t:     t,
		fake:  ipvsfake.New(),
		clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		state: filepath.Join(t.TempDir(), "run", "golvs", "director.state"),
	}
}

// reconciler builds a fresh Reconciler, as a (re)started director would.
func (f *fixture) reconciler(tp *config.Topology, health HealthView) *Reconciler {
	return NewReconciler(Options{Kernel: f.fake, Health: health, Now: f.clock.now, StateFile: f.state}, tp)
}

func (f *fixture) sync(r *Reconciler) {
	f.t.Helper()
	if err := r.Sync(context.Background()); err != nil {
		f.t.Fatalf("Sync: %v", err)
	}
}

// expect compares the fake kernel with want (connection counters ignored).
func (f *fixture) expect(step string, want ...ipvs.Entry) {
	f.t.Helper()
	got, err := f.fake.Dump(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	ipvs.SortEntries(want)
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(),
		cmpopts.IgnoreFields(ipvs.Destination{}, "ActiveConns", "InactiveConns")); diff != "" {
		f.t.Errorf("%s: kernel (-want +got):\n%s", step, diff)
	}
}

// writes returns the number of write ops since the last call.
func (f *fixture) writes() (map[ipvs.WriteKind]int, int) {
	m, n := f.fake.WritesByKind()
	f.fake.ResetWrites()
	return m, n
}

func (f *fixture) addForeign() {
	f.t.Helper()
	ctx := context.Background()
	if err := f.fake.AddService(ctx, foreignEntry.Service); err != nil {
		f.t.Fatal(err)
	}
	for _, d := range foreignEntry.Destinations {
		if err := f.fake.AddDestination(ctx, foreign, d); err != nil {
			f.t.Fatal(err)
		}
	}
	f.fake.ResetWrites()
}

func TestReconcileStates(t *testing.T) {
	f := newFixture(t)
	f.addForeign()

	r := f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
	f.sync(r)
	f.expect("from empty", foreignEntry, ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 1)}})
	if _, n := f.writes(); n != 3 {
		t.Errorf("from empty: %d writes, want 3", n)
	}

	// A restarted director finds its table in place: not one write.
	r = f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
	f.sync(r)
	f.sync(r)
	if m, n := f.writes(); n != 0 {
		t.Errorf("restart: %d writes (%v), want none", n, m)
	}

	r.SetConfig(topo(webService(backend(be1, 1), backend(be2, 5))))
	f.sync(r)
	f.expect("weight change", foreignEntry, ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 5)}})
	if m, n := f.writes(); n != 1 || m[ipvs.WriteUpdateDest] != 1 {
		t.Errorf("weight change: writes %v, want exactly one destination update", m)
	}

	// Health: down with weight0 -> weight 0, kept.
	r = f.reconciler(topo(webService(backend(be1, 1), backend(be2, 5))), mapView{ap(be1): {Checked: true, WeightPercent: health.WeightNotReported}})
	f.sync(r)
	f.expect("be1 down", foreignEntry, ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 0), dst(be2, 5)}})

	// Empty config: our service goes, the foreign one stays.
	r.SetConfig(topo())
	f.sync(r)
	f.expect("all removed", foreignEntry)
}

func TestDrainRemovedBackend(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		finish func(f *fixture)
	}{
		{"connections end", func(f *fixture) {
			if err := f.fake.SetConns(web, ap(be2), 0, 0); err != nil {
				f.t.Fatal(err)
			}
		}},
		{"timeout passes", func(f *fixture) { f.clock.advance(21 * time.Second) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.addForeign()
			r := f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
			f.sync(r)
			if err := f.fake.SetConns(web, ap(be2), 3, 4); err != nil {
				t.Fatal(err)
			}

			r.SetConfig(topo(webService(backend(be1, 1))))
			f.sync(r)
			draining := ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 0)}}
			f.expect("drain starts", foreignEntry, draining)
			st, err := r.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if b := st.Services[0].Backends; len(b) != 2 || !b[1].Draining || b[1].Configured {
				t.Errorf("status while draining: %+v", b)
			}

			f.clock.advance(10 * time.Second)
			f.sync(r)
			f.expect("still draining at 10s", foreignEntry, draining)
			f.clock.advance(9 * time.Second)
			f.sync(r)
			f.expect("still draining at 19s", foreignEntry, draining)

			tc.finish(f)
			f.sync(r)
			f.expect("drained", foreignEntry, ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1)}})
		})
	}
}

func TestDrainOnFailureRemove(t *testing.T) {
	f := newFixture(t)
	svc := webService(backend(be1, 1), backend(be2, 1))
	svc.OnFailure = config.Remove
	view := mapView{}
	r := f.reconciler(topo(svc), view)
	f.sync(r)
	if err := f.fake.SetConns(web, ap(be1), 1, 0); err != nil {
		t.Fatal(err)
	}
	view[ap(be1)] = health.Status{Checked: true, WeightPercent: health.WeightNotReported}
	f.sync(r)
	f.expect("down: draining", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 0), dst(be2, 1)}})
	f.clock.advance(31 * time.Second)
	f.sync(r)
	f.expect("down: removed", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be2, 1)}})
	delete(view, ap(be1))
	f.sync(r)
	f.expect("up again", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 1)}})
}

func TestFailedOpRepairedNextPass(t *testing.T) {
	f := newFixture(t)
	injected := errors.New("injected")
	f.fake.Fail = func(op string, key ipvs.ServiceKey, d *ipvs.Destination) error {
		if op == ipvs.WriteAddDest.String() && d != nil && d.Address == be1 {
			return injected
		}
		return nil
	}
	r := f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), nil)
	err := r.Sync(context.Background())
	if !errors.Is(err, injected) {
		t.Fatalf("Sync error = %v, want the injected one", err)
	}
	// The failure did not stop the pass: be2 is in.
	f.expect("partial", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be2, 1)}})

	f.fake.Fail = nil
	f.sync(r)
	f.expect("repaired", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 1)}})
}

func TestDriftRestored(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tp := topo(webService(backend(be1, 1), backend(be2, 1)), apiService(backend(be1, 1)))
	r := f.reconciler(tp, nil)
	f.sync(r)
	want := []ipvs.Entry{
		{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 1)}},
		{Service: apiSvc, Destinations: []ipvs.Destination{apiDst(be1, 1)}},
	}
	f.expect("start", want...)

	// Someone deletes a destination, a whole service and bumps a weight.
	if err := f.fake.DeleteDestination(ctx, web, dst(be2, 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.fake.DeleteService(ctx, api); err != nil {
		t.Fatal(err)
	}
	if err := f.fake.UpdateDestination(ctx, web, dst(be1, 9)); err != nil {
		t.Fatal(err)
	}
	f.sync(r)
	f.expect("restored", want...)
}

func TestServiceRemovedWhileDown(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keepState bool
		want      []ipvs.Entry
	}{
		{"state file remembers", true, []ipvs.Entry{foreignEntry, {Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1)}}}},
		// Without the state file api cannot be told from a foreign service.
		{"state file lost", false, []ipvs.Entry{foreignEntry,
			{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1)}},
			{Service: apiSvc, Destinations: []ipvs.Destination{apiDst(be1, 1)}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.addForeign()
			f.sync(f.reconciler(topo(webService(backend(be1, 1)), apiService(backend(be1, 1))), nil))
			if !tc.keepState {
				if err := os.Remove(f.state); err != nil {
					t.Fatal(err)
				}
			}
			// The director restarts with api removed from the file.
			r := f.reconciler(topo(webService(backend(be1, 1))), nil)
			f.sync(r)
			f.expect("after restart", tc.want...)

			st, err := readState(f.state)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]ipvs.ServiceKey{web}, st.Services, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("owned services in state (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStateFileModes(t *testing.T) {
	f := newFixture(t)
	f.sync(f.reconciler(topo(webService(backend(be1, 1))), nil))
	fi, err := os.Stat(f.state)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("state file mode %v, want 0600", m)
	}
	di, err := os.Stat(filepath.Dir(f.state))
	if err != nil {
		t.Fatal(err)
	}
	if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("state dir mode %v, want 0700", m)
	}
	b, err := os.ReadFile(f.state)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"10.0.0.10"`) {
		t.Errorf("state file does not name the VIP:\n%s", b)
	}
}

func TestOperatorDrain(t *testing.T) {
	f := newFixture(t)
	tp := topo(webService(backend(be1, 1), backend(be2, 1)))
	r := f.reconciler(tp, nil)
	f.sync(r)
	if err := r.Drain("web", ap(be2)); err != nil {
		t.Fatal(err)
	}
	f.sync(r)
	drained := ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 0)}}
	f.expect("drained", drained)

	// It survives a restart.
	r = f.reconciler(tp, nil)
	f.sync(r)
	f.expect("drained after restart", drained)
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Services[0].Backends[1]; !b.OperatorDrain || b.KernelWeight != 0 || b.ConfiguredWeight != 1 || !b.InKernel {
		t.Errorf("status of drained backend: %+v", b)
	}

	if err := r.Undrain("web", ap(be2)); err != nil {
		t.Fatal(err)
	}
	f.sync(r)
	f.expect("undrained", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 1)}})

	if err := r.Drain("nope", ap(be2)); !errors.Is(err, ErrUnknownService) {
		t.Errorf("Drain(unknown service) = %v", err)
	}
	if err := r.Drain("web", ap(be3)); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("Drain(unknown backend) = %v", err)
	}
}

func TestPendingChangesNothing(t *testing.T) {
	f := newFixture(t)
	r := f.reconciler(topo(webService(backend(be1, 1))), nil)
	ops, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 2 {
		t.Errorf("Pending = %v, want add service + add destination", ops)
	}
	if _, n := f.writes(); n != 0 {
		t.Errorf("Pending wrote %d ops", n)
	}
	f.sync(r)
	if ops, _ := r.Pending(context.Background()); len(ops) != 0 {
		t.Errorf("Pending after sync = %v, want none", ops)
	}
}

func TestCleanup(t *testing.T) {
	f := newFixture(t)
	f.addForeign()
	r := f.reconciler(topo(webService(backend(be1, 1))), nil)
	f.sync(r)
	if err := r.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.expect("cleaned", foreignEntry)
}

// TestRunResyncAndKick runs the loop in a synctest bubble: the first pass
// at start, a kick from SetConfig, and the periodic resync repairing drift.
func TestRunResyncAndKick(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		tp := topo(webService(backend(be1, 1)))
		r := f.reconciler(tp, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		f.expect("first pass", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1)}})

		r.SetConfig(topo(webService(backend(be1, 1), backend(be2, 2))))
		time.Sleep(DefaultPassGap) // right after a pass, a kick waits out the gap
		synctest.Wait()
		want := ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 2)}}
		f.expect("after kick", want)

		if err := f.fake.DeleteService(context.Background(), web); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // the bubble's clock: one resync interval
		synctest.Wait()
		f.expect("after resync", want)

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil on cancel", err)
		}
	})
}

func webEntry(ds ...ipvs.Destination) ipvs.Entry {
	return ipvs.Entry{Service: webSvc, Destinations: ds}
}

// A restarted director whose checks have not run yet keeps the kernel's
// weights (no blip) and adds a new, unchecked backend with weight 0.
func TestRestartWithUncheckedBackends(t *testing.T) {
	f := newFixture(t)
	svc := webService(backend(be1, 1), backend(be2, 5))
	svc.OnFailure = config.Remove
	// Checked, but the first probes have not run yet.
	svc.Check = &config.Check{Type: config.CheckTCP, Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}
	f.sync(f.reconciler(topo(svc), nil))
	f.writes()

	unknown := health.Status{WeightPercent: health.WeightNotReported}
	view := mapView{ap(be1): unknown, ap(be2): unknown, ap(be3): unknown}
	r := f.reconciler(topo(svc), view)
	f.sync(r)
	if m, n := f.writes(); n != 0 {
		t.Errorf("restart with unchecked backends: writes %v, want none", m)
	}

	svc.Backends = append(svc.Backends, backend(be3, 2))
	svc.OnFailure = config.Weight0
	r.SetConfig(topo(svc))
	f.sync(r)
	f.expect("new unchecked backend", webEntry(dst(be1, 1), dst(be2, 5), dst(be3, 0)))

	delete(view, ap(be3))
	f.sync(r)
	f.expect("checked up", webEntry(dst(be1, 1), dst(be2, 5), dst(be3, 2)))
}

func TestReloadServicesTouchesOnlyWhatChanged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	api := apiService(backend(be1, 1), backend(be2, 1))
	api.Backends[0].Port, api.Backends[1].Port = 8080, 8080
	web1 := webService(backend(be1, 1), backend(be2, 1))
	r := f.reconciler(topo(web1, api), nil)
	f.sync(r)
	f.writes()

	// Drift in api, which the reload does not concern: left for the
	// next full pass, proving the reload pass read and wrote only web.
	if err := f.fake.UpdateDestination(ctx, apiKey(), apiDst(be1, 9)); err != nil {
		t.Fatal(err)
	}
	f.fake.ResetWrites()

	web2 := webService(backend(be1, 1), backend(be2, 5))
	next := topo(web2, api)
	if err := r.ReloadServices(ctx, next, []int{0}, []ipvs.ServiceKey{web}); err != nil {
		t.Fatal(err)
	}
	if m, n := f.writes(); n != 1 || m[ipvs.WriteUpdateDest] != 1 {
		t.Errorf("reload: writes %v, want one destination update", m)
	}
	webWant := ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 5)}}
	apiEntry := func(w int) ipvs.Entry {
		return ipvs.Entry{Service: apiSvc, Destinations: []ipvs.Destination{apiDst(be1, w), apiDst(be2, 1)}}
	}
	f.expect("after reload", webWant, apiEntry(9))
	if r.Config() != next {
		t.Error("the reload did not swap the topology in")
	}
	f.sync(r)
	f.expect("after the next full pass", webWant, apiEntry(1))

	// A service removed: deleted at once and forgotten in the state file.
	gone := topo(web2)
	if err := r.ReloadServices(ctx, gone, nil, []ipvs.ServiceKey{apiKey()}); err != nil {
		t.Fatal(err)
	}
	f.expect("api removed", webWant)
	st, err := readState(f.state)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 1 || st.Services[0] != web {
		t.Errorf("state file services %v, want only web", st.Services)
	}

	// A service added: created and owned.
	back := topo(web2, api)
	if err := r.ReloadServices(ctx, back, []int{1}, nil); err != nil {
		t.Fatal(err)
	}
	f.expect("api back", webWant, apiEntry(1))
	if st, _ := readState(f.state); len(st.Services) != 2 {
		t.Errorf("state file services %v, want web and api", st.Services)
	}

	// A backend removed while it has connections: drained, not cut.
	if err := f.fake.SetConns(web, ap(be2), 3, 0); err != nil {
		t.Fatal(err)
	}
	web3 := webService(backend(be1, 1))
	if err := r.ReloadServices(ctx, topo(web3, api), []int{0}, []ipvs.ServiceKey{web}); err != nil {
		t.Fatal(err)
	}
	f.expect("be2 draining", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 0)}}, apiEntry(1))
	f.sync(r) // still connected: the full pass keeps the drain
	f.expect("be2 still draining", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 0)}}, apiEntry(1))
}

func apiKey() ipvs.ServiceKey { return api }

// A drain that a reload pass starts is polled by Run's passes from then
// on, not only after the next resync interval.
func TestRunPollsDrainStartedByReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		tp := topo(webService(backend(be1, 1), backend(be2, 1)))
		tp.Director.ResyncInterval = time.Hour
		r := NewReconciler(Options{Kernel: f.fake, StateFile: f.state, DrainPoll: time.Second}, tp)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		if err := f.fake.SetConns(web, ap(be2), 1, 0); err != nil {
			t.Fatal(err)
		}
		next := topo(webService(backend(be1, 1)))
		next.Director.ResyncInterval = time.Hour
		if err := r.ReloadServices(ctx, next, []int{0}, []ipvs.ServiceKey{web}); err != nil {
			t.Fatal(err)
		}
		f.expect("draining", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 0)}})
		if err := f.fake.SetConns(web, ap(be2), 0, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		f.expect("drained within a poll", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1)}})
		cancel()
		<-done
	})
}

// With a kernel that surveys (no thresholds, fwmark services inexact),
// passes stay write-free on a table in sync, still see weight drift at
// once, and see threshold drift by the next full dump.
func TestSurveyPasses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	thr := backend(be2, 3)
	thr.UpperThreshold, thr.LowerThreshold = 100, 50
	api := apiService(backend(be1, 1))
	api.Backends[0].Port = 8080
	mark := webService(backend(be3, 1))
	mark.Name, mark.FWMark, mark.Address, mark.Port = "mark", 7, netip.Addr{}, 0
	tp := topo(webService(backend(be1, 1), thr), api, mark)
	k := f.fake
	r := NewReconciler(Options{Kernel: k, StateFile: f.state}, tp)
	f.sync(r)
	want := Desired(tp, nil)
	f.expect("first pass", want...)
	f.writes()
	for i := range 2 * FullDumpEvery {
		f.sync(r)
		if m, n := f.writes(); n != 0 {
			t.Fatalf("pass %d on a table in sync wrote %v", i+2, m)
		}
	}

	// Weight drift: the next pass (a survey) repairs it.
	if err := f.fake.UpdateDestination(ctx, apiKey(), apiDst(be1, 9)); err != nil {
		t.Fatal(err)
	}
	f.writes()
	f.sync(r)
	f.expect("weight drift repaired", want...)

	// Threshold drift where the file sets none: by a full dump, within
	// FullDumpEvery passes.
	d := apiDst(be1, 1)
	d.UpperThreshold = 42
	if err := f.fake.UpdateDestination(ctx, apiKey(), d); err != nil {
		t.Fatal(err)
	}
	for range FullDumpEvery {
		f.sync(r)
	}
	f.expect("threshold drift repaired", want...)
}

// versionedView is a mapView whose Version the test bumps.
type versionedView struct {
	m mapView
	v uint64
}

func (w *versionedView) Backend(s string, b netip.AddrPort) health.Status { return w.m.Backend(s, b) }
func (w *versionedView) Version() uint64                                  { return w.v }

// A health change reaches the kernel on the next pass once the view's
// version moves, though passes reuse the desired table otherwise.
func TestDesiredReusedUntilHealthVersionMoves(t *testing.T) {
	f := newFixture(t)
	view := &versionedView{m: mapView{}}
	r := NewReconciler(Options{Kernel: f.fake, Health: view, StateFile: f.state}, topo(webService(backend(be1, 1), backend(be2, 1))))
	f.sync(r)
	f.sync(r)
	view.m[ap(be1)] = health.Status{Checked: true, WeightPercent: health.WeightNotReported}
	view.v++
	f.sync(r)
	f.expect("be1 down", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 0), dst(be2, 1)}})
	delete(view.m, ap(be1))
	view.v++
	f.sync(r)
	f.expect("be1 up", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 1)}})
}

// A backend added by a reload to a service without a check goes in with
// its weight at once, though health has not heard of it yet.
func TestReloadAddsUncheckedBackendAtItsWeight(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	view := mapView{ap(be2): {WeightPercent: health.WeightNotReported}}
	r := NewReconciler(Options{Kernel: f.fake, Health: view, StateFile: f.state}, topo(webService(backend(be1, 1))))
	f.sync(r)
	f.writes()
	if err := r.ReloadServices(ctx, topo(webService(backend(be1, 1), backend(be2, 4))), []int{0}, []ipvs.ServiceKey{web}); err != nil {
		t.Fatal(err)
	}
	f.expect("be2 added", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 4)}})
	if m, n := f.writes(); n != 1 {
		t.Errorf("writes %v, want one add", m)
	}
}

// TestRunPassGap: kicks every 10 ms for a second (a health storm) run at
// most one pass per DefaultPassGap, none lost: the last change is in the
// kernel one gap after it; after a quiet spell a kick runs a pass at once.
func TestRunPassGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		var passes atomic.Int64
		r := NewReconciler(Options{Kernel: f.fake, StateFile: f.state, Beat: func() { passes.Add(1) }},
			topo(webService(backend(be1, 1))))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		if got := passes.Load(); got != 1 {
			t.Fatalf("%d passes at start, want 1", got)
		}

		const storm = time.Second
		for range storm / (10 * time.Millisecond) {
			r.Kick()
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
		}
		stormPasses := passes.Load() - 1
		if max := int64(storm/DefaultPassGap) + 1; stormPasses > max || stormPasses < max-2 {
			t.Errorf("%d passes in a %v storm of kicks, want %d or a little fewer (one per %v)", stormPasses, storm, max, DefaultPassGap)
		}

		// The storm's last change, right after a pass: applied one gap later.
		r.SetConfig(topo(webService(backend(be1, 1), backend(be2, 2))))
		time.Sleep(DefaultPassGap)
		synctest.Wait()
		f.expect("the last change", ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 2)}})

		// Quiet, then one kick: a pass at once, no gap to wait out.
		time.Sleep(time.Second)
		synctest.Wait()
		before := passes.Load()
		r.Kick()
		synctest.Wait()
		if got := passes.Load() - before; got != 1 {
			t.Errorf("%d passes right after a kick that followed a quiet second, want 1", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

// The status shows how many of a backend's probes the director excused
// as its own failures, so an operator can tell a slow rise from a
// starved director.
func TestStatusShowsExcusedProbes(t *testing.T) {
	f := newFixture(t)
	up := stateUp
	up.Excused = 7
	r := f.reconciler(topo(webService(backend(be1, 1), backend(be2, 1))), mapView{ap(be1): up})
	f.sync(r)
	st, err := r.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Services[0].Backends; b[0].ExcusedProbes != 7 || b[1].ExcusedProbes != 0 {
		t.Errorf("excused probes in the status: %+v", b)
	}
}
