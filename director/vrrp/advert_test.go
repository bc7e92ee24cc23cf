package vrrp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	v4Src = netip.MustParseAddr("192.168.0.1")
	v6Src = netip.MustParseAddr("fe80::1")
)

// v4Packet: VRID 51, priority 100, one address 192.168.0.198, 1 s interval,
// from 192.168.0.1 to 224.0.0.18.
//
// Checksum by hand, 16-bit words:
//
//	pseudo-header: c0a8 0001 e000 0012, zero|proto 0070, length 000c
//	  c0a8+0001+e000+0012+0070+000c = 1a137
//	VRRP: 3133 6401 0064 (checksum 0000) c0a8 00c6
//	  3133+6401+0064+c0a8+00c6     = 15706
//	total 1a137+15706 = 2f83d; fold f83d+2 = f83f; complement = 07c0
var v4Packet = []byte{
	0x31, 0x33, 0x64, 0x01, // version 3 type 1, VRID 51, priority 100, 1 address
	0x00, 0x64, 0x07, 0xc0, // rsvd|interval 100 cs, checksum
	192, 168, 0, 198,
}

// v6Packet: the same advert for 2001:db8::c6 from fe80::1 to ff02::12.
//
//	pseudo-header: fe80 (0000 x6) 0001, ff02 (0000 x6) 0012,
//	               length 0000 0018, zero|next header 0000 0070
//	  fe80+0001+ff02+0012+0018+0070 = 1fe1d
//	VRRP: 3133 6401 0064 (0000) 2001 0db8 (0000 x5) 00c6
//	  3133+6401+0064+2001+0db8+00c6 = c417
//	total 1fe1d+c417 = 2c234; fold c234+2 = c236; complement = 3dc9
var v6Packet = []byte{
	0x31, 0x33, 0x64, 0x01,
	0x00, 0x64, 0x3d, 0xc9,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xc6,
}

func v4Advert() Advert {
	return Advert{Version: 3, Type: 1, VRID: 51, Priority: 100, MaxAdvertInterval: 100,
		Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.198")}}
}

func v6Advert() Advert {
	return Advert{Version: 3, Type: 1, VRID: 51, Priority: 100, MaxAdvertInterval: 100,
		Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::c6")}}
}

func TestMarshalHandBuilt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a        Advert
		src, dst netip.Addr
		want     []byte
	}{
		{"v4", v4Advert(), v4Src, GroupV4, v4Packet},
		{"v6", v6Advert(), v6Src, GroupV6, v6Packet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.a.Marshal(tc.src, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Marshal (-want +got):\n%s", diff)
			}
			back, err := Parse(tc.want, tc.src, tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.a, back, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	mod := func(p []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), p...)) }
	for _, tc := range []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     error
	}{
		{"short", v4Packet[:7], v4Src, GroupV4, ErrShort},
		{"version 2", mod(v4Packet, func(b []byte) []byte { b[0] = 0x21; return b }), v4Src, GroupV4, ErrVersion},
		{"type 2", mod(v4Packet, func(b []byte) []byte { b[0] = 0x32; return b }), v4Src, GroupV4, ErrType},
		{"count too high", mod(v4Packet, func(b []byte) []byte { b[3] = 2; return b }), v4Src, GroupV4, ErrLength},
		{"count zero", mod(v4Packet, func(b []byte) []byte { b[3] = 0; return b }), v4Src, GroupV4, ErrNoAddrs},
		{"trailing junk", append(append([]byte(nil), v4Packet...), 0, 0, 0, 0), v4Src, GroupV4, ErrLength},
		{"interval 0", mod(v4Packet, func(b []byte) []byte { b[5] = 0; return b }), v4Src, GroupV4, ErrInterval},
		{"bad checksum", mod(v4Packet, func(b []byte) []byte { b[7] ^= 1; return b }), v4Src, GroupV4, ErrChecksum},
		{"wrong pseudo src", v4Packet, netip.MustParseAddr("192.168.0.2"), GroupV4, ErrChecksum},
		{"v4 body v6 header", v4Packet, v6Src, GroupV6, ErrLength},
		{"mixed src dst", v4Packet, v4Src, GroupV6, ErrFamily},
		{"v6 wrong dst", v6Packet, v6Src, netip.MustParseAddr("ff02::1"), ErrChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.b, tc.src, tc.dst)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	a := v4Advert()
	a.Addrs = append(a.Addrs, netip.MustParseAddr("2001:db8::1"))
	if _, err := a.Marshal(v4Src, GroupV4); !errors.Is(err, ErrFamily) {
		t.Errorf("mixed families: err = %v, want ErrFamily", err)
	}
	a = v4Advert()
	a.MaxAdvertInterval = 4096
	if _, err := a.Marshal(v4Src, GroupV4); !errors.Is(err, ErrInterval) {
		t.Errorf("interval 4096: err = %v, want ErrInterval", err)
	}
}

