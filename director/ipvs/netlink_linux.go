package ipvs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A small generic-netlink client for the kernel's IPVS family, written for
// large tables. Two things make it faster than one round trip per change
// (moby/ipvs, libnl's ipvsadm):
//
//   - Writes are batched: many requests go in one sendmsg and the kernel's
//     netlink_rcv_skb handles them in order under the genl mutex. Only the
//     last request asks for an ACK; the others are answered only when they
//     fail (an NLMSG_ERROR carrying their sequence number), so a batch costs
//     one send and, usually, one receive.
//   - Buffers are reused and no goroutine or timer is made per call: the
//     socket has a short receive timeout and the deadline is checked
//     whenever it fires.
//
// Dumps cannot be batched the same way: a netlink socket runs one dump at a
// time (a second one in the same batch gets EBUSY while the first waits for
// its NLMSG_DONE), and IPVS lists destinations one service per dump. So a
// dump is 1 + services requests; recvmmsg takes each one's data and DONE
// datagrams in one call.

// IPVS generic netlink constants (linux/ip_vs.h).
const (
	ipvsGenlName    = "IPVS"
	ipvsGenlVersion = 1

	cmdNewService = 1
	cmdSetService = 2
	cmdDelService = 3
	cmdGetService = 4
	cmdNewDest    = 5
	cmdSetDest    = 6
	cmdDelDest    = 7
	cmdGetDest    = 8

	attrService = 1
	attrDest    = 2

	svcAttrAF        = 1
	svcAttrProtocol  = 2
	svcAttrAddr      = 3
	svcAttrPort      = 4
	svcAttrFWMark    = 5
	svcAttrSchedName = 6
	svcAttrFlags     = 7
	svcAttrTimeout   = 8
	svcAttrNetmask   = 9

	destAttrAddr        = 1
	destAttrPort        = 2
	destAttrFwdMethod   = 3
	destAttrWeight      = 4
	destAttrUThresh     = 5
	destAttrLThresh     = 6
	destAttrActiveConns = 7
	destAttrInactConns  = 8
	destAttrAddrFamily  = 11
	// Nested counters: STATS (u32, every kernel) and STATS64 (u64, 4.1+).
	destAttrStats   = 10
	destAttrStats64 = 12
	statsAttrConns  = 1

	connFwdMask = 0x7

	nlaNested  = 0x8000
	nlaTypeMsk = 0x3fff
)

const (
	// batchBytes bounds one sendmsg: well under the default socket send
	// buffer (the kernel refuses a message larger than sk_sndbuf).
	batchBytes = 48 << 10
	// rcvBuf is asked for with SO_RCVBUFFORCE so that the error replies
	// of a whole failed batch fit.
	rcvBuf = 4 << 20
	// pollEvery is the socket receive timeout: how often a blocked
	// receive looks at its deadline.
	pollEvery = 100 * time.Millisecond
	// recvBufLen is the receive buffer; it also sizes the kernel's dump
	// replies, so it is kept moderate.
	recvBufLen = 32 << 10
	// smallSkbOverhead is what the kernel keeps of a page-sized skb for
	// its shared info (SKB_WITH_OVERHEAD): a receive buffer no larger than
	// the rest keeps dump replies in one page each (see destBufLen).
	smallSkbOverhead = 320
	// recvBatch is how many datagrams one receive call may return.
	recvBatch = 8
)

// destBufLen is the receive buffer of the socket for destination dumps.
// The kernel sizes each dump reply to the largest buffer the socket has
// read with (32 KiB here takes a multi-page allocation per dump); a
// service's destinations fit a page, and one page per reply made a
// 5,000-service dump a quarter faster in the lab. A reply that would not
// fit is reported truncated, and the caller goes back to big buffers.
func destBufLen() int { return unix.Getpagesize() - smallSkbOverhead }

// errTruncated: a datagram was larger than the receive buffer.
var errTruncated = errors.New("netlink: reply truncated")

// errNoIPVS is returned when the kernel has no IPVS netlink family.
var errNoIPVS = errors.New("the kernel has no IPVS netlink family (load ip_vs before starting)")

