package director

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/config"
	"github.com/golvs/golvs/director/ipvs"
	"github.com/golvs/golvs/health"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

var (
	vipA   = netip.MustParseAddr("10.0.0.10")
	vip6   = netip.MustParseAddr("2001:db8::10")
	be1    = netip.MustParseAddr("10.0.1.1")
	be2    = netip.MustParseAddr("10.0.1.2")
	be3    = netip.MustParseAddr("10.0.1.3")
	sorry  = netip.MustParseAddrPort("10.0.2.1:80")
	web    = ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: vipA, Port: 80}
	webSvc = ipvs.Service{ServiceKey: web, Scheduler: "wrr", Netmask: 0xffffffff}
)

func backend(a netip.Addr, w int) config.Backend {
	return config.Backend{Address: a, Port: 80, Weight: w, Forwarding: config.DR}
}

func dst(a netip.Addr, w int) ipvs.Destination {
	return ipvs.Destination{Address: a, Port: 80, Weight: w, Forwarding: ipvs.Route}
}

func webService(backends ...config.Backend) config.Service {
	return config.Service{
		Name: "web", Address: vipA, Port: 80, Protocol: config.TCP,
		Scheduler: "wrr", Forwarding: config.DR, OnFailure: config.Weight0,
		DrainTimeout: 30 * time.Second, Backends: backends,
	}
}

func topo(svcs ...config.Service) *config.Topology {
	return &config.Topology{
		Director: config.Director{Interface: "eth0", ResyncInterval: time.Minute},
		Services: svcs,
	}
}

// mapView is a HealthView from a map; missing backends are up.
type mapView map[netip.AddrPort]health.Status

func (m mapView) Backend(_ string, b netip.AddrPort) health.Status {
	if st, ok := m[b]; ok {
		return st
	}
	return stateUp
}

// stateUp is a healthy backend with no reported weight.
var stateUp = health.Initial(nil, time.Time{})

func ap(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 80) }

