package check

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/golvs/golvs/health/internal/minheap"
)

// waiter watches the TCP connects that were still under way when connect
// returned, as they are with backends a round trip away: one epoll
// instance and one goroutine for all of them, where the runtime's poller
// would cost a goroutine, a file, two timers and a context per probe.
type waiter struct {
	once sync.Once
	err  error // setting up failed: callers wait on their own
	epfd int
	evfd int // wakes the loop for an earlier deadline

	mu         sync.Mutex
	byFD       map[int32]*connecting
	queue      *minheap.Heap[*connecting] // by deadline
	sleeping   bool                       // the loop is (about to be) in epoll_wait
	sleepUntil time.Time                  // until when; zero: until an event
}

// connecting is one connect under way.
type connecting struct {
	fd       int
	family   int
	sa       rawAddr
	deadline time.Time
	report   func(error)
	index    int // in waiter.queue
}

var waiting waiter

// wait reports c's outcome through c.report, once, from the waiter's
// goroutine: nil when connected, the socket's error, or
// context.DeadlineExceeded at c.deadline. An error means the waiter cannot
// take c, which is left to the caller.
func (w *waiter) wait(c *connecting) error {
	w.once.Do(w.setUp)
	if w.err != nil {
		return w.err
	}
	w.mu.Lock()
	// Registered under the lock: an event that came before c was in byFD
	// would be lost.
	ev := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: int32(c.fd)}
	if err := epollCtl(w.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		w.mu.Unlock()
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	w.byFD[int32(c.fd)] = c
	w.queue.Push(c)
	wake := w.sleeping && (w.sleepUntil.IsZero() || c.deadline.Before(w.sleepUntil))
	if wake {
		w.sleeping = false // one wake-up is enough
	}
	w.mu.Unlock()
	if wake {
		_, _ = unix.Write(w.evfd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
	return nil
}

func (w *waiter) setUp() {
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		w.err = fmt.Errorf("epoll_create: %w", err)
		return
	}
	if w.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		unix.Close(w.epfd)
		w.err = fmt.Errorf("eventfd: %w", err)
		return
	}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, w.evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(w.evfd)}); err != nil {
		unix.Close(w.epfd)
		unix.Close(w.evfd)
		w.err = fmt.Errorf("epoll_ctl: %w", err)
		return
	}
	w.byFD = make(map[int32]*connecting)
	w.queue = minheap.New(func(a, b *connecting) bool { return a.deadline.Before(b.deadline) },
		func(c *connecting, i int) { c.index = i })
	go w.loop()
}

// outcome is a finished connect.
type outcome struct {
	c   *connecting
	err error
}

func (w *waiter) loop() {
	events := make([]unix.EpollEvent, 256)
	var done []outcome
	for {
		w.mu.Lock()
		timeout := -1
		w.sleeping, w.sleepUntil = true, time.Time{}
		if w.queue.Len() > 0 {
			w.sleepUntil = w.queue.Head().deadline
			// Rounded up: epoll counts milliseconds, and waking early
			// would only spin.
			timeout = int((time.Until(w.sleepUntil) + time.Millisecond - 1) / time.Millisecond)
			timeout = max(timeout, 0)
		}
		w.mu.Unlock()
		n, err := unix.EpollWait(w.epfd, events, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			// Not expected from a valid epoll descriptor; do not spin.
			time.Sleep(10 * time.Millisecond)
		}
		now := time.Now()
		done = done[:0]
		w.mu.Lock()
		w.sleeping = false
		for _, ev := range events[:max(n, 0)] {
			if ev.Fd == int32(w.evfd) {
				var b [8]byte
				_, _ = unix.Read(w.evfd, b[:])
				continue
			}
			c := w.byFD[ev.Fd]
			if c == nil {
				continue
			}
			finished, err := connectDone(c.fd, &c.sa)
			if !finished {
				// Spurious: listen again (one-shot events need re-arming).
				rearm := unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLONESHOT, Fd: ev.Fd}
				_ = epollCtl(w.epfd, unix.EPOLL_CTL_MOD, c.fd, &rearm)
				continue
			}
			delete(w.byFD, ev.Fd)
			w.queue.Remove(c.index)
			done = append(done, outcome{c, err})
		}
		for w.queue.Len() > 0 && !w.queue.Head().deadline.After(now) {
			c := w.queue.Pop()
			delete(w.byFD, int32(c.fd))
			done = append(done, outcome{c, context.DeadlineExceeded})
		}
		w.mu.Unlock()
		for _, o := range done {
			w.finish(o)
		}
		if len(done) > 0 {
			// Let more handshakes finish before looking again: one
			// wake-up per event would cost more than the probes.
			time.Sleep(gather)
		}
		clear(done)
	}
}

// gather is how long the waiter lets answers pile up between looks. A
// probe's result may come this much late, which rise/fall never notice.
const gather = 5 * time.Millisecond

// finish hands the socket back (reset and pooled when it got an answer,
// closed when it did not) and reports.
func (w *waiter) finish(o outcome) {
	c := o.c
	if o.err == context.DeadlineExceeded || epollCtl(w.epfd, unix.EPOLL_CTL_DEL, c.fd, nil) != nil {
		unix.Close(c.fd) // also leaves the epoll set
	} else {
		idle.put(c.family, c.fd)
	}
	if o.err != nil {
		c.report(fmt.Errorf("connect: %w", o.err))
		return
	}
	c.report(nil)
}

// epollCtl is epoll_ctl(2), which never sleeps, without the runtime's
// system call bookkeeping (see connect).
func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
