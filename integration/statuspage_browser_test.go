//go:build browser

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/golvs/golvs/integration/lab"
)

// pageUpdate is how often the status page redraws itself
// (director/metrics/assets/page.js EVERY_MS).
const pageUpdate = time.Second

// TestStatusPageLabChromium opens a lab director's status page in headless
// Chromium on this host: the director runs in a lab guest
// (TestStatusPageLabGuest) whose page and control ports are forwarded to
// this host's loopback. Once the page shows the backend up, the guest kills
// that real server; the page must show it down, without a reload, within
// the check's detection time (interval*fall + timeout) plus one page
// update, measured from when the kill returned, with as much again as
// slack for the emulated guest on a loaded machine; and Chromium must log
// no console error or warning. `lab test` runs it (with $GOLVS_BIN holding
// the lab's binaries); GOLVS_SCREENSHOT=FILE saves the page as a PNG.
func TestStatusPageLabChromium(t *testing.T) {
	bin := os.Getenv("GOLVS_BIN")
	for _, b := range []string{"integration.test", "director", "labhost"} {
		if _, err := os.Stat(filepath.Join(bin, b)); bin == "" || err != nil {
			t.Fatalf("GOLVS_BIN must hold the lab's binaries (`go run ./integration/cmd/lab test --run TestStatusPageLab` builds them): %s: %v", b, err)
		}
	}
	pagePort, ctlPort := freePort(t), freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts, err := lab.Prepare(ctx, lab.Options{Log: log, HostForward: []lab.Forward{{Host: pagePort, Guest: pagePort}, {Host: ctlPort, Guest: ctlPort}}})
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	opts.Dir = wd
	opts.Timeout = 15 * time.Minute
	opts.Env = []string{"GOLVS_BIN=" + bin, envPagePort + "=" + strconv.Itoa(pagePort), envControlPort + "=" + strconv.Itoa(ctlPort)}
	opts.Command = []string{filepath.Join(bin, "integration.test"), "-test.v", "-test.timeout", "14m", "-test.run", "^TestStatusPageLabGuest$"}
	type result struct {
		code int
		err  error
	}
	guest := make(chan result, 1)
	booted := time.Now()
	go func() {
		code, err := lab.Run(ctx, opts)
		guest <- result{code, err}
	}()
	ctlURL := fmt.Sprintf("http://127.0.0.1:%d", ctlPort)
	guestDone := false
	defer func() {
		// Let the guest half end (it reports its side), then wait for it.
		post(ctlURL + "/done")
		if guestDone {
			return
		}
		select {
		case r := <-guest:
			if r.err != nil || r.code != 0 {
				t.Errorf("guest half: exit %d, %v", r.code, r.err)
			}
		case <-time.After(2 * time.Minute):
			t.Error("the guest half did not end after done")
		}
	}()

	// Chromium starts while the guest boots.
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

	// The control endpoint answers once the director serves its page.
	var check pageCheck
	for {
		if err := getJSON(ctlURL+"/check", &check); err == nil {
			break
		}
		select {
		case r := <-guest:
			guestDone = true
			t.Fatalf("the guest half ended before it served the page: exit %d, %v", r.code, r.err)
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(booted) > 10*time.Minute {
			t.Fatal("the guest half did not serve the page in 10 minutes")
		}
	}
	t.Logf("guest ready %s after boot; killing %s, check interval %dms timeout %dms fall %d",
		time.Since(booted).Round(time.Millisecond), check.Backend, check.IntervalMS, check.TimeoutMS, check.Fall)

	row := fmt.Sprintf(`tr[data-backend=%q]`, check.Backend)
	wait := func(d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
		c, stop := context.WithTimeout(bctx, d)
		defer stop()
		return chromedp.Do(c, actions...)
	}
	if err := wait(2*time.Minute, chromedp.EmulateViewport(900, 420), chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/", pagePort)),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-health="up"]`))); err != nil {
		t.Fatalf("the page never showed %s up: %v", check.Backend, err)
	}
	// The page has drawn at least two samples (a rate needs two): it is
	// polling.
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`(r => !!r && r.textContent !== "-")(document.querySelector('`+row+` td.rate'))`,
		chromedp.WithPollingTimeout(time.Minute))); err != nil {
		t.Fatalf("the page shows no rate for %s: %v", check.Backend, err)
	}
	// Armed only while the row shows up: from then every change of the
	// row's health is recorded with its time in the page itself, so the
	// figure does not depend on how fast this test's own round trips to
	// Chromium are on a loaded machine. The guest refuses the kill (409)
	// while a timed-out check has the backend down in the kernel: then
	// arm and ask again.
	arm := chromedp.PollFunction[bool](`() => {
  const row = () => document.querySelector('`+row+`');
  if (!row() || row().dataset.health !== "up") return false;
  if (window.golvsObserver) window.golvsObserver.disconnect();
  window.golvsNoReload = 1;
  window.golvsSeen = [];
  let last = "up";
  window.golvsObserver = new MutationObserver(() => {
    const r = row();
    if (r && r.dataset.health !== last) {
      last = r.dataset.health;
      window.golvsSeen.push([Date.now(), last]);
    }
  });
  window.golvsObserver.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-health"]});
  return true;
}`, chromedp.WithPollingTimeout(time.Minute))
	var asked, killed time.Time
	for attempt := 1; ; attempt++ {
		if _, err := chromedp.Run(bctx, arm); err != nil {
			t.Fatalf("%s never showed up to arm the page: %v", check.Backend, err)
		}
		asked = time.Now()
		err := post(ctlURL + "/kill")
		if err == nil {
			killed = time.Now()
			break
		}
		if !errors.Is(err, errConflict) || attempt == 30 {
			t.Fatalf("kill: %v", err)
		}
		t.Logf("kill refused, asking again after the page's next redraw: %v", err)
		if _, err := chromedp.Run(bctx, chromedp.PollFunction[bool](`(t0) => document.getElementById("updated").dataset.time !== t0`,
			chromedp.WithPollingArgs(redrawn(bctx, t)), chromedp.WithPollingTimeout(time.Minute))); err != nil {
			t.Fatalf("the page stopped redrawing: %v", err)
		}
	}
	t.Logf("kill took %s", killed.Sub(asked).Round(time.Millisecond))

	detect := time.Duration(check.IntervalMS)*time.Millisecond*time.Duration(check.Fall) + time.Duration(check.TimeoutMS)*time.Millisecond
	bound := detect + pageUpdate
	slack := bound // the guest is emulated (TCG) and the machine shared
	// Polled in the page; the limit only ends a broken run.
	at, err := chromedp.Run(bctx, chromedp.Poll[int64](`(window.golvsSeen.find((e) => e[1] === "down") || [0])[0]`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(10*(bound+slack))))
	if err != nil {
		t.Fatalf("the page still shows %s up %s after the kill (bound %s + slack %s): %v", check.Backend, time.Since(killed).Round(time.Millisecond), bound, slack, err)
	}
	if time.UnixMilli(at).Before(asked) {
		// The check flapped: the figure would time that, not the kill.
		t.Fatalf("the page showed %s down %s before the kill was asked for", check.Backend, asked.Sub(time.UnixMilli(at)))
	}
	seen := max(time.UnixMilli(at).Sub(killed), 0) // a down seen while the kill's answer was on its way counts as at once
	t.Logf("page showed %s down %s after the kill returned (bound: detection %s + one update %s = %s, + slack %s)",
		check.Backend, seen.Round(time.Millisecond), detect, pageUpdate, bound, slack)
	if seen > bound+slack {
		t.Errorf("page showed the backend down %s after the kill, want at most %s + %s", seen.Round(time.Millisecond), bound, slack)
	}
	seen2, err := chromedp.Run(bctx, chromedp.Evaluate[string](`window.golvsNoReload === 1 ? JSON.stringify(window.golvsSeen) : "reloaded"`))
	if err != nil || seen2 == "reloaded" {
		t.Errorf("page reloaded: %q %v", seen2, err)
	}
	// The same redraw lists the transition with its reason.
	if err := wait(time.Minute, chromedp.WaitVisible(chromedp.CSS(`#health-transitions li:not(.none)`))); err != nil {
		t.Errorf("the page lists no health transition: %v", err)
	}
	// Newest first; other backends may have flapped on a loaded machine.
	last, err := chromedp.Run(bctx, chromedp.Evaluate[string](`([...document.querySelectorAll("#health-transitions li")]
  .map((li) => li.textContent).find((t) => t.includes(" `+check.Backend+` ")) || "")`))
	t.Logf("row changes seen by the page (unix ms): %s; newest transition of %s listed: %q %v", seen2, check.Backend, last, err)
	if !strings.Contains(last, check.Backend+" up -> down") {
		t.Errorf("the newest transition of %s listed is not up -> down: %q", check.Backend, last)
	}
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

// redrawn is the time of the page's last redraw, as the page keeps it.
func redrawn(bctx context.Context, t *testing.T) string {
	t.Helper()
	v, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("updated").dataset.time`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// freePort is a TCP port free on the host's loopback just now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var hostClient = &http.Client{Timeout: 20 * time.Second}

func getJSON(url string, v any) error {
	resp, err := hostClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func post(url string) error {
	resp, err := hostClient.Post(url, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusConflict {
		return fmt.Errorf("%s: %w: %s", url, errConflict, body)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	return nil
}

// errConflict is the guest's "not now, ask again".
var errConflict = errors.New("conflict")
