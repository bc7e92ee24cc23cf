// Command labhost plays the hosts of a lab topology, run inside network
// namespaces with `ip netns exec NS labhost ...`:
//
//	labhost serve  --name N [--http :80] [--udp :53] [--line :7000]   a real server answering its name
//	               (--line: to every line on a long-lived TCP connection)
//	labhost client --url U [--count 30]                 counts answers per real server (JSON)
//	labhost udp    --addr A:P [--count 30]              the same over UDP (JSON)
//	labhost poll   --url U [--interval 50ms] [--duration 10s]   availability (JSON);
//	               prints "ready" after the first answer
//	labhost conns  --addr A:P [--count 200] [--interval 100ms] [--duration 0] [--stall 3s]
//	               long-lived connections against serve --line (JSON at the end,
//	               on SIGINT/SIGTERM or after --duration); prints "ready N" once
//	               every connection has had its first --warm answers
//	labhost addrborn --dev D --addr A                    when the kernel created IPv6
//	               address A on D (JSON, Unix milliseconds)
//
// The HTTP server also has /long?d=10s, which trickles a byte every 100ms
// for that long, to hold a connection open in drain tests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "labhost: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: labhost serve|client|udp|poll [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	name := fs.String("name", "", "serve: the name to answer with")
	httpAddr := fs.String("http", "", "serve: HTTP listen address")
	udpAddr := fs.String("udp", "", "serve: UDP echo listen address")
	url := fs.String("url", "", "client/poll: URL to request")
	addr := fs.String("addr", "", "udp: address to send to")
	count := fs.Int("count", 30, "client/udp: number of requests")
	timeout := fs.Duration("timeout", 2*time.Second, "per-request timeout")
	interval := fs.Duration("interval", 50*time.Millisecond, "poll: time between requests")
	duration := fs.Duration("duration", 10*time.Second, "poll: how long to poll")
	sport := fs.Int("sport", 0, "udp: first source port (then +1 per request); 0 = random")
	lineAddr := fs.String("line", "", "serve: line-protocol listen address (answers every line with the name)")
	stall := fs.Duration("stall", 3*time.Second, "conns: a gap between answers longer than this is a stall")
	thin := fs.Bool("thin", false, "conns, serve --line: retransmit as a thin stream (TCP_THIN_LINEAR_TIMEOUTS), not with exponential backoff")
	warm := fs.Int("warm", 3, "conns: answers each connection has before \"ready\"")
	dev := fs.String("dev", "", "addrborn: the address's device")
	warmTimeout := fs.Duration("warm-timeout", time.Minute, "conns: a connection without its warm answers this long after connecting counts as not ready")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	switch args[0] {
	case "serve":
		if *name == "" || (*httpAddr == "" && *udpAddr == "" && *lineAddr == "") {
			return errors.New("serve needs --name and --http, --udp and/or --line")
		}
		return serve(ctx, *name, *httpAddr, *udpAddr, *lineAddr, *thin)
	case "conns":
		if *addr == "" {
			return errors.New("conns needs --addr")
		}
		if !isSet(fs, "count") {
			*count = 200
		}
		if !isSet(fs, "interval") {
			*interval = 100 * time.Millisecond
		}
		if !isSet(fs, "duration") {
			*duration = 0
		}
		return enc.Encode(conns(ctx, *addr, *count, *interval, *duration, *stall, *warm, *warmTimeout, *thin, func(n int) { fmt.Println("ready", n) }))
	case "addrborn":
		born, err := addrBorn(*dev, *addr)
		if err != nil {
			return err
		}
		return enc.Encode(struct {
			BornMS int64 `json:"born_ms"`
		}{born.UnixMilli()})
	case "client":
		return enc.Encode(httpClient(ctx, *url, *count, *timeout))
	case "udp":
		return enc.Encode(udpClient(ctx, *addr, *count, *sport, *timeout))
	case "poll":
		// Tests wait for "ready" before they break something.
		ready := func() { fmt.Println("ready") }
		return enc.Encode(poll(ctx, *url, *interval, *duration, *timeout, ready))
	}
	return fmt.Errorf("unknown subcommand %q", args[0])
}

// isSet reports whether a flag was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func serve(ctx context.Context, name, httpAddr, udpAddr, lineAddr string, thin bool) error {
	errc := make(chan error, 3)
	if lineAddr != "" {
		_, closeLines, err := serveLines(ctx, lineAddr, name, thin, errc)
		if err != nil {
			return err
		}
		defer closeLines()
	}
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, name)
		})
		mux.HandleFunc("/long", func(w http.ResponseWriter, r *http.Request) {
			d, err := time.ParseDuration(r.URL.Query().Get("d"))
			if err != nil {
				d = 10 * time.Second
			}
			fmt.Fprintln(w, name)
			fl, _ := w.(http.Flusher)
			end := time.After(d)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-r.Context().Done():
					return
				case <-end:
					return
				case <-tick.C:
					io.WriteString(w, ".")
					if fl != nil {
						fl.Flush()
					}
				}
			}
		})
		srv := &http.Server{Handler: mux}
		go func() { errc <- srv.Serve(ln) }()
		defer srv.Close()
	}
	if udpAddr != "" {
		closers, err := serveUDP(udpAddr, name, errc)
		if err != nil {
			return err
		}
		defer closers()
	}
	// Tests wait for this line before sending traffic.
	fmt.Println("ready", name)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// serveUDP answers every datagram with name, from the address the
