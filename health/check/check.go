// Package check holds the health checkers: one probe of one backend, with
// no memory of earlier probes. Rise/fall and scheduling live in package
// health.
//
// Every checker honours its context: the caller puts the check's timeout on
// it, and a checker returns when it expires, whatever the backend does.
package check

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/golvs/golvs/config"
)

// DefaultAgentPort is where the realserver agent listens unless the check
// names a port (config.DefaultAgentAddress).
const DefaultAgentPort = 9471

// maxBody bounds what any checker reads from a backend, so a hostile or
// broken backend cannot make the director allocate without limit.
const maxBody = 64 << 10

// Target is what one probe is aimed at.
type Target struct {
	Service string
	// Backend is the real server as configured (passed to exec checks).
	Backend netip.AddrPort
	// Addr is where the probe goes: the backend's address with the check's
	// port when it sets one, else the backend's port.
	Addr netip.AddrPort
}

// NewTarget aims cfg at backend b of service svc.
func NewTarget(svc string, b netip.AddrPort, cfg *config.Check) Target {
	port := b.Port()
	if cfg != nil && cfg.Port != 0 {
		port = cfg.Port
	} else if cfg != nil && cfg.Type == config.CheckAgent {
		// The agent is a separate endpoint, not the service port.
		port = DefaultAgentPort
	}
	return Target{Service: svc, Backend: b, Addr: netip.AddrPortFrom(b.Addr(), port)}
}

// Result is the outcome of one probe.
type Result struct {
	// Err is nil when the backend is healthy; its message is the reason
	// shown to operators.
	Err error
	// Drain reports that the backend asked (through its agent) to get no
	// new connections while keeping the ones it has.
	Drain bool
	// WeightPercent is the weight the agent asked for, 0..100, or -1 when
	// it did not ask for one.
	WeightPercent int
}

// Up returns the Result of a plain pass/fail check; an error of the
// director's own limits becomes a *LocalError (Classify).
func Up(err error) Result { return Result{Err: Classify(err), WeightPercent: WeightNotReported} }

// WeightNotReported is a WeightPercent that no agent reported: the
// configured weight is used as is. It is the one spelling of "no weight"
// for checks, health and the director.
const WeightNotReported = -1

// Checker is a pass/fail check: nil means healthy.
type Checker interface {
	Check(ctx context.Context, t Target) error
}

// Prober is what the scheduler runs: a check that may report more than
// pass/fail (the agent check reports drain and weight).
type Prober interface {
	Probe(ctx context.Context, t Target) Result
}

// AsyncProber is a Prober that needs no goroutine of its own per probe.
// A TCP handshake with a nearby backend completes inside connect, and one
// a round trip away can be watched along with thousands of others, so
// the scheduler calls Start on its own goroutine instead of spawning one.
type AsyncProber interface {
	Prober
	// Start begins a probe that must end by deadline, and does not block.
	// It returns the result and true when the probe is over at once;
	// otherwise it returns false and calls report exactly once, later and
	// from another goroutine.
	Start(t Target, deadline time.Time, report func(Result)) (Result, bool)
}

// ProberFunc adapts a function to Prober.
type ProberFunc func(ctx context.Context, t Target) Result

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context, t Target) Result { return f(ctx, t) }

// AsProber turns a pass/fail Checker into a Prober.
func AsProber(c Checker) Prober {
	return ProberFunc(func(ctx context.Context, t Target) Result { return Up(c.Check(ctx, t)) })
}

// ErrUnknownType is returned by New for a check type it does not know.
var ErrUnknownType = errors.New("unknown check type")

// New builds the Prober for cfg. One Prober serves every backend of a
// service: checkers keep no per-backend state.
func New(cfg *config.Check) (Prober, error) {
	switch cfg.Type {
	case config.CheckTCP:
		return TCP{}, nil
	case config.CheckHTTP, config.CheckHTTPS:
		return AsProber(NewHTTP(cfg)), nil
	case config.CheckUDP:
		return AsProber(UDP{Send: cfg.Send, Expect: cfg.Expect}), nil
	case config.CheckDNS:
		d, err := NewDNS(cfg.Query, cfg.QueryType)
		if err != nil {
			return nil, err
		}
		return AsProber(d), nil
	case config.CheckExec:
		if len(cfg.Command) == 0 {
			return nil, errors.New("exec check: empty command")
		}
		return AsProber(Exec{Command: cfg.Command}), nil
	case config.CheckAgent:
		return NewAgent(cfg.Path), nil
	case config.CheckNone:
		return AsProber(None{}), nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownType, cfg.Type)
}

// None is always healthy.
type None struct{}

// Check returns nil.
func (None) Check(context.Context, Target) error { return nil }
