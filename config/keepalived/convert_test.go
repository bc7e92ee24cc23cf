package keepalived

import (
	"strings"
	"testing"

	"github.com/golvs/golvs/config"
)

// convertText reads and converts a configuration held in a string; the
// result has passed config's loader (Convert checks that itself).
func convertText(t *testing.T, src string) (*config.Topology, *Result) {
	t.Helper()
	nodes, _, err := ReadFrom(memSource{"k.conf": src}, "k.conf")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert("k.conf", nodes)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := config.Parse("out.toml", []byte(res.TOML))
	if err != nil {
		t.Fatal(err)
	}
	return topo, res
}

func notes(res *Result) string {
	var b strings.Builder
	for _, n := range res.Notes {
		b.WriteString(n.String() + "\n")
	}
	return b.String()
}

func wantNote(t *testing.T, res *Result, substr ...string) {
	t.Helper()
	all := notes(res)
	for _, s := range substr {
		if !strings.Contains(all, s) {
			t.Errorf("notes lack %q:\n%s", s, all)
		}
	}
}

// keepalived's own defaults: UDP, wlc, NAT, removal on failure, and an
// all-ports service made persistent.
func TestConvertDefaults(t *testing.T) {
	topo, res := convertText(t, `virtual_server 192.0.2.1 0 {
  real_server 192.0.2.11 0 {
    TCP_CHECK {
      connect_port 80
    }
  }
}
`)
	s := topo.Services[0]
	if s.Protocol != config.UDP || s.Scheduler != "wlc" || s.Forwarding != config.NAT || s.OnFailure != config.Remove || s.Persistence.Seconds() != 360 {
		t.Errorf("service = %+v, want udp wlc nat remove persistent 360s", s)
	}
	c := s.Check
	if c.Type != config.CheckTCP || c.Interval.Seconds() != 60 || c.Timeout.Seconds() != 5 || c.Rise != 1 || c.Fall != 2 || c.Port != 80 {
		t.Errorf("check = %+v, want tcp 60s/5s rise 1 fall 2 port 80", c)
	}
	for _, s := range []string{"no protocol; keepalived 2 defaults to UDP", "wlc is keepalived's default", "NAT is keepalived's default", "makes it persistent for 360s"} {
		if !strings.Contains(res.TOML, s) {
			t.Errorf("TOML lacks the comment %q", s)
		}
	}
	wantNote(t, res, `warning: [director] interface`)
	if !res.Complete() {
		t.Errorf("only warnings, yet not complete:\n%s", notes(res))
	}
}

func TestConvertGroupRanges(t *testing.T) {
	topo, res := convertText(t, `virtual_server_group g {
  192.0.2.10-12 80
  192.0.2.20-192.0.2.21 80
  192.0.2.32/31 80
  2001:db8::a-c 80
  fwmark 7
  2001:db8::x 80
}
virtual_server group g {
  lb_algo rr
  lb_kind TUN
  protocol TCP
  real_server 192.0.2.11 80 {
  }
}
`)
	var names []string
	for _, s := range topo.Services {
		names = append(names, s.Name)
	}
	want := "192.0.2.10:80/tcp 192.0.2.11:80/tcp 192.0.2.12:80/tcp 192.0.2.20:80/tcp 192.0.2.21:80/tcp 192.0.2.32:80/tcp 192.0.2.33:80/tcp " +
		"[2001:db8::a]:80/tcp [2001:db8::b]:80/tcp [2001:db8::c]:80/tcp fwmark-7"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("services = %s\nwant %s", got, want)
	}
	// tun may cross families, so the IPv4 real server stays on the IPv6 services.
	for _, s := range topo.Services {
		if len(s.Backends) != 1 {
			t.Errorf("%s has %d backends, want 1", s.Name, len(s.Backends))
		}
	}
	wantNote(t, res, "k.conf:7: not converted: 2001:db8::x 80 (not a unicast IP address or range)")
}

func TestConvertRealServerCorrections(t *testing.T) {
	topo, res := convertText(t, `virtual_server 192.0.2.1 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 192.0.2.11 8080 {
  }
  real_server 192.0.2.11 80 {
  }
  real_server 2001:db8::1 80 {
  }
  real_server 192.0.2.12 80 {
    lvs_method NAT
    uthreshold 5
    lthreshold 9
  }
}
virtual_server fwmark 3 {
  lb_algo rr
  lb_kind DR
  real_server 192.0.2.11 80 {
  }
}
`)
	s := topo.Services[0]
	if len(s.Backends) != 2 || s.Backends[0].Port != 80 || s.Backends[1].Forwarding != config.NAT || s.Backends[1].LowerThreshold != 0 {
		t.Errorf("backends = %+v", s.Backends)
	}
	if b := topo.Services[1].Backends[0]; b.Port != 0 {
		t.Errorf("fwmark dr backend port = %d, want 0", b.Port)
	}
	wantNote(t, res,
		"k.conf:5: warning: real_server 192.0.2.11 port 8080 (dr forwarding keeps the service port 80; keepalived resets it too)",
		"k.conf:7: warning: real_server 192.0.2.11:80 (a duplicate; keepalived drops it too)",
		"k.conf:9: warning: real_server 2001:db8::1 (its address family differs",
		"k.conf:14: not converted: lthreshold 9",
		"k.conf:20: warning: real_server 192.0.2.11 port 80 (a fwmark service's dr backends take no port")
}

