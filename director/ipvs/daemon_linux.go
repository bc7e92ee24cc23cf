package ipvs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// The IPVS sync daemon commands (linux/ip_vs.h). The kernel parses the
// daemon's attributes in ip_vs_genl_new_daemon: state, interface and sync
// id are required; the rest (Linux 4.3+) are optional and take defaults
// in start_sync_thread.
const (
	cmdNewDaemon = 9
	cmdDelDaemon = 10
	cmdGetDaemon = 11

	attrDaemon = 3

	daemonAttrState      = 1 // u32
	daemonAttrMcastIfn   = 2 // NUL-terminated string, at most 15 bytes
	daemonAttrSyncID     = 3 // u32
	daemonAttrSyncMaxLen = 4 // u16
	daemonAttrMcastGroup = 5 // in_addr, network order
	daemonAttrMcastGrp6  = 6 // in6_addr
	daemonAttrMcastPort  = 7 // u16, host order (the kernel applies htons)
	daemonAttrMcastTTL   = 8 // u8
)

var _ SyncDaemons = (*Kernel)(nil)

// Daemons returns the running sync daemons, master first.
func (k *Kernel) Daemons(ctx context.Context) ([]SyncDaemon, error) {
	var out []SyncDaemon
	err := k.do(ctx, k.callTimeout(), func(ctx context.Context, c *nlConn) error {
		out = out[:0]
		return c.dump(ctx, cmdGetDaemon, nil, func(b []byte) error {
			attrs(b, func(typ uint16, data []byte) {
				if typ == attrDaemon {
					out = append(out, parseDaemon(data))
				}
			})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ipvs daemons: %w", err)
	}
	SortDaemons(out)
	return out, nil
}

// StartDaemon starts one sync daemon.
func (k *Kernel) StartDaemon(ctx context.Context, d SyncDaemon) error {
	if err := k.daemonCall(ctx, cmdNewDaemon, d); err != nil {
		return fmt.Errorf("ipvs start %s: %w", d, err)
	}
	return nil
}

// StopDaemon stops the daemon of the given state.
func (k *Kernel) StopDaemon(ctx context.Context, state SyncState) error {
	if err := k.daemonCall(ctx, cmdDelDaemon, SyncDaemon{State: state}); err != nil {
		return fmt.Errorf("ipvs stop %s sync daemon: %w", state, err)
	}
	return nil
}

// daemonCall sends one daemon request and waits for its answer. The
// kernel's refusal (an errno) is returned without closing the socket; only
// a broken socket is.
func (k *Kernel) daemonCall(ctx context.Context, cmd uint8, d SyncDaemon) error {
	var refused error
	err := k.do(ctx, k.callTimeout(), func(ctx context.Context, c *nlConn) error {
		k.writes.Add(1)
		m := msg{b: c.wbuf[:0]}
		seq := c.nextSeq()
		start := m.begin(c.family, unix.NLM_F_REQUEST|unix.NLM_F_ACK, seq, cmd)
		m.daemon(d, cmd == cmdNewDaemon)
		m.end(start)
		c.wbuf = m.b
		if err := c.send(m.b); err != nil {
			return err
		}
		for {
			msgs, err := c.recvMsgs(ctx)
			if err != nil {
				return err
			}
			for _, r := range msgs {
				if r.typ == unix.NLMSG_ERROR && r.seq == seq {
					refused = errnoOf(r)
					return nil
				}
			}
		}
	})
	return errors.Join(err, refused)
}

// daemon writes the daemon nest; full adds what a start takes. Optional
// settings left zero are not sent, so the kernel picks its defaults.
func (m *msg) daemon(d SyncDaemon, full bool) {
	n := m.nestStart(attrDaemon)
	m.u32(daemonAttrState, uint32(d.State))
	if full {
		m.attr(daemonAttrMcastIfn, append([]byte(d.Interface), 0))
		m.u32(daemonAttrSyncID, uint32(d.SyncID))
		if d.MaxLen != 0 {
			m.u16(daemonAttrSyncMaxLen, d.MaxLen)
		}
		switch {
		case d.Group.Is4():
			m.attr(daemonAttrMcastGroup, d.Group.AsSlice())
		case d.Group.Is6():
			m.attr(daemonAttrMcastGrp6, d.Group.AsSlice())
		}
		if d.Port != 0 {
			m.u16(daemonAttrMcastPort, d.Port)
		}
		if d.TTL != 0 {
			m.attr(daemonAttrMcastTTL, []byte{d.TTL})
		}
	}
	m.nestEnd(n)
}

// parseDaemon decodes one daemon as ip_vs_genl_fill_daemon reports it.
func parseDaemon(b []byte) SyncDaemon {
	var d SyncDaemon
	attrs(b, func(typ uint16, data []byte) {
		switch typ {
		case daemonAttrState:
			d.State = SyncState(u32(data))
		case daemonAttrMcastIfn:
			d.Interface = cString(data)
		case daemonAttrSyncID:
			d.SyncID = uint8(u32(data))
		case daemonAttrSyncMaxLen:
			d.MaxLen = u16(data)
		case daemonAttrMcastGroup:
			if len(data) >= 4 {
				d.Group = netip.AddrFrom4([4]byte(data[:4]))
			}
		case daemonAttrMcastGrp6:
			if len(data) >= 16 {
				d.Group = netip.AddrFrom16([16]byte(data[:16]))
			}
		case daemonAttrMcastPort:
			d.Port = u16(data)
		case daemonAttrMcastTTL:
			if len(data) >= 1 {
				d.TTL = data[0]
			}
		}
	})
	return d
}
