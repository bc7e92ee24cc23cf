//go:build tools

// Package deps pins the modules golvs builds on, so go.mod lists them while
// the packages that use them are written in parallel. Removed once every
// module here is imported by real code.
package deps

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/hashicorp/go-multierror"
	_ "github.com/mdlayher/packet"
	_ "github.com/miekg/dns"
	_ "github.com/moby/ipvs"
	_ "github.com/vishvananda/netlink"
	_ "golang.org/x/net/ipv4"
	_ "golang.org/x/sys/unix"
)
