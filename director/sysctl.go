package director

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/golvs/golvs/config"
	"github.com/hashicorp/go-multierror"
)

// Sysctl is one kernel setting, by its path under /proc/sys.
type Sysctl struct {
	Key   string // e.g. "net/ipv4/ip_forward"
	Value string
	// Optional settings are skipped when the file does not exist (the
	// kernel lacks the feature or the module is not loaded).
	Optional bool
}

// natSysctls is what NAT forwarding needs on the director, which routes
// the backends' replies back to the clients.
var (
	// The director forwards replies between interfaces.
	ipv4Forward = Sysctl{Key: "net/ipv4/ip_forward", Value: "1"}
	// The same for IPv6 NAT services.
	ipv6Forward = Sysctl{Key: "net/ipv6/conf/all/forwarding", Value: "1"}
	// Keep netfilter conntrack entries for IPVS connections, so a
	// stateful firewall or SNAT on the director sees the NAT traffic;
	// only present when IPVS was built with conntrack support.
	ipvsConntrack = Sysctl{Key: "net/ipv4/vs/conntrack", Value: "1", Optional: true}
)

var (
	sloppyTCP  = Sysctl{Key: "net/ipv4/vs/sloppy_tcp", Value: "1"}
	sloppySCTP = Sysctl{Key: "net/ipv4/vs/sloppy_sctp", Value: "1"}
)

// NeededSysctls returns the settings the topology's services need.
func NeededSysctls(topo *config.Topology) []Sysctl {
	var v4, v6 bool
	if topo != nil {
		for i := range topo.Services {
			s := &topo.Services[i]
			six := s.IPv6 || s.Address.Is6()
			for _, b := range s.Backends {
				if b.Forwarding == config.NAT || (b.Forwarding == "" && s.Forwarding == config.NAT) {
					v4 = v4 || !six
					v6 = v6 || six
				}
			}
		}
	}
	var out []Sysctl
	if topo != nil && topo.BGP != nil {
		// Several active directors: a flow ECMP moves to this director
		// arrives mid-stream, and IPVS must schedule it (mh picks the
		// same real server every director picks) instead of dropping
		// a packet that is not a SYN.
		out = append(out, sloppyTCP)
		for i := range topo.Services {
			if topo.Services[i].Protocol == config.SCTP {
				out = append(out, sloppySCTP)
				break
			}
		}
	}
	if v4 {
		out = append(out, ipv4Forward)
	}
	if v6 {
		out = append(out, ipv6Forward)
	}
	if v4 || v6 {
		out = append(out, ipvsConntrack)
	}
	return out
}

// SysctlChange is a setting that was changed, with its old value.
type SysctlChange struct {
	Sysctl
	Old string
}

// ApplySysctls reads each setting under root (normally /proc/sys) and
// writes the ones that differ. It returns what it changed so the caller
// can restore it; every setting is tried.
func ApplySysctls(root string, want []Sysctl, log *slog.Logger) ([]SysctlChange, error) {
	var changes []SysctlChange
	var errs *multierror.Error
	for _, s := range want {
		p := filepath.Join(root, s.Key)
		b, err := os.ReadFile(p)
		if err != nil {
			if s.Optional && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			errs = multierror.Append(errs, fmt.Errorf("sysctl %s: %w", s.Key, err))
			continue
		}
		old := strings.TrimSpace(string(b))
		if old == s.Value {
			continue
		}
		if err := os.WriteFile(p, []byte(s.Value+"\n"), 0o644); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("sysctl %s: %w", s.Key, err))
			continue
		}
		if log != nil {
			log.Info("sysctl set", "key", s.Key, "value", s.Value, "was", old)
		}
		changes = append(changes, SysctlChange{Sysctl: s, Old: old})
	}
	return changes, errs.ErrorOrNil()
}

// RestoreSysctls writes back the old values of changes.
func RestoreSysctls(root string, changes []SysctlChange) error {
	var errs *multierror.Error
	for _, c := range changes {
		if err := os.WriteFile(filepath.Join(root, c.Key), []byte(c.Old+"\n"), 0o644); err != nil {
			errs = multierror.Append(errs, fmt.Errorf("restore sysctl %s: %w", c.Key, err))
		}
	}
	return errs.ErrorOrNil()
}
