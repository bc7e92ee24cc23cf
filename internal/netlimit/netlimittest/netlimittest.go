// Package netlimittest checks that an endpoint serves with its
// netlimit.Limits. For tests only.
package netlimittest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golvs/golvs/internal/netlimit"
)

// Short is a cap of one connection and an idle timeout of idle.
func Short(idle time.Duration) netlimit.Limits {
	return netlimit.Limits{
		ReadHeaderTimeout: 5 * time.Second,
		// No ReadTimeout: net/http would close idle connections with it
		// when IdleTimeout is missing, hiding that.
		WriteTimeout:   5 * time.Second,
		IdleTimeout:    idle,
		MaxHeaderBytes: 4 << 10,
		MaxConns:       1,
	}
}

// Check runs against an endpoint serving Short(idle) and answering 200
// to GET path: a keep-alive connection left idle is closed by the server,
// not before idle; a second connection opened meanwhile is answered only
// once the first is gone; a header block over the bound is refused.
func Check(t *testing.T, dial func() (net.Conn, error), path string, idle time.Duration) {
	t.Helper()
	a, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	abr := bufio.NewReader(a)
	sentA := time.Now()
	if err := get(a, abr, path, ""); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		a.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := abr.ReadByte()
		if !errors.Is(err, io.EOF) {
			t.Errorf("idle connection: %v, want closed by the server", err)
		}
		closed <- time.Since(sentA)
	}()

	b, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.SetDeadline(time.Now().Add(30 * time.Second))
	if err := get(b, bufio.NewReader(b), path, ""); err != nil {
		t.Fatalf("second connection, waiting for the first's idle close: %v", err)
	}
	// b could be accepted only after a was closed, at least idle after a's
	// request.
	if after := time.Since(sentA); after < idle {
		t.Errorf("second connection answered %v after the first's request, before its %v idle close: no cap", after, idle)
	}
	if d := <-closed; d < idle {
		t.Errorf("idle connection closed after %v, before the %v idle timeout", d, idle)
	}
	b.Close()

	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	big := "X-Big: " + strings.Repeat("a", 64<<10) + "\r\n"
	// Refused with 431, or reset when the server closes with the rest of
	// the headers unread; the default bound (1 MiB) would answer 200.
	if err := get(c, bufio.NewReader(c), path, big); err == nil {
		t.Errorf("64 KiB of headers accepted")
	}
}

type statusError int

func (e statusError) Error() string { return "status " + strconv.Itoa(int(e)) }

func get(c net.Conn, br *bufio.Reader, path, extra string) error {
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(resp.StatusCode)
	}
	return nil
}
