//go:build !linux

package vrrp

import (
	"errors"
	"net"
	"net/netip"
)

// announcer needs Linux packet sockets; elsewhere the state machine and
// codec build, and announcing fails.
type announcer struct {
	ifi *net.Interface
	ll  netip.Addr
}

func (a *announcer) close() {}

func (a *announcer) announce([]netip.Addr) error {
	return errors.New("vrrp: gratuitous ARP needs Linux")
}
