package check

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/golvs/golvs/health/internal/testnet"
)

// start runs TCP.Start and returns a channel with its one result,
// whether it finished at once or was reported later.
func start(t *testing.T, c TCP, addr string, deadline time.Time) <-chan Result {
	t.Helper()
	out := make(chan Result, 2)
	if res, ok := c.Start(target(t, addr), deadline, func(r Result) { out <- r }); ok {
		out <- res
	}
	return out
}

func one(t *testing.T, ch <-chan Result, within time.Duration) Result {
	t.Helper()
	select {
	case r := <-ch:
		select {
		case r2 := <-ch:
			t.Fatalf("reported twice: %v then %v", r.Err, r2.Err)
		case <-time.After(20 * time.Millisecond):
		}
		return r
	case <-time.After(within):
		t.Fatalf("no result within %v", within)
	}
	return Result{}
}

// TestTCPStartWaits sends every probe through the waiter: connected,
// refused and unanswered handshakes each report once, with the verdict
// the blocking Check gives.
func TestTCPStartWaits(t *testing.T) {
	wait := TCP{AlwaysWait: true}
	deadline := time.Now().Add(testTimeout)
	live := start(t, wait, testnet.Accepting(t).String(), deadline)
	dead := start(t, wait, testnet.Refusing(t).String(), deadline)
	began := time.Now()
	silent := start(t, wait, testnet.NewFull(t).Addr.String(), time.Now().Add(testTimeout))
	if r := one(t, live, time.Second); r.Err != nil {
		t.Errorf("live: %v", r.Err)
	}
	if r := one(t, dead, time.Second); !errors.Is(r.Err, syscall.ECONNREFUSED) {
		t.Errorf("refusing: %v, want connection refused", r.Err)
	}
	r := one(t, silent, 2*time.Second)
	if r.Err == nil || r.Err.Error() != "connect: context deadline exceeded" {
		t.Errorf("silent: %v, want the deadline", r.Err)
	}
	if took := time.Since(began); took < testTimeout || took > testTimeout+500*time.Millisecond {
		t.Errorf("silent backend reported after %v, want about %v", took, testTimeout)
	}
}

// TestTCPStartEarlierDeadline: a connect with an earlier deadline than
// any the waiter sleeps for wakes it.
func TestTCPStartEarlierDeadline(t *testing.T) {
	addr := testnet.NewFull(t).Addr.String()
	late := start(t, TCP{}, addr, time.Now().Add(3*time.Second))
	time.Sleep(50 * time.Millisecond) // the waiter now sleeps for 3s
	began := time.Now()
	early := start(t, TCP{}, addr, time.Now().Add(100*time.Millisecond))
	if r := one(t, early, time.Second); r.Err == nil {
		t.Error("silent backend passed")
	}
	if took := time.Since(began); took > 600*time.Millisecond {
		t.Errorf("100ms deadline reported after %v", took)
	}
	one(t, late, 5*time.Second)
}

// TestTCPStartLateAnswer: a handshake that completes long after connect
// returned (here the listener's queue frees up and the SYN is
// retransmitted) is seen by the waiter.
func TestTCPStartLateAnswer(t *testing.T) {
	full := testnet.NewFull(t)
	res := start(t, TCP{}, full.Addr.String(), time.Now().Add(4*time.Second))
	select {
	case r := <-res:
		t.Fatalf("finished while the queue was full: %v", r.Err)
	case <-time.After(200 * time.Millisecond):
	}
	// The SYN's retransmission (after about a second) is answered.
	full.Free()
	if r := one(t, res, 5*time.Second); r.Err != nil {
		t.Errorf("late answer: %v", r.Err)
	}
}

// TestTCPStartMany: hundreds of connects in flight at once each report
// exactly once, with their own verdict.
func TestTCPStartMany(t *testing.T) {
	live, dead := testnet.Accepting(t).String(), testnet.Refusing(t).String()
	const n = 300
	type answer struct {
		i   int
		err error
	}
	out := make(chan answer, 2*n)
	deadline := time.Now().Add(5 * time.Second)
	for i := range n {
		addr := live
		if i%2 == 1 {
			addr = dead
		}
		report := func(r Result) { out <- answer{i, r.Err} }
		if r, ok := (TCP{AlwaysWait: true}).Start(target(t, addr), deadline, report); ok {
			report(r)
		}
	}
	seen := make(map[int]bool)
	for range n {
		select {
		case a := <-out:
			if seen[a.i] {
				t.Fatalf("probe %d reported twice", a.i)
			}
			seen[a.i] = true
			if refused := errors.Is(a.err, syscall.ECONNREFUSED); (a.i%2 == 1) != refused {
				t.Errorf("probe %d: %v", a.i, a.err)
			}
		case <-time.After(6 * time.Second):
			t.Fatalf("%d of %d probes reported", len(seen), n)
		}
	}
}