func TestConvertQuorum(t *testing.T) {
	topo, res := convertText(t, `virtual_server 192.0.2.1 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  quorum 5
  hysteresis 1
  sorry_server 192.0.2.9
  real_server 192.0.2.11 80 { weight 4
  }
  real_server 192.0.2.12 80 { weight 1
  }
  real_server 192.0.2.13 80 { weight 1
  }
}
`)
	s := topo.Services[0]
	if s.Quorum != 2 || s.SorryServer.String() != "192.0.2.9:80" {
		t.Errorf("quorum %d sorry %s, want 2 and 192.0.2.9:80", s.Quorum, s.SorryServer)
	}
	wantNote(t, res, "k.conf:5: not converted: quorum 5 as a sum of unequal weights (golvs counts healthy backends; 2 of them is the nearest)",
		"k.conf:6: not converted: hysteresis 1")
}

func TestConvertChecks(t *testing.T) {
	topo, res := convertText(t, `virtual_server 192.0.2.1 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  delay_loop 2
  virtualhost vs.example
  real_server 192.0.2.11 80 {
    HTTP_GET {
      url {
        path /health
        status_code 200-202 404
        regex "ok"
      }
      url {
        path /second
      }
      connect_timeout 1
      retry 3
      delay_before_retry 0.5
    }
    TCP_CHECK {
    }
  }
  real_server 192.0.2.12 80 {
    SSL_GET {
      url {
        path /health
      }
    }
  }
  real_server 192.0.2.13 80 {
  }
}
`)
	c := topo.Services[0].Check
	if c.Type != config.CheckHTTP || c.Path != "/health" || c.Host != "vs.example" || c.ExpectBody != "ok" ||
		len(c.ExpectStatus) != 4 || c.Interval.Seconds() != 2 || c.Timeout.Seconds() != 1 || c.Fall != 4 {
		t.Errorf("check = %+v", c)
	}
	if !strings.Contains(res.TOML, "retried after delay_before_retry 500ms") {
		t.Errorf("no comment on delay_before_retry:\n%s", res.TOML)
	}
	wantNote(t, res,
		"k.conf:14: not converted: url /second",
		"k.conf:21: not converted: TCP_CHECK of real_server 192.0.2.11 (golvs runs one check per backend",
		"k.conf:25: not converted: SSL_GET of real_server 192.0.2.12 (it differs from real_server 192.0.2.11's",
		"k.conf:31: not converted: real_server 192.0.2.13 without a checker")
}

func TestConvertMiscDNSUDP(t *testing.T) {
	topo, res := convertText(t, `virtual_server 192.0.2.1 53 {
  lb_algo rr
  lb_kind NAT
  protocol UDP
  real_server 192.0.2.11 53 {
    MISC_CHECK {
      misc_path "check-dns --strict | logger"
      misc_timeout 3
      misc_dynamic
    }
  }
}
virtual_server 192.0.2.2 53 {
  lb_algo rr
  lb_kind NAT
  protocol UDP
  real_server 192.0.2.11 53 {
    DNS_CHECK {
      type AAAA
      name example.org
    }
  }
}
virtual_server 192.0.2.3 53 {
  lb_algo rr
  lb_kind NAT
  protocol UDP
  real_server 192.0.2.11 53 {
    DNS_CHECK {
    }
  }
}
virtual_server 192.0.2.4 53 {
  lb_algo rr
  lb_kind NAT
  protocol UDP
  real_server 192.0.2.11 53 {
    UDP_CHECK {
      payload 01 02
      require_reply 03xx
    }
  }
}
`)
	if c := topo.Services[0].Check; c.Type != config.CheckExec || strings.Join(c.Command, " ") != "/usr/bin/env check-dns --strict | logger" || c.Timeout.Seconds() != 3 || c.Fall != 1 {
		t.Errorf("misc check = %+v", c)
	}
	if c := topo.Services[1].Check; c.Type != config.CheckDNS || c.Query != "example.org." || c.QueryType != "AAAA" || c.Fall != 4 {
		t.Errorf("dns check = %+v", c)
	}
	if topo.Services[2].Check != nil || topo.Services[3].Check != nil {
		t.Errorf("unconvertible checks were written: %+v %+v", topo.Services[2].Check, topo.Services[3].Check)
	}
	wantNote(t, res,
		"k.conf:7: warning: misc_path check-dns (keepalived looked it up in PATH",
		`k.conf:7: warning: misc_path ("|" is shell syntax`,
		"k.conf:9: not converted: misc_dynamic",
		"k.conf:29: not converted: DNS_CHECK without name",
		"k.conf:40: not converted: require_reply 03xx (golvs's udp check has no wildcards",
		"k.conf:38: not converted: UDP_CHECK")
}

