package netlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })

// get sends one keep-alive request on c and reads the answer.
func get(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && string(b) != "ok" {
		err = fmt.Errorf("body %q", b)
	}
	return err
}

// TestIdleConnectionsClosed (issue 18.11): 1,000 keep-alive connections
// that go idle after one request are all closed by the server, none
// before IdleTimeout.
func TestIdleConnectionsClosed(t *testing.T) {
	const n = 1000
	const idle = 500 * time.Millisecond
	l := Limits{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idle, MaxConns: n + 10}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := l.Server(ok)
	go srv.Serve(l.Listener(ln))
	defer srv.Close()

	var wg sync.WaitGroup
	var closed atomic.Int64
	var mu sync.Mutex
	var slowest time.Duration
	for range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			sent := time.Now()
			if err := get(c, br); err != nil {
				t.Error(err)
				return
			}
			// The bound only keeps a server that never closes from
			// hanging the test.
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, err = br.ReadByte()
			after := time.Since(sent)
			if !errors.Is(err, io.EOF) {
				t.Errorf("idle connection not closed by the server: %v after %v", err, after)
				return
			}
			// The server's idle clock starts after it answered, so after
			// the request was sent.
			if after < idle {
				t.Errorf("closed %v after the request, before the %v idle timeout", after, idle)
			}
			closed.Add(1)
			mu.Lock()
			slowest = max(slowest, after)
			mu.Unlock()
		})
	}
	wg.Wait()
	if closed.Load() != n {
		t.Fatalf("%d of %d idle connections closed", closed.Load(), n)
	}
	t.Logf("%d idle connections closed, the last %v after its request (idle timeout %v)", n, slowest, idle)
}

// pipeListener hands out in-memory connections, so that a synctest
// bubble can tell when the server has stopped accepting.
type pipeListener struct {
	queue    chan net.Conn
	done     chan struct{}
	once     sync.Once
	accepted atomic.Int32
}

func newPipeListener() *pipeListener {
	return &pipeListener{queue: make(chan net.Conn, 16), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.queue:
		l.accepted.Add(1)
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.UnixAddr{Name: "pipe", Net: "unix"} }

// dial queues a connection for Accept, as the kernel's accept queue does.
func (l *pipeListener) dial() (net.Conn, *bufio.Reader) {
	c, s := net.Pipe()
	l.queue <- s
	return c, bufio.NewReader(c)
}

// TestConnectionCapWaits (issue 18.11): with MaxConns 2 and two
// keep-alive connections open, a third is not accepted and its request
// waits; it is served once one of the two closes; idle ones are closed
// at IdleTimeout.
func TestConnectionCapWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = time.Minute
		l := Limits{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idle, MaxConns: 2}
		pl := newPipeListener()
		srv := l.Server(ok)
		go srv.Serve(l.Listener(pl))
		defer srv.Close()

		a, abr := pl.dial()
		b, bbr := pl.dial()
		if err := get(a, abr); err != nil {
			t.Fatal(err)
		}
		if err := get(b, bbr); err != nil {
			t.Fatal(err)
		}
		c, cbr := pl.dial()
		served := make(chan error, 1)
		go func() { served <- get(c, cbr) }()
		synctest.Wait()
		if got := pl.accepted.Load(); got != 2 {
			t.Errorf("%d connections accepted, want the cap of 2", got)
		}
		select {
		case err := <-served:
			t.Fatalf("third connection served beyond the cap (err %v)", err)
		default:
		}
		a.Close()
		synctest.Wait()
		select {
		case err := <-served:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("third connection still waits after a slot was freed")
		}

		// b and c now sit idle: both are closed at the idle timeout.
		eof := make(chan error, 2)
		go func() { _, err := bbr.ReadByte(); eof <- err }()
		go func() { _, err := cbr.ReadByte(); eof <- err }()
		time.Sleep(idle - time.Second)
		synctest.Wait()
		if len(eof) != 0 {
			t.Fatal("an idle connection closed before the idle timeout")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		for range 2 {
			select {
			case err := <-eof:
				if !errors.Is(err, io.EOF) {
					t.Errorf("idle connection: %v, want EOF", err)
				}
			default:
				t.Error("idle connection still open after the idle timeout")
			}
		}
		b.Close()
		c.Close()
	})
}
