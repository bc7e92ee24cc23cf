package vrrp

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// The golvs authentication trailer follows the address list:
//
//	"GLV1" | counter (uint64, big endian) | HMAC-SHA256 (32 bytes)
//
// The MAC covers the sender's source address, then the whole VRRP message up
// to the MAC with the checksum field zero. The checksum itself covers the
// trailer too, so the packet is a well-formed IP payload; RFC-only peers see a
// length that does not match the address count and drop it, which is the
// intended outcome: authentication is golvs-to-golvs only.
const (
	authMagic      = "GLV1"
	authMACLen     = sha256.Size
	authTrailerLen = len(authMagic) + 8 + authMACLen
	minKeyLen      = 16
)

// Errors of the authentication extension.
var (
	ErrKeyMode  = errors.New("vrrp: auth key file must not be accessible by group or others (mode 0600)")
	ErrKeyShort = errors.New("vrrp: auth key too short")
	ErrUnsigned = errors.New("vrrp: advert carries no auth trailer")
	ErrBadMAC   = errors.New("vrrp: advert MAC does not verify")
	ErrReplay   = errors.New("vrrp: advert counter replayed")
)

// AuthTrailer is the parsed trailer of a signed advert.
type AuthTrailer struct {
	Counter uint64
	MAC     [authMACLen]byte
}

func parseTrailer(b []byte) *AuthTrailer {
	t := &AuthTrailer{Counter: binary.BigEndian.Uint64(b[len(authMagic):])}
	copy(t.MAC[:], b[len(authMagic)+8:])
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

// MarshalSigned encodes a with an auth trailer carrying counter.
func (a Advert) MarshalSigned(src, dst netip.Addr, k *Key, counter uint64) ([]byte, error) {
	trailer := make([]byte, authTrailerLen)
	copy(trailer, authMagic)
	binary.BigEndian.PutUint64(trailer[len(authMagic):], counter)
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

// Auth signs outgoing adverts and verifies incoming ones with one key,
// rejecting a counter not above the last one seen from the same source.
// Counters start at the wall clock in nanoseconds so a restarted sender
// continues above what its peers remember. Not safe for concurrent use.
type Auth struct {
	key  *Key
	next uint64
	seen map[netip.Addr]uint64
}

// NewAuth returns an Auth for key.
func NewAuth(key *Key) *Auth {
	return &Auth{key: key, seen: make(map[netip.Addr]uint64)}
}

// Seal marshals a signed advert.
func (au *Auth) Seal(a Advert, src, dst netip.Addr, now time.Time) ([]byte, error) {
	c := max(au.next, uint64(now.UnixNano()))
	b, err := a.MarshalSigned(src, dst, au.key, c)
	if err != nil {
		return nil, err
	}
	au.next = c + 1
	return b, nil
}

// Open parses, authenticates and replay-checks a packet from src to dst.
func (au *Auth) Open(b []byte, src, dst netip.Addr) (Advert, error) {
	a, err := Parse(b, src, dst)
	if err != nil {
		return Advert{}, err
	}
	if a.Auth == nil {
		return Advert{}, ErrUnsigned
	}
	t, err := au.key.Verify(b, src)
	if err != nil {
		return Advert{}, err
	}
	if last, ok := au.seen[src]; ok && t.Counter <= last {
		return Advert{}, fmt.Errorf("%w: %d <= %d from %v", ErrReplay, t.Counter, last, src)
	}
	au.seen[src] = t.Counter
	return a, nil
}
