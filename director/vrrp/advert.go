package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol is the IP protocol number of VRRP.
const Protocol = 112

// Version and TypeAdvertisement are the only values RFC 9568 defines.
const (
	Version           = 3
	TypeAdvertisement = 1
)

// HeaderLen is the fixed VRRPv3 header before the address list.
const HeaderLen = 8

// MaxInterval is the largest advert interval the 12-bit field can carry.
const MaxInterval = 4095 * 10 * time.Millisecond

// Multicast groups and the TTL/hop limit every advert must carry.
var (
	GroupV4 = netip.MustParseAddr("224.0.0.18")
	GroupV6 = netip.MustParseAddr("ff02::12")
)

// TTL is the required IPv4 TTL / IPv6 hop limit of adverts (RFC 9568 5.1.1.3).
const TTL = 255

// Errors returned by Parse; match with errors.Is.
var (
	ErrShort    = errors.New("vrrp: packet too short")
	ErrVersion  = errors.New("vrrp: unsupported version")
	ErrType     = errors.New("vrrp: unknown type")
	ErrLength   = errors.New("vrrp: length does not match address count")
	ErrFamily   = errors.New("vrrp: address family mismatch")
	ErrChecksum = errors.New("vrrp: bad checksum")
	ErrInterval = errors.New("vrrp: advert interval out of range")
	ErrNoAddrs  = errors.New("vrrp: no addresses")
)

// Advert is one VRRPv3 advertisement.
type Advert struct {
	Version  uint8 // 3
	Type     uint8 // 1 = ADVERTISEMENT
	VRID     uint8
	Priority uint8
	// MaxAdvertInterval is in centiseconds; only the low 12 bits go on the wire.
	MaxAdvertInterval uint16
	Addrs             []netip.Addr
	// Auth is the golvs authentication trailer, nil on plain RFC adverts.
	Auth *AuthTrailer
}

// Interval converts MaxAdvertInterval to a duration.
func (a Advert) Interval() time.Duration {
	return time.Duration(a.MaxAdvertInterval) * 10 * time.Millisecond
}

// Centiseconds converts an advert interval to the wire unit, rounding down
// and clamping to 1..4095.
func Centiseconds(d time.Duration) uint16 {
	cs := d / (10 * time.Millisecond)
	switch {
	case cs < 1:
		return 1
	case cs > 4095:
		return 4095
	}
	return uint16(cs)
}

func addrLen(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 16
}

// Marshal encodes a plain RFC 9568 advert sent from src to dst, with the
// checksum over the pseudo-header of that family.
func (a Advert) Marshal(src, dst netip.Addr) ([]byte, error) {
	b, err := a.appendBody(src, dst, nil)
	if err != nil {
		return nil, err
	}
	putChecksum(b, src, dst)
	return b, nil
}

// appendBody writes header and addresses with a zero checksum, followed by
// trailer. The checksum is left for the caller.
func (a Advert) appendBody(src, dst netip.Addr, trailer []byte) ([]byte, error) {
	if err := checkFamilies(src, dst, a.Addrs); err != nil {
		return nil, err
	}
	if a.MaxAdvertInterval == 0 || a.MaxAdvertInterval > 0x0fff {
		return nil, fmt.Errorf("%w: %d cs", ErrInterval, a.MaxAdvertInterval)
	}
	if len(a.Addrs) > 255 {
		return nil, fmt.Errorf("%w: %d addresses", ErrLength, len(a.Addrs))
	}
	v, t := a.Version, a.Type
	if v == 0 {
		v = Version
	}
	if t == 0 {
		t = TypeAdvertisement
	}
	n := HeaderLen + len(a.Addrs)*addrLen(src) + len(trailer)
	b := make([]byte, HeaderLen, n)
	b[0] = v<<4 | t&0x0f
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addrs))
	binary.BigEndian.PutUint16(b[4:], a.MaxAdvertInterval&0x0fff)
	for _, ad := range a.Addrs {
		b = append(b, ad.AsSlice()...)
	}
	return append(b, trailer...), nil
}

func checkFamilies(src, dst netip.Addr, addrs []netip.Addr) error {
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return fmt.Errorf("%w: src %v dst %v", ErrFamily, src, dst)
	}
	if len(addrs) == 0 {
		return ErrNoAddrs
	}
	for _, a := range addrs {
		if a.Is4() != src.Is4() || a.Is4In6() {
			return fmt.Errorf("%w: %v in a %v advert", ErrFamily, a, src)
		}
	}
	return nil
}

// Parse decodes and validates an advert received from src for dst (the IP
// header's addresses, which the checksum covers). It accepts an optional
// golvs auth trailer after the addresses but does not verify it; see
// Key.Verify.
func Parse(b []byte, src, dst netip.Addr) (Advert, error) {
	if len(b) < HeaderLen {
		return Advert{}, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() || src.Is4In6() || dst.Is4In6() {
		return Advert{}, fmt.Errorf("%w: src %v dst %v", ErrFamily, src, dst)
	}
	a := Advert{
		Version:           b[0] >> 4,
		Type:              b[0] & 0x0f,
		VRID:              b[1],
		Priority:          b[2],
		MaxAdvertInterval: binary.BigEndian.Uint16(b[4:]) & 0x0fff,
	}
	if a.Version != Version {
		return Advert{}, fmt.Errorf("%w: %d", ErrVersion, a.Version)
	}
	if a.Type != TypeAdvertisement {
		return Advert{}, fmt.Errorf("%w: %d", ErrType, a.Type)
	}
	if a.MaxAdvertInterval == 0 {
		// No sender means it, and timers built on it would spin.
		return Advert{}, fmt.Errorf("%w: 0 cs", ErrInterval)
	}
	count := int(b[3])
	if count == 0 {
		return Advert{}, ErrNoAddrs
	}
	alen := addrLen(src)
	end := HeaderLen + count*alen
	switch rest := len(b) - end; {
	case rest == 0:
	case rest == authTrailerLen && string(b[end:end+len(authMagic)]) == authMagic:
	default:
		return Advert{}, fmt.Errorf("%w: %d bytes for %d addresses", ErrLength, len(b), count)
	}
	if checksum(b, src, dst) != 0 {
		return Advert{}, ErrChecksum
	}
	a.Addrs = make([]netip.Addr, 0, count)
	for off := HeaderLen; off < end; off += alen {
		ad, _ := netip.AddrFromSlice(b[off : off+alen])
		a.Addrs = append(a.Addrs, ad)
	}
	if end < len(b) {
		a.Auth = parseTrailer(b[end:])
	}
	return a, nil
}

// putChecksum fills bytes 6..7 of an advert whose checksum field is zero.
func putChecksum(b []byte, src, dst netip.Addr) {
	binary.BigEndian.PutUint16(b[6:], checksum(b, src, dst))
}

// checksum is the Internet checksum over the pseudo-header (RFC 791 style for
// IPv4, RFC 8200 8.1 for IPv6) and the VRRP message. Over a packet with a
// correct checksum it returns 0.
func checksum(b []byte, src, dst netip.Addr) uint16 {
	var sum uint32
	add := func(p []byte) {
		for len(p) >= 2 {
			sum += uint32(p[0])<<8 | uint32(p[1])
			p = p[2:]
		}
		if len(p) == 1 {
			sum += uint32(p[0]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	// Length and next header: both layouts reduce to these two words when
	// the length fits in 16 bits.
	sum += uint32(len(b)) & 0xffff
	sum += uint32(len(b)) >> 16
	sum += Protocol
	add(b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
