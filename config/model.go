// Package config turns a topology file into a typed, validated model.
//
// The file format is the public contract in shared/design/topology.md. Load
// decodes strictly (unknown keys are errors), applies defaults, validates
// every field and reports every error with FILE:LINE:COL.
package config

import (
	"net/netip"
	"time"
)

// Topology is one validated topology file: the whole cluster.
type Topology struct {
	// Path is the file the topology was loaded from (for messages).
	Path       string
	Director   Director
	Failover   *Failover // nil when the file has no [failover]
	BGP        *BGP      // nil when the file has no [bgp]
	Services   []Service
	RealServer RealServer

	pieces *pieces // how the source was cut, for Reload and Diff
}

// Director is the [director] table.
type Director struct {
	Interface      string        // where VIPs are added while active
	ResyncInterval time.Duration // default 30s
	ControlSocket  string        // default /run/golvs/director.sock
	MetricsAddress string        // "" = no metrics listener
	// StateFile remembers which IPVS services this director created, so a
	// service deleted from the file is still cleaned up after a restart,
	// and operator drains survive a restart. An extension of the contract:
	// optional key state_file, default /run/golvs/director.state.
	StateFile string
}

// Failover is the [failover] table: VRRPv3 between directors.
type Failover struct {
	VirtualRouterID uint8         // 1..255
	Priority        uint8         // 1..254
	AdvertInterval  time.Duration // default 1s, centisecond resolution
	Preempt         bool          // default true
	Peers           []netip.Addr  // empty = multicast
	AuthKeyFile     string        // "" = plain RFC 9568 adverts
	Notify          string        // "" = no notify program
	// TrackDecrement: while no service has a healthy backend, the
	// priority is lowered by this much instead of entering fault, so a
	// peer that can serve takes the VIPs and gives them back when this
	// director can serve again. 0 = fault.
	TrackDecrement uint8
	// PreemptDelay (preempt_delay): how long after it starts, or its
	// advert link returns, this director lets a lower-priority master
	// keep the VIPs before preempting it. nil = the default: with
	// [failover.sync] the time the sync needs to settle (the director
	// computes it), else none.
	PreemptDelay *time.Duration

	// Addresses follow the master besides the VIPs ([[failover.address]]),
	// e.g. the NAT real servers' gateway on the inner segment.
	Addresses []FailoverAddress
	// Sync is [failover.sync]: kernel IPVS connection sync between the
	// directors; nil when absent.
	Sync *Sync
}

// FailoverAddress is one [[failover.address]].
type FailoverAddress struct {
	Prefix    netip.Prefix // the address with its prefix length, e.g. 10.0.1.1/24 (not masked)
	Interface string       // default: [director] interface
}

// Sync is [failover.sync]: the kernel's IPVS sync daemons. Group, Port and
// TTL hold the kernel's defaults when the file leaves them out, so they
// compare equal to what the kernel reports for a running daemon.
type Sync struct {
	Interface string     // default: [director] interface
	SyncID    uint8      // default: the virtual_router_id
	Group     netip.Addr // default 224.0.0.81
	Port      uint16     // default 8848
	TTL       uint8      // default 1
	// MaxLen is the largest sync message (UDP payload); 0 lets the kernel
	// size it from the interface's MTU.
	MaxLen uint16
}

// Protocol is a service's L4 protocol.
type Protocol string

const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// Forwarding is how IPVS forwards to a backend.
type Forwarding string

const (
	NAT Forwarding = "nat"
	DR  Forwarding = "dr"
	TUN Forwarding = "tun"
)

// OnFailure is what happens to a backend whose check fails.
type OnFailure string

const (
	Weight0 OnFailure = "weight0"
	Remove  OnFailure = "remove"
)

