package check

import (
	"bytes"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// udpServer answers each datagram with reply(datagram); a nil reply means
// stay silent.
func udpServer(t *testing.T, reply func([]byte) []byte) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := reply(buf[:n]); r != nil {
				c.WriteTo(r, from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().String()
}

func TestUDP(t *testing.T) {
	pong := udpServer(t, func(b []byte) []byte {
		if bytes.Equal(b, []byte("ping")) {
			return []byte("pong v1.2")
		}
		return []byte("what?")
	})
	silent := udpServer(t, func([]byte) []byte { return nil })
	check := UDP{Send: []byte("ping"), Expect: []byte("pong")}

	if err, _ := run(t, check, pong); err != nil {
		t.Errorf("answering server: %v", err)
	}
	if err, _ := run(t, UDP{Send: []byte("ping")}, pong); err != nil {
		t.Errorf("no expect, any reply: %v", err)
	}
	err, _ := run(t, UDP{Send: []byte("hello"), Expect: []byte("pong")}, pong)
	wantErrContains(t, err, `reply "what?" does not start with "pong"`)
	err, _ = run(t, UDP{Send: []byte("ping"), Expect: []byte("pong v2")}, pong)
	wantErrContains(t, err, "does not start with")

	err, took := run(t, check, silent)
	wantTimeout(t, err, took)
	err, took = run(t, check, closedPort(t, "udp"))
	wantRefused(t, err, took)
}

// dnsServer answers A for ok.test., NOERROR without answers for
// empty.test. and NXDOMAIN for everything else.
func dnsServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		switch name := q.Question[0].Name; {
		case name == "ok.test." && q.Question[0].Qtype == dns.TypeA:
			rr, _ := dns.NewRR("ok.test. 60 IN A 192.0.2.7")
			m.Answer = append(m.Answer, rr)
		case name == "ok.test." || name == "empty.test.":
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	addr := dnsServer(t)
	for _, tc := range []struct {
		query, qtype string
		wantErr      string
	}{
		{"ok.test.", "A", ""},
		{"ok.test", "", ""},
		{"ok.test.", "AAAA", "no answer for ok.test. AAAA"},
		{"empty.test.", "A", "no answer"},
		{"missing.test.", "A", "rcode NXDOMAIN"},
	} {
		d, err := NewDNS(tc.query, tc.qtype)
		if err != nil {
			t.Fatal(err)
		}
		err, _ = run(t, d, addr)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s %s: %v, want pass", tc.query, tc.qtype, err)
			}
			continue
		}
		wantErrContains(t, err, tc.wantErr)
	}

	d, _ := NewDNS("ok.test.", "A")
	silent := udpServer(t, func([]byte) []byte { return nil })
	err, took := run(t, d, silent)
	wantTimeout(t, err, took)
	err, took = run(t, d, closedPort(t, "udp"))
	wantRefused(t, err, took)
}