// nlConn is one netlink socket talking to the IPVS family. It is not safe
// for concurrent use; Kernel serialises calls.
type nlConn struct {
	fd     int
	family uint16
	seq    uint32
	wbuf   []byte
	// Receive buffers and the recvmmsg vector pointing at them.
	bufLen int
	bufs   [recvBatch][]byte
	iov    [recvBatch]unix.Iovec
	mm     [recvBatch]unix.Mmsghdr
}

// dialIPVS opens the socket and looks up the IPVS family.
func dialIPVS() (*nlConn, error) { return dialIPVSBuf(recvBufLen) }

func dialIPVSBuf(bufLen int) (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	c := &nlConn{fd: fd, bufLen: bufLen}
	for i := range c.bufs {
		c.bufs[i] = make([]byte, bufLen)
		c.iov[i].Base = &c.bufs[i][0]
		c.iov[i].SetLen(bufLen)
		c.mm[i].Hdr.Iov = &c.iov[i]
		c.mm[i].Hdr.SetIovlen(1)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		// Not privileged: the default buffer still holds many errors.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	// Errors without a copy of the request: smaller replies.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	tv := unix.NsecToTimeval(pollEvery.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		c.close()
		return nil, fmt.Errorf("netlink receive timeout: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultCallTimeout)
	defer cancel()
	if c.family, err = c.resolveFamily(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

func (c *nlConn) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// msg builds netlink messages in c.wbuf.
type msg struct{ b []byte }

// begin starts a message; it returns the offset to pass to end.
func (m *msg) begin(typ, flags uint16, seq uint32, cmd uint8) int {
	start := len(m.b)
	var h [unix.NLMSG_HDRLEN + 4]byte
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], flags)
	binary.NativeEndian.PutUint32(h[8:], seq)
	h[16] = cmd
	h[17] = ipvsGenlVersion
	m.b = append(m.b, h[:]...)
	return start
}

func (m *msg) end(start int) {
	binary.NativeEndian.PutUint32(m.b[start:], uint32(len(m.b)-start))
}

func (m *msg) attr(typ uint16, data []byte) {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	m.b = append(m.b, h[:]...)
	m.b = append(m.b, data...)
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
}

func (m *msg) u16(typ, v uint16) {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	m.attr(typ, b[:])
}

func (m *msg) be16(typ, v uint16) {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	m.attr(typ, b[:])
}

func (m *msg) u32(typ uint16, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	m.attr(typ, b[:])
}

func (m *msg) nestStart(typ uint16) int {
	start := len(m.b)
	m.attr(typ|nlaNested, nil)
	return start
}

func (m *msg) nestEnd(start int) {
	binary.NativeEndian.PutUint16(m.b[start:], uint16(len(m.b)-start))
}

// serviceKey writes the attributes that identify a service.
func (m *msg) serviceKey(k ServiceKey) {
	m.u16(svcAttrAF, k.Family)
	if k.FWMark != 0 {
		m.u32(svcAttrFWMark, k.FWMark)
		return
	}
	m.u16(svcAttrProtocol, k.Protocol)
	m.attr(svcAttrAddr, k.Address.AsSlice())
	m.be16(svcAttrPort, k.Port)
}

// service writes a service; full adds its settings (adds and updates).
// The kernel keeps the netmask as a __be32: for IPv4 the bytes of the
// big-endian mask, for IPv6 a prefix length it compares as a host-order
// number.
func (m *msg) service(s Service, full bool) {
	n := m.nestStart(attrService)
	m.serviceKey(s.ServiceKey)
	if full {
		m.attr(svcAttrSchedName, append([]byte(s.Scheduler), 0))
		var fl [8]byte
		binary.NativeEndian.PutUint32(fl[0:], s.Flags&^FlagHashed)
		binary.NativeEndian.PutUint32(fl[4:], ^uint32(0))
		m.attr(svcAttrFlags, fl[:])
		m.u32(svcAttrTimeout, s.Timeout)
		var nm [4]byte
		if s.Family == unix.AF_INET {
			binary.BigEndian.PutUint32(nm[:], s.Netmask)
		} else {
			binary.NativeEndian.PutUint32(nm[:], s.Netmask)
		}
		m.attr(svcAttrNetmask, nm[:])
	}
	m.nestEnd(n)
}

// dest writes a destination; full adds its settings.
func (m *msg) dest(d Destination, full bool) {
	n := m.nestStart(attrDest)
	m.attr(destAttrAddr, d.Address.AsSlice())
	m.be16(destAttrPort, d.Port)
	fam := uint16(unix.AF_INET)
	if d.Address.Is6() {
		fam = unix.AF_INET6
	}
	m.u16(destAttrAddrFamily, fam)
	if full {
		m.u32(destAttrFwdMethod, uint32(d.Forwarding)&connFwdMask)
		m.u32(destAttrWeight, uint32(d.Weight))
		m.u32(destAttrUThresh, d.UpperThreshold)
		m.u32(destAttrLThresh, d.LowerThreshold)
	}
	m.nestEnd(n)
}

// write appends one change as a request.
func (m *msg) write(family uint16, flags uint16, seq uint32, w Write) {
	var cmd uint8
	switch w.Kind {
	case WriteAddService:
		cmd = cmdNewService
	case WriteUpdateService:
		cmd = cmdSetService
	case WriteDeleteService:
		cmd = cmdDelService
	case WriteAddDest:
		cmd = cmdNewDest
	case WriteUpdateDest:
		cmd = cmdSetDest
	case WriteDeleteDest:
		cmd = cmdDelDest
	}
	start := m.begin(family, flags, seq, cmd)
	switch w.Kind {
	case WriteAddService, WriteUpdateService:
		m.service(w.Service, true)
	case WriteDeleteService:
		m.service(w.Service, false)
	default:
		m.service(w.Service, false)
		m.dest(w.Dest, w.Kind != WriteDeleteDest)
	}
	m.end(start)
}

func (c *nlConn) send(b []byte) error {
	if err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	return nil
}

// recvMsgs waits (until ctx ends) for at least one datagram, takes every
// datagram already queued, up to recvBatch, in the same recvmmsg call, and
// returns their messages. A dump's data and its NLMSG_DONE are two
// datagrams (the DONE is made while the data is read), so this saves a
// system call per dumped service. The messages point into c's buffers:
// use them before the next call.
func (c *nlConn) recvMsgs(ctx context.Context) ([]nlMsg, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(c.fd), uintptr(unsafe.Pointer(&c.mm[0])),
			uintptr(len(c.mm)), unix.MSG_WAITFORONE, 0, 0)
		switch {
		case errno == 0:
			var out []nlMsg
			for i := range int(n) {
				l := int(c.mm[i].Len)
				if c.mm[i].Hdr.Flags&unix.MSG_TRUNC != 0 || l > c.bufLen {
					return nil, errTruncated
				}
				if l < unix.NLMSG_HDRLEN {
					return nil, fmt.Errorf("netlink: short reply (%d bytes)", l)
				}
				msgs, err := parseMsgs(c.bufs[i][:l])
				if err != nil {
					return nil, err
				}
				out = append(out, msgs...)
			}
			return out, nil
		case errno == unix.EAGAIN, errno == unix.EINTR:
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		default:
			return nil, fmt.Errorf("netlink receive: %w", errno)
		}
	}
}

