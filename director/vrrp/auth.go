package vrrp

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"
)

// The golvs authentication trailer follows the address list:
//
//	"GLV2" | epoch | seq | echo (uint64 each, big endian) | flags | 3 zero bytes | HMAC-SHA256
//
// The MAC covers the sender's source address, then the whole VRRP message up
// to the MAC with the checksum field zero. The checksum itself covers the
// trailer too, so the packet is a well-formed IP payload; RFC-only peers see a
// length that does not match the address count and drop it, which is the
// intended outcome: authentication is golvs-to-golvs only. The first version
// ("GLV1", a wall-clock counter) is not accepted: its replay window is the
// hole this one closes, so both directors of a pair move to it together.
//
// Freshness without clocks or state files. Each Auth draws a random epoch
// when it is made (once per run of the director) and numbers its messages
// 1, 2, 3... within it; nothing in the trailer depends on a clock, so a
// clock step on either side changes nothing. A receiver accepts each epoch's
// numbers only upwards, so a capture cannot be replayed into the run that
// heard it. What a receiver cannot know alone is whether an epoch it has not
// seen is live (the peer restarted) or a capture of a dead run (an attacker
// replaying after the receiver restarted). The echo field settles it: every
// signed message carries the epoch of the last peer the sender heard, and a
// message that echoes the receiver's own current epoch was necessarily made
// after the receiver started: it proves its epoch live ("proven"). To get
// that proof quickly a receiver that hears an unproven epoch sends a
// challenge (flag bit 0: a message for golvs peers, not an advert), at most
// once per challenge interval; a master answers a challenge at once with an
// advert echoing the challenger's epoch, and its periodic adverts echo the
// last peer it heard, so a live peer is proven within one round trip, or one
// advert interval if the answer is lost.
//
// Until then an unproven advert is trusted in one direction only, and only
// for a while: it may keep a backup waiting (so a backup joining a live
// master does not grab the VIP while its challenge is in flight), but it
// never makes a master yield, never shortens a backup's wait and never sets
// the learned interval. The trust window starts with the first unproven
// advert heard since the last proven one, from any source of our VRID, and
// lasts TrustWindow (the runner uses its own Master_Down_Interval). After it
// unproven adverts are dropped as stale (Drops.Stale). So replayed captures
// keep the VIP unowned for at most TrustWindow + Master_Down_Interval after
// the first replayed advert, however long the capture lasts: 7.2 s for a 1 s
// interval at priority 100 right after a restart (measured 6.6-7.0 s in the
// namespace test, against 15.9 s for 12 replayed adverts before). The
// Master_Down_Interval there is the one learned from proven adverts only,
// itself capped at four times ours (see MachineConfig).
//
// Limits that remain: an attacker on the path who can drop packets can still
// keep the peers apart (no protocol helps there); within the trust window a
// replay can delay a takeover; a replayed advert of a higher-priority dead
// master can keep a live lower-priority master from being preempted (not the
// VIP from being held); the key is shared, so anyone holding it is a peer.
const (
	authMagic      = "GLV2"
	authMACLen     = sha256.Size
	authFieldsLen  = 8 + 8 + 8 + 4
	authTrailerLen = len(authMagic) + authFieldsLen + authMACLen
	minKeyLen      = 16

	flagChallenge = 1 << 0
)

// Errors of the authentication extension.
var (
	ErrKeyMode  = errors.New("vrrp: auth key file must not be accessible by group or others (mode 0600)")
	ErrKeyShort = errors.New("vrrp: auth key too short")
	ErrUnsigned = errors.New("vrrp: advert carries no auth trailer")
	ErrBadMAC   = errors.New("vrrp: advert MAC does not verify")
	ErrReplay   = errors.New("vrrp: advert counter replayed")
	ErrStale    = errors.New("vrrp: unproven advert outside the trust window")
)

// AuthTrailer is the parsed trailer of a signed advert.
type AuthTrailer struct {
	Epoch uint64 // the sender's run, random
	Seq   uint64 // the message's number within the epoch, from 1
	Echo  uint64 // the epoch of the last peer the sender heard; 0 = none
	Flags uint8  // bit 0: challenge
	MAC   [authMACLen]byte
}

// Challenge reports whether the message asks for an echo rather than
// advertising.
func (t AuthTrailer) Challenge() bool { return t.Flags&flagChallenge != 0 }

func parseTrailer(b []byte) *AuthTrailer {
	f := b[len(authMagic):]
	t := &AuthTrailer{
		Epoch: binary.BigEndian.Uint64(f[0:]),
		Seq:   binary.BigEndian.Uint64(f[8:]),
		Echo:  binary.BigEndian.Uint64(f[16:]),
		Flags: f[24],
	}
	copy(t.MAC[:], b[len(authMagic)+authFieldsLen:])
	return t
}

// Key is a shared HMAC key.
type Key struct{ secret []byte }

