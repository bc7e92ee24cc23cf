// Package bgp announces the VIPs this director should carry as host routes
// over BGP, with GoBGP embedded as a library, so that several directors
// can be active behind one ECMP router. It is the second announcer beside
// the VRRP VIP holder: the director decides which VIPs to carry and calls
// Set with the whole wanted set.
package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/golvs/golvs/config"
)

// Config is what a Speaker needs; FromTopology builds it from [bgp].
type Config struct {
	ASN      uint32
	RouterID netip.Addr // IPv4, required
	Peers    []Peer
	// ListenPort is where GoBGP accepts sessions; 0 = it does not listen
	// and the director opens every session itself (routers connect
	// actively too, but one side dialling is enough). Tests pass a port.
	ListenPort int32
	// ListenAddresses restricts the listener (tests: one loopback address
	// per speaker); empty = all.
	ListenAddresses []netip.Addr
	// NextHop4/NextHop6 are announced as the next hop; invalid (zero) =
	// the local address of each session, which is what a router on the
	// director's segment needs.
	NextHop4, NextHop6 netip.Addr
}

// Peer is one BGP neighbour.
type Peer struct {
	Address netip.Addr
	ASN     uint32
	// Port is the peer's BGP port; 0 = 179.
	Port uint16
	// LocalAddress is the session's source; invalid = chosen by routing.
	LocalAddress netip.Addr
	// HoldTime proposed in OPEN; 0 = GoBGP's default of 90s. Keepalives go
	// every third of it.
	HoldTime time.Duration
	// BFD runs GoBGP's native BFD (RFC 5880/5881 single hop) with the
	// peer at BFDInterval x BFDMultiplier detection time.
	BFD bool
	// Password is the TCP MD5 key; "" = none.
	Password string
}

// BFD timers: 300ms x 3 detects a dead path in under a second, slow
// enough that a loaded director does not flap.
const (
	BFDInterval   = 300 * time.Millisecond
	BFDMultiplier = 3
)

// connectRetry is how soon a lost session is retried (GoBGP's default is
// 120s, which would leave a recovered director out of the ECMP group for
// two minutes).
const connectRetry = 5 * time.Second

// ErrPasswordMode: a TCP MD5 key readable by others is refused.
var ErrPasswordMode = errors.New("bgp: password file must not be accessible by group or others (mode 0600)")

// FromTopology converts [bgp] into a Config. routerID is used when the file
// names none (the caller looks up [director] interface's first IPv4
// address: RouterIDOf). Password files are read here.
func FromTopology(b *config.BGP, routerID netip.Addr) (Config, error) {
	c := Config{ASN: b.ASN, RouterID: b.RouterID}
	if !c.RouterID.IsValid() {
		c.RouterID = routerID
	}
	if !c.RouterID.Is4() {
		return Config{}, fmt.Errorf("bgp: no IPv4 router id (set router_id or give [director] interface an IPv4 address)")
	}
	for _, p := range b.Peers {
		peer := Peer{Address: p.Address, ASN: p.ASN, HoldTime: p.HoldTime, BFD: p.BFD}
		if p.PasswordFile != "" {
			pw, err := readPassword(p.PasswordFile)
			if err != nil {
				return Config{}, fmt.Errorf("bgp: peer %s: %w", p.Address, err)
			}
			peer.Password = pw
		}
		c.Peers = append(c.Peers, peer)
	}
	return c, nil
}

// readPassword reads a TCP MD5 key file: its first line, which must not be
// empty; the kernel takes at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
func readPassword(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: %s is %v", ErrPasswordMode, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	switch {
	case pw == "":
		return "", fmt.Errorf("%s: the first line (the key) is empty", path)
	case len(pw) > 80:
		return "", fmt.Errorf("%s: the key is %d bytes; TCP MD5 takes at most 80", path, len(pw))
	}
	return pw, nil
}

func (c Config) validate() error {
	if c.ASN == 0 {
		return errors.New("bgp: ASN 0")
	}
	if !c.RouterID.Is4() {
		return fmt.Errorf("bgp: router id %v is not IPv4", c.RouterID)
	}
	for _, p := range c.Peers {
		if !p.Address.IsValid() || p.ASN == 0 {
			return fmt.Errorf("bgp: peer %v AS %d is incomplete", p.Address, p.ASN)
		}
	}
	return nil
}