// datagram was sent to: a VIP held on lo or tunl0 (dr, tun) must be the
// reply's source, or the client's connected socket drops it.
func serveUDP(addr, name string, errc chan<- error) (func(), error) {
	c4, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, err
	}
	p4 := ipv4.NewPacketConn(c4)
	if err := p4.SetControlMessage(ipv4.FlagDst, true); err != nil {
		c4.Close()
		return nil, err
	}
	c6, err := net.ListenPacket("udp6", addr)
	if err != nil {
		c4.Close()
		return nil, err
	}
	p6 := ipv6.NewPacketConn(c6)
	if err := p6.SetControlMessage(ipv6.FlagDst, true); err != nil {
		c4.Close()
		c6.Close()
		return nil, err
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			_, cm, from, err := p4.ReadFrom(buf)
			if err != nil {
				errc <- err
				return
			}
			var reply *ipv4.ControlMessage
			if cm != nil {
				reply = &ipv4.ControlMessage{Src: cm.Dst}
			}
			p4.WriteTo([]byte(name), reply, from)
		}
	}()
	go func() {
		buf := make([]byte, 2048)
		for {
			_, cm, from, err := p6.ReadFrom(buf)
			if err != nil {
				errc <- err
				return
			}
			var reply *ipv6.ControlMessage
			if cm != nil {
				reply = &ipv6.ControlMessage{Src: cm.Dst}
			}
			p6.WriteTo([]byte(name), reply, from)
		}
	}()
	return func() { c4.Close(); c6.Close() }, nil
}

// Result counts answers per real server name.
type Result struct {
	Counts   map[string]int `json:"counts"`
	Failures int            `json:"failures"`
	Errors   []string       `json:"errors,omitempty"`
}

func (r *Result) fail(err error) {
	r.Failures++
	if len(r.Errors) < 5 {
		r.Errors = append(r.Errors, err.Error())
	}
}

// newHTTPClient opens a new connection per request, so every request is
// scheduled by IPVS on its own.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return strings.TrimSpace(string(b)), nil
}

func httpClient(ctx context.Context, url string, count int, timeout time.Duration) Result {
	res := Result{Counts: map[string]int{}}
	c := newHTTPClient(timeout)
	for range count {
		name, err := get(ctx, c, url)
		if err != nil {
			res.fail(err)
			continue
		}
		res.Counts[name]++
	}
	return res
}

func udpClient(ctx context.Context, addr string, count, sport int, timeout time.Duration) Result {
	res := Result{Counts: map[string]int{}}
	for i := range count {
		// A new source port per request: a new IPVS connection. Random
		// ports could repeat and land on the same backend twice.
		port := 0
		if sport > 0 {
			port = sport + i
		}
		name, err := udpOnce(ctx, addr, port, timeout)
		if err != nil {
			res.fail(err)
			continue
		}
		res.Counts[name]++
	}
	return res
}

func udpOnce(ctx context.Context, addr string, sport int, timeout time.Duration) (string, error) {
	d := net.Dialer{LocalAddr: &net.UDPAddr{Port: sport}}
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write([]byte("ping")); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := conn.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// PollResult is availability seen by a client polling a URL.
type PollResult struct {
	Total    int            `json:"total"`
	Failures int            `json:"failures"`
	Counts   map[string]int `json:"counts"`
	// LongestOutageMS is the longest time between a failed request's start
	// and the next successful answer.
	LongestOutageMS int64 `json:"longest_outage_ms"`
	// FailedAtMS is when each failed request started (Unix milliseconds;
	// all namespaces share the clock), so a test can place failures
	// against what it saw in the kernel.
	FailedAtMS []int64 `json:"failed_at_ms,omitempty"`
	// Outages are the stretches without an answer, each from its first
	// failed request's start to the next answer (Unix milliseconds; End
	// is 0 when the poll ended first): a test measures recovery from an
	// event with them.
	Outages []Outage `json:"outages,omitempty"`
	// Errors are the first few failures' errors.
	Errors []string `json:"errors,omitempty"`
}

// Outage is one stretch of PollResult.Outages.
type Outage struct {
	StartMS int64 `json:"start_ms"`
	EndMS   int64 `json:"end_ms"`
}

// poll requests url every interval for duration; firstAnswer is called
// after the first successful request.
func poll(ctx context.Context, url string, interval, duration, timeout time.Duration, firstAnswer func()) PollResult {
	res := PollResult{Counts: map[string]int{}}
	c := newHTTPClient(timeout)
	end := time.Now().Add(duration)
	var outageStart time.Time
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		name, err := get(ctx, c, url)
		if err != nil && ctx.Err() != nil {
			break // stopped mid-request: not a failure of the target
		}
		res.Total++
		if err != nil {
			res.Failures++
			res.FailedAtMS = append(res.FailedAtMS, t0.UnixMilli())
			if len(res.Errors) < 10 {
				res.Errors = append(res.Errors, err.Error())
			}
			if outageStart.IsZero() {
				outageStart = t0
			}
		} else {
			if res.Total-res.Failures == 1 {
				firstAnswer()
			}
			res.Counts[name]++
			if !outageStart.IsZero() {
				o := Outage{StartMS: outageStart.UnixMilli(), EndMS: time.Now().UnixMilli()}
				res.LongestOutageMS = max(res.LongestOutageMS, o.EndMS-o.StartMS)
				res.Outages = append(res.Outages, o)
				outageStart = time.Time{}
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	if !outageStart.IsZero() {
		res.LongestOutageMS = max(res.LongestOutageMS, time.Since(outageStart).Milliseconds())
		res.Outages = append(res.Outages, Outage{StartMS: outageStart.UnixMilli()})
	}
	return res
}
