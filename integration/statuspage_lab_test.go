//go:build lab

package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golvs/golvs/integration/labnet"
)

// pageUpdate is the status page's poll interval (page.js EVERY_MS).
const pageUpdate = time.Second

// browserSlack is what headless Chromium under TCG adds on top of
// detectSlack: a fetch, a JSON parse and a redraw, and our own DOM query
// through the DevTools protocol, each many times slower than on hardware.
const browserSlack = 1500 * time.Millisecond

// TestStatusPageBrowser opens the director's status page in headless
// Chromium running in the director's namespace, kills a real server and
// checks that the page, without a reload, shows it down within the
// health detection time plus one page update (measured from the kill
// the kernel witness confirms), that the page draws connection rates
// from the kernel's counters, and that the browser logged no console
// error, exception or failed load.
func TestStatusPageBrowser(t *testing.T) {
	c := newCluster(t, "dr")
	const addr = "127.0.0.1:9470"
	p, _ := c.startDirectorOn(c.director, fmt.Sprintf("metrics_address = %q", addr),
		hcDRService(c.rsAddrs, `on_failure = "weight0"`, "type = \"http\"\npath = \"/\"\n"+hcCheck), routeWeights(c.allRoute1()))
	w := watchIPVS(t, p)
	dead := c.rsAddrs[2] + ":80"
	poll := c.startPoll()
	defer c.stopPoll(poll)

	t.Logf("director up; starting chromium")
	ctx, problems, out := openBrowser(t, c.director)
	// The first load may wait for Chromium itself under TCG.
	load, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	if err := chromedp.Do(load,
		chromedp.EmulateViewport(1180, 640),
		chromedp.Navigate("http://"+addr+"/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-backend="`+dead+`"][data-health="up"]`)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[int](`window.golvsNoReload = 1`)(ctx, t)
			return err
		}),
	); err != nil {
		t.Fatalf("open the status page: %v\nchromium:\n%s", err, out())
	}
	t.Logf("page loaded, all up")
	// The kernel's counters become a rate on the page once the poller's
	// connections reach every backend: two updates at least.
	domEventually(t, ctx, 30*eventuallyScale, "a connection rate above 0 for "+dead,
		`(() => { const c = document.querySelector('tr[data-backend="`+dead+`"] td.rate'); return c ? c.textContent : "" })()`,
		func(v string) bool { return v != "" && v != "-" && v != "0.0" })

	killed := time.Now()
	c.stopServer(2)
	seen := domEventually(t, ctx, 20*eventuallyScale, dead+" down on the page",
		`(() => { const r = document.querySelector('tr[data-backend="`+dead+`"]'); return r ? r.dataset.health : "" })()`,
		func(v string) bool { return v == "down" })
	kernel := w.first(killed, 20*eventuallyScale, dead+" weight 0", destWeight(dead, 0))
	detect := hcInterval*hcFall + hcTimeout
	bound := detect + pageUpdate + detectSlack + browserSlack
	t.Logf("page shows %s down %s after the kill (kernel weight 0 after %s); bound %s = detection %s + update %s + slack %s + browser %s",
		dead, durMS(seen.Sub(killed)), durMS(kernel.Sub(killed)), bound, detect, pageUpdate, detectSlack, browserSlack)
	if seen.Sub(killed) > bound {
		t.Errorf("the page showed %s down %s after the kill, want at most %s", dead, durMS(seen.Sub(killed)), bound)
	}

	// Still the same document: it updated itself.
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.golvsNoReload === 1`))
	if err != nil {
		t.Fatal(err)
	}
	transitions, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("health-transitions").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Errorf("the page was reloaded")
	}
	if !strings.Contains(transitions, dead+" up -> down") {
		t.Errorf("health transitions on the page lack %s up -> down: %q", dead, transitions)
	}
	// Let the down band reach the chart, then keep a picture.
	time.Sleep(2 * pageUpdate)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("screenshot is not a PNG")
	}
	if os.Getenv("GOLVS_LAB_SCREENSHOT") != "" {
		// The guest cannot write to the host; the console can carry it.
		t.Logf("screenshot status-page.png base64 %s", base64.StdEncoding.EncodeToString(png))
	}
	if errs := problems(); len(errs) > 0 {
		t.Errorf("browser console errors:\n%s", strings.Join(errs, "\n"))
	}
}

// openBrowser starts headless Chromium inside h's namespace, talking to
// us over the DevTools pipe (so no port has to cross namespaces), and
// collects every console error, uncaught exception and error log entry.
func openBrowser(t *testing.T, h *labnet.Host) (ctx context.Context, problems func() []string, output func() string) {
	t.Helper()
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []string
	var chromeOut bytes.Buffer
	note := func(s string) {
		mu.Lock()
		errs = append(errs, s)
		mu.Unlock()
	}
	home := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Env("DBUS_SESSION_BUS_ADDRESS=disabled:"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("HOME=" + home),
		chromedp.CombinedOutput(&lockedWriter{mu: &mu, w: &chromeOut}),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip netns exec keeps the DevTools pipe descriptors open
			// across its exec of chromium.
			cmd.Args = append([]string{"ip", "netns", "exec", h.NS}, cmd.Args...)
			cmd.Args[4] = "/usr/bin/chromium"
			cmd.Path = ipPath
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser under a deadline. The first Run's context is the
	// tab's lifetime, so it cannot carry the deadline itself.
	begin := time.Now()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	var startErr error
	select {
	case startErr = <-started:
	case <-time.After(300 * time.Second):
		cancel()
		startErr = errors.New("no answer within 300s")
	}
	if startErr != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("start chromium in %s: %v\n%s", h.NS, startErr, chromeOut.String())
	}
	t.Logf("chromium started in %s in %s", h.NS, durMS(time.Since(begin)))
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException() {
				note(fmt.Sprintf("%s (%s %s:%d)", m, m.Source, m.URL, m.Line))
			}
		}
	}()
	problems = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), errs...)
	}
	output = func() string {
		mu.Lock()
		defer mu.Unlock()
		return chromeOut.String()
	}
	return ctx, problems, output
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// domEventually evaluates expr (a string-valued expression) in the page
// until ok accepts its value, and returns when it first did.
func domEventually(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string, ok func(string) bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok(v) {
			return time.Now()
		}
		last = v
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s (last %q)", what, timeout, last)
	return time.Time{}
}