// nlMsg is one received message.
type nlMsg struct {
	typ, flags uint16
	seq        uint32
	payload    []byte // after the netlink header
}

// parseMsgs splits a datagram into messages.
func parseMsgs(b []byte) ([]nlMsg, error) {
	var out []nlMsg
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("netlink: bad message length %d", l)
		}
		out = append(out, nlMsg{
			typ:     binary.NativeEndian.Uint16(b[4:]),
			flags:   binary.NativeEndian.Uint16(b[6:]),
			seq:     binary.NativeEndian.Uint32(b[8:]),
			payload: b[unix.NLMSG_HDRLEN:l],
		})
		l = (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
	return out, nil
}

// errnoOf returns the error an NLMSG_ERROR carries, nil for an ACK.
func errnoOf(m nlMsg) error {
	if len(m.payload) < 4 {
		return errors.New("netlink: short error message")
	}
	if e := int32(binary.NativeEndian.Uint32(m.payload)); e != 0 {
		return unix.Errno(-e)
	}
	return nil
}

// attrs calls fn for each attribute in b.
func attrs(b []byte, fn func(typ uint16, data []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&nlaTypeMsk, b[4:l])
		l = (l + 3) &^ 3
		if l > len(b) {
			l = len(b)
		}
		b = b[l:]
	}
}