func TestConvertVRRP(t *testing.T) {
	topo, res := convertText(t, `global_defs {
  lvs_sync_daemon eth1 VI_1 id 9 maxlen 1400 port 8850 ttl 2 group 224.0.0.90
}
vrrp_instance VI_1 {
  interface bond0
  virtual_router_id 7
  priority 255
  advert_int 0.333
  nopreempt
  preempt_delay 10
  unicast_peer {
    192.0.2.2
    192.0.2.3 min_ttl 1
  }
  virtual_ipaddress {
    192.0.2.100/24 dev bond0
    192.0.2.101 brd 192.0.2.255
    10.0.0.1/24 dev eth1
  }
  virtual_ipaddress_excluded {
    192.0.2.103/24 dev eth9
  }
  notify /usr/local/bin/notify
  notify_master "/x master"
}
vrrp_instance VI_2 {
  interface eth0
  virtual_router_id 8
}
virtual_server 192.0.2.100 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
}
virtual_server 192.0.2.102 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
}
virtual_server 192.0.2.103 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
}
`)
	f := topo.Failover
	if topo.Director.Interface != "bond0" || f.VirtualRouterID != 7 || f.Priority != 254 || f.AdvertInterval.Milliseconds() != 330 ||
		f.Preempt || len(f.Peers) != 2 || f.Notify != "/usr/local/bin/notify" {
		t.Errorf("failover = %+v (interface %s)", f, topo.Director.Interface)
	}
	for _, s := range []string{"address = \"10.0.0.1/24\"", "address = \"192.0.2.101/32\"", "interface = \"eth1\"", "sync_id = 9", "preempt_delay = \"10s\"", "max_len = 1400", "port = 8850", "ttl = 2", "group = \"224.0.0.90\""} {
		if !strings.Contains(res.TOML, s) {
			t.Errorf("TOML lacks %q:\n%s", s, res.TOML)
		}
	}
	wantNote(t, res,
		"k.conf:7: not converted: priority 255",
		"k.conf:8: warning: advert_int 0.333 (rounded to VRRPv3's centiseconds: 330ms)",
		"k.conf:13: not converted: min_ttl 1",
		"k.conf:17: not converted: brd 192.0.2.255",
		"k.conf:21: warning: virtual_ipaddress 192.0.2.103/24 dev eth9 (a service's address: golvs holds it on [director] interface bond0)",
		"k.conf:23: warning: notify /usr/local/bin/notify",
		"k.conf:24: not converted: notify_master",
		"k.conf:26: not converted: vrrp_instance VI_2",
		"k.conf:4: not converted: VRRP version 2 (keepalived's default)",
		"k.conf:4: warning: service address 192.0.2.102 (not among the instance's virtual_ipaddress")
	probeConfig()
	if !acceptsAddresses {
		wantNote(t, res, "k.conf:18: not converted: virtual_ipaddress 10.0.0.1/24 dev eth1", "written commented out")
		if !strings.Contains(res.TOML, "# [[failover.address]]") {
			t.Errorf("[[failover.address]] not commented out though config rejects it")
		}
	}
	if !acceptsSyncTbl {
		wantNote(t, res, "k.conf:2: not converted: lvs_sync_daemon eth1 VI_1")
	}
}

func TestConvertUnknownKeywords(t *testing.T) {
	_, res := convertText(t, `frobnicate 1
virtual_server 192.0.2.1 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  colour blue
  real_server 192.0.2.11 80 {
    PING_CHECK {
    }
    shade dark
  }
}
`)
	wantNote(t, res, `k.conf:1: not converted: frobnicate 1 (the importer does not know "frobnicate")`,
		`k.conf:6: not converted: colour blue`, `k.conf:8: not converted: PING_CHECK {...} (golvs has no ping check)`,
		`k.conf:10: not converted: shade dark`)
	if res.Complete() {
		t.Error("Complete with unconverted keywords")
	}
}