// Service is one [[service]]: an IPVS virtual service and its backends.
type Service struct {
	Name string

	// Either Address/Port/Protocol or FWMark identifies the service.
	Address  netip.Addr // invalid (zero) for fwmark services
	Port     uint16     // 0 only with persistence (all ports)
	Protocol Protocol   // tcp for fwmark services unless set
	FWMark   uint32     // 0 = not a fwmark service
	// IPv6 reports the address family: for fwmark services it is taken
	// from the backends (IPVS keys fwmark services by family too).
	IPv6 bool

	Scheduler          string   // default "wrr"
	SchedulerFlags     []string // e.g. "sh-port", "mh-fallback"
	Forwarding         Forwarding
	Persistence        time.Duration // 0 = not persistent
	PersistenceNetmask netip.Addr    // IPv4 mask; invalid (zero) = kernel default
	// PersistencePrefix is the IPv6 persistence prefix length (0 = /128).
	PersistencePrefix int

	Quorum       int            // 0 = no quorum rule
	SorryServer  netip.AddrPort // invalid (zero) = none
	OnFailure    OnFailure      // default weight0
	DrainTimeout time.Duration  // default 30s

	Check    *Check // nil = no check, backends always up
	Backends []Backend
}

// CheckType names a health checker.
type CheckType string

const (
	CheckTCP   CheckType = "tcp"
	CheckHTTP  CheckType = "http"
	CheckHTTPS CheckType = "https"
	CheckUDP   CheckType = "udp"
	CheckDNS   CheckType = "dns"
	CheckExec  CheckType = "exec"
	CheckAgent CheckType = "agent"
	CheckNone  CheckType = "none"
)

// Check is a [service.check] table.
type Check struct {
	Type     CheckType
	Interval time.Duration // default 2s
	Timeout  time.Duration // default 1s; must be <= Interval
	Rise     int           // default 2
	Fall     int           // default 3
	Port     uint16        // 0 = the backend's port

	// http / https
	Path         string // default "/"
	Host         string
	ExpectStatus []int // default [200]
	ExpectBody   string
	TLSVerify    bool

	// udp: payloads already decoded from text or "hex:".
	Send   []byte
	Expect []byte

	// dns
	Query     string
	QueryType string // default "A"

	// exec
	Command []string
}

// Backend is one [[service.backend]]: an IPVS real server.
type Backend struct {
	Address        netip.Addr
	Port           uint16
	Weight         int        // 0..65535, default 1
	Forwarding     Forwarding // the service's unless overridden
	UpperThreshold uint32
	LowerThreshold uint32
}

// AddrPort is the backend's address and port.
func (b Backend) AddrPort() netip.AddrPort { return netip.AddrPortFrom(b.Address, b.Port) }

// RealServer is the [realserver] table, read by the realserver agent.
type RealServer struct {
	AgentAddress    string // default ":9471"
	TunnelInterface string // default "tunl0"
}

// MaxPreemptDelay bounds preempt_delay: a larger one is a typo, not a
// wish to leave a weaker master in charge for hours.
const MaxPreemptDelay = time.Hour

// Defaults that the contract leaves to us; kept here so the README, the
// loader and the tests agree.
const (
	DefaultPath            = "/etc/golvs/topology.toml"
	DefaultResyncInterval  = 30 * time.Second
	DefaultControlSocket   = "/run/golvs/director.sock"
	DefaultStateFile       = "/run/golvs/director.state"
	DefaultAdvertInterval  = time.Second
	DefaultScheduler       = "wrr"
	DefaultDrainTimeout    = 30 * time.Second
	DefaultCheckInterval   = 2 * time.Second
	DefaultCheckTimeout    = time.Second
	DefaultRise            = 2
	DefaultFall            = 3
	DefaultAgentAddress    = ":9471"
	DefaultTunnelInterface = "tunl0"
	DefaultSyncPort        = 8848 // the kernel's IP_VS_SYNC_PORT
	DefaultSyncTTL         = 1
)

// DefaultSyncGroup is the kernel's IP_VS_SYNC_GROUP.
var DefaultSyncGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})