func (c *nlConn) nextSeq() uint32 {
	c.seq++
	return c.seq
}

// resolveFamily asks the generic netlink controller for IPVS's id.
func (c *nlConn) resolveFamily(ctx context.Context) (uint16, error) {
	m := msg{b: c.wbuf[:0]}
	seq := c.nextSeq()
	start := len(m.b)
	var h [unix.NLMSG_HDRLEN + 4]byte
	binary.NativeEndian.PutUint16(h[4:], unix.GENL_ID_CTRL)
	binary.NativeEndian.PutUint16(h[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(h[8:], seq)
	h[16] = unix.CTRL_CMD_GETFAMILY
	h[17] = 1
	m.b = append(m.b, h[:]...)
	m.attr(unix.CTRL_ATTR_FAMILY_NAME, append([]byte(ipvsGenlName), 0))
	m.end(start)
	if err := c.send(m.b); err != nil {
		return 0, err
	}
	for {
		msgs, err := c.recvMsgs(ctx)
		if err != nil {
			return 0, err
		}
		for _, r := range msgs {
			if r.seq != seq {
				continue
			}
			if r.typ == unix.NLMSG_ERROR {
				if err := errnoOf(r); err != nil {
					if errors.Is(err, unix.ENOENT) {
						return 0, fmt.Errorf("%w: %w", errNoIPVS, err)
					}
					return 0, fmt.Errorf("genl family lookup: %w", err)
				}
				continue
			}
			if len(r.payload) < 4 {
				continue
			}
			var id uint16
			attrs(r.payload[4:], func(typ uint16, data []byte) {
				if typ == unix.CTRL_ATTR_FAMILY_ID && len(data) >= 2 {
					id = binary.NativeEndian.Uint16(data)
				}
			})
			if id == 0 {
				return 0, errors.New("genl family lookup: no family id in reply")
			}
			return id, nil
		}
	}
}

// writeBatch sends ws in batches and returns each one's outcome. A
// non-nil second result means the connection is unusable (I/O error or
// deadline): the changes without an outcome get that error.
func (c *nlConn) writeBatch(ctx context.Context, ws []Write) ([]error, error) {
	errs := make([]error, len(ws))
	for i := 0; i < len(ws); {
		m := msg{b: c.wbuf[:0]}
		first := c.seq + 1
		j := i
		for j < len(ws) && (j == i || len(m.b) < batchBytes) {
			flags := uint16(unix.NLM_F_REQUEST)
			if j+1 == len(ws) || len(m.b) >= batchBytes-512 {
				flags |= unix.NLM_F_ACK
			}
			m.write(c.family, flags, c.nextSeq(), ws[j])
			j++
			if flags&unix.NLM_F_ACK != 0 {
				break
			}
		}
		c.wbuf = m.b
		last := c.seq
		if err := c.send(m.b); err != nil {
			return fill(errs, i, err), err
		}
		// Read until the last request's ACK: the kernel handles a batch
		// in order, so every earlier failure has been reported by then.
		done := false
		for !done {
			msgs, err := c.recvMsgs(ctx)
			if err != nil {
				return fill(errs, i, err), err
			}
			for _, r := range msgs {
				if r.typ != unix.NLMSG_ERROR || r.seq < first || r.seq > last {
					continue // a stale reply of an abandoned call
				}
				errs[i+int(r.seq-first)] = errnoOf(r)
				if r.seq == last {
					done = true
				}
			}
		}
		i = j
	}
	return errs, nil
}

// fill sets err on every change from i on that has no outcome yet.
func fill(errs []error, i int, err error) []error {
	for ; i < len(errs); i++ {
		if errs[i] == nil {
			errs[i] = err
		}
	}
	return errs
}

// dump runs one dump request and calls fn with each reply's attributes
// (after the genl header).
func (c *nlConn) dump(ctx context.Context, cmd uint8, key *ServiceKey, fn func(attrs []byte) error) error {
	m := msg{b: c.wbuf[:0]}
	seq := c.nextSeq()
	start := m.begin(c.family, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, cmd)
	if key != nil {
		n := m.nestStart(attrService)
		m.serviceKey(*key)
		m.nestEnd(n)
	}
	m.end(start)
	c.wbuf = m.b
	if err := c.send(m.b); err != nil {
		return err
	}
	var cbErr error
	for {
		msgs, err := c.recvMsgs(ctx)
		if err != nil {
			return err
		}
		for _, r := range msgs {
			if r.seq != seq {
				continue
			}
			switch r.typ {
			case unix.NLMSG_DONE:
				return cbErr
			case unix.NLMSG_ERROR:
				if err := errnoOf(r); err != nil {
					return err
				}
				return cbErr
			}
			if r.flags&unix.NLM_F_DUMP_INTR != 0 {
				// The table changed during the dump: the caller's
				// next pass sees a consistent one.
				cbErr = errors.Join(cbErr, fmt.Errorf("dump interrupted: %w", unix.EAGAIN))
			}
			if len(r.payload) < 4 || cbErr != nil {
				continue
			}
			if err := fn(r.payload[4:]); err != nil {
				cbErr = err
			}
		}
	}
}

// dumpTable returns every service with its destinations.
// Destination dumps go over dc when it is not nil (a socket with
// page-sized buffers).
func (c *nlConn) dumpTable(ctx context.Context, dc *nlConn) ([]Entry, error) {
	if dc == nil {
		dc = c
	}
	entries, err := c.dumpServiceList(ctx)
	if err != nil {
		return nil, err
	}
	for i := range entries {
		if err := dc.dumpDests(ctx, &entries[i]); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

// dumpServices reads the services keys name (those the kernel has).
func (c *nlConn) dumpServices(ctx context.Context, keys []ServiceKey) ([]Entry, error) {
	var entries []Entry
	for _, key := range keys {
		s, found, err := c.getService(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", key, err)
		}
		if !found {
			continue
		}
		e := Entry{Service: s}
		if err := c.dumpDests(ctx, &e); err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// dumpDests fills e.Destinations (sorted) and e.Order with one
// destination dump.
func (c *nlConn) dumpDests(ctx context.Context, e *Entry) error {
	err := c.dump(ctx, cmdGetDest, &e.Service.ServiceKey, func(b []byte) error {
		var perr error
		attrs(b, func(typ uint16, data []byte) {
			if typ == attrDest {
				d, err := parseDest(data, e.Service.Family)
				if err != nil {
					perr = err
					return
				}
				e.Destinations = append(e.Destinations, d)
			}
		})
		return perr
	})
	if err != nil {
		return fmt.Errorf("destinations of %s: %w", e.Service.ServiceKey, err)
	}
	e.Order = OrderOf(e.Service.Scheduler, e.Destinations) // the dump walks the list
	SortDestinations(e.Destinations)
	return nil
}

// getService asks for one service; found is false when the kernel has
// no such service (ESRCH).
func (c *nlConn) getService(ctx context.Context, key ServiceKey) (s Service, found bool, err error) {
	m := msg{b: c.wbuf[:0]}
	seq := c.nextSeq()
	start := m.begin(c.family, unix.NLM_F_REQUEST, seq, cmdGetService)
	n := m.nestStart(attrService)
	m.serviceKey(key)
	m.nestEnd(n)
	m.end(start)
	c.wbuf = m.b
	if err := c.send(m.b); err != nil {
		return Service{}, false, err
	}
	for {
		msgs, err := c.recvMsgs(ctx)
		if err != nil {
			return Service{}, false, err
		}
		for _, r := range msgs {
			if r.seq != seq {
				continue
			}
			if r.typ == unix.NLMSG_ERROR {
				err := errnoOf(r)
				if errors.Is(err, unix.ESRCH) {
					return Service{}, false, nil
				}
				if err == nil {
					continue // an ACK; the reply came or comes apart
				}
				return Service{}, false, err
			}
			if len(r.payload) < 4 {
				return Service{}, false, errors.New("netlink: short service reply")
			}
			var perr error
			attrs(r.payload[4:], func(typ uint16, data []byte) {
				if typ == attrService && !found {
					s, perr = parseService(data)
					found = perr == nil
				}
			})
			if perr != nil {
				return Service{}, false, perr
			}
			if !found {
				return Service{}, false, errors.New("netlink: service reply without a service")
			}
			return s, true, nil
		}
	}
}

// parseService decodes a service as the kernel reports it, normalised:
// HASHED masked, the netmask in our byte order, fwmark services without
// address, port or protocol.
func parseService(b []byte) (Service, error) {
	var s Service
	var addr, netmask []byte
	var port, proto uint16
	attrs(b, func(typ uint16, data []byte) {
		switch typ {
		case svcAttrAF:
			s.Family = u16(data)
		case svcAttrProtocol:
			proto = u16(data)
		case svcAttrAddr:
			addr = data
		case svcAttrPort:
			if len(data) >= 2 {
				port = binary.BigEndian.Uint16(data)
			}
		case svcAttrFWMark:
			s.FWMark = u32(data)
		case svcAttrSchedName:
			s.Scheduler = cString(data)
		case svcAttrFlags:
			s.Flags = u32(data) &^ FlagHashed
		case svcAttrTimeout:
			s.Timeout = u32(data)
		case svcAttrNetmask:
			netmask = data
		}
	})
	if len(netmask) >= 4 {
		if s.Family == unix.AF_INET {
			s.Netmask = binary.BigEndian.Uint32(netmask)
		} else {
			s.Netmask = binary.NativeEndian.Uint32(netmask)
		}
	}
	if s.FWMark == 0 {
		a, err := addrFrom(addr, s.Family)
		if err != nil {
			return Service{}, fmt.Errorf("service address: %w", err)
		}
		s.Address, s.Port, s.Protocol = a, port, proto
	}
	return s, nil
}

func parseDest(b []byte, svcFamily uint16) (Destination, error) {
	var d Destination
	var addr []byte
	fam := svcFamily
	attrs(b, func(typ uint16, data []byte) {
		switch typ {
		case destAttrAddr:
			addr = data
		case destAttrPort:
			if len(data) >= 2 {
				d.Port = binary.BigEndian.Uint16(data)
			}
		case destAttrFwdMethod:
			d.Forwarding = Forwarding(u32(data) & connFwdMask)
		case destAttrWeight:
			d.Weight = int(int32(u32(data)))
		case destAttrUThresh:
			d.UpperThreshold = u32(data)
		case destAttrLThresh:
			d.LowerThreshold = u32(data)
		case destAttrActiveConns:
			d.ActiveConns = int(u32(data))
		case destAttrInactConns:
			d.InactiveConns = int(u32(data))
		case destAttrAddrFamily:
			fam = u16(data)
		case destAttrStats, destAttrStats64:
			attrs(data, func(t uint16, v []byte) {
				if t != statsAttrConns {
					return
				}
				// The 64-bit counter wins whichever comes first.
				if len(v) >= 8 {
					d.Conns = binary.NativeEndian.Uint64(v)
				} else if d.Conns == 0 {
					d.Conns = uint64(u32(v))
				}
			})
		}
	})
	a, err := addrFrom(addr, fam)
	if err != nil {
		return Destination{}, fmt.Errorf("destination address: %w", err)
	}
	d.Address = a
	return d, nil
}

// addrFrom reads the kernel's 16-byte address union by family.
func addrFrom(b []byte, family uint16) (netip.Addr, error) {
	switch {
	case family == unix.AF_INET && len(b) >= 4:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case family == unix.AF_INET6 && len(b) >= 16:
		return netip.AddrFrom16([16]byte(b[:16])), nil
	}
	return netip.Addr{}, fmt.Errorf("bad address %v for family %d", b, family)
}

func u16(b []byte) uint16 {
	if len(b) < 2 {
		return 0
	}
	return binary.NativeEndian.Uint16(b)
}

func u32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(b)
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
