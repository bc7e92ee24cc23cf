//go:build browser

package metrics

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golvs/golvs/director/status"
)

// TestPageInChromium (go test -tags browser ./director/metrics) opens the
// page in headless Chromium on this host against a scripted status, flips
// a backend down and checks the page shows it without a reload within one
// update (plus slack for a loaded machine) and logs no console error.
// `make test` runs it. With GOLVS_SCREENSHOT=FILE it saves a PNG of the
// page.
func TestPageInChromium(t *testing.T) {
	var down atomic.Bool
	var n atomic.Int64
	src := Source{Status: func(context.Context) (status.Status, error) {
		i := n.Add(1)
		h := "up"
		if down.Load() {
			h = "down"
		}
		return status.Status{Services: []status.ServiceStatus{{Name: "web", Key: "TCP 192.0.2.100:80", InKernel: true, Serving: 3,
			Backends: []status.BackendStatus{
				{Address: netip.MustParseAddrPort("192.0.2.11:80"), Configured: true, ConfiguredWeight: 1, InKernel: true, KernelWeight: 1,
					ActiveConns: int(3 + i%4), InactiveConns: 40, Conns: uint64(i * 20), Health: "up"},
				{Address: netip.MustParseAddrPort("192.0.2.12:80"), Configured: true, ConfiguredWeight: 1, InKernel: true, KernelWeight: 1,
					ActiveConns: int(2 + i%3), InactiveConns: 38, Conns: uint64(i * 19), Health: "up"},
				{Address: netip.MustParseAddrPort("192.0.2.13:80"), Configured: true, ConfiguredWeight: 1, InKernel: true, KernelWeight: 1,
					ActiveConns: 2, InactiveConns: 35, Conns: uint64(i * 18), Health: h},
			}}}}, nil
	}, VRRP: func() VRRPInfo { return VRRPInfo{State: "master", Priority: 150} },
		VRRPTransitions: func() []string {
			return []string{"2026-12-02T08:00:01.000Z backup -> master: no advert from the master for 3.6s"}
		},
		HealthTransitions: func() []string {
			if !down.Load() {
				return nil
			}
			return []string{"2026-12-02T08:00:05.000Z web 192.0.2.13:80 up -> down: get: connect: connection refused (2 of 2 to fall)"}
		}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go Serve(ctx, ln, Handler(src, nil)) // the production limits

	var mu sync.Mutex
	var problems []string
	actx, cancelA := chromedp.NewExecAllocator(ctx, chromedp.ExecPath("/usr/bin/chromium"), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	go func() {
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s %s)", m, m.Source, m.URL))
				mu.Unlock()
			}
		}
	}()
	row := `tr[data-backend="192.0.2.13:80"]`
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(900, 420), chromedp.Navigate("http://"+ln.Addr().String()+"/"),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-health="up"]`))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.golvsNoReload = 1`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a few samples for the rates and the chart
	flipped := time.Now()
	down.Store(true)
	var seen time.Duration
	for {
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('`+row+`').dataset.health`))
		if err != nil {
			t.Fatal(err)
		}
		if v == "down" {
			seen = time.Since(flipped)
			break
		}
		if time.Since(flipped) > 10*time.Second {
			t.Fatalf("the page still shows %q 10s after the backend went down", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	const bound = time.Second + 2*time.Second // one update + slack for a loaded host
	t.Logf("page showed the backend down %s after the change (bound %s)", seen.Round(time.Millisecond), bound)
	if seen > bound {
		t.Errorf("page showed the backend down %s after the change, want at most %s", seen, bound)
	}
	same, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.golvsNoReload === 1 && document.querySelector('`+row+` td.rate').textContent !== "-"`))
	if err != nil || !same {
		t.Errorf("page reloaded or shows no rate: %v %v", same, err)
	}
	time.Sleep(2 * time.Second)
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v", err)
	}
	if f := os.Getenv("GOLVS_SCREENSHOT"); f != "" {
		if err := os.WriteFile(f, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("console:\n%s", strings.Join(problems, "\n"))
	}
}