func TestCentiseconds(t *testing.T) {
	for d, want := range map[time.Duration]uint16{
		time.Second: 100, 250 * time.Millisecond: 25, time.Millisecond: 1, time.Hour: 4095,
	} {
		if got := Centiseconds(d); got != want {
			t.Errorf("Centiseconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func testKey(t *testing.T) *Key {
	t.Helper()
	k, err := NewKey([]byte("0123456789abcdef-golvs"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAuthRoundTripAndRejects(t *testing.T) {
	k := testKey(t)
	now := time.Unix(1_700_000_000, 0)
	for _, fam := range []struct {
		name     string
		a        Advert
		src, dst netip.Addr
	}{{"v4", v4Advert(), v4Src, GroupV4}, {"v6", v6Advert(), v6Src, GroupV6}} {
		t.Run(fam.name, func(t *testing.T) {
			tx, rx := NewAuth(k), NewAuth(k)
			if tx.Epoch() == rx.Epoch() || tx.Epoch() == 0 {
				t.Fatalf("epochs %x and %x: not random", tx.Epoch(), rx.Epoch())
			}
			b1, err := tx.Seal(fam.a, fam.src, fam.dst)
			if err != nil {
				t.Fatal(err)
			}
			// The plain prefix is byte-identical except for count-covered
			// length and checksum: the trailer is strictly appended.
			if len(b1) != HeaderLen+len(fam.a.Addrs)*addrLen(fam.src)+authTrailerLen {
				t.Fatalf("signed length %d", len(b1))
			}
			got, v, err := rx.Open(b1, fam.src, fam.dst, now)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got.Auth == nil || got.Auth.Epoch != tx.Epoch() || got.Auth.Seq != 1 || got.Auth.Echo != 0 || got.Priority != 100 {
				t.Errorf("Open = %+v", got)
			}
			if v.Fresh || !v.Ask || v.Challenge {
				t.Errorf("first advert of an unknown epoch: verdict %+v, want unproven and ask", v)
			}
			// Same packet again: replay.
			if _, _, err := rx.Open(b1, fam.src, fam.dst, now); !errors.Is(err, ErrReplay) {
				t.Errorf("replay: err = %v, want ErrReplay", err)
			}
			// The next one is accepted, still unproven.
			b2, _ := tx.Seal(fam.a, fam.src, fam.dst)
			if _, v, err := rx.Open(b2, fam.src, fam.dst, now); err != nil || v.Fresh {
				t.Errorf("second advert: %+v, %v", v, err)
			}
			// Plain advert: unsigned.
			plain, _ := fam.a.Marshal(fam.src, fam.dst)
			if _, _, err := rx.Open(plain, fam.src, fam.dst, now); !errors.Is(err, ErrUnsigned) {
				t.Errorf("plain: err = %v, want ErrUnsigned", err)
			}
			// Priority raised by an attacker who fixes the checksum.
			forged := append([]byte(nil), b2...)
			forged[2] = 254
			forged[6], forged[7] = 0, 0
			putChecksum(forged, fam.src, fam.dst)
			if _, _, err := rx.Open(forged, fam.src, fam.dst, now); !errors.Is(err, ErrBadMAC) {
				t.Errorf("forged: err = %v, want ErrBadMAC", err)
			}
			// The echo forged to prove an epoch: the MAC covers it.
			forged = append([]byte(nil), b2...)
			echoAt := len(forged) - authTrailerLen + len(authMagic) + 16
			binary.BigEndian.PutUint64(forged[echoAt:], rx.Epoch())
			forged[6], forged[7] = 0, 0
			putChecksum(forged, fam.src, fam.dst)
			if _, _, err := rx.Open(forged, fam.src, fam.dst, now); !errors.Is(err, ErrBadMAC) {
				t.Errorf("forged echo: err = %v, want ErrBadMAC", err)
			}
			// Another key.
			other, _ := NewKey([]byte("another-key-of-16-bytes"))
			b3, _ := NewAuth(other).Seal(fam.a, fam.src, fam.dst)
			if _, _, err := rx.Open(b3, fam.src, fam.dst, now); !errors.Is(err, ErrBadMAC) {
				t.Errorf("other key: err = %v, want ErrBadMAC", err)
			}
			// A version 1 trailer (same length as before, old magic) is
			// not an auth trailer any more.
			v1 := append([]byte(nil), b2[:len(b2)-authTrailerLen]...)
			v1 = append(v1, []byte("GLV1")...)
			v1 = append(v1, make([]byte, 8+authMACLen)...)
			v1[6], v1[7] = 0, 0
			putChecksum(v1, fam.src, fam.dst)
			if _, _, err := rx.Open(v1, fam.src, fam.dst, now); !errors.Is(err, ErrLength) {
				t.Errorf("GLV1 trailer: err = %v, want ErrLength", err)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte("0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(p); !errors.Is(err, ErrKeyMode) {
		t.Errorf("0644: err = %v, want ErrKeyMode", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(p)
	if err != nil {
		t.Fatalf("0600: %v", err)
	}
	if string(k.secret) != "0123456789abcdef" {
		t.Errorf("secret %q: trailing newline kept", k.secret)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(short); !errors.Is(err, ErrKeyShort) {
		t.Errorf("short: err = %v, want ErrKeyShort", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(v4Packet, false)
	f.Add(v6Packet, true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := v4Src, GroupV4
		if v6 {
			src, dst = v6Src, GroupV6
		}
		a, err := Parse(b, src, dst)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to the same bytes, except that reserved
		// bits are dropped and the checksum may pick the other one's
		// complement zero (0x0000 vs 0xffff); the result must parse again.
		if a.Auth != nil || b[4]&0xf0 != 0 {
			return
		}
		out, err := a.Marshal(src, dst)
		if err != nil {
			t.Fatalf("re-marshal of parsed advert: %v", err)
		}
		if _, err := Parse(out, src, dst); err != nil {
			t.Fatalf("re-marshalled advert does not parse: %v", err)
		}
		want := append([]byte(nil), b...)
		want[6], want[7], out[6], out[7] = 0, 0, 0, 0
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatalf("round trip (-in +out):\n%s", diff)
		}
	})
}

// FuzzAuthOpen feeds signed-advert parsing and verification arbitrary
// bytes, seeded with real signed adverts and a challenge. Whatever is
// accepted must be exactly what MarshalSigned makes of its parsed fields
// (so no byte escapes the MAC), and Open must never panic.
func FuzzAuthOpen(f *testing.F) {
	k, err := NewKey([]byte("0123456789abcdef-golvs"))
	if err != nil {
		f.Fatal(err)
	}
	tx := NewAuth(k)
	for _, v6 := range []bool{false, true} {
		a, src, dst := v4Advert(), v4Src, GroupV4
		if v6 {
			a, src, dst = v6Advert(), v6Src, GroupV6
		}
		b, _ := tx.Seal(a, src, dst)
		f.Add(b, v6)
		b, _ = tx.SealChallenge(a, src, dst)
		f.Add(b, v6)
		b, _ = tx.SealAnswer(a, src, dst, 42)
		f.Add(b, v6)
	}
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := v4Src, GroupV4
		if v6 {
			src, dst = v6Src, GroupV6
		}
		a, _, err := NewAuth(k).Open(b, src, dst, time.Unix(0, 0))
		if err != nil || b[4]&0xf0 != 0 {
			return // reserved bits: MAC-covered, but not ours to re-encode
		}
		tr := *a.Auth
		a.Auth = nil
		out, err := a.MarshalSigned(src, dst, k, tr)
		if err != nil {
			t.Fatalf("accepted advert does not re-marshal: %v", err)
		}
		want := append([]byte(nil), b...)
		want[6], want[7], out[6], out[7] = 0, 0, 0, 0
		if diff := cmp.Diff(want, out); diff != "" {
			t.Fatalf("accepted bytes differ from their re-signed form (-in +out):\n%s", diff)
		}
	})
}
