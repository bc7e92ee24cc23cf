package ipvs

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// ConnOrigins counts the kernel's connection entries by where they came
// from: made here by scheduling a packet, or received from the peer's sync
// daemon. On a backup, Synced is what a takeover would keep; on a master
// it shows what the peer told it (after a failback).
type ConnOrigins struct {
	Local  int
	Synced int
	// SyncedByState counts the synced entries by protocol state
	// (ESTABLISHED, FIN_WAIT, ...; templates are NONE).
	SyncedByState map[string]int
}

// ParseConnOrigins reads the kernel's /proc/net/ip_vs_conn_sync: a title
// line, then one connection per line whose last two fields are the origin
// (LOCAL or SYNC) and the seconds left, after the state.
func ParseConnOrigins(r io.Reader) (ConnOrigins, error) {
	o := ConnOrigins{SyncedByState: map[string]int{}}
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if !strings.HasPrefix(line, "Pro ") {
				return ConnOrigins{}, fmt.Errorf("ip_vs_conn_sync: unexpected title %q", line)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		switch origin, state := f[len(f)-2], f[len(f)-3]; origin {
		case "LOCAL":
			o.Local++
		case "SYNC":
			o.Synced++
			o.SyncedByState[state]++
		default:
			return ConnOrigins{}, fmt.Errorf("ip_vs_conn_sync: unknown origin %q in %q", origin, line)
		}
	}
	if err := sc.Err(); err != nil {
		return ConnOrigins{}, fmt.Errorf("ip_vs_conn_sync: %w", err)
	}
	return o, nil
}