func TestDesired(t *testing.T) {
	down := health.Status{Checked: true, WeightPercent: health.WeightNotReported}
	tests := []struct {
		name   string
		svc    config.Service
		health HealthView
		want   ipvs.Entry
	}{
		{
			name: "plain dr, nil view means up",
			svc:  webService(backend(be1, 1), backend(be2, 5)),
			want: ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 1), dst(be2, 5)}},
		},
		{
			name: "scheduler flags and persistence with netmask",
			svc: func() config.Service {
				s := webService(backend(be1, 1))
				s.Scheduler = "mh"
				s.SchedulerFlags = []string{"mh-port", "mh-fallback"}
				s.Persistence = 300 * time.Second
				s.PersistenceNetmask = netip.MustParseAddr("255.255.255.0")
				return s
			}(),
			want: ipvs.Entry{
				Service: ipvs.Service{ServiceKey: web, Scheduler: "mh",
					Flags:   ipvs.FlagSched1 | ipvs.FlagSched2 | ipvs.FlagPersistent,
					Timeout: 300, Netmask: 0xffffff00},
				Destinations: []ipvs.Destination{dst(be1, 1)},
			},
		},
		{
			name: "ipv6 udp sh-port, default prefix 128, nat backend",
			svc: config.Service{
				Name: "dns6", Address: vip6, Port: 53, Protocol: config.UDP,
				Scheduler: "sh", SchedulerFlags: []string{"sh-port", "flag-3"}, Forwarding: config.NAT,
				Backends: []config.Backend{{Address: netip.MustParseAddr("2001:db8::2"), Port: 5353, Weight: 2, Forwarding: config.NAT, UpperThreshold: 100, LowerThreshold: 10}},
			},
			want: ipvs.Entry{
				Service: ipvs.Service{
					ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET6, Protocol: unix.IPPROTO_UDP, Address: vip6, Port: 53},
					Scheduler:  "sh", Flags: ipvs.FlagSched2 | ipvs.FlagSched3, Netmask: 128,
				},
				Destinations: []ipvs.Destination{{Address: netip.MustParseAddr("2001:db8::2"), Port: 5353, Weight: 2, Forwarding: ipvs.Masq, UpperThreshold: 100, LowerThreshold: 10}},
			},
		},
		{
			name: "fwmark v6 persistence prefix, tun override",
			svc: config.Service{
				Name: "fw", FWMark: 7, IPv6: true, Protocol: config.TCP, Scheduler: "rr", Forwarding: config.DR,
				Persistence: 1500 * time.Millisecond, PersistencePrefix: 64,
				Backends: []config.Backend{{Address: netip.MustParseAddr("2001:db8::3"), Port: 80, Weight: 1, Forwarding: config.TUN}},
			},
			want: ipvs.Entry{
				Service: ipvs.Service{
					ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET6, FWMark: 7},
					Scheduler:  "rr", Flags: ipvs.FlagPersistent, Timeout: 2, Netmask: 64,
				},
				Destinations: []ipvs.Destination{{Address: netip.MustParseAddr("2001:db8::3"), Port: 80, Weight: 1, Forwarding: ipvs.Tunnel}},
			},
		},
		{
			name:   "down with weight0 keeps entry at 0, drain 0, percent scales",
			svc:    webService(backend(be1, 4), backend(be2, 4), backend(be3, 10)),
			health: mapView{ap(be1): down, ap(be2): {Checked: true, Up: true, Drain: true, WeightPercent: health.WeightNotReported}, ap(be3): {Checked: true, Up: true, WeightPercent: 50}},
			want:   ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 0), dst(be2, 0), dst(be3, 5)}},
		},
		{
			name: "down with remove leaves it out",
			svc: func() config.Service {
				s := webService(backend(be1, 1), backend(be2, 1))
				s.OnFailure = config.Remove
				return s
			}(),
			health: mapView{ap(be1): down},
			want:   ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be2, 1)}},
		},
		{
			name: "quorum lost adds the sorry server",
			svc: func() config.Service {
				s := webService(backend(be1, 3), backend(be2, 3))
				s.Quorum = 2
				s.SorryServer = sorry
				return s
			}(),
			health: mapView{ap(be1): down},
			want: ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{
				dst(be1, 0), dst(be2, 3), dst(sorry.Addr(), 1),
			}},
		},
		{
			name: "quorum held: no sorry server",
			svc: func() config.Service {
				s := webService(backend(be1, 3), backend(be2, 3))
				s.Quorum = 2
				s.SorryServer = sorry
				return s
			}(),
			want: ipvs.Entry{Service: webSvc, Destinations: []ipvs.Destination{dst(be1, 3), dst(be2, 3)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Desired(topo(tt.svc), tt.health)
			if diff := cmp.Diff([]ipvs.Entry{tt.want}, got); diff != "" {
				t.Errorf("Desired (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	other := ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_TCP, Address: netip.MustParseAddr("10.9.9.9"), Port: 443}
	otherSvc := ipvs.Service{ServiceKey: other, Scheduler: "rr", Netmask: 0xffffffff}
	entry := func(s ipvs.Service, ds ...ipvs.Destination) ipvs.Entry {
		return ipvs.Entry{Service: s, Destinations: ds}
	}
	none := func(ipvs.ServiceKey) bool { return false }
	all := func(ipvs.ServiceKey) bool { return true }
	withConns := dst(be1, 1)
	withConns.ActiveConns, withConns.InactiveConns = 5, 7

	tests := []struct {
		name    string
		desired []ipvs.Entry
		actual  []ipvs.Entry
		owned   func(ipvs.ServiceKey) bool
		want    []string
	}{
		{
			name:    "from empty",
			desired: []ipvs.Entry{entry(webSvc, dst(be2, 1), dst(be1, 1))},
			owned:   none,
			want: []string{
				"add service tcp:10.0.0.10:80 wrr",
				"add destination tcp:10.0.0.10:80 -> 10.0.1.1:80 dr weight 1",
				"add destination tcp:10.0.0.10:80 -> 10.0.1.2:80 dr weight 1",
			},
		},
		{
			name:    "converged, counters ignored",
			desired: []ipvs.Entry{entry(webSvc, dst(be1, 1))},
			actual:  []ipvs.Entry{entry(webSvc, withConns)},
			owned:   all,
		},
		{
			name:    "weight change is one update",
			desired: []ipvs.Entry{entry(webSvc, dst(be1, 1), dst(be2, 0))},
			actual:  []ipvs.Entry{entry(webSvc, dst(be1, 1), dst(be2, 1))},
			owned:   all,
			want:    []string{"update destination tcp:10.0.0.10:80 -> 10.0.1.2:80 weight 1 -> 0"},
		},
		{
			name: "forwarding and thresholds change in place",
			desired: []ipvs.Entry{entry(webSvc, ipvs.Destination{Address: be1, Port: 80, Weight: 1, Forwarding: ipvs.Masq,
				UpperThreshold: 9, LowerThreshold: 3})},
			actual: []ipvs.Entry{entry(webSvc, dst(be1, 1))},
			owned:  all,
			want:   []string{"update destination tcp:10.0.0.10:80 -> 10.0.1.1:80 forwarding dr -> nat, thresholds 0/0 -> 3/9"},
		},
		{
			name: "service settings, removed and added destinations",
			desired: []ipvs.Entry{entry(ipvs.Service{ServiceKey: web, Scheduler: "sh", Flags: ipvs.FlagPersistent | ipvs.FlagSched2, Timeout: 60, Netmask: 0xffffff00},
				dst(be3, 1))},
			actual: []ipvs.Entry{entry(webSvc, dst(be1, 1), dst(be2, 1))},
			owned:  all,
			want: []string{
				"update service tcp:10.0.0.10:80 scheduler wrr -> sh, flags 0x0 -> 0x11, timeout 0s -> 60s, netmask 255.255.255.255 -> 255.255.255.0",
				"delete destination tcp:10.0.0.10:80 -> 10.0.1.1:80",
				"delete destination tcp:10.0.0.10:80 -> 10.0.1.2:80",
				"add destination tcp:10.0.0.10:80 -> 10.0.1.3:80 dr weight 1",
			},
		},
		{
			name:    "foreign service survives, owned one goes",
			desired: nil,
			actual:  []ipvs.Entry{entry(otherSvc, dst(be1, 1)), entry(webSvc, dst(be1, 1))},
			owned:   func(k ipvs.ServiceKey) bool { return k == web },
			want:    []string{"delete service tcp:10.0.0.10:80"},
		},
		{
			name:    "nil owned deletes nothing",
			actual:  []ipvs.Entry{entry(webSvc)},
			owned:   nil,
			want:    nil,
			desired: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := Plan(tt.desired, tt.actual, tt.owned)
			var got []string
			for _, op := range ops {
				got = append(got, op.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Plan (-want +got):\n%s", diff)
			}
		})
	}
}

// Plan's output applied to actual must give desired: checked on the fake
// in reconcile_test; here the order guarantee: a service's add comes
// before its destinations' adds.
func TestPlanOrder(t *testing.T) {
	a := webSvc
	b := ipvs.Service{ServiceKey: ipvs.ServiceKey{Family: unix.AF_INET, Protocol: unix.IPPROTO_UDP, Address: vipA, Port: 53}, Scheduler: "rr", Netmask: 0xffffffff}
	ops := Plan([]ipvs.Entry{{Service: b, Destinations: []ipvs.Destination{dst(be1, 1)}}, {Service: a, Destinations: []ipvs.Destination{dst(be1, 1)}}}, nil, nil)
	var kinds []string
	for _, op := range ops {
		kinds = append(kinds, strings.Fields(op.String())[1]+" "+op.Service.ServiceKey.String())
	}
	want := []string{"service tcp:10.0.0.10:80", "destination tcp:10.0.0.10:80", "service udp:10.0.0.10:53", "destination udp:10.0.0.10:53"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}