// NewKey wraps a secret of at least 16 bytes.
func NewKey(secret []byte) (*Key, error) {
	if len(secret) < minKeyLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrKeyShort, len(secret), minKeyLen)
	}
	return &Key{secret: bytes.Clone(secret)}, nil
}

// LoadKey reads a key file, refusing one that group or others may access.
// Surrounding whitespace (a trailing newline from an editor) is not part of
// the key.
func LoadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("vrrp: auth key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vrrp: auth key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is %v", ErrKeyMode, path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("vrrp: auth key %s: %w", path, err)
	}
	k, err := NewKey(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func (k *Key) mac(src netip.Addr, msg []byte) [authMACLen]byte {
	h := hmac.New(sha256.New, k.secret)
	h.Write(src.AsSlice())
	h.Write(msg[:6])
	h.Write([]byte{0, 0}) // checksum field
	h.Write(msg[8:])
	var out [authMACLen]byte
	h.Sum(out[:0])
	return out
}

// MarshalSigned encodes a with an auth trailer carrying t's fields (its MAC
// is computed, not taken).
func (a Advert) MarshalSigned(src, dst netip.Addr, k *Key, t AuthTrailer) ([]byte, error) {
	trailer := make([]byte, authTrailerLen)
	copy(trailer, authMagic)
	f := trailer[len(authMagic):]
	binary.BigEndian.PutUint64(f[0:], t.Epoch)
	binary.BigEndian.PutUint64(f[8:], t.Seq)
	binary.BigEndian.PutUint64(f[16:], t.Echo)
	f[24] = t.Flags
	b, err := a.appendBody(src, dst, trailer)
	if err != nil {
		return nil, err
	}
	m := k.mac(src, b[:len(b)-authMACLen])
	copy(b[len(b)-authMACLen:], m[:])
	putChecksum(b, src, dst)
	return b, nil
}

// Verify checks the MAC of a packet Parse accepted from src.
func (k *Key) Verify(b []byte, src netip.Addr) (AuthTrailer, error) {
	if len(b) < HeaderLen+authTrailerLen {
		return AuthTrailer{}, ErrUnsigned
	}
	body, tail := b[:len(b)-authTrailerLen], b[len(b)-authTrailerLen:]
	if string(tail[:len(authMagic)]) != authMagic || int(b[3])*addrLen(src)+HeaderLen != len(body) {
		return AuthTrailer{}, ErrUnsigned
	}
	t := parseTrailer(tail)
	want := k.mac(src, b[:len(b)-authMACLen])
	if !hmac.Equal(want[:], t.MAC[:]) {
		return AuthTrailer{}, ErrBadMAC
	}
	return *t, nil
}

// DefaultTrustWindow is Auth's trust window until SetTrustWindow.
const DefaultTrustWindow = 3 * time.Second

// maxRetired is how many superseded epochs of one source are remembered
// (and refused) per source; maxAnswered bounds the challenge-answer table.
const (
	maxRetired  = 4
	maxAnswered = 64
)

// Auth signs outgoing messages and decides how far to trust incoming ones;
// see the trailer's description above for the design. Safe for concurrent
// use: the reader opens while the protocol loop seals.
type Auth struct {
	key   *Key
	epoch uint64

	mu            sync.Mutex
	window        time.Duration
	askEvery      time.Duration
	seq           uint64
	echo          uint64
	unprovenSince time.Time // first unproven advert since the last proven one
	peers         map[netip.Addr]*peerAuth
	answered      map[answerKey]time.Time
}

type peerAuth struct {
	epoch, seq    uint64 // proven epoch (0 = none) and its last number
	retired       []uint64
	pending, pseq uint64    // latest unproven epoch and its last number
	asked         time.Time // when we last challenged because of this source
}

type answerKey struct {
	from  netip.Addr
	epoch uint64
}

// Verdict is what Open learned about an accepted (or stale) message.
type Verdict struct {
	Epoch     uint64 // the sender's epoch
	Fresh     bool   // proven: not a replay of an earlier run
	Challenge bool   // a challenge, not an advert: answer it if master
	Ask       bool   // send a challenge now: the sender's epoch is unproven
}

// NewAuth returns an Auth for key with a new random epoch.
func NewAuth(key *Key) *Auth {
	var b [8]byte
	for binary.BigEndian.Uint64(b[:]) == 0 {
		rand.Read(b[:]) // never fails (crypto/rand)
	}
	return &Auth{
		key: key, epoch: binary.BigEndian.Uint64(b[:]),
		window: DefaultTrustWindow, askEvery: time.Second,
		peers: map[netip.Addr]*peerAuth{}, answered: map[answerKey]time.Time{},
	}
}

// Epoch returns this run's epoch.
func (au *Auth) Epoch() uint64 { return au.epoch }

// SetTrustWindow sets how long unproven adverts may keep us waiting, and
// how often we challenge (askEvery, at least once per window).
func (au *Auth) SetTrustWindow(window, askEvery time.Duration) {
	au.mu.Lock()
	defer au.mu.Unlock()
	au.window, au.askEvery = window, min(askEvery, window)
}

func (au *Auth) seal(a Advert, src, dst netip.Addr, echo uint64, flags uint8, useEcho bool) ([]byte, error) {
	au.mu.Lock()
	au.seq++
	t := AuthTrailer{Epoch: au.epoch, Seq: au.seq, Echo: au.echo, Flags: flags}
	au.mu.Unlock()
	if useEcho {
		t.Echo = echo
	}
	return a.MarshalSigned(src, dst, au.key, t)
}

// Seal marshals a signed advert echoing the last peer heard.
func (au *Auth) Seal(a Advert, src, dst netip.Addr) ([]byte, error) {
	return au.seal(a, src, dst, 0, 0, false)
}

// SealAnswer marshals a signed advert echoing epoch: a master's answer to a
// challenge.
func (au *Auth) SealAnswer(a Advert, src, dst netip.Addr, epoch uint64) ([]byte, error) {
	return au.seal(a, src, dst, epoch, 0, true)
}

// SealChallenge marshals a challenge: a signed message in advert form
// that golvs peers do not take for an advert.
func (au *Auth) SealChallenge(a Advert, src, dst netip.Addr) ([]byte, error) {
	return au.seal(a, src, dst, 0, flagChallenge, false)
}

// ShouldAnswer rate-limits answers to challenges: one per challenger and
// epoch per gap, so replayed challenges cannot make us flood.
func (au *Auth) ShouldAnswer(from netip.Addr, epoch uint64, now time.Time, gap time.Duration) bool {
	au.mu.Lock()
	defer au.mu.Unlock()
	k := answerKey{from, epoch}
	if last, ok := au.answered[k]; ok && now.Sub(last) < gap {
		return false
	}
	if len(au.answered) >= maxAnswered {
		clear(au.answered) // only ever costs an extra answer
	}
	au.answered[k] = now
	return true
}

// Open parses, authenticates and classifies a packet from src to dst
// received at now (a monotonic reading). It returns ErrReplay for a message
// already seen or from a superseded epoch, and ErrStale (with a Verdict,
// whose Ask may still be set) for an unproven advert past the trust window.
func (au *Auth) Open(b []byte, src, dst netip.Addr, now time.Time) (Advert, Verdict, error) {
	a, err := Parse(b, src, dst)
	if err != nil {
		return Advert{}, Verdict{}, err
	}
	if a.Auth == nil {
		return Advert{}, Verdict{}, ErrUnsigned
	}
	t, err := au.key.Verify(b, src)
	if err != nil {
		return Advert{}, Verdict{}, err
	}
	au.mu.Lock()
	defer au.mu.Unlock()
	p := au.peers[src]
	if p == nil {
		if len(au.peers) >= 256 {
			clear(au.peers) // only forgets; a peer is proven again by echo
		}
		p = &peerAuth{}
		au.peers[src] = p
	}
	v := Verdict{Epoch: t.Epoch, Challenge: t.Challenge()}
	replay := func(last uint64) (Advert, Verdict, error) {
		return Advert{}, Verdict{}, fmt.Errorf("%w: epoch %x number %d <= %d from %v", ErrReplay, t.Epoch, t.Seq, last, src)
	}
	switch {
	case p.epoch != 0 && t.Epoch == p.epoch:
		if t.Seq <= p.seq {
			return replay(p.seq)
		}
		p.seq = t.Seq
		v.Fresh = true
	case slices.Contains(p.retired, t.Epoch):
		return replay(0)
	case t.Epoch == p.pending && t.Seq <= p.pseq:
		return replay(p.pseq)
	case t.Echo == au.epoch:
		// Made after we started: this epoch is live.
		if p.epoch != 0 {
			p.retired = append(p.retired, p.epoch)
			if len(p.retired) > maxRetired {
				p.retired = p.retired[1:]
			}
		}
		p.epoch, p.seq = t.Epoch, t.Seq
		p.pending, p.pseq = 0, 0
		v.Fresh = true
	default:
		p.pending, p.pseq = t.Epoch, t.Seq
		// Challenges need no proof: only a master answers them, and an
		// answer proves nothing to the master itself.
		if !v.Challenge && (p.asked.IsZero() || now.Sub(p.asked) >= au.askEvery) {
			p.asked = now
			v.Ask = true
		}
	}
	au.echo = t.Epoch
	if v.Fresh {
		if !v.Challenge {
			au.unprovenSince = time.Time{}
		}
		return a, v, nil
	}
	if !v.Challenge {
		if au.unprovenSince.IsZero() {
			au.unprovenSince = now
		}
		if now.Sub(au.unprovenSince) >= au.window {
			return Advert{}, v, fmt.Errorf("%w: epoch %x from %v unproven for %v", ErrStale, t.Epoch, src, now.Sub(au.unprovenSince))
		}
	}
	return a, v, nil
}
